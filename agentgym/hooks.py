"""Turn-level hook points that the rollout calls, in order, for every episode.

``on_reset`` after ``env.reset``; ``on_turn`` after each ``env.step`` with the new turn and the
trajectory so far; ``on_episode_end`` once the episode stopped (terminated, truncated or failed).
Credit modules that need the live policy or env (information gain, progress estimators) do their
work here. A hook that raises marks that episode failed; the batch goes on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentgym.records import Trajectory, Turn


class Hook:
    """Base hook: override any of the three methods; the defaults do nothing."""

    def on_reset(self, traj: Trajectory, info: dict[str, Any]) -> None:
        return None

    def on_turn(self, turn: Turn, traj: Trajectory) -> None:
        return None

    def on_episode_end(self, traj: Trajectory) -> None:
        return None


class HookList(Hook):
    """Calls several hooks in the order given."""

    def __init__(self, hooks: Iterable[Hook] = ()):
        self.hooks = list(hooks)

    def on_reset(self, traj: Trajectory, info: dict[str, Any]) -> None:
        for h in self.hooks:
            h.on_reset(traj, info)

    def on_turn(self, turn: Turn, traj: Trajectory) -> None:
        for h in self.hooks:
            h.on_turn(turn, traj)

    def on_episode_end(self, traj: Trajectory) -> None:
        for h in self.hooks:
            h.on_episode_end(traj)
