"""Any OpenAI-compatible chat endpoint (vLLM, SGLang, ``agentgym serve``, hosted APIs) as a policy.

One ``/chat/completions`` request per environment, sent concurrently from a thread pool with the
standard library's ``urllib`` (no extra dependency). Transient failures (connection refused,
timeouts, HTTP 429 and 5xx) are retried with exponential backoff; any other HTTP error raises
:class:`~agentgym.errors.PolicyError` with the status, the server's own message and a hint
(bad URL, model name or key). Requests carry ``seed = policy seed + request counter``, so a rerun
sends the same seeds. Token log-probs are returned when the server gives them; token ids only with
``return_token_ids=True`` (a vLLM extension that ``agentgym serve`` also implements).

Tools: a tool env's schemas go out as ``tools=``; the response's structured ``tool_calls`` come
back into the action text in the Hermes format (``<tool_call>{"name", "arguments"}</tool_call>``
after the content; ``tool_format = "hermes"``), since the action of a tool env is the assistant's
text. Going out, the history is converted back: an assistant text's well-formed calls become its
``tool_calls`` (ids ``call_<message>_<k>``) and the env's ``tool`` messages answer them by id; a
tool message that answers no call (a block that could not be read) is sent as a ``user`` message.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from agentgym.errors import ConfigError, PolicyError
from agentgym.policies.base import ActionOutput, Message, Policy, PolicyInput
from agentgym.toolformats import HermesFormat, ToolCall

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BACKOFF_S = 0.5


class OpenAIPolicy(Policy):
    """Chat completions from ``base_url`` (e.g. ``http://127.0.0.1:8000/v1``) with model ``model``."""

    name = "openai"
    tool_format = HermesFormat.name

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        temperature: float = 0.7,
        max_tokens: int = 256,
        timeout: float = 60,
        api_key: str | None = None,
        concurrency: int = 8,
        seed: int | None = 0,
        retries: int = 2,
        top_p: float | None = None,
        logprobs: bool = True,
        return_token_ids: bool = False,
        extra_body: dict[str, Any] | None = None,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if not model:
            raise ConfigError("model must be the name the server serves (see its /v1/models)")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {temperature}")
        if concurrency < 1 or retries < 0 or timeout <= 0:
            raise ConfigError(
                f"need concurrency >= 1, retries >= 0, timeout > 0; got {concurrency}, {retries}, {timeout}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.temperature, self.top_p, self.max_tokens = temperature, top_p, max_tokens
        self.timeout, self.retries, self.concurrency = timeout, retries, concurrency
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.logprobs, self.return_token_ids = logprobs, return_token_ids
        self.extra_body = dict(extra_body or {})
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self.seed = seed
        self._requests = 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def act(self, batch: Sequence[PolicyInput]) -> list[ActionOutput]:
        payloads = [self._payload(item.messages, item.tools) for item in batch]
        if len(payloads) <= 1:
            return [self._complete(p) for p in payloads]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="agentgym-openai")
            pool = self._pool
        return list(pool.map(self._complete, payloads))

    def models(self) -> list[str]:
        """The model ids the server lists at ``/models``."""
        data = self._request("GET", "/models", None)
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    # ---- one request ---------------------------------------------------------------------
    def _payload(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages) if tools else messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.seed is not None:
            body["seed"] = self.seed + self._requests
        self._requests += 1
        if self.logprobs:
            body["logprobs"] = True
        if self.return_token_ids:
            body["return_token_ids"] = True
        if tools:
            body["tools"] = tools
        return {**body, **self.extra_body}

    def _complete(self, payload: dict[str, Any]) -> ActionOutput:
        data = self._request("POST", "/chat/completions", payload)
        try:
            choice = data["choices"][0]
            text = _action_text(choice["message"])
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise PolicyError(
                f"{self.base_url}/chat/completions answered without choices[0].message: {str(data)[:300]}"
            ) from exc
        content = (choice.get("logprobs") or {}).get("content")
        logprobs = [float(t["logprob"]) for t in content] if content else None
        token_ids = choice.get("token_ids") if self.return_token_ids else None
        usage = data.get("usage") or {}
        return ActionOutput(
            text=text.strip(),
            token_ids=token_ids,
            logprobs=logprobs,
            prompt_tokens=usage.get("prompt_tokens"),
        )

    def _request(self, method: str, route: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        url = self.base_url + route
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(payload).encode() if payload is not None else None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code in RETRY_STATUSES and not last:
                    time.sleep(BACKOFF_S * 2**attempt)
                    continue
                raise self._http_error(url, exc.code, _error_message(exc)) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
                if not last:
                    time.sleep(BACKOFF_S * 2**attempt)
                    continue
                reason = getattr(exc, "reason", exc)
                raise PolicyError(
                    f"could not reach {url} after {self.retries + 1} attempt(s): {reason}. Is the server running "
                    f"and is the URL right? (start a local one with `agentgym serve tiny --port 8000`)"
                ) from None
            except json.JSONDecodeError as exc:
                raise PolicyError(f"{url} answered with a body that is not JSON: {exc}") from None
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _http_error(self, url: str, status: int, message: str) -> PolicyError:
        if status in (401, 403):
            hint = "check the API key: pass api_key=... or set $OPENAI_API_KEY"
        elif status == 404 and "model" in message.lower():
            hint = f"the server does not serve model {self.model!r}"
            with contextlib.suppress(PolicyError):  # the listing is a bonus; the error stands without it
                hint += f"; it lists {self.models()} (the #MODEL part of openai:URL#MODEL)"
        elif status == 404:
            hint = (
                f"check the base URL {self.base_url!r}: OpenAI-compatible servers usually live under .../v1"
            )
        elif status == 400:
            hint = "the server rejected the request; check temperature/max_tokens, or pass logprobs=False"
        else:
            hint = "the server failed; see its log"
        return PolicyError(f"{url} answered HTTP {status}: {message} ({hint}; model {self.model!r})")


_HERMES = HermesFormat()


def _action_text(message: dict[str, Any]) -> str:
    """The assistant message as action text: its content, then its ``tool_calls`` in the Hermes format."""
    text = message.get("content") or ""
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise TypeError(f"tool_calls must be a list, got {type(calls).__name__}")
    rendered = _HERMES.render([c for c in calls if isinstance(c, dict)])
    return f"{text}\n{rendered}" if text and rendered else text or rendered


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Agentgym messages (tool calls as Hermes text) in OpenAI's shape (``tool_calls``, ids matched).

    >>> out = to_openai_messages([
    ...     {"role": "user", "content": "2+2?"},
    ...     {"role": "assistant", "content": '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 2}}</tool_call>'},
    ...     {"role": "tool", "tool_call_id": "call_0", "name": "add", "content": "4"}])
    >>> out[1]["tool_calls"][0]["function"], out[2]["tool_call_id"]
    ({'name': 'add', 'arguments': '{"a": 2, "b": 2}'}, 'call_1_0')
    """
    out: list[dict[str, Any]] = []
    ids: dict[str, str] = {}  # the last assistant message's call ids -> the ids sent
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            reply = _HERMES.parse(message.get("content", ""))
            calls = [b for b in reply.blocks if isinstance(b, ToolCall)]
            ids = {c.id: f"call_{i}_{c.id.rsplit('_', 1)[-1]}" for c in calls}
            if not calls:
                out.append({"role": "assistant", "content": message.get("content", "")})
                continue
            # unreadable blocks stay in the text, so the model sees what it wrote
            content = _HERMES.strip_calls(message.get("content", ""))
            out.append(
                {
                    "role": "assistant",
                    "content": content or None,
                    "tool_calls": [
                        {
                            "id": ids[c.id],
                            "type": "function",
                            "function": {
                                "name": c.name,
                                "arguments": json.dumps(c.arguments, ensure_ascii=False),
                            },
                        }
                        for c in calls
                    ],
                }
            )
        elif role == "tool" and message.get("tool_call_id") in ids:
            out.append(
                {"role": "tool", "tool_call_id": ids[message["tool_call_id"]], "content": message["content"]}
            )
        elif role == "tool":
            out.append({"role": "user", "content": message.get("content", "")})
        else:
            out.append(dict(message))
    return out


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read().decode(errors="replace")
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else str(exc)
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        return raw[:500] or str(exc.reason)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return raw[:500]
