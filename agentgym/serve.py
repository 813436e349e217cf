"""A small OpenAI-compatible HTTP server for a local :class:`~agentgym.policies.hf.HFPolicy`.

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (``messages``, ``temperature``,
``top_p``, ``max_tokens``, ``n=1``, ``seed``, ``logprobs``, plus the vLLM extension
``return_token_ids``) with the standard library's ``ThreadingHTTPServer``. Handler threads hand
requests to one batching worker, which groups concurrent requests that share sampling settings
into a single batched ``generate``; a request with a ``seed`` runs alone so its result depends on
the seed only. Binds 127.0.0.1 by default; there is no TLS, and auth is an optional shared key.

Tools (function calling): ``tools`` (``[{"type": "function", "function": {...}}]``) reach the chat
template (``apply_chat_template(tools=...)``); the reply is parsed with the model's own tool-call
format (from its chat template, see :mod:`agentgym.toolformats`) and its calls come back as
``message.tool_calls`` with ``finish_reason="tool_calls"``. A reply holding a call block that cannot
be read is returned as plain ``content`` (the client sees exactly what the model wrote).
Incoming assistant ``tool_calls`` are written back into the model's format, ``tool`` messages keep
``tool_call_id`` and ``name``. ``tool_choice`` may be ``"auto"`` or ``"none"`` (tools not shown).

Token log-probs follow HFPolicy's convention and include the final ``<|im_end|>``/eos token when
one was generated (so they align with ``token_ids``).

    python -m agentgym.serve tiny --port 8000          # or hf:PATH
    agentgym serve hf:runs/ckpt --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from agentgym.errors import AgentGymError, ConfigError, PolicyError
from agentgym.toolformats import DEFAULT_TOOL_FORMAT, ToolFormat, get_format

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
# Request fields accepted; the second group only with their neutral values (not implemented).
KNOWN_FIELDS = {"model", "messages", "temperature", "top_p", "max_tokens", "max_completion_tokens", "n"}
KNOWN_FIELDS |= {"seed", "logprobs", "top_logprobs", "return_token_ids", "user", "stream", "stop"}
KNOWN_FIELDS |= {"presence_penalty", "frequency_penalty", "tools", "tool_choice", "parallel_tool_calls"}
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tool_choice": (None, "auto", "none"),
    "stream": (False, None),
    "stop": (None, [], ""),
    "top_logprobs": (None, 0),
    "n": (None, 1),
}
NEUTRAL |= {"presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0)}
MAX_BODY_BYTES = 16 * 1024 * 1024


class RequestError(AgentGymError):
    """A request the server rejects, with its HTTP status and OpenAI-style error code."""

    def __init__(self, status: int, message: str, code: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": "invalid_request_error", "code": self.code}}


@dataclass
class ChatRequest:
    """A validated chat-completion request."""

    messages: list[dict[str, str]]
    sampling: Any  # agentgym.policies.hf.SamplingParams
    seed: int | None = None
    logprobs: bool = False
    return_token_ids: bool = False
    #: tool schemas shown to the model (None: no tools, or tool_choice "none")
    tools: list[dict[str, Any]] | None = None
    future: Future = field(default_factory=Future)


def parse_request(
    body: Any, served_model: str, default_sampling: Any, *, tool_format: str = DEFAULT_TOOL_FORMAT
) -> ChatRequest:
    """Validate a ``/v1/chat/completions`` body; raise :class:`RequestError` saying what is wrong."""
    from agentgym.policies.hf import SamplingParams

    if not isinstance(body, dict):
        raise RequestError(400, f"expected a JSON object body, got {type(body).__name__}")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise RequestError(
            400, f"unrecognized request argument(s) {unknown}; supported: {sorted(KNOWN_FIELDS)}"
        )
    for key, allowed in NEUTRAL.items():
        if key in body and body[key] not in allowed:
            raise RequestError(
                400, f"{key}={body[key]!r} is not supported by this server (allowed: {list(allowed)})"
            )
    model = body.get("model", served_model)
    if model != served_model:
        raise RequestError(
            404, f"The model {model!r} does not exist; this server serves {served_model!r}", "model_not_found"
        )
    messages = _parse_messages(body.get("messages"), get_format(tool_format))
    tools = _parse_tools(body.get("tools")) if body.get("tool_choice") != "none" else None
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    temperature, top_p = body.get("temperature"), body.get("top_p")
    try:  # OpenAI's defaults: temperature 1, top_p 1; max_tokens falls back to the server's setting
        sampling = SamplingParams(
            temperature=1.0 if temperature is None else temperature,
            top_p=1.0 if top_p is None else top_p,
            max_new_tokens=default_sampling.max_new_tokens if max_tokens is None else max_tokens,
        )
    except ConfigError as exc:
        raise RequestError(400, str(exc)) from exc
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, f"seed must be an integer, got {seed!r}")
    return ChatRequest(
        messages, sampling, seed, bool(body.get("logprobs")), bool(body.get("return_token_ids")), tools
    )


def _parse_tools(tools: Any) -> list[dict[str, Any]] | None:
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise RequestError(400, f"'tools' must be a list of function tools, got {type(tools).__name__}")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
            raise RequestError(
                400, f'tools[{i}] must be {{"type": "function", "function": {{...}}}}, got {tool!r}'[:300]
            )
        if not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RequestError(400, f"tools[{i}].function.name must be a non-empty string")
        if not isinstance(fn.get("parameters", {}), dict):
            raise RequestError(400, f"tools[{i}].function.parameters must be a JSON schema object")
    return tools


def _tool_calls_text(calls: Any, i: int, fmt: ToolFormat) -> str:
    """An assistant message's ``tool_calls``, written in the model's own call format."""
    if not isinstance(calls, list):
        raise RequestError(400, f"messages[{i}].tool_calls must be a list")
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestError(
                400, f"messages[{i}].tool_calls[{k}] must have function.name and function.arguments"
            )
        if not isinstance(fn.get("arguments", "{}"), (str, dict)):
            raise RequestError(400, f"messages[{i}].tool_calls[{k}].function.arguments must be a JSON string")
    return fmt.render(calls)


def _parse_messages(messages: Any, fmt: ToolFormat) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list of {role, content} objects")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise RequestError(
                400, f"messages[{i}] must be an object with a role in {list(ROLES)}, got {msg!r}"
            )
        content = msg.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        if content is None and msg["role"] == "assistant" and msg.get("tool_calls"):
            content = ""
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string or a list of text parts")
        if msg["role"] == "assistant" and msg.get("tool_calls"):
            calls = _tool_calls_text(msg["tool_calls"], i, fmt)
            content = f"{content}\n{calls}" if content else calls
        parsed = {"role": msg["role"], "content": content}
        if msg["role"] == "tool":
            parsed |= {k: str(msg[k]) for k in ("tool_call_id", "name") if isinstance(msg.get(k), str)}
        out.append(parsed)
    return out


def completion_body(policy: Any, req: ChatRequest, output: Any, model_name: str) -> dict[str, Any]:
    """The OpenAI ``chat.completion`` object for one generated action."""
    ids = output.token_ids or []
    message: dict[str, Any] = {"role": "assistant", "content": output.text}
    finish = "stop" if policy.finished(output) else "length"
    if req.tools:
        reply = get_format(policy.tool_format).parse(output.text)
        if reply.calls and not reply.errors:
            message["content"] = reply.content or None
            message["tool_calls"] = [
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
                }
                for c in reply.calls
            ]
            finish = "tool_calls" if finish == "stop" else finish
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    if req.logprobs:
        content = []
        for tid, lp in zip(ids, output.logprobs or []):
            text = policy.tokenizer.decode([tid])
            content.append({"token": text, "logprob": lp, "bytes": list(text.encode()), "top_logprobs": []})
        choice["logprobs"] = {"content": content}
    if req.return_token_ids:
        choice["token_ids"] = list(ids)
    prompt = output.prompt_tokens or 0
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [choice],
        "usage": {"prompt_tokens": prompt, "completion_tokens": len(ids), "total_tokens": prompt + len(ids)},
    }


class _Batcher:
    """One worker thread that turns concurrent requests into batched ``generate`` calls."""

    def __init__(self, policy: Any, max_batch: int, wait_s: float):
        self.policy, self.max_batch, self.wait_s = policy, max_batch, wait_s
        self.requests = self.batches = 0
        self.queue: queue.Queue[ChatRequest | None] = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name="agentgym-serve-batcher", daemon=True)
        self.thread.start()

    def submit(self, req: ChatRequest) -> Future:
        self.queue.put(req)
        return req.future

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            jobs, stopping = self._collect(first)
            groups: dict[Any, list[ChatRequest]] = {}
            for job in jobs:  # seeded requests run alone; the others batch by sampling settings
                key = ("seed", id(job)) if job.seed is not None else job.sampling
                groups.setdefault(key, []).append(job)
            for group in groups.values():
                self._run(group)
            if stopping:
                return

    def _collect(self, first: ChatRequest) -> tuple[list[ChatRequest], bool]:
        jobs, deadline = [first], time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            try:
                job = self.queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _run(self, group: list[ChatRequest]) -> None:
        self.requests += len(group)
        self.batches += 1
        try:
            outs = self.policy.generate(
                [j.messages for j in group],
                group[0].sampling,
                seed=group[0].seed,
                tools=[j.tools for j in group],
            )
        except Exception as exc:  # the error goes back to every waiting request, the server goes on
            for job in group:
                job.future.set_exception(exc)
            return
        for job, out in zip(group, outs):
            job.future.set_result(out)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            model = {"id": self.server.model_name, "object": "model", "created": 0, "owned_by": "agentgym"}
            self._send(200, {"object": "list", "data": [model]})
        elif self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._send(
                404, RequestError(404, f"no route GET {self.path}; try /v1/models", "not_found").body()
            )

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(
                404,
                RequestError(404, f"no route POST {self.path}; try /v1/chat/completions", "not_found").body(),
            )
            return
        srv = self.server
        try:
            req = parse_request(
                self._read_json(), srv.model_name, srv.policy.sampling, tool_format=srv.policy.tool_format
            )
            output = srv.batcher.submit(req).result()
            self._send(200, completion_body(srv.policy, req, output, srv.model_name))
        except RequestError as exc:
            self._send(exc.status, exc.body())
        except PolicyError as exc:
            self._send(400, RequestError(400, str(exc)).body())
        except Exception as exc:
            log.exception("chat completion failed")
            self._send(500, RequestError(500, f"{type(exc).__name__}: {exc}", "internal_error").body())

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"request body of {length} bytes exceeds {MAX_BODY_BYTES}")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except json.JSONDecodeError as exc:
            raise RequestError(400, f"body is not valid JSON: {exc}") from exc

    def _authorized(self) -> bool:
        key = self.server.api_key
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            # Drain the body so the connection stays usable for the client.
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self._send(401, RequestError(401, "Incorrect or missing API key", "invalid_api_key").body())
            return False
        return True

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    policy: Any
    batcher: _Batcher
    model_name: str
    api_key: str | None


@dataclass
class ServerHandle:
    """A running server: ``url`` is the OpenAI base URL (ending in ``/v1``); call :meth:`close`."""

    url: str
    host: str
    port: int
    model_name: str
    _server: _Server
    _thread: threading.Thread

    @property
    def stats(self) -> dict[str, int]:
        """Requests answered and ``generate`` batches run so far."""
        return {"requests": self._server.batcher.requests, "batches": self._server.batcher.batches}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._server.batcher.stop()
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    policy: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    model_name: str | None = None,
    api_key: str | None = None,
    max_batch: int = 32,
    batch_wait_s: float = 0.005,
) -> ServerHandle:
    """Start serving ``policy`` (an HFPolicy) in background threads; ``port=0`` picks a free port."""
    if not hasattr(policy, "generate") or not hasattr(policy, "tokenizer"):
        raise ConfigError(f"serve() needs an HFPolicy (local model), got {type(policy).__name__}")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s: reachable from other machines, with no TLS%s",
            host,
            "" if api_key else " and no key",
        )
    server = _Server((host, port), _Handler)
    server.policy, server.api_key = policy, api_key
    server.model_name = model_name or policy.model_name
    server.batcher = _Batcher(policy, max_batch, batch_wait_s)
    thread = threading.Thread(target=server.serve_forever, name="agentgym-serve", daemon=True)
    thread.start()
    bound_port = server.server_address[1]
    url_host = f"[{host}]" if ":" in host else host
    return ServerHandle(
        f"http://{url_host}:{bound_port}/v1", host, bound_port, server.model_name, server, thread
    )


# ---- command line ---------------------------------------------------------------------------
def resolve_model_spec(spec: str) -> tuple[str, str]:
    """``tiny`` / ``hf:PATH`` / ``PATH`` -> (checkpoint path or hub id, served model name)."""
    if spec == "tiny":
        from agentgym.models import default_tiny_model

        return str(default_tiny_model()), "tiny"
    path = spec[3:] if spec.startswith("hf:") else spec
    if not path:
        raise ConfigError(f"model spec {spec!r}: expected tiny, hf:PATH or PATH")
    return path, Path(path).name or path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="tiny | hf:PATH | PATH (a save_pretrained checkpoint dir)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument(
        "--model-name", default=None, help="the model id clients must send (default: from MODEL)"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("AGENTGYM_SERVE_API_KEY"), help="require this bearer key"
    )
    parser.add_argument("--max-new-tokens", type=int, default=256, help="default max_tokens of a request")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0)


def run_cli(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C); returns the exit code."""
    from agentgym.policies.hf import HFPolicy

    path, name = resolve_model_spec(args.model)
    policy = HFPolicy(path, max_new_tokens=args.max_new_tokens, device=args.device, seed=args.seed)
    handle = serve(policy, args.host, args.port, model_name=args.model_name or name, api_key=args.api_key)
    print(f"serving {handle.model_name!r} at {handle.url} (Ctrl-C to stop)", flush=True)
    if threading.current_thread() is threading.main_thread():  # stop cleanly on `kill` too
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        handle.close()
    return 0


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def add_cli(subparsers: Any) -> None:
    """Add ``agentgym serve MODEL --host --port`` (the command runs ``args.func(args)``)."""
    parser = subparsers.add_parser(
        "serve",
        help="serve a local model over an OpenAI-compatible HTTP API",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_cli)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentgym.serve", description="Serve a local model (OpenAI API)."
    )
    add_arguments(parser)
    return run_cli(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
