"""Log-probabilities of token spans for the model-based modules (SPA, IGPO, OPRL).

Conversations become tokens in the core: :mod:`agentgym.chat` holds the one chat encoder
(:class:`~agentgym.chat.ChatEncoder`, :func:`~agentgym.chat.conversation`, :class:`~agentgym.chat.Encoded`)
shared by policies, trainers and credit modules; they are re-exported here for existing imports.

:func:`spans_logprobs` runs one right-padded batched forward and returns the log-probabilities of the
tokens in given spans (actions, a teacher-forced answer), projecting only those positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentgym.chat import ChatEncoder, Encoded, Message, conversation
from agentgym.errors import ConfigError

__all__ = [  # the chat encoder is re-exported from the core
    "ChatEncoder",
    "Encoded",
    "Message",
    "PackedRow",
    "conversation",
    "model_device",
    "packed_logprobs",
    "pad_batch",
    "pad_id_of",
    "spans_logprobs",
    "supports_custom_masks",
]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad to a ``[B, N]`` LongTensor with its attention mask."""
    import torch

    if not sequences:
        raise ValueError("pad_batch: no sequences")
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[b, : len(seq)] = 1
    return ids, mask


def pad_id_of(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id
    if pad is None:
        raise ConfigError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
    return int(pad)


def model_device(model: Any) -> Any:
    return next(model.parameters()).device


def _plain_lm_head(model: Any) -> bool:
    """True when logits are just ``lm_head(final hidden)`` (no soft-capping or scaling)."""
    cfg = getattr(model, "config", None)
    return (
        hasattr(model, "base_model")
        and model.get_output_embeddings() is not None
        and getattr(cfg, "final_logit_softcapping", None) is None
        and getattr(cfg, "logit_scale", None) in (None, 1.0)
    )


def spans_logprobs(
    model: Any, sequences: Sequence[Sequence[int]], spans: Sequence[Sequence[tuple[int, int]]], *, pad_id: int
) -> list[list[Any]]:
    """One batched forward; ``out[b][j][k]`` = log p(token at ``spans[b][j][0] + k`` | everything before).

    Only the requested positions go through the LM head (a vocab-sized projection), which is most
    of the cost for small models and most of the memory for large vocabularies. Gradients flow when
    called outside ``torch.no_grad()``.
    """
    import torch

    ids, mask = pad_batch(sequences, pad_id)
    device = model_device(model)
    ids, mask = ids.to(device), mask.to(device)
    rows, cols = [], []
    for b, row_spans in enumerate(spans):
        for start, end in row_spans:
            if start < 1 and end > start:
                raise ValueError("a scored span cannot start at token 0 (it needs a prefix to condition on)")
            if end > len(sequences[b]):
                raise ValueError(
                    f"span [{start}, {end}) runs past sequence {b} of length {len(sequences[b])}"
                )
            rows += [b] * (end - start)
            cols += range(start, end)
    r = torch.as_tensor(rows, dtype=torch.long, device=device)
    c = torch.as_tensor(cols, dtype=torch.long, device=device)
    if _plain_lm_head(model):
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = model.get_output_embeddings()(hidden[r, c - 1]).float()
    else:
        logits = model(input_ids=ids, attention_mask=mask).logits[r, c - 1].float()
    flat = torch.log_softmax(logits, dim=-1).gather(-1, ids[r, c][:, None]).squeeze(-1)
    out, k = [], 0
    for row_spans in spans:
        parts = []
        for start, end in row_spans:
            parts.append(flat[k : k + end - start])
            k += end - start
        out.append(parts)
    return out


@dataclass
class PackedRow:
    """One packed sequence: several continuations share one prefix in a single forward.

    ``visible[i]`` is the exclusive end of the shared prefix token ``i`` may attend to, plus
    ``block_start[i]`` from where it attends causally within its own block (== i's block start;
    for prefix tokens block_start = 0 and visible = 0, i.e. plain causal attention). ``queries``
    are ``(index predicting the token, token id)`` pairs to score.
    """

    ids: list[int]
    positions: list[int]
    visible: list[int]
    block_start: list[int]
    queries: list[tuple[int, int]]


def supports_custom_masks(model: Any) -> bool:
    """True when the model's attention takes an arbitrary 4-D additive mask (eager or SDPA)."""
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    return impl in ("eager", "sdpa")


def packed_logprobs(model: Any, rows: Sequence[PackedRow], *, pad_id: int) -> list[Any]:
    """One forward over packed rows with a 4-D mask; the log-prob of each row's queries (no grad)."""
    import torch

    device = model_device(model)
    dtype = next(model.parameters()).dtype
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.zeros((len(rows), 1, width, width), dtype=torch.bool)
    cols = torch.arange(width)
    for b, r in enumerate(rows):
        n = len(r.ids)
        ids[b, :n] = torch.as_tensor(r.ids)
        pos[b, :n] = torch.as_tensor(r.positions)
        idx = torch.arange(n)
        vis = torch.as_tensor(r.visible)[:, None]
        start = torch.as_tensor(r.block_start)[:, None]
        allowed[b, 0, :n] = (cols[None, :] < vis) | (
            (cols[None, :] >= start) & (cols[None, :] <= idx[:, None])
        )
        allowed[b, 0, n:, n:] = torch.eye(width - n, dtype=torch.bool)  # padding sees itself: no empty rows
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    ids, pos, mask = ids.to(device), pos.to(device), mask.to(device)
    rr = torch.as_tensor([b for b, r in enumerate(rows) for _ in r.queries], dtype=torch.long, device=device)
    cc = torch.as_tensor([q for r in rows for q, _ in r.queries], dtype=torch.long, device=device)
    targets = torch.as_tensor([t for r in rows for _, t in r.queries], dtype=torch.long, device=device)
    with torch.no_grad():
        if _plain_lm_head(model):
            hidden = model.base_model(input_ids=ids, attention_mask=mask, position_ids=pos).last_hidden_state
            logits = model.get_output_embeddings()(hidden[rr, cc]).float()
        else:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[rr, cc].float()
    flat = torch.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
    out, k = [], 0
    for r in rows:
        out.append(flat[k : k + len(r.queries)])
        k += len(r.queries)
    return out
