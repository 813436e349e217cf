"""Tool environments: an env declares typed Python callables; the core shows them to the policy,
parses the calls in the model's own format, runs them and answers with ``tool`` messages.

How an env declares tools (the whole API)::

    from agentgym.tools import ToolEnv, ToolError

    class Notes(ToolEnv):
        def task_ids(self, split):                  # the usual TextEnv task methods
            return ["notes-0"]

        def _reset_task(self, task_id):
            self.notes = {}
            return "Save the note 'hi' under 'a', then finish.", {"task": "save a note"}

        def tools(self):                            # typed callables; schemas from signature + docstring
            return [self.save, self.finish_task]

        def save(self, key: str, text: str) -> str:
            \"\"\"Save a note.

            Args:
                key: the note's name
                text: what to write
            \"\"\"
            self.notes[key] = text
            return f"saved {key}"

        def finish_task(self) -> str:
            \"\"\"Say that you are done.\"\"\"
            won = self.notes.get("a") == "hi"
            self.finish(reward=float(won), won=won)  # ends the episode after this step
            return "done"

The JSON schemas come from :func:`transformers.utils.get_json_schema` (Google-style ``Args:``
docstring + type hints) and reach the policy in ``reset`` info as ``info["tools"]`` (a list of
``{"type": "function", "function": {...}}`` dicts, the form ``apply_chat_template(tools=...)`` and
OpenAI's ``tools=`` take). The rollout passes them on as ``PolicyInput.tools``.

A step: the action (the assistant's text) is parsed with the policy's tool-call format (reset
option ``tool_format``, see :mod:`agentgym.toolformats`); each call is checked against its schema
and run; the reply is one ``tool`` message per call, in ``info["tool_messages"]`` (``role``,
``name``, ``tool_call_id``, ``content``), and the observation is their text. ``info["tool_calls"]``
records the parsed calls, ``info["tool_errors"]`` what went wrong. A malformed call (bad JSON,
unknown tool, missing or mistyped arguments, a tool raising :class:`ToolError`) is answered by a
``tool`` message that says what was wrong and shows the expected schema, with
``valid_action=False``; it never raises. A reply without any call goes to :meth:`ToolEnv.on_text`
(default: an invalid action that lists the tools).

Tools may also come from an MCP server (:mod:`agentgym.mcptools`): anything with ``name``,
``schema`` and ``__call__(**arguments) -> str`` is a :class:`Tool`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym.env import StepResult, TextEnv
from agentgym.errors import AgentGymError, ConfigError
from agentgym.toolformats import DEFAULT_TOOL_FORMAT, ParsedReply, ToolCall, get_format

log = logging.getLogger(__name__)

#: longest tool result kept in a message (a tool that floods the context is cut, with a note)
MAX_RESULT_CHARS = 20_000


class ToolError(AgentGymError):
    """Raised by a tool to answer the agent with an error message (bad argument value, not found...)."""


@dataclass
class Tool:
    """A callable the agent may call, with its JSON schema (``{"type": "function", "function": ...}``)."""

    name: str
    schema: dict[str, Any]
    fn: Callable[..., Any]

    @classmethod
    def from_callable(cls, fn: Callable[..., Any], *, name: str | None = None) -> Tool:
        """Schema from ``fn``'s type hints and Google-style docstring (``transformers.utils.get_json_schema``)."""
        from transformers.utils import get_json_schema
        from transformers.utils.chat_template_utils import DocstringParsingException, TypeHintParsingException

        try:
            schema = get_json_schema(fn)
        except (DocstringParsingException, TypeHintParsingException, ValueError) as exc:
            raise ConfigError(
                f"tool {getattr(fn, '__name__', fn)!r}: cannot build its JSON schema ({exc}). A tool needs type "
                "hints on every argument and a docstring with a description and an 'Args:' entry per argument"
            ) from exc
        schema["function"].pop("return", None)  # not part of the OpenAI/chat-template tool schema
        if name:
            schema["function"]["name"] = name
        return cls(schema["function"]["name"], schema, fn)

    @property
    def parameters(self) -> dict[str, Any]:
        return self.schema["function"].get("parameters") or {"type": "object", "properties": {}}

    def signature(self) -> str:
        """``name(arg: type, optional?: type)``, the short form shown in error messages."""
        props, required = self.parameters.get("properties", {}), set(self.parameters.get("required", []))
        args = [f"{k}{'' if k in required else '?'}: {_type_name(v)}" for k, v in props.items()]
        return f"{self.name}({', '.join(args)})"

    def __call__(self, **arguments: Any) -> Any:
        return self.fn(**arguments)


