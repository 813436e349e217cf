"""The agent's text actions and how observations are cut to a budget.

One action per turn, written as a tag anywhere in the reply (text around it is ignored)::

    <bash>python -m pytest -q toolz/tests/test_itertoolz.py</bash>
    <view path="toolz/itertoolz.py" start="700" end="760"/>
    <str_replace path="toolz/itertoolz.py">
    <old>mid = (lo + hi) * 2</old>
    <new>mid = (lo + hi) // 2</new>
    </str_replace>
    <submit/>

``view`` lists a folder or shows numbered lines of a file (``start``/``end`` optional, 1-based,
inclusive). ``str_replace`` needs ``old`` to occur exactly once; one newline right after ``<old>``
/ ``<new>`` and right before their closing tags is dropped, so the blocks may sit on their own
lines. A reply without exactly one action gets an observation saying what is expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ACTION_FORMAT = (
    'exactly one of: <bash>COMMAND</bash> | <view path="PATH" start="N" end="M"/> | '
    '<str_replace path="PATH"><old>EXACT TEXT</old><new>NEW TEXT</new></str_replace> | <submit/>'
)
_OPEN = re.compile(r"<(bash|view|str_replace|submit)\b([^>]*?)(/?)>", re.S)
_ATTR = re.compile(r"(\w+)\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")


@dataclass(frozen=True)
class Action:
    kind: str
    command: str = ""
    path: str = ""
    start: int | None = None
    end: int | None = None
    old: str = ""
    new: str = ""


class ActionError(ValueError):
    """The reply holds no well-formed action; the message is shown to the agent."""


def parse_action(text: str) -> Action:
    """The single action in ``text``; raises :class:`ActionError` with an explanation otherwise."""
    m = _OPEN.search(text)
    if m is None:
        raise ActionError("No action found in your reply.")
    kind, attr_text, self_closing = m.group(1), m.group(2), m.group(3) == "/"
    attrs = {
        a.group(1): a.group(2) if a.group(2) is not None else a.group(3) for a in _ATTR.finditer(attr_text)
    }
    body, rest = "", text[m.end() :]
    if not self_closing and kind != "submit":
        close = rest.find(f"</{kind}>")
        if close < 0:
            raise ActionError(f"<{kind}> is not closed: add </{kind}> after its content.")
        body, rest = rest[:close], rest[close + len(kind) + 3 :]
    elif kind == "submit" and rest.lstrip().startswith("</submit>"):
        rest = rest.lstrip()[len("</submit>") :]
    if _OPEN.search(rest):
        raise ActionError("Your reply holds more than one action; send one action per turn.")
    if kind == "bash":
        if not body.strip():
            raise ActionError("<bash></bash> is empty: put a shell command between the tags.")
        return Action("bash", command=body.strip("\n"))
    if kind == "submit":
        return Action("submit")
    path = attrs.get("path", "").strip()
    if not path:
        raise ActionError(f'<{kind}> needs a path attribute, e.g. <{kind} path="src/module.py" ...>.')
    if kind == "view":
        start, end = _int_attr(attrs, "start"), _int_attr(attrs, "end")
        if start is not None and end is not None and end < start:
            raise ActionError(f"view: end={end} is before start={start}.")
        return Action("view", path=path, start=start, end=end)
    old, new = _block(body, "old"), _block(body, "new")
    if old is None or new is None:
        raise ActionError("str_replace needs an <old>...</old> block and a <new>...</new> block.")
    if not old:
        raise ActionError("str_replace: <old></old> is empty; give the exact text to replace.")
    return Action("str_replace", path=path, old=old, new=new)


def _int_attr(attrs: dict[str, str], key: str) -> int | None:
    if key not in attrs:
        return None
    try:
        value = int(attrs[key])
    except ValueError:
        raise ActionError(f"view: {key}={attrs[key]!r} is not a line number.") from None
    if value < 1:
        raise ActionError(f"view: {key}={value}; line numbers start at 1.")
    return value


def _block(body: str, tag: str) -> str | None:
    m = re.search(rf"<{tag}>(.*?)</{tag}>", body, re.S)
    if m is None:
        return None
    text = m.group(1)
    if text.startswith("\n"):
        text = text[1:]
    if text.endswith("\n"):
        text = text[:-1]
    return text


def truncate(text: str, budget: int, *, what: str = "output") -> str:
    """``text`` cut to ``budget`` characters (head and tail kept) with a note saying how much went."""
    if len(text) <= budget:
        return text
    keep = max(0, budget - 120)
    head, tail = text[: keep // 2], text[len(text) - (keep - keep // 2) :]
    omitted = len(text) - len(head) - len(tail)
    return (
        f"{head}\n[... {omitted} characters of {what} omitted; narrow the command "
        f"(grep, head, sed -n) to see them ...]\n{tail}"
    )


def number_lines(text: str, start: int = 1) -> str:
    """``cat -n`` style numbering."""
    return "\n".join(f"{i:6d}\t{line}" for i, line in enumerate(text.split("\n"), start))
