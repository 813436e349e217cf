"""Tools from an MCP server (stdio transport), through the official ``mcp`` Python SDK (extra ``mcp``).

:class:`MCPTools` starts the server process, opens one ``ClientSession`` and lists its tools as
:class:`agentgym.tools.Tool` objects (schema = the server's ``inputSchema``), which a
:class:`~agentgym.tools.ToolEnv` returns from ``tools()``; the core then checks, runs and answers
calls as for Python tools. A call the server reports as an error (``isError``) is a
:class:`~agentgym.tools.ToolError`, i.e. an observation. The SDK is asynchronous and the env is
not: the session lives in one task of a private event loop on a background thread, and each call
is a job handed to that task (so the SDK's task-scoped contexts are entered and left in one task).

    class Calculator(ToolEnv):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.mcp = MCPTools(["python", "calc_server.py"])
        def tools(self):
            return self.mcp.tools()
        def close(self):
            self.mcp.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import shlex
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TextIO

from agentgym.errors import ConfigError, EnvError
from agentgym.tools import Tool, ToolError


def _field(obj: Any, *names: str) -> Any:
    """An attribute under its SDK 2.x (snake_case) or 1.x (camelCase) name."""
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    return None


class MCPTools:
    """A running MCP server's tools. ``command`` is an argv list or a shell-style string."""

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 30.0,
        errlog: TextIO | None = None,
    ):
        try:
            from mcp import StdioServerParameters
        except ImportError as exc:
            raise ConfigError("MCP tools need the mcp SDK: pip install 'agentgym[mcp]'") from exc
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise ConfigError("MCPTools: command is empty; expected e.g. ['python', 'server.py']")
        self.command, self.timeout = argv, timeout
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd=cwd)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-mcp", daemon=True)
        self._thread.start()
        self._jobs: asyncio.Queue[Any] | None = None
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._task = asyncio.run_coroutine_threadsafe(
            self._session(params, ready, errlog or sys.stderr), self._loop
        )
        try:
            ready.result(timeout)
        except Exception as exc:
            self._stop_loop()
            raise EnvError(f"could not start MCP server {argv}: {type(exc).__name__}: {exc}") from exc
        self._tools: list[Tool] | None = None

    async def _session(self, params: Any, ready: concurrent.futures.Future[None], errlog: TextIO) -> None:
        from mcp import ClientSession, stdio_client

        self._jobs = asyncio.Queue()
        try:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                ready.set_result(None)
                while (job := await self._jobs.get()) is not None:
                    fn, future = job
                    try:
                        future.set_result(await fn(session))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller
                        future.set_exception(exc)
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def _call(self, fn: Callable[[Any], Awaitable[Any]]) -> Any:
        if self._jobs is None or self._task.done():
            raise EnvError(f"the MCP server {self.command} is not running")
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._jobs.put_nowait, (fn, future))
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            raise ToolError(f"the MCP server did not answer within {self.timeout} s") from None

    def tools(self) -> list[Tool]:
        """The server's tools (listed once, then cached)."""
        if self._tools is None:
            result = self._call(lambda s: s.list_tools())
            self._tools = []
            for t in result.tools:
                schema = dict(
                    _field(t, "input_schema", "inputSchema") or {"type": "object", "properties": {}}
                )
                function = {"name": t.name, "description": t.description or "", "parameters": schema}
                self._tools.append(
                    Tool(t.name, {"type": "function", "function": function}, self._caller(t.name))
                )
        return list(self._tools)

    def _caller(self, name: str) -> Callable[..., str]:
        def call(**arguments: Any) -> str:
            return self.call(name, arguments)

        return call

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Call tool ``name``; its text content, or :class:`ToolError` when the server says it failed."""
        result = self._call(lambda s: s.call_tool(name, arguments))
        parts = []
        for block in result.content or []:
            text = getattr(block, "text", None)
            parts.append(
                text if isinstance(text, str) else json.dumps(block.model_dump(mode="json"), default=str)
            )
        text = "\n".join(parts)
        if _field(result, "is_error", "isError"):
            raise ToolError(text or f"{name} failed")
        return text

    def close(self) -> None:
        """End the session and the server process, then the event loop thread."""
        if self._jobs is not None and not self._task.done():
            self._loop.call_soon_threadsafe(self._jobs.put_nowait, None)
            with contextlib.suppress(Exception):  # closing: the process is being torn down anyway
                self._task.result(self.timeout)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self.timeout)
        if not self._loop.is_running() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> MCPTools:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
