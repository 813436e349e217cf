"""Per-turn values → per-token values: the one shared function (embedded trainer and verl plugin).

A turn's advantage goes on every token of its action and nowhere else: observation / env tokens
(mask 0) always get 0. Turns are given either as explicit ``[start, end)`` token spans or, as verl
hands them to an estimator, as the runs of 1s in a ``response_mask`` (turn k = the k-th run).
:func:`place_at_end` puts a turn's scalar on the last token of its action instead (per-token
rewards, verl's ``rm_scores``).

Pure functions, numpy in → numpy out, torch in → torch out (same dtype and device); torch is
never imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Span = tuple[int, int]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _to_numpy(x: Any) -> np.ndarray:
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _like(result: np.ndarray, ref: Any, dtype: Any = None) -> Any:
    """Return ``result`` as the array type of ``ref`` (torch tensor on ref's device, or numpy)."""
    if _is_torch(ref):
        import torch  # only reached when the caller already uses torch

        target = dtype if dtype is not None else (ref.dtype if ref.is_floating_point() else torch.float32)
        return torch.as_tensor(result).to(device=ref.device, dtype=target)
    return result.astype(dtype if dtype is not None else np.float64)


def check_spans(spans: Sequence[Span], length: int) -> list[Span]:
    """Validate half-open spans: inside ``[0, length)``, ordered and non-overlapping."""
    out = []
    prev_end = 0
    for k, span in enumerate(spans):
        start, end = int(span[0]), int(span[1])
        if not 0 <= start <= end <= length:
            raise ValueError(f"span {k} = [{start}, {end}) is outside a sequence of length {length}")
        if start < prev_end:
            raise ValueError(f"span {k} = [{start}, {end}) overlaps the previous span (ends at {prev_end})")
        prev_end = end
        out.append((start, end))
    return out


def broadcast(
    per_turn: Sequence[float] | Any, spans: Sequence[Span], length: int, *, dtype: Any = None
) -> Any:
    """A length-``length`` vector: ``per_turn[k]`` on every token of ``spans[k]``, 0 elsewhere.

    >>> broadcast([1.5, -2.0], [(1, 3), (5, 6)], 7).tolist()
    [0.0, 1.5, 1.5, 0.0, 0.0, -2.0, 0.0]
    """
    values = _to_numpy(per_turn).astype(np.float64).reshape(-1)
    spans = check_spans(spans, length)
    if len(values) != len(spans):
        raise ValueError(f"broadcast: {len(values)} per-turn values but {len(spans)} action spans")
    out = np.zeros(length, dtype=np.float64)
    for v, (start, end) in zip(values, spans):
        out[start:end] = v
    return _like(out, per_turn, dtype)


def place_at_end(
    per_turn: Sequence[float] | Any, spans: Sequence[Span], length: int, *, dtype: Any = None
) -> Any:
    """``per_turn[k]`` on the last token of ``spans[k]`` only (per-token rewards).

    >>> place_at_end([1.0, 2.0], [(0, 2), (3, 5)], 6).tolist()
    [0.0, 1.0, 0.0, 0.0, 2.0, 0.0]
    """
    values = _to_numpy(per_turn).astype(np.float64).reshape(-1)
    spans = check_spans(spans, length)
    if len(values) != len(spans):
        raise ValueError(f"place_at_end: {len(values)} per-turn values but {len(spans)} action spans")
    out = np.zeros(length, dtype=np.float64)
    for v, (start, end) in zip(values, spans):
        if end == start:
            raise ValueError(f"place_at_end: span [{start}, {end}) is empty; a turn needs at least one token")
        out[end - 1] += v
    return _like(out, per_turn, dtype)


def mask_spans(mask: Sequence[int] | Any) -> list[Span]:
    """The runs of non-zero entries of a 1-D mask, as ``[start, end)`` spans.

    >>> mask_spans([0, 1, 1, 0, 0, 1])
    [(1, 3), (5, 6)]
    """
    m = _to_numpy(mask).reshape(-1) != 0
    if m.size == 0:
        return []
    padded = np.concatenate([[False], m, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s), int(e)) for s, e in zip(edges[0::2], edges[1::2])]


def broadcast_mask(
    per_turn: Sequence[float] | Sequence[Sequence[float]] | Any, mask: Any, *, dtype: Any = None
) -> Any:
    """Broadcast onto the runs of 1s in ``mask`` (``[R]`` or a batch ``[B, R]``).

    Turn k of a row is the k-th run of action tokens; the number of runs must equal the number of
    per-turn values (two adjacent actions with no observation between them form one run — give
    explicit spans to :func:`broadcast` then). The output has the mask's shape and array type.

    >>> broadcast_mask([0.5, 2.0], np.array([0, 1, 1, 0, 1])).tolist()
    [0.0, 0.5, 0.5, 0.0, 2.0]
    """
    m = _to_numpy(mask)
    if m.ndim == 1:
        rows, values = [m], [per_turn]
    elif m.ndim == 2:
        if len(per_turn) != m.shape[0]:
            raise ValueError(
                f"broadcast_mask: {len(per_turn)} rows of per-turn values for a mask of {m.shape[0]} rows"
            )
        rows, values = list(m), list(per_turn)
    else:
        raise ValueError(f"broadcast_mask: expected a 1-D or 2-D mask, got shape {m.shape}")
    out = np.zeros(m.shape, dtype=np.float64)
    for b, (row, vals) in enumerate(zip(rows, values)):
        spans = mask_spans(row)
        vals = _to_numpy(vals).astype(np.float64).reshape(-1)
        if len(vals) != len(spans):
            raise ValueError(
                f"broadcast_mask: row {b} has {len(spans)} runs of action tokens but {len(vals)} per-turn values"
            )
        target = out if m.ndim == 1 else out[b]
        for v, (start, end) in zip(vals, spans):
            target[start:end] = v
    return _like(out, mask, dtype)
