"""Typed records that cross every boundary: rollout → credit → trainer → disk → viewer.

A :class:`Turn` is one agent action and the env's answer; a :class:`Trajectory` is one episode.
Both serialise to plain JSON-compatible dicts losslessly (``from_dict(to_dict(x)) == x``);
see :mod:`agentgym.io` for JSONL files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.errors import TrajectoryFormatError


def to_jsonable(value: Any) -> Any:
    """Convert env output (numpy scalars, tuples, sets) into JSON-native values.

    >>> to_jsonable({"a": (1, 2), "b": np.float32(0.5)})
    {'a': [1, 2], 'b': 0.5}
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_jsonable(v) for v in value)
    return repr(value)


@dataclass
class Turn:
    """One step of an episode.

    ``observation`` is what the agent saw before acting (the prompt side); ``info`` is the env's
    info after the step. The credit slots (``raw_reward``, ``shaped_reward``, ``advantage``) are
    filled by credit modules (:mod:`rewards`).
    """

    index: int
    observation: str
    action: str
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    terminated: bool = False
    truncated: bool = False
    #: token ids of the action as the policy generated them (when known)
    token_ids: list[int] | None = None
    #: per-token log-probs of ``token_ids`` under the rollout policy
    logprobs: list[float] | None = None
    #: number of prompt tokens the policy saw for this turn (when known)
    prompt_tokens: int | None = None
    raw_reward: float | None = None
    shaped_reward: float | None = None
    advantage: float | None = None
    #: credit-module extras (e.g. SPA contribution, IGPO p_t)
    credit: dict[str, Any] = field(default_factory=dict)

    @property
    def valid_action(self) -> bool:
        return bool(self.info.get("valid_action", True))


@dataclass
class Trajectory:
    """One episode of one task; a failed rollout has ``error`` set and is never scored silently."""

    env_id: str
    task_id: str
    split: str
    seed: int | None = None
    group_id: str = ""
    traj_id: str = ""
    #: the observation returned by ``reset`` (task instruction included)
    initial_observation: str = ""
    reset_info: dict[str, Any] = field(default_factory=dict)
    turns: list[Turn] = field(default_factory=list)
    #: the observation returned by the last ``step`` (what the agent would have seen next)
    final_observation: str = ""
    terminated: bool = False
    truncated: bool = False
    #: why the episode stopped: "terminated", "env_truncated", "max_turns", "max_tokens", "wall_clock", "error"
    stop_reason: str = ""
    error: str | None = None
    error_type: str | None = None
    category: str | None = None
    #: policy/rollout metadata (policy name, wall time, ...)
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- derived values -------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def outcome(self) -> float:
        """The final task reward: the sum of env rewards (0 for a failed rollout; check ``failed``)."""
        return float(sum(t.reward for t in self.turns))

    @property
    def final_info(self) -> dict[str, Any]:
        return self.turns[-1].info if self.turns else self.reset_info

    @property
    def won(self) -> bool:
        return bool(self.final_info.get("won", False)) and not self.failed

    @property
    def score(self) -> float:
        """The env's cumulative score when it reports one, else the summed reward."""
        value = self.final_info.get("score")
        return float(value) if value is not None else self.outcome

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        if not isinstance(data, dict):
            raise TrajectoryFormatError(f"expected a JSON object for a Trajectory, got {type(data).__name__}")
        data = dict(data)
        turns_raw = data.pop("turns", [])
        _check_keys(cls, data, "Trajectory")
        turns = []
        for i, raw in enumerate(turns_raw):
            if not isinstance(raw, dict):
                raise TrajectoryFormatError(f"turn {i}: expected an object, got {type(raw).__name__}")
            _check_keys(Turn, raw, f"turn {i}")
            turns.append(Turn(**raw))
        try:
            return cls(turns=turns, **data)
        except TypeError as exc:  # a required field is missing
            raise TrajectoryFormatError(f"invalid Trajectory: {exc}") from exc


def _check_keys(cls: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise TrajectoryFormatError(
            f"{what}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}"
        )


def is_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
