"""Private channels from envs to the oracle policy: expert actions that never travel in ``info``.

An env whose reference solution must stay out of ``info`` (where any policy wrapper could read it,
e.g. the SWE env's gold patch) registers an expert: ``register_expert(env_id, "module:function")``,
a function ``(task_id, env_kwargs) -> actions``. :class:`agentgym.policies.OraclePolicy` calls it
with the episode's task id and the env's constructor arguments. This module imports nothing heavy,
so an env's ``register_envs`` can use it during entry-point discovery.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

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
