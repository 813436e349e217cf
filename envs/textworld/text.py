"""Pure text helpers for TextWorld: clean the engine's output and vet the agent's commands.

Kept apart from the engine so they can be unit-tested without TextWorld and stay cheap: they run
on every step, and the wrapper's whole budget is a few per cent of an engine step (~2 ms).

Commands are vetted *before* they reach the Z-machine because the interpreter also understands
meta commands (``restart``, ``quit``, ``undo``, ``save``), Inform debug verbs and TextWorld's own
``tw-*`` commands, and chains (``take key. go east``): any of those would desynchronise TextWorld's
state tracker from the game, or let an agent act twice in one turn. A command must be plain ASCII
words and start with one of the game's own verbs (``Game.verbs``).
"""

from __future__ import annotations

import re
from collections.abc import Collection

#: characters of the TEXTWORLD ascii-art banner printed at the start of every game
_BANNER_CHARS = " _|\\$/<>-"
#: Inform's end-of-game menu; our env ends the episode instead, so the menu is dropped
_GAME_OVER_MENU = "Would you like to RESTART"
#: a well-formed command after lower-casing and whitespace folding
_COMMAND_RE = re.compile(r"[a-z0-9][a-z0-9' -]*")
_TRAILING_PUNCTUATION = ".!"
_BLANK_LINES = re.compile(r"\n(?:[ \t]*\n){2,}")


def strip_banner(text: str) -> str:
    """Drop the leading ascii-art banner lines (lines made only of banner characters).

    >>> strip_banner("\\n  ___ |$$\\\\\\n\\nYour task: eat.\\n-= Kitchen =-")
    'Your task: eat.\\n-= Kitchen =-'
    """
    lines = text.split("\n")
    k = 0
    while k < len(lines) and not lines[k].strip(_BANNER_CHARS):
        k += 1
    return "\n".join(lines[k:])


def clean_feedback(text: str, *, game_over: bool = False) -> str:
    """Remove the interpreter's prompt and status line (``>   -= Kitchen =-0/4``) from feedback.

    With ``game_over`` the Inform "Would you like to RESTART..." menu is removed too. Runs of blank
    lines are folded into one (the engine pads its output with them).

    >>> clean_feedback("\\nYou take the key.\\n\\n\\n\\nScore up.\\n\\n>        -= Bedroom =-1/3")
    'You take the key.\\n\\nScore up.'
    """
    i = text.rfind("\n>")
    if i >= 0:
        rest = text[i + 2 :].strip()
        if not rest or (rest.startswith("-=") and "\n" not in rest):
            text = text[:i]
    if game_over:
        j = text.find(_GAME_OVER_MENU)
        if j >= 0:
            text = text[:j]
    return _BLANK_LINES.sub("\n\n", text).strip()


def normalize_command(action: str) -> str:
    """Lower-case, fold whitespace and drop trailing ``.``/``!`` (agents often end with a period).

    >>> normalize_command("  Open   the FRIDGE. ")
    'open the fridge'
    """
    return " ".join(action.lower().split()).rstrip(_TRAILING_PUNCTUATION).rstrip()


def command_problem(command: str, verbs: Collection[str], *, raw_length: int, max_chars: int) -> str | None:
    """Why a normalized command cannot be sent to the game, or ``None`` when it can.

    >>> command_problem("xyzzy", {"go", "take"}, raw_length=5, max_chars=200)
    "Unknown verb 'xyzzy'. This game understands: go, take."
    >>> command_problem("take coin", {"go", "take"}, raw_length=9, max_chars=200) is None
    True
    """
    if raw_length > max_chars:
        return f"The command is too long ({raw_length} characters; at most {max_chars})."
    if not command:
        return "The command is empty."
    if not command.isascii() or _COMMAND_RE.fullmatch(command) is None:
        bad = sorted({c for c in command if not (c.isascii() and (c.isalnum() or c in " '-"))})
        shown = "".join(bad[:10]) or command[:1]
        return (
            f"The command contains unsupported characters ({shown!r}); use plain words "
            "(letters, digits, spaces, hyphens, apostrophes) and one command per turn."
        )
    words = command.split(" ")
    if "then" in words[1:]:  # Inform's command separator: "take key then go east" is two turns
        return "Send one command per turn (found 'then', which chains commands)."
    verb = words[0]
    if verb not in verbs:
        shown = verb if len(verb) <= 30 else verb[:30] + "..."
        return f"Unknown verb {shown!r}. This game understands: {', '.join(sorted(verbs))}."
    return None
