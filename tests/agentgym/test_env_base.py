"""The TextEnv contract on the built-in Countdown game."""

from __future__ import annotations

import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.errors import ConfigError
from agentgym.testing import CountdownEnv


def test_check_env_passes():
    check_env(agentgym.make("countdown").unwrapped)


def test_reset_selects_task_by_id_or_seeded_split():
    env = CountdownEnv()
    obs, info = env.reset(options={"task_id": "countdown-test-3"})
    assert info["task_id"] == "countdown-test-3" and "shows 4" in obs
    assert info["split"] == "test"  # found from the id when only the task is given
    first = env.reset(seed=7, options={"split": "test"})[1]["task_id"]
    assert env.reset(seed=7, options={"split": "test"})[1]["task_id"] == first
    assert first.startswith("countdown-test-")


@pytest.mark.parametrize(
    "options, match", [({"split": "nope"}, "unknown split"), ({"tsk": 1}, "unknown reset option")]
)
def test_bad_reset_options_say_what_is_expected(options, match):
    with pytest.raises(ConfigError, match=match):
        CountdownEnv().reset(options=options)


@pytest.mark.parametrize("action", ["", "jump", "dec dec", "\x00", "é" * 5000, 42, None])
def test_malformed_action_is_an_observation_not_an_exception(action):
    env = CountdownEnv()
    env.reset(options={"task_id": "countdown-train-2"})
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["valid_action"] is False
    assert "Expected format" in obs and not terminated and not truncated and reward == 0.0
    # the episode goes on
    assert env.step("dec")[4]["valid_action"] is True
