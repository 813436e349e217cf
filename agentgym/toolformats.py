"""Tool-call text formats: how a model writes function calls inside its reply, parsed and written.

The action of a tool env stays the assistant's message text; the tool calls inside it are parsed
with the format the model was trained on. The format is chosen from the model's chat template
(:func:`detect_tool_format`), never per env: the policy announces it (``Policy.tool_format``) and
the rollout hands it to the env at reset (``options={"tool_format": ...}``).

Formats (each parses text into :class:`ParsedReply` and writes calls back as text):

``hermes``      ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes 2 Pro, Qwen2/2.5/3,
                the tiny model); an unclosed last block (generation stopped) is still parsed.
``mistral``     ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``
``llama3_json`` the whole reply is ``{"name": ..., "parameters": {...}}`` (Llama 3.1+ JSON tool
                calling), optionally after ``<|python_tag|>``; several calls separated by ``;``.

Parsing never raises: a block that cannot be read becomes an error string in
``ParsedReply.errors`` that says what was wrong, and the env turns it into an observation.

>>> reply = get_format("hermes").parse('Let me look. <tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>')
>>> reply.content, [(c.name, c.arguments) for c in reply.calls]
('Let me look.', [('search', {'query': 'x'})])
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.errors import ConfigError


@dataclass
class ToolCall:
    """One parsed call. ``id`` is ``call_<k>`` (k = position in the reply), so a conversation can be
    rebuilt from text alone with the same ids."""

    name: str
    arguments: dict[str, Any]
    id: str = "call_0"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass
class ParsedReply:
    """An assistant reply split into free text and its call blocks, in order: a well-formed
    :class:`ToolCall`, or for a block that could not be read as a call (bad JSON, no name, ...) a
    message saying what is wrong."""

    #: the reply with every call block removed (stripped)
    content: str
    blocks: list[ToolCall | str] = field(default_factory=list)

    @property
    def calls(self) -> list[ToolCall]:
        return [b for b in self.blocks if isinstance(b, ToolCall)]

    @property
    def errors(self) -> list[str]:
        return [b for b in self.blocks if isinstance(b, str)]

    @property
    def has_calls(self) -> bool:
        """True when the reply tried to call a tool (well-formed or not)."""
        return bool(self.blocks)


class ToolFormat:
    """Base class: ``parse`` text into calls, ``render`` calls as the model would write them."""

    name = ""
    #: how a call must look, shown to the agent after a malformed call
    expected = ""

    def parse(self, text: str) -> ParsedReply:
        raise NotImplementedError

    def render(self, calls: Sequence[ToolCall | dict[str, Any]]) -> str:
        raise NotImplementedError


def _call_from_json(obj: Any, k: int, args_key: str = "arguments") -> ToolCall | str:
    """A :class:`ToolCall` from a decoded JSON object, or a message saying what is wrong with it."""
    if not isinstance(obj, dict):
        return f"tool call {k + 1}: expected a JSON object, got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return f'tool call {k + 1}: missing "name" (a string naming the tool)'
    args = obj.get(args_key, obj.get("arguments", obj.get("parameters", {})))
    if isinstance(args, str):  # some models double-encode the arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            return f"tool call {k + 1} ({name}): arguments are a string that is not valid JSON ({exc.msg})"
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return f'tool call {k + 1} ({name}): "{args_key}" must be a JSON object, got {type(args).__name__}'
    return ToolCall(name, args, f"call_{k}")


def _loads(text: str, k: int) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return f"tool call {k + 1} is not valid JSON ({exc.msg} at position {exc.pos}): {text[:200]!r}"
    except RecursionError:
        return f"tool call {k + 1} is nested too deeply to read"


def _as_dict(call: ToolCall | dict[str, Any]) -> tuple[str, Any]:
    if isinstance(call, ToolCall):
        return call.name, call.arguments
    fn = call.get("function", call)  # an OpenAI tool_call or a plain {"name", "arguments"}
    return str(fn.get("name", "")), fn.get("arguments", {})


def _args_json(args: Any) -> str:
    if isinstance(args, str):  # OpenAI sends arguments as JSON text: keep the model's bytes as they are
        return args if args.strip() else "{}"
    return json.dumps(args, ensure_ascii=False)


class HermesFormat(ToolFormat):
    name = "hermes"
    expected = '<tool_call>{"name": "<tool name>", "arguments": {<argument>: <value>, ...}}</tool_call>'
    _block = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)

    def parse(self, text: str) -> ParsedReply:
        reply = ParsedReply(self._block.sub("", text).strip())
        for k, match in enumerate(self._block.finditer(text)):
            obj = _loads(match.group(1).strip(), k)
            reply.blocks.append(obj if isinstance(obj, str) else _call_from_json(obj, k))
        return reply

    def render(self, calls: Sequence[ToolCall | dict[str, Any]]) -> str:
        blocks = []
        for call in calls:
            name, args = _as_dict(call)
            blocks.append(
                f'<tool_call>\n{{"name": {json.dumps(name)}, "arguments": {_args_json(args)}}}\n</tool_call>'
            )
        return "\n".join(blocks)


class MistralFormat(ToolFormat):
    name = "mistral"
    expected = '[TOOL_CALLS][{"name": "<tool name>", "arguments": {<argument>: <value>, ...}}]'
    marker = "[TOOL_CALLS]"

    def parse(self, text: str) -> ParsedReply:
        at = text.find(self.marker)
        if at < 0:
            return ParsedReply(text.strip())
        reply = ParsedReply(text[:at].strip())
        body = text[at + len(self.marker) :].strip()
        try:
            obj, _ = json.JSONDecoder().raw_decode(body)
        except (json.JSONDecodeError, RecursionError) as exc:
            reply.blocks.append(
                f"the text after {self.marker} is not a JSON list of calls ({exc}): {body[:200]!r}"
            )
            return reply
        for k, item in enumerate(obj if isinstance(obj, list) else [obj]):
            reply.blocks.append(_call_from_json(item, k))
        return reply

    def render(self, calls: Sequence[ToolCall | dict[str, Any]]) -> str:
        items = []
        for call in calls:
            name, args = _as_dict(call)
            items.append(f'{{"name": {json.dumps(name)}, "arguments": {_args_json(args)}}}')
        return self.marker + "[" + ", ".join(items) + "]"


class Llama3JsonFormat(ToolFormat):
    name = "llama3_json"
    expected = '{"name": "<tool name>", "parameters": {<argument>: <value>, ...}} as the whole reply'
    tag = "<|python_tag|>"

    def parse(self, text: str) -> ParsedReply:
        body = text.strip()
        if body.startswith(self.tag):
            body = body[len(self.tag) :].strip()
        elif not body.startswith("{"):
            return ParsedReply(text.strip())
        reply = ParsedReply("")
        decoder, pos, k = json.JSONDecoder(), 0, 0
        while pos < len(body):
            try:
                obj, end = decoder.raw_decode(body, pos)
            except (json.JSONDecodeError, RecursionError) as exc:
                reply.blocks.append(f"tool call {k + 1} is not valid JSON ({exc}): {body[pos : pos + 200]!r}")
                break
            reply.blocks.append(_call_from_json(obj, k, "parameters"))
            k += 1
            pos = end
            while pos < len(body) and body[pos] in " \t\r\n;":
                pos += 1
        return reply

    def render(self, calls: Sequence[ToolCall | dict[str, Any]]) -> str:
        items = []
        for call in calls:
            name, args = _as_dict(call)
            items.append(f'{{"name": {json.dumps(name)}, "parameters": {_args_json(args)}}}')
        return "; ".join(items)


TOOL_FORMATS: dict[str, ToolFormat] = {
    f.name: f for f in (HermesFormat(), MistralFormat(), Llama3JsonFormat())
}
#: the format assumed when a template names none (and the canonical text of structured OpenAI calls)
DEFAULT_TOOL_FORMAT = "hermes"


def get_format(name: str) -> ToolFormat:
    """The format registered as ``name``; unknown names fail with the list of known ones."""
    try:
        return TOOL_FORMATS[name]
    except KeyError:
        raise ConfigError(
            f"unknown tool-call format {name!r}; expected one of {sorted(TOOL_FORMATS)}"
        ) from None


def detect_tool_format(chat_template: str | None) -> str | None:
    """The tool-call format a chat template teaches its model, or None when it shows none.

    Looks for each format's marker in the template text (``<tool_call>``, ``[TOOL_CALLS]``,
    Llama 3's ``"parameters"`` JSON with ``<|python_tag|>``/``ipython``).

    >>> detect_tool_format("... <tool_call>\\n{{ tool_call | tojson }}\\n</tool_call> ...")
    'hermes'
    """
    if not chat_template:
        return None
    if "<tool_call>" in chat_template:
        return "hermes"
    if "[TOOL_CALLS]" in chat_template:
        return "mistral"
    if '"parameters"' in chat_template and ("<|python_tag|>" in chat_template or "ipython" in chat_template):
        return "llama3_json"
    return None
