"""HumanPolicy with injected input/print functions."""

from __future__ import annotations

import pytest

from agentgym.policies import make_policy
from agentgym.policies.base import PolicyInput
from agentgym.policies.human import HumanPolicy, HumanQuit, _rich_print

ACTIONS = ["go north", "take key", "open door"]


def item(obs="You are in a hall.", actions=ACTIONS, **kw):
    messages = [{"role": "system", "content": "Play."}, {"role": "user", "content": obs}]
    return PolicyInput(messages=messages, info={"admissible_actions": list(actions)}, **kw)


def scripted(lines):
    """An input_fn that answers with ``lines`` in order, then hits end of input."""
    it = iter(lines)

    def input_fn(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return input_fn


def test_number_picks_admissible_action_and_text_passes_through():
    printed: list[str] = []
    policy = HumanPolicy(scripted(["2", "look under the rug"]), printed.append)
    out = policy.act([item(env_id="agentgym/TextWorld-v0", task_id="t1"), item(obs="A cellar.")])
    assert [o.text for o in out] == ["take key", "look under the rug"]
    shown = "\n".join(printed)
    assert "You are in a hall." in shown and "A cellar." in shown and "Play." not in shown
    assert " 1. go north" in shown and " 3. open door" in shown
    assert "agentgym/TextWorld-v0 t1" in shown and "env 2/2" in shown


def test_reprompts_on_blank_help_and_out_of_range_number():
    printed: list[str] = []
    policy = HumanPolicy(scripted(["", ":help", "9", "3"]), printed.append)
    assert policy.act([item()])[0].text == "open door"
    assert any("No action number 9" in p for p in printed) and any(":quit" in p for p in printed)


def test_digits_are_plain_text_without_admissible_actions():
    policy = HumanPolicy(scripted(["42"]), lambda s: None)
    assert policy.act([item(actions=[])])[0].text == "42"


@pytest.mark.parametrize("lines", [[":quit"], [":q"], []], ids=["quit", "q", "eof"])
def test_quit_and_eof_raise_human_quit(lines):
    policy = HumanPolicy(scripted(lines), lambda s: None)
    with pytest.raises(HumanQuit) as info:
        policy.act([item()])
    assert isinstance(info.value, KeyboardInterrupt) and not isinstance(info.value, Exception)


def test_default_printer_keeps_brackets_and_make_policy(capsys):
    _rich_print("click[Buy Now] [bold]x[/bold]")
    assert "click[Buy Now] [bold]x[/bold]" in capsys.readouterr().out
    assert isinstance(make_policy("human"), HumanPolicy)
