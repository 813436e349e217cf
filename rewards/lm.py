"""Trajectories as token sequences for the model-based modules (SPA, IGPO, OPRL).

A trajectory is the conversation the policy saw (as :func:`agentgym.rollout.build_messages` builds
it): ``[system], user = initial_observation, assistant = turn 0's action, user = turn 1's
observation, ...``. The observation after turn t is ``turns[t+1].observation``; after the last turn
it is ``traj.final_observation`` when the rollout recorded one (only IGPO reads it). The
conversation is rendered with the tokenizer's chat template and tokenised message by message, so
every action's token span is exact (the text the template puts around each role is learned once
from a placeholder conversation and checked against one render per conversation; irregular
templates fall back to rendering every prefix): the action's tokens are the rollout's ``turn.token_ids`` when
known (then ``turn.logprobs`` line up with them), else the tokenised action text. The template must
be prefix-stable (rendering k messages is a prefix of rendering k+1), which ChatML-style templates
are; one that rewrites earlier turns is rejected with an explanation.

:func:`spans_logprobs` runs one right-padded batched forward and returns the log-probabilities of the
tokens in given spans (actions, a teacher-forced answer), projecting only those positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import ConfigError
from agentgym.records import Trajectory

Message = dict[str, str]

#: messages of the probe conversation from which the template's per-role text is learned
_PROBE = 6
#: placeholder contents of the probe (private-use characters no template rewrites)
_PLACEHOLDER = "\ue000{}\ue001"


@dataclass
class Encoded:
    """Token ids of a conversation and where each piece sits."""

    input_ids: list[int] = field(default_factory=list)
    #: ``[start, end)`` of each assistant action's tokens, one per turn encoded
    action_spans: list[tuple[int, int]] = field(default_factory=list)
    #: token index just after each message (its closing tokens included)
    message_ends: list[int] = field(default_factory=list)
    #: index of each action's end-of-turn token (the template's first closing token, e.g.
    #: ``<|im_end|>``), the same whether the action came as rollout tokens (which carry the stop
    #: token) or as text; the last action token when the template closes with nothing
    turn_ends: list[int] = field(default_factory=list)


def conversation(
    traj: Trajectory, *, system: str | None = None, final_observation: bool = False
) -> list[Message]:
    """The trajectory as chat messages (see the module docstring for what goes where)."""
    first = traj.initial_observation or (traj.turns[0].observation if traj.turns else "")
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": first})
    for t, turn in enumerate(traj.turns):
        messages.append({"role": "assistant", "content": turn.action})
        if t + 1 < len(traj.turns):
            messages.append({"role": "user", "content": traj.turns[t + 1].observation})
    final = getattr(traj, "final_observation", "")
    if final_observation and traj.turns and final:
        messages.append({"role": "user", "content": final})
    return messages


class ChatEncoder:
    """Renders and tokenises conversations with a tokenizer's chat template, tracking action spans."""

    def __init__(self, tokenizer: Any, *, system: str | None = None, use_rollout_tokens: bool = True):
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{type(tokenizer).__name__} has no chat_template; credit modules render trajectories as chat "
                "messages — set tokenizer.chat_template (e.g. ChatML) first"
            )
        self.tokenizer = tokenizer
        self.system = system
        self.use_rollout_tokens = use_rollout_tokens
        #: template text around each message, learned per leading role sequence (None: irregular)
        self._glue: dict[tuple[str, ...], list[tuple[str, str]] | None] = {}

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = False) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def encode_messages(
        self,
        messages: Sequence[Message],
        *,
        action_ids: Sequence[list[int] | None] = (),
        add_generation_prompt: bool = False,
    ) -> Encoded:
        """Tokenise ``messages`` piece by piece; ``action_ids[k]`` replaces the k-th assistant text."""
        pieces = self._fast_pieces(messages)
        if pieces is None:
            pieces = self._slow_pieces(messages)
        texts: list[str] = []
        for (header, content, closing), message in zip(pieces, messages):
            # a non-assistant message is tokenised as one text, like the template's render of it
            if message["role"] == "assistant":
                texts += [header, content, closing]
            else:
                texts += [header + content + closing, "", ""]
        if add_generation_prompt:
            done = "".join(h + c + cl for h, c, cl in pieces)
            texts.append(self._checked(self.render(messages, add_generation_prompt=True), done)[len(done) :])
        token_lists = self._batch_tokens(texts)
        enc = Encoded()
        n_assistant = 0
        for k, message in enumerate(messages):
            header, content_ids, closing = token_lists[3 * k : 3 * k + 3]
            enc.input_ids += header
            if message["role"] == "assistant":
                ids = action_ids[n_assistant] if n_assistant < len(action_ids) else None
                stop_in_action = False
                if ids is not None:
                    content_ids = list(ids)
                    kept = self._strip_generated_stop(content_ids, pieces[k][2])
                    stop_in_action = kept != pieces[k][2]
                    closing = self.tokens(kept) if stop_in_action else closing
                start = len(enc.input_ids)
                enc.input_ids += content_ids
                enc.action_spans.append((start, len(enc.input_ids)))
                at_end = stop_in_action or not closing
                enc.turn_ends.append(len(enc.input_ids) - 1 if at_end else len(enc.input_ids))
                n_assistant += 1
            enc.input_ids += closing
            enc.message_ends.append(len(enc.input_ids))
        if add_generation_prompt:
            enc.input_ids += token_lists[-1]
        return enc

    def _batch_tokens(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [list(x) if t else [] for x, t in zip(ids, texts)]

    def _slow_pieces(self, messages: Sequence[Message]) -> list[tuple[str, str, str]]:
        """``(header, content, closing)`` per message from prefix renders (2 renders per message).

        Only assistant messages are split exactly; another message's text is all in ``header``.
        """
        out: list[tuple[str, str, str]] = []
        prev = ""
        for k, message in enumerate(messages):
            if message["role"] == "assistant":
                header = self._checked(self.render(messages[:k], add_generation_prompt=True), prev)
                full = self._checked(self.render(messages[: k + 1]), header)
                content = message["content"]
                rest = full[len(header) :]
                if not rest.startswith(content):
                    raise ConfigError(
                        "the chat template changes the assistant text (e.g. strips or rewrites it), so action "
                        f"tokens cannot be located: {content[:40]!r} not found at the start of {rest[:60]!r}"
                    )
                out.append((header[len(prev) :], content, rest[len(content) :]))
            else:
                full = self._checked(self.render(messages[: k + 1]), prev)
                out.append((full[len(prev) :], "", ""))
            prev = full
        return out

    def _fast_pieces(self, messages: Sequence[Message]) -> list[tuple[str, str, str]] | None:
        """Pieces from one render: the template's per-role text around each message is learned once
        on a probe conversation with placeholder contents, then checked against the real render.

        None when the template is not that regular (the slow path then renders every prefix).
        """
        roles = tuple(m["role"] for m in messages)
        probe_roles = roles[:_PROBE]
        if probe_roles not in self._glue:
            self._glue[probe_roles] = self._learn_glue(probe_roles)
        glue = self._glue[probe_roles]
        if glue is None:
            return None
        # after the probe, each role's text is the one of its last occurrence (never the first message)
        by_role = {r: g for r, g in list(zip(probe_roles, glue))[1:]}
        pieces = []
        for k, message in enumerate(messages):
            around = glue[k] if k < len(glue) else by_role.get(message["role"])
            if around is None:
                return None
            pieces.append((around[0], message["content"], around[1]))
        if "".join(h + c + cl for h, c, cl in pieces) != self.render(messages):
            return None
        return pieces

    def _learn_glue(self, roles: tuple[str, ...]) -> list[tuple[str, str]] | None:
        probe = [{"role": r, "content": _PLACEHOLDER.format(k)} for k, r in enumerate(roles)]
        try:
            pieces = self._slow_pieces(probe)
        except ConfigError:
            return None
        glue = []
        for k, (header, content, closing) in enumerate(pieces):
            text, mark = header + content + closing, _PLACEHOLDER.format(k)
            at = text.find(mark)
            if at < 0:
                return None
            glue.append((text[:at], text[at + len(mark) :]))
        return glue

    def encode(self, traj: Trajectory, *, final_observation: bool = False) -> Encoded:
        """The whole trajectory, one action span per turn."""
        messages = conversation(traj, system=self.system, final_observation=final_observation)
        ids = [self.rollout_ids(t) for t in traj.turns]
        return self.encode_messages(messages, action_ids=ids)

    def generation_prompt(self, messages: Sequence[Message]) -> list[int]:
        """The tokens the template adds to open an assistant reply after ``messages``."""
        base = self.render(messages)
        return self.tokens(
            self._checked(self.render(messages, add_generation_prompt=True), base)[len(base) :]
        )

    def rollout_ids(self, turn: Any) -> list[int] | None:
        if self.use_rollout_tokens and turn.token_ids:
            return list(turn.token_ids)
        return None

    def _strip_generated_stop(self, ids: list[int], closing: str) -> str:
        """Rollout tokens often end with the stop token the template also writes: keep it once."""
        last = self.tokenizer.convert_ids_to_tokens(ids[-1]) if ids else None
        if (
            isinstance(last, str)
            and last in getattr(self.tokenizer, "all_special_tokens", [])
            and closing.startswith(last)
        ):
            return closing[len(last) :]
        return closing

    @staticmethod
    def _checked(text: str, prefix: str) -> str:
        if not text.startswith(prefix):
            raise ConfigError(
                "the chat template is not prefix-stable (rendering more messages rewrote earlier ones, e.g. it "
                "drops past reasoning); credit modules need a template such as ChatML where each message is "
                "appended as is"
            )
        return text


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
