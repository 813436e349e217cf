"""A human at the terminal as a policy (``agentgym play --policy human``).

For each environment of the batch it prints the latest observation (a tool env's tool results,
and on the first turn its tools and how to call them) and the numbered admissible actions, then
reads one line: a number picks that admissible action, anything else is sent as
typed. ``:help`` lists the commands; ``:quit`` (or end of input, Ctrl-D) raises
:class:`HumanQuit`. ``HumanQuit`` subclasses ``KeyboardInterrupt`` on purpose: rollout code that
records env errors with ``except Exception`` lets it through, and the CLI stops cleanly with one
``except KeyboardInterrupt`` for both Ctrl-C and ``:quit``.

Input and output are injectable (``input_fn``, ``print_fn``) so the policy is testable and can
run inside other front ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from agentgym.policies.base import ActionOutput, Policy, PolicyInput

QUIT_COMMANDS = frozenset({":quit", ":q", ":exit"})
HELP = "Type an action, or the number of an admissible action. :help shows this, :quit stops the session."


class HumanQuit(KeyboardInterrupt):
    """The human asked to stop (``:quit`` or end of input); catch it like Ctrl-C."""


def _rich_print(text: str) -> None:
    from rich.console import Console

    # markup off: observations often contain [brackets] (e.g. WebShop's click[...])
    Console().print(text, markup=False, highlight=False)


class HumanPolicy(Policy):
    """Reads actions from a person; ``input_fn`` and ``print_fn`` default to the terminal."""

    name = "human"

    def __init__(
        self,
        input_fn: Callable[[str], str] = input,
        print_fn: Callable[[str], None] | None = None,
        *,
        show_actions: int = 50,
    ):
        self.input_fn = input_fn
        self.print_fn = print_fn or _rich_print
        self.show_actions = show_actions

    def act(self, batch: Sequence[PolicyInput]) -> list[ActionOutput]:
        return [self._ask(item, k, len(batch)) for k, item in enumerate(batch)]

    def _ask(self, item: PolicyInput, k: int, n: int) -> ActionOutput:
        header = f"— {item.env_id or 'env'} {item.task_id} · turn {item.turn_index}"
        if n > 1:
            header += f" · env {k + 1}/{n}"
        self.print_fn(header)
        self.print_fn(_latest_observation(item))
        if item.tools and item.turn_index == 0:
            self.print_fn(_tool_listing(item.tools))
        actions = [str(a) for a in item.info.get("admissible_actions") or []]
        if actions:
            listing = "\n".join(f"  {i + 1:>2}. {a}" for i, a in enumerate(actions[: self.show_actions]))
            more = len(actions) - self.show_actions
            self.print_fn(
                "Admissible actions:\n" + listing + (f"\n  ... and {more} more" if more > 0 else "")
            )
        while True:
            try:
                line = self.input_fn("> ").strip()
            except EOFError:
                raise HumanQuit("end of input") from None
            if line in QUIT_COMMANDS:
                raise HumanQuit(line)
            if line in (":help", ":h", "?"):
                self.print_fn(HELP)
                continue
            if not line:
                continue
            if line.isdigit() and actions:
                index = int(line) - 1
                if 0 <= index < len(actions):
                    return ActionOutput(actions[index])
                self.print_fn(f"No action number {line}; pick 1..{len(actions)} or type an action.")
                continue
            return ActionOutput(line)


def _latest_observation(item: PolicyInput) -> str:
    """The env's messages since the last action (a user observation, or a tool env's tool results)."""
    tail = []
    for message in reversed(item.messages):
        if message.get("role") in ("assistant", "system"):
            break
        tail.append(message.get("content", ""))
    if tail:
        return "\n\n".join(reversed(tail))
    return item.messages[-1].get("content", "") if item.messages else ""


def _tool_listing(tools: Sequence[dict[str, Any]]) -> str:
    lines = ['Tools (call one with <tool_call>{"name": ..., "arguments": {...}}</tool_call>):']
    for tool in tools:
        fn = tool.get("function", tool)
        params = (fn.get("parameters") or {}).get("properties") or {}
        args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in params.items() if isinstance(v, dict))
        lines.append(f"  {fn.get('name')}({args}) — {fn.get('description', '')}")
    return "\n".join(lines)