def as_tool(obj: Tool | Callable[..., Any]) -> Tool:
    """A :class:`Tool` as is; a plain callable through :meth:`Tool.from_callable`."""
    if isinstance(obj, Tool):
        return obj
    if callable(obj):
        return Tool.from_callable(obj)
    raise ConfigError(f"a tool must be a callable or an agentgym.tools.Tool, got {type(obj).__name__}")


# ---- argument checking -----------------------------------------------------------------------
_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def _type_name(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        return " | ".join(map(str, kind))
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type_name(schema['items'])}"
    if "anyOf" in schema or "oneOf" in schema:
        return " | ".join(_type_name(s) for s in schema.get("anyOf") or schema.get("oneOf") or [])
    return str(kind) + (" | null" if schema.get("nullable") else "")


def check_value(value: Any, schema: Any, where: str) -> list[str]:
    """Problems of ``value`` against a JSON-schema subset (``type``, ``nullable``, ``enum``, ``items``,
    ``properties``/``required``/``additionalProperties``, ``anyOf``/``oneOf``); other keywords are not checked.

    >>> check_value("3", {"type": "integer"}, "k")
    ["k: expected integer, got string '3'"]
    """
    if not isinstance(schema, dict):
        return []
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf", schema.get("oneOf")) or []
        if any(not check_value(value, s, where) for s in options):
            return []
        return [f"{where}: expected {_type_name(schema)}, got {_describe(value)}"]
    if value is None and schema.get("nullable"):
        return []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: expected one of {schema['enum']}, got {_describe(value)}"]
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, k) for k in kinds):
            return [f"{where}: expected {_type_name(schema)}, got {_describe(value)}"]
    problems: list[str] = []
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += check_value(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, dict):
        problems += check_object(value, schema, where)
    return problems


def check_object(value: Mapping[str, Any], schema: dict[str, Any], where: str = "") -> list[str]:
    """Missing required keys, unknown keys (when ``additionalProperties`` is false or properties are
    listed for a tool's arguments) and per-key problems."""
    props = schema.get("properties") or {}
    prefix = f"{where}." if where else ""
    problems = [
        f"missing required argument {prefix}{k}" for k in schema.get("required", []) if k not in value
    ]
    extra = schema.get("additionalProperties", not props)
    for key, item in value.items():
        if key in props:
            problems += check_value(item, props[key], f"{prefix}{key}")
        elif extra is False or (extra is not True and not isinstance(extra, dict)):
            problems.append(f"unknown argument {prefix}{key} (expected: {', '.join(props) or 'none'})")
        elif isinstance(extra, dict):
            problems += check_value(item, extra, f"{prefix}{key}")
    return problems


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _PY_TYPES.get(kind, (object,)))


def _describe(value: Any) -> str:
    kind = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"{kind.get(type(value), 'null' if value is None else type(value).__name__)} {text[:80]}".replace(
        '"', "'"
    )


# ---- running calls ---------------------------------------------------------------------------
@dataclass
class ToolTurn:
    """What the tools answered to one reply."""

    reply: ParsedReply
    #: one ``tool`` message per call (results and errors alike), in call order
    messages: list[dict[str, str]] = field(default_factory=list)
    #: what went wrong (empty when every call parsed, checked and ran)
    errors: list[str] = field(default_factory=list)

    @property
    def observation(self) -> str:
        """The tool messages as one text (for text-only views: viewer, human policy, logs)."""
        if len(self.messages) == 1:
            return self.messages[0]["content"]
        return "\n\n".join(f"[{m['name'] or 'tool'}] {m['content']}" for m in self.messages)


