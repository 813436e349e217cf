"""A small real MCP server (stdio) for the tests: a note store and a calculator.

Run as a process: ``python tests/agentgym/mcp_notes_server.py``. Built with the official SDK's
server API (``MCPServer`` in mcp 2.x, ``FastMCP`` in 1.x); tool schemas come from the signatures.
"""

from __future__ import annotations

try:
    from mcp.server.mcpserver import MCPServer as Server
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x
    from mcp.server.fastmcp import FastMCP as Server
    from mcp.server.fastmcp.exceptions import ToolError

app = Server("agentgym-test-notes")
NOTES: dict[str, str] = {}


@app.tool()
def put(key: str, value: str) -> str:
    """Store a note under a key."""
    NOTES[key] = value
    return f"stored {key}"


@app.tool()
def get(key: str) -> str:
    """Read the note stored under a key."""
    if key not in NOTES:
        raise ToolError(f"no note under {key!r}")
    return NOTES[key]


@app.tool()
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


if __name__ == "__main__":
    app.run()
