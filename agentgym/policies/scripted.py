"""Scripted policies: the oracle (replays the env's walkthrough) and random admissible actions.

Envs whose reference solution must not travel in ``info`` (where a policy wrapper could read it,
e.g. the SWE env's gold patch) register an *expert* instead: ``register_expert(env_id,
"module:function")``, a function ``(task_id, env_kwargs) -> actions`` the oracle calls itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agentgym.errors import PolicyError
from agentgym.policies.base import ActionOutput, Policy, PolicyInput

_EXPERTS: dict[str, str | Callable[[str, dict[str, Any]], list[str]]] = {}


def register_expert(env_id: str, expert: str | Callable[[str, dict[str, Any]], list[str]]) -> None:
    """Give the oracle a private way to the expert actions of ``env_id``'s tasks (``"module:fn"``
    is imported on first use)."""
    _EXPERTS[env_id] = expert


def expert_actions(env_id: str, task_id: str, env_kwargs: dict[str, Any]) -> list[str] | None:
    """The registered expert's actions for ``task_id``, or None when ``env_id`` has no expert."""
    from agentgym.registry import RegistryError, resolve

    try:
        key = resolve(env_id)
    except RegistryError:
        key = env_id
    expert = _EXPERTS.get(key) or _EXPERTS.get(env_id)
    if expert is None:
        return None
    if isinstance(expert, str):
        module, _, name = expert.partition(":")
        expert = getattr(importlib.import_module(module), name)
        _EXPERTS[key] = expert
    return list(expert(task_id, env_kwargs))


class OraclePolicy(Policy):
    """Replays ``walkthrough`` from the episode's reset info; ``expert_action`` in info wins if present.

    Envs whose expert depends on the state put the next expert action in ``info["expert_action"]``;
    envs that keep the solution out of ``info`` register an expert (:func:`register_expert`).
    """

    name = "oracle"

    def act(self, batch: Sequence[PolicyInput]) -> list[ActionOutput]:
        out = []
        for item in batch:
            expert = item.info.get("expert_action")
            if expert:
                out.append(ActionOutput(str(expert)))
                continue
            walkthrough = item.reset_info.get("walkthrough")
            if walkthrough is None:
                walkthrough = expert_actions(item.env_id, item.task_id, item.env_kwargs)
            if walkthrough is None:
                raise PolicyError(
                    f"env {item.env_id!r} gives no 'walkthrough' (or 'expert_action') in info; "
                    "the oracle policy needs one"
                )
            if item.turn_index < len(walkthrough):
                out.append(ActionOutput(str(walkthrough[item.turn_index])))
            else:  # walkthrough exhausted without ending the episode: a harmless action
                out.append(ActionOutput("look"))
        return out


class RandomPolicy(Policy):
    """Picks uniformly among ``info["admissible_actions"]`` (seeded)."""

    name = "random"

    def __init__(self, seed: int | None = 0):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, batch: Sequence[PolicyInput]) -> list[ActionOutput]:
        out = []
        for item in batch:
            actions = item.info.get("admissible_actions") or item.reset_info.get("admissible_actions")
            if not actions:
                raise PolicyError(
                    f"env {item.env_id!r} gives no 'admissible_actions' in info; the random policy needs them"
                )
            out.append(ActionOutput(str(actions[int(self.rng.integers(len(actions)))])))
        return out
