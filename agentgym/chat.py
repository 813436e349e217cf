"""Conversations and their tokens: the one chat encoder of policies, trainers and credit modules.

A trajectory is the conversation the policy saw: ``[system], user = initial observation,
assistant = turn 0's action, <env reply to turn 0>, assistant = turn 1's action, ...``. The env's
reply to a turn is the ``tool`` messages of a tool env (``turn.info["tool_messages"]``, see
:mod:`agentgym.tools`) or else one ``user`` message holding the next observation
(``turns[t+1].observation``; after the last turn ``traj.final_observation``). A tool env's tool
schemas (``reset_info["tools"]``) are rendered by the template (``apply_chat_template(tools=...)``).
Assistant messages keep the model's raw text, tool-call markup included, so their tokens are
exactly the ones the model generated.

:class:`ChatEncoder` renders a conversation with the tokenizer's chat template and tokenises it
piece by piece, so every action's token span is exact. The text the template puts around each
role is learned once from a placeholder conversation and checked against one render per
conversation; irregular templates fall back to rendering the prefixes that end before each
assistant message (templates that merge consecutive tool results into one block, like Qwen's, take
that path). An action's tokens are the rollout's ``turn.token_ids`` when known (then
``turn.logprobs`` line up with them), else the tokenised text. The template must be prefix-stable
up to each assistant message (ChatML-style templates are); one that rewrites earlier turns is
rejected with an explanation, except by :meth:`ChatEncoder.prompt_ids`, which then tokenises the
whole render (generation needs no spans).

>>> from agentgym.models import build_tiny_model
>>> _, tok = build_tiny_model(vocab_size=300, hidden_size=8, num_heads=2, num_layers=1)  # doctest: +SKIP
>>> enc = ChatEncoder(tok).encode_messages([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "go"}])  # doctest: +SKIP
>>> tok.decode(enc.input_ids[slice(*enc.action_spans[0])])  # doctest: +SKIP
'go'
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import ConfigError
from agentgym.records import Trajectory, Turn

Message = dict[str, str]
Tools = Sequence[dict[str, Any]] | None

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
    #: token index just after each message (its closing tokens included); a run of non-assistant
    #: messages the template renders as one block ends, for every message in it, where the block ends
    message_ends: list[int] = field(default_factory=list)


def env_reply(turn: Turn, next_observation: str) -> list[Message]:
    """The messages the env answered ``turn`` with: its tool messages, else the next observation."""
    tool_messages = turn.info.get("tool_messages") if isinstance(turn.info, dict) else None
    if tool_messages:
        return [{k: str(v) for k, v in m.items()} for m in tool_messages]
    return [{"role": "user", "content": next_observation}]


def conversation(
    traj: Trajectory,
    *,
    system: str | None = None,
    final_observation: bool = False,
    window: int | None = None,
    observation: str | None = None,
) -> list[Message]:
    """The trajectory as chat messages (see the module docstring for what goes where).

    ``window=k`` keeps the last k turns (the first observation is always kept). The env's reply
    to the last turn is added when ``final_observation`` (from ``traj.final_observation``) or when
    ``observation`` is given (the rollout's current observation).
    """
    first = traj.initial_observation or (traj.turns[0].observation if traj.turns else "")
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": first})
    turns = traj.turns[-window:] if window is not None and len(traj.turns) > window else traj.turns
    for t, turn in enumerate(turns):
        messages.append({"role": "assistant", "content": turn.action})
        if t + 1 < len(turns):
            messages += env_reply(turn, turns[t + 1].observation)
    if turns:
        last = observation if observation is not None else getattr(traj, "final_observation", "")
        if observation is not None or (final_observation and last):
            messages += env_reply(turns[-1], last)
    return messages


def trajectory_tools(traj: Trajectory) -> list[dict[str, Any]] | None:
    """The tool schemas a tool env offered in this trajectory (None for a plain text env)."""
    tools = traj.reset_info.get("tools") if isinstance(traj.reset_info, dict) else None
    return list(tools) if tools else None


class ChatEncoder:
    """Renders and tokenises conversations with a tokenizer's chat template, tracking action spans."""

    def __init__(self, tokenizer: Any, *, system: str | None = None, use_rollout_tokens: bool = True):
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{type(tokenizer).__name__} has no chat_template; conversations are rendered as chat "
                "messages — set tokenizer.chat_template (e.g. agentgym.models.CHAT_TEMPLATE, ChatML) first"
            )
        self.tokenizer = tokenizer
        self.system = system
        self.use_rollout_tokens = use_rollout_tokens
        #: template text around each message, learned per leading role sequence (None: irregular)
        self._glue: dict[tuple[Any, ...], list[tuple[str, str]] | None] = {}

    def render(
        self, messages: Sequence[Message], *, add_generation_prompt: bool = False, tools: Tools = None
    ) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages),
            tools=list(tools) if tools else None,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def encode_messages(
        self,
        messages: Sequence[Message],
        *,
        action_ids: Sequence[list[int] | None] = (),
        add_generation_prompt: bool = False,
        tools: Tools = None,
    ) -> Encoded:
        """Tokenise ``messages`` piece by piece; ``action_ids[k]`` replaces the k-th assistant text."""
        pieces = self._fast_pieces(messages, tools=tools)
        if pieces is None:
            pieces = self._slow_pieces(messages, tools=tools)
        texts: list[str] = []
        for (head, body, tail), message in zip(pieces, messages):
            # a non-assistant message is tokenised as one text, like the template's render of it
            if message["role"] == "assistant":
                texts += [head, body, tail]
            else:
                texts += [head + body + tail, "", ""]
        if add_generation_prompt:
            done = "".join(h + c + cl for h, c, cl in pieces)
            full = self.render(messages, add_generation_prompt=True, tools=tools)
            texts.append(self._checked(full, done)[len(done) :])
        token_lists = self._batch_tokens(texts)
        enc = Encoded()
        n_assistant = 0
        for k, message in enumerate(messages):
            header, content_ids, closing = token_lists[3 * k : 3 * k + 3]
            enc.input_ids += header
            if message["role"] == "assistant":
                ids = action_ids[n_assistant] if n_assistant < len(action_ids) else None
                if ids is not None:
                    content_ids = list(ids)
                    kept = self._strip_generated_stop(content_ids, pieces[k][2])
                    closing = self.tokens(kept) if kept != pieces[k][2] else closing
                start = len(enc.input_ids)
                enc.input_ids += content_ids
                enc.action_spans.append((start, len(enc.input_ids)))
                n_assistant += 1
            enc.input_ids += closing
            enc.message_ends.append(len(enc.input_ids))
        for k in range(len(messages) - 2, -1, -1):  # a message merged into its run's block ends with it
            if messages[k]["role"] != "assistant" and pieces[k] == ("", "", ""):
                enc.message_ends[k] = enc.message_ends[k + 1]
        if add_generation_prompt:
            enc.input_ids += token_lists[-1]
        return enc

    def prompt_ids(self, messages: Sequence[Message], *, tools: Tools = None) -> list[int]:
        """The tokens of ``messages`` plus the assistant generation prompt (what a policy generates after).

        The same tokens :meth:`encode_messages` gives (so a trainer's recompute matches the rollout);
        a template that is not prefix-stable falls back to tokenising the whole render.
        """
        try:
            return self.encode_messages(messages, add_generation_prompt=True, tools=tools).input_ids
        except ConfigError:
            return self.tokens(self.render(messages, add_generation_prompt=True, tools=tools))

    def _batch_tokens(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [list(x) if t else [] for x, t in zip(ids, texts)]

    def _slow_pieces(self, messages: Sequence[Message], *, tools: Tools = None) -> list[tuple[str, str, str]]:
        """``(header, content, closing)`` per message from prefix renders.

        Only assistant messages are split exactly. A run of other messages is cut after a message
        only where that prefix render is also a prefix of the run's full render; templates that
        merge consecutive tool results into one block (like Qwen's) give the merged text to the
        run's last message and empty pieces to the others.
        """
        out: list[tuple[str, str, str]] = []
        prev, k, n = "", 0, len(messages)
        while k < n:
            if messages[k]["role"] == "assistant":
                header = self._checked(
                    self.render(messages[:k], add_generation_prompt=True, tools=tools), prev
                )
                full = self._checked(self.render(messages[: k + 1], tools=tools), header)
                content = messages[k]["content"]
                rest = full[len(header) :]
                if not rest.startswith(content):
                    raise ConfigError(
                        "the chat template changes the assistant text (e.g. strips or rewrites it), so action "
                        f"tokens cannot be located: {content[:40]!r} not found at the start of {rest[:60]!r}"
                    )
                out.append((header[len(prev) :], content, rest[len(content) :]))
                prev, k = full, k + 1
                continue
            j = k
            while j + 1 < n and messages[j + 1]["role"] != "assistant":
                j += 1
            run_end = self._checked(self.render(messages[: j + 1], tools=tools), prev)
            for i in range(k, j):
                part = self.render(messages[: i + 1], tools=tools)
                if part.startswith(prev) and run_end.startswith(part):
                    out.append((part[len(prev) :], "", ""))
                    prev = part
                else:
                    out.append(("", "", ""))
            out.append((run_end[len(prev) :], "", ""))
            prev, k = run_end, j + 1
        return out

    def _fast_pieces(
        self, messages: Sequence[Message], *, tools: Tools = None
    ) -> list[tuple[str, str, str]] | None:
        """Pieces from one render: the template's per-role text around each message is learned once
        on a probe conversation with placeholder contents, then checked against the real render.

        None when the template is not that regular (the slow path then renders prefixes).
        """
        probe = [{**m, "content": ""} for m in messages[:_PROBE]]
        key = (json.dumps(probe, sort_keys=True), json.dumps(list(tools or []), sort_keys=True, default=str))
        if key not in self._glue:
            self._glue[key] = self._learn_glue(probe, tools)
        glue = self._glue[key]
        if glue is None:
            return None
        # after the probe, each role's text is the one of its last occurrence (never the first message)
        by_role = {m["role"]: g for m, g in list(zip(probe, glue))[1:]}
        pieces = []
        for k, message in enumerate(messages):
            around = glue[k] if k < len(glue) else by_role.get(message["role"])
            if around is None:
                return None
            pieces.append((around[0], message["content"], around[1]))
        if "".join(h + c + cl for h, c, cl in pieces) != self.render(messages, tools=tools):
            return None
        return pieces

    def _learn_glue(self, probe: list[Message], tools: Tools) -> list[tuple[str, str]] | None:
        probe = [{**m, "content": _PLACEHOLDER.format(k)} for k, m in enumerate(probe)]
        try:
            pieces = self._slow_pieces(probe, tools=tools)
        except ConfigError:
            return None
        if any(p == ("", "", "") for p in pieces):
            return None  # a merged run: the per-message text is not separable
        glue = []
        for k, (header, content, closing) in enumerate(pieces):
            text, mark = header + content + closing, _PLACEHOLDER.format(k)
            at = text.find(mark)
            if at < 0:
                return None
            glue.append((text[:at], text[at + len(mark) :]))
        return glue

    def encode(self, traj: Trajectory, *, final_observation: bool = False) -> Encoded:
        """The whole trajectory, one action span per turn (tool schemas from ``traj.reset_info``)."""
        messages = conversation(traj, system=self.system, final_observation=final_observation)
        ids = [self.rollout_ids(t) for t in traj.turns]
        return self.encode_messages(messages, action_ids=ids, tools=trajectory_tools(traj))

    def generation_prompt(self, messages: Sequence[Message], *, tools: Tools = None) -> list[int]:
        """The tokens the template adds to open an assistant reply after ``messages``."""
        base = self.render(messages, tools=tools)
        full = self.render(messages, add_generation_prompt=True, tools=tools)
        return self.tokens(self._checked(full, base)[len(base) :])

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
                "drops past reasoning); token spans need a template such as ChatML where each message is "
                "appended as is"
            )
        return text
