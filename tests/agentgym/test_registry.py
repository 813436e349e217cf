"""Registry: ids, aliases, nearest-name errors and third-party discovery through real entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import gymnasium as gym
import pytest

import agentgym
from agentgym import registry
from agentgym.errors import RegistryError


def test_alias_and_id_resolve_to_the_same_env():
    assert registry.resolve("countdown") == "agentgym/Countdown-v0"
    assert registry.resolve("agentgym/Countdown-v0") == "agentgym/Countdown-v0"
    env = agentgym.make("countdown")
    assert env.spec.id == "agentgym/Countdown-v0"
    # registered in Gymnasium's own registry too
    gspec = gym.make("agentgym/Countdown-v0").spec
    assert gspec is not None and gspec.max_episode_steps == 30


def test_unknown_id_lists_nearest_known_names():
    with pytest.raises(RegistryError, match=r"Did you mean 'countdown'"):
        agentgym.make("countdwn")


def test_reregistering_an_id_to_another_entry_point_is_an_error():
    registry.register(
        "agentgym/Countdown-v0",
        "agentgym.testing:CountdownEnv",
        alias="countdown",
        description="tiny counting game for tests (faults=True injects crashes and hangs)",
        max_episode_steps=30,
    )  # identical: a no-op
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("agentgym/Countdown-v0", "somewhere:Else")


def test_third_party_env_is_discovered_from_distribution_metadata(tmp_path):
    """A real installed-distribution layout (dist-info with entry_points.txt) on sys.path."""
    pkg = tmp_path / "acme_envs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        from agentgym.testing import CountdownEnv

        class AcmeEnv(CountdownEnv):
            pass

        def register():
            from agentgym.registry import register
            register("acme/Acme-v0", "acme_envs:AcmeEnv", alias="acme", source="acme-envs")
    """)
    )
    dist = tmp_path / "acme_envs-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-envs\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agentgym.envs]\nacme = acme_envs:register\n")
    code = textwrap.dedent("""
        import agentgym
        from agentgym import registry
        env = agentgym.make("acme")
        obs, info = env.reset(options={"task_id": "countdown-train-0"})
        e = registry.spec("acme")
        print(env.spec.id, e.source, type(env.unwrapped).__name__, info["task_id"])
    """)
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["acme/Acme-v0", "acme-envs", "AcmeEnv", "countdown-train-0"]


def test_import_agentgym_registers_ids_with_gymnasium_in_a_fresh_process():
    """As a Gymnasium user would: plain ``gymnasium.make`` after ``import agentgym``, and the
    ``module:id`` form that makes Gymnasium import agentgym itself; neither imports an env engine."""
    import subprocess
    import sys

    code = (
        "import sys, gymnasium\n"
        "env = gymnasium.make('agentgym:agentgym/Countdown-v0')\n"
        "import agentgym\n"
        "env2 = gymnasium.make('agentgym/TextWorld-Cooking-v0')\n"
        "assert 'textworld' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\n"
        "print(type(env.unwrapped).__name__, type(env2.unwrapped).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["CountdownEnv", "CookingEnv"]
