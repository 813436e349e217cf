"""verl fixtures: a tiny checkpoint dir, verl's composed ppo_trainer config, dataset rows.

verl is imported inside the fixtures only; each test module skips itself when verl is absent.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, tiny_base):
    from agentgym.models import save_tiny_model

    model, tok = tiny_base
    return str(save_tiny_model(model, tok, tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="session")
def compose():
    """``compose(overrides)`` → verl's real ``ppo_trainer`` config from the installed package."""
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")

    def run(overrides):
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            return hydra_compose("ppo_trainer", overrides=list(overrides))

    return run


@pytest.fixture(scope="session")
def loop_config(compose, tiny_dir):
    return compose(
        [
            f"actor_rollout_ref.model.path={tiny_dir}",
            "actor_rollout_ref.rollout.name=vllm",
            "data.max_prompt_length=128",
            "data.max_response_length=160",
            "actor_rollout_ref.rollout.agent.default_agent_loop=agentgym",
            "+agentgym.credit=outcome",
            "+agentgym.max_turns=4",
            "+agentgym.env_kwargs={n_tasks:3}",
        ]
    )


def pytest_configure(config):
    # verl announces each optional training engine it lacks (torchtitan, megatron, ...) on import
    config.addinivalue_line("filterwarnings", "ignore:.*engine is not available:UserWarning")


def _rows(n_tasks=2, repeat=2, env="countdown", kwargs=None):
    from verl import DataProto

    extra, prompts, uids = [], [], []
    for t in range(n_tasks):
        for r in range(repeat):
            extra.append(
                {
                    "env_id": env,
                    "task_id": f"countdown-train-{t}",
                    "seed": r,
                    "split": "train",
                    "env_kwargs": json.dumps(kwargs or {}),
                }
            )
            prompts.append([{"role": "user", "content": "placeholder"}])
            uids.append(f"task{t}")
    return DataProto.from_dict(
        non_tensors={
            "raw_prompt": np.array(prompts, dtype=object),
            "extra_info": np.array(extra, dtype=object),
            "uid": np.array(uids, dtype=object),
            "agent_name": np.array(["agentgym"] * len(uids), dtype=object),
        }
    )


@pytest.fixture(scope="session")
def rows():
    """``rows(n_tasks, repeat, env, kwargs)`` → a DataProto of countdown rows as the exporter writes them."""
    return _rows
