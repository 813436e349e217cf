"""A tool env whose tools come from a real MCP server process (stdio, official SDK)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("mcp")

from agentgym.mcptools import MCPTools  # noqa: E402
from agentgym.tools import ToolEnv  # noqa: E402

pytestmark = pytest.mark.slow  # starts a Python MCP server process (a few seconds)
SERVER = [sys.executable, str(Path(__file__).with_name("mcp_notes_server.py"))]


def call(name, **arguments):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


class NotesEnv(ToolEnv):
    """Remember a product: the server's tools plus a local ``answer`` tool that ends the episode."""

    def __init__(self, server: MCPTools, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.server = server

    def task_ids(self, split):
        return ["notes-0"]

    def _reset_task(self, task_id):
        return "Compute 6 * 7, store it under 'x', read it back and answer it.", {"task": "notes"}

    def tools(self):
        return [*self.server.tools(), self.answer]

    def answer(self, text: str) -> str:
        """Give the final answer.

        Args:
            text: the answer
        """
        self.finish(reward=float(text.strip() == "42"), won=text.strip() == "42")
        return "recorded"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with open(tmp_path_factory.mktemp("mcp") / "server.log", "w") as log:
        tools = MCPTools(SERVER, errlog=log)
        yield tools
        tools.close()
    assert not tools._thread.is_alive()


def test_the_server_tools_reach_the_policy_with_their_schemas(server):
    _, info = NotesEnv(server).reset()
    by_name = {t["function"]["name"]: t["function"] for t in info["tools"]}
    assert set(by_name) == {"put", "get", "multiply", "answer"}
    assert by_name["multiply"]["parameters"]["properties"]["a"]["type"] == "integer"
    assert by_name["multiply"]["parameters"]["required"] == ["a", "b"]
    assert by_name["get"]["description"] == "Read the note stored under a key."


def test_an_episode_calls_the_server_tools(server):
    env = NotesEnv(server)
    env.reset()
    obs, reward, terminated, _, info = env.step(call("multiply", a=6, b=7))
    assert obs == "42" and info["valid_action"] and info["tool_calls"][0]["name"] == "multiply"
    obs, *_ = env.step(call("put", key="x", value="42") + call("get", key="x"))
    assert obs == "[put] stored x\n\n[get] 42"
    obs, reward, terminated, _, info = env.step(call("answer", text="42"))
    assert (obs, reward, terminated, info["won"]) == ("recorded", 1.0, True, True)


def test_server_errors_and_bad_arguments_are_observations(server):
    env = NotesEnv(server)
    env.reset()
    obs, _, terminated, _, info = env.step(call("get", key="nope"))
    assert "no note under 'nope'" in obs and info["valid_action"] is False and not terminated
    obs, _, _, _, info = env.step(call("multiply", a="six", b=7))  # checked before it reaches the server
    assert "a: expected integer, got string" in obs and '"required": ["a", "b"]' in obs
    assert env.step(call("multiply", a=2, b=3))[0] == "6"


def test_check_env_passes_on_an_mcp_tool_env(server):
    check_env(NotesEnv(server))
