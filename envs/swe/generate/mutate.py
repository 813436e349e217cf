"""Procedural bug injection: small source edits located with :mod:`ast`, applied as text.

Each :class:`Mutation` replaces one span of a file (an operator token, a constant, a condition),
so the bug diff is a one-line change and the rest of the file keeps its bytes. Operator kinds:

``compare``   ``<``↔``<=``, ``>``↔``>=``, ``==``↔``!=``, ``in``↔``not in``, ``is``↔``is not``
``boolop``    ``and``↔``or``
``binop``     ``+``↔``-``, ``*``↔``//``, ``<<``↔``>>``, ``&``↔``|`` (augmented assignments too)
``constant``  small ints ±1, ``True``↔``False``
``negate``    ``if c:`` → ``if not (c):`` (also ``while`` and ``x if c else y``); ``not c`` → ``c``

Only code inside functions is touched (module-level edits break the import and fail every test),
never f-strings (their positions are unreliable before Python 3.12) nor docstrings.
AST columns are UTF-8 byte offsets; they are converted to character offsets per line.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

KINDS = ("compare", "boolop", "binop", "constant", "negate")

_CMP = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
}
_BIN = {
    ast.Add: ("+", "-"),
    ast.Sub: ("-", "+"),
    ast.Mult: ("*", "//"),
    ast.FloorDiv: ("//", "*"),
    ast.LShift: ("<<", ">>"),
    ast.RShift: (">>", "<<"),
    ast.BitAnd: ("&", "|"),
    ast.BitOr: ("|", "&"),
}


@dataclass(frozen=True)
class Mutation:
    """One edit: replace ``source[start:end]`` (character offsets) with ``new``."""

    kind: str
    path: str
    lineno: int
    start: int
    end: int
    old: str
    new: str

    def apply(self, source: str) -> str:
        if source[self.start : self.end] != self.old:
            raise ValueError(f"{self.path}:{self.lineno}: expected {self.old!r} at the mutation site")
        return source[: self.start] + self.new + source[self.end :]

    @property
    def description(self) -> str:
        return f"{self.kind} at {self.path}:{self.lineno}: {self.old!r} -> {self.new!r}"


class _Offsets:
    """(lineno, UTF-8 byte column) → character offset in the whole source."""

    def __init__(self, source: str):
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def __call__(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))


def find_mutations(source: str, path: str) -> list[Mutation]:
    """Every mutation site of one file (empty if the file does not parse); check with :func:`parses`."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    off = _Offsets(source)
    found: list[Mutation] = []
    for node in _function_nodes(tree):
        found.extend(_sites(node, source, off, path))
    return found


def _function_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Nodes inside function bodies, skipping f-strings and docstrings."""

    def walk(node: ast.AST, in_func: bool) -> Iterator[ast.AST]:
        if isinstance(node, ast.JoinedStr):
            return
        if in_func:
            yield node
        inside = in_func or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Expr) and isinstance(child.value, ast.Constant):
                continue  # docstrings and bare constants
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and child in node.decorator_list:
                continue  # decorators run at import time
            yield from walk(child, inside)

    yield from walk(tree, False)


def _gap_token(source: str, start: int, end: int, token: str) -> tuple[int, int] | None:
    """The span of ``token`` in ``source[start:end]`` when only parens/space surround it."""
    gap = source[start:end]
    pattern = r"\s+".join(re.escape(w) for w in token.split())
    m = re.fullmatch(r"[\s()\\]*(" + pattern + r")[\s()\\]*", gap)
    if not m:
        return None
    return start + m.start(1), start + m.end(1)


def _span(node: ast.AST, off: _Offsets) -> tuple[int, int] | None:
    if getattr(node, "end_lineno", None) is None:
        return None
    return off(node.lineno, node.col_offset), off(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]


def _sites(node: ast.AST, source: str, off: _Offsets, path: str) -> Iterator[Mutation]:
    def between(kind: str, left: ast.AST, right: ast.AST, old: str, new: str) -> Iterator[Mutation]:
        ls, rs = _span(left, off), _span(right, off)
        if ls and rs:
            span = _gap_token(source, ls[1], rs[0], old)
            if span:
                line = getattr(left, "end_lineno", 0) or 0
                yield Mutation(kind, path, line, span[0], span[1], source[span[0] : span[1]], new)

    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            if type(op) in _CMP:
                old, new = _CMP[type(op)]
                yield from between("compare", operands[i], operands[i + 1], old, new)
    elif isinstance(node, ast.BoolOp):
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for a, b in zip(node.values, node.values[1:]):
            yield from between("boolop", a, b, old, new)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        old, new = _BIN[type(node.op)]
        yield from between("binop", node.left, node.right, old, new)
    elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN:
        old, new = _BIN[type(node.op)]
        yield from between("binop", node.target, node.value, old + "=", new + "=")
    elif isinstance(node, ast.Constant):
        yield from _constant(node, source, off, path)
    elif isinstance(node, (ast.If, ast.While, ast.IfExp)):
        span = _span(node.test, off)
        if isinstance(node.test, ast.Constant):  # `while True:` negated is just dead code
            return
        if span and node.test.lineno == node.test.end_lineno:  # type: ignore[attr-defined]
            text = source[span[0] : span[1]]
            yield Mutation("negate", path, node.test.lineno, span[0], span[1], text, f"not ({text})")
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        span, inner = _span(node, off), _span(node.operand, off)
        if span and inner and node.lineno == node.end_lineno:  # type: ignore[attr-defined]
            old = source[span[0] : span[1]]
            yield Mutation("negate", path, node.lineno, span[0], span[1], old, source[inner[0] : inner[1]])


def _constant(node: ast.Constant, source: str, off: _Offsets, path: str) -> Iterator[Mutation]:
    span = _span(node, off)
    if not span:
        return
    old = source[span[0] : span[1]]
    value = node.value
    if isinstance(value, bool):
        if old in ("True", "False"):
            yield Mutation("constant", path, node.lineno, span[0], span[1], old, "False" if value else "True")
    elif isinstance(value, int) and 0 <= value <= 8 and old.isdigit():
        new = str(value + 1) if value in (0, 1) else str(value - 1)
        yield Mutation("constant", path, node.lineno, span[0], span[1], old, new)


def parses(source: str, m: Mutation) -> bool:
    """Whether the mutated source still parses (checked only for the sites actually tried)."""
    try:
        ast.parse(m.apply(source))
    except (SyntaxError, ValueError):
        return False
    return True


_TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|docs?|examples?|benchmarks?|bench)/|(^|/)(test_[^/]*|[^/]*_test|conftest|setup|"
    r"_?version|noxfile|fabfile)\.py$"
)


def is_library_file(rel: str) -> bool:
    """Whether a repo-relative path is library code (not tests, docs, setup or version files)."""
    hidden = any(part.startswith(".") for part in rel.split("/"))
    return rel.endswith(".py") and not _TEST_PATH.search(rel) and not hidden