class ToolSet:
    """An ordered set of tools with unique names; :meth:`run` answers one assistant reply."""

    def __init__(self, tools: Sequence[Tool | Callable[..., Any]]):
        self.tools: dict[str, Tool] = {}
        for obj in tools:
            tool = as_tool(obj)
            if tool.name in self.tools:
                raise ConfigError(f"two tools are named {tool.name!r}; tool names must be unique")
            self.tools[tool.name] = tool
        if not self.tools:
            raise ConfigError("a tool env needs at least one tool")

    def schemas(self) -> list[dict[str, Any]]:
        """The tools' JSON schemas, for ``apply_chat_template(tools=...)`` and OpenAI's ``tools=``."""
        return [t.schema for t in self.tools.values()]

    def listing(self) -> str:
        return "; ".join(t.signature() for t in self.tools.values())

    def run(
        self, text: str, tool_format: str = DEFAULT_TOOL_FORMAT, *, stop: Callable[[], bool] | None = None
    ) -> ToolTurn:
        """Parse ``text`` and run its calls in order; ``stop()`` True skips the remaining calls."""
        fmt = get_format(tool_format)
        reply = fmt.parse(text)
        turn = ToolTurn(reply)
        for k, block in enumerate(reply.blocks):
            if isinstance(block, str):
                turn.errors.append(block)
                message = f"Error: {block}. Expected {fmt.expected}; tools: {self.listing()}"
                turn.messages.append(_tool_message(f"call_{k}", "", message))
                continue
            if stop is not None and stop():
                content = "Not run: the episode ended with an earlier call."
            else:
                content, problem = self._run_one(block)
                if problem:
                    turn.errors.append(problem)
            turn.messages.append(_tool_message(block.id, block.name, content))
        return turn

    def _run_one(self, call: ToolCall) -> tuple[str, str]:
        """(message content, problem or "")."""
        tool = self.tools.get(call.name)
        if tool is None:
            problem = f"unknown tool {call.name!r}"
            return f"Error: {problem}. Available tools: {self.listing()}", problem
        problems = check_object(call.arguments, tool.parameters)
        if problems:
            problem = f"{call.name}: " + "; ".join(problems)
            schema = json.dumps(tool.parameters, ensure_ascii=False)
            return f"Error: {problem}. Expected {tool.signature()} with arguments schema {schema}", problem
        try:
            result = tool(**call.arguments)
        except ToolError as exc:
            return f"Error: {exc}", f"{call.name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a failing tool is the agent's observation, not a crash
            log.warning("tool %s raised", call.name, exc_info=True)
            return (
                f"Error: {call.name} failed: {type(exc).__name__}: {exc}",
                f"{call.name} raised {type(exc).__name__}",
            )
        return _result_text(result), ""


def _tool_message(call_id: str, name: str, content: str) -> dict[str, str]:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


def _result_text(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False, default=str)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n[... cut: {len(text) - MAX_RESULT_CHARS} more characters]"
    return text


# ---- the env base class ------------------------------------------------------------------------
class ToolEnv(TextEnv):
    """A :class:`~agentgym.env.TextEnv` whose actions are tool calls (see the module docstring).

    Subclasses implement the task methods (``task_ids``, ``_reset_task``) and :meth:`tools`; tools
    end the episode with :meth:`finish`. Optional: :meth:`on_text` (a reply without a call),
    :meth:`step_info` (extra info after each step, e.g. ``progress``, ``state_key``).
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.tool_format = DEFAULT_TOOL_FORMAT
        self._toolset: ToolSet | None = None
        self._finished: tuple[float, dict[str, Any]] | None = None

    # ---- what a subclass implements --------------------------------------------------------
    def tools(self) -> Sequence[Tool | Callable[..., Any]]:
        """The tools of this env (bound methods, functions or :class:`Tool` objects)."""
        raise NotImplementedError

    def on_text(self, content: str) -> StepResult:
        """The answer to a reply that calls no tool (default: an invalid action listing the tools)."""
        return self.invalid_action("No tool call found in the reply.", info=self.step_info())

    def step_info(self) -> dict[str, Any]:
        """Info added after every step (``progress``, ``state_key``, ...); default none."""
        return {}

    def finish(self, reward: float = 0.0, **info: Any) -> None:
        """Called by a tool: the episode terminates after this step with ``reward`` and ``info``."""
        self._finished = (float(reward), info)

    # ---- plumbing ----------------------------------------------------------------------------
    @property
    def toolset(self) -> ToolSet:
        if self._toolset is None:
            self._toolset = ToolSet(self.tools())
        return self._toolset

    @property
    def action_format(self) -> str:  # type: ignore[override]
        expected = get_format(self.tool_format).expected
        return f"one or more tool calls written as {expected}; tools: {self.toolset.listing()}"

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        fmt = options.pop("tool_format", None)
        if fmt is not None:
            get_format(fmt)  # unknown names fail here, with the list of known ones
            self.tool_format = fmt
        self._finished = None
        obs, info = super().reset(seed=seed, options=options)
        info["tools"] = self.toolset.schemas()
        return obs, info

    def _step(self, action: str) -> StepResult:
        if self._finished is not None:
            return self.invalid_action("The episode has ended; call reset().", info=self.step_info())
        turn = self.toolset.run(action, self.tool_format, stop=lambda: self._finished is not None)
        if not turn.reply.has_calls:
            obs, reward, terminated, truncated, info = self.on_text(turn.reply.content)
            return obs, reward, terminated, truncated, {"tool_calls": [], "tool_errors": [], **info}
        reward, extra = self._finished if self._finished is not None else (0.0, dict[str, Any]())
        info = {
            **self.step_info(),
            **extra,
            "valid_action": not turn.errors,
            "tool_calls": [c.to_dict() for c in turn.reply.calls],
            "tool_errors": turn.errors,
            "tool_messages": turn.messages,
        }
        return turn.observation, reward, self._finished is not None, False, info
