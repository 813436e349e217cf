"""Gymnasium spaces for text observations and actions.

Gymnasium's :class:`~gymnasium.spaces.Text` only admits characters from a fixed charset. Agent
environments speak arbitrary Unicode, so :class:`FreeText` admits any ``str`` within the length
bounds while sampling from printable ASCII (enough for fuzzing and ``check_env``).
"""

from __future__ import annotations

import string
from typing import Any

from gymnasium.spaces import Text

PRINTABLE = string.ascii_letters + string.digits + string.punctuation + " "


class FreeText(Text):
    """A text space that contains every ``str`` of length ``min_length..max_length``.

    >>> FreeText(max_length=10).contains("héllo wörld"[:10])
    True
    """

    def __init__(self, max_length: int = 1_000_000, *, min_length: int = 0, seed: Any = None):
        super().__init__(max_length=max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, FreeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )
