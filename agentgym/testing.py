"""Small, fully specified games for testing rollouts, hooks, plugins and tool calling.

``Countdown``: the agent starts at a number and must reach 0 with ``dec`` (−1) or ``inc`` (+1);
reward 1 on reaching 0. With ``faults=True`` three extra actions inject failures so tests can
prove a rollout survives them: ``crash`` raises, ``hang`` sleeps past any deadline (a Python-level
hang) and ``hardhang`` ignores ``SIGALRM`` while sleeping (a hang a soft deadline cannot break).

``ToolCalc``: a tool env (:class:`agentgym.tools.ToolEnv`). The task gives two numbers; tools
``add(a, b)`` and ``answer(value)``; reward 1 when the answer is their sum (the episode ends at
the first answer). The walkthrough calls ``add`` then ``answer`` in the Hermes format.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Sequence
from typing import Any

from agentgym.env import StepResult, TextEnv
from agentgym.toolformats import get_format
from agentgym.tools import ToolEnv, ToolError


class CountdownEnv(TextEnv):
    splits = ("train", "test")
    action_format = "one of: dec, inc"

    def __init__(self, *, n_tasks: int = 5, faults: bool = False, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.n_tasks, self.faults = n_tasks, faults
        self.value = 0

    def task_ids(self, split: str) -> Sequence[str]:
        return [f"countdown-{split}-{i}" for i in range(self.n_tasks)]

    def task_category(self, task_id: str) -> str:
        return "short" if int(task_id.rsplit("-", 1)[1]) < 3 else "long"

    def _info(self, valid: bool) -> dict[str, Any]:
        return {
            "task": "reach 0",
            "admissible_actions": ["dec", "inc"],
            "valid_action": valid,
            "won": self.value == 0,
            "state_key": str(self.value),
        }

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self.value = 1 + int(task_id.rsplit("-", 1)[1])
        info = self._info(True)
        info["walkthrough"] = ["dec"] * self.value
        return f"Your task is to reach 0. The counter shows {self.value}.", info

    def _step(self, action: str) -> StepResult:
        cmd = action.strip().lower()
        if self.faults and cmd == "crash":
            raise RuntimeError("injected crash")
        if self.faults and cmd == "hang":
            time.sleep(3600)
        if self.faults and cmd == "hardhang":
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            time.sleep(3600)
        if cmd not in ("dec", "inc"):
            return self.invalid_action(f"Unknown action {action[:40]!r}.", info=self._info(False))
        self.value += -1 if cmd == "dec" else 1
        won = self.value == 0
        return f"The counter shows {self.value}.", float(won), won, False, self._info(True)


class ToolCalcEnv(ToolEnv):
    splits = ("train", "test")

    def __init__(self, *, n_tasks: int = 5, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.n_tasks = n_tasks
        self.a = self.b = 0
        self.added = False

    def task_ids(self, split: str) -> Sequence[str]:
        return [f"toolcalc-{split}-{i}" for i in range(self.n_tasks)]

    def tools(self) -> list[Any]:
        return [self.add, self.answer]

    def add(self, a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: the first number
            b: the second number
        """
        self.added = self.added or {a, b} == {self.a, self.b}
        return a + b

    def answer(self, value: int) -> str:
        """Give the final answer; this ends the episode.

        Args:
            value: the sum you computed
        """
        if value < 0:
            raise ToolError("the answer cannot be negative")
        won = value == self.a + self.b
        self.finish(reward=float(won), won=won)
        return "Correct." if won else "Wrong."

    def step_info(self) -> dict[str, Any]:
        return {"task": "add the two numbers", "progress": 0.5 * self.added, "state_key": str(self.added)}

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        i = int(task_id.rsplit("-", 1)[1])
        self.a, self.b, self.added = 3 + 7 * i, 11 + 5 * i, False
        hermes = get_format("hermes")
        info = self.step_info()
        info["walkthrough"] = [
            hermes.render([{"name": "add", "arguments": {"a": self.a, "b": self.b}}]),
            hermes.render([{"name": "answer", "arguments": {"value": self.a + self.b}}]),
        ]
        return f"What is {self.a} + {self.b}? Use the tools, then answer.", info


def register_testing_envs() -> None:
    """Register ``agentgym/Countdown-v0`` (alias ``countdown``) and ``agentgym/ToolCalc-v0``
    (alias ``toolcalc``) — used by the core's own tests."""
    from agentgym.registry import register

    register(
        "agentgym/ToolCalc-v0",
        "agentgym.testing:ToolCalcEnv",
        alias="toolcalc",
        description="tiny tool-calling game for tests (add, answer)",
        max_episode_steps=10,
    )
    register(
        "agentgym/Countdown-v0",
        "agentgym.testing:CountdownEnv",
        alias="countdown",
        description="tiny counting game for tests (faults=True injects crashes and hangs)",
        max_episode_steps=30,
    )
