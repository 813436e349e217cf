"""Typed errors, by where they happen.

Every error names what was expected, what was seen and how to fix it. Errors raised inside an
environment during a rollout never escape the batch: the rollout records them on the episode's
`Trajectory.error` (see :mod:`agentgym.rollout`).
"""

from __future__ import annotations

from typing import Any


class AgentGymError(Exception):
    """Base class of every error agentgym raises on purpose."""


class ConfigError(AgentGymError, ValueError):
    """A config value or key was rejected (unknown key, bad range, wrong type)."""


def build_config(cls: Any, what: str, **kwargs: Any) -> Any:
    """``cls(**kwargs)`` for a config dataclass, refusing unknown keys with the known ones listed.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class C:
    ...     k: int = 1
    >>> build_config(C, "demo", k=2)
    C(k=2)
    """
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ConfigError(f"unknown {what} setting(s) {unknown}; known settings: {sorted(known)}")
    return cls(**kwargs)


class RegistryError(AgentGymError, KeyError):
    """An environment, credit module or trainer name is not registered (or registered twice)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(AgentGymError, FileNotFoundError):
    """An environment's data set could not be found in any documented location."""


class EnvError(AgentGymError):
    """Something went wrong inside an environment (not the agent's fault)."""


class EnvCrashed(EnvError):
    """The environment raised or its worker process died during reset/step."""


class EnvTimeout(EnvError):
    """The environment did not answer within its step deadline (a hang)."""


class PolicyError(AgentGymError):
    """The policy failed to produce actions (model error, HTTP error, bad response)."""


class TrajectoryFormatError(AgentGymError, ValueError):
    """A JSONL line is not a valid serialised Trajectory."""
