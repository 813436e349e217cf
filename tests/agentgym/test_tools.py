"""The tool layer: call formats, schema checks, ToolEnv steps, tool conversations and their tokens."""

from __future__ import annotations

import copy
import json

import pytest
from gymnasium.utils.env_checker import check_env

import agentgym
from agentgym.chat import ChatEncoder, conversation
from agentgym.errors import ConfigError
from agentgym.records import Trajectory, Turn
from agentgym.testing import ToolCalcEnv
from agentgym.toolformats import ToolCall, detect_tool_format, get_format
from agentgym.tools import Tool, ToolSet, check_value

ADD = '<tool_call>{"name": "add", "arguments": {"a": 3, "b": 11}}</tool_call>'


def call(name, **arguments):
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


# ---- formats ------------------------------------------------------------------------------------
def test_hermes_parses_calls_in_order_with_the_free_text():
    reply = get_format("hermes").parse(
        f"I add first. {ADD}\n<tool_call>{{oops</tool_call>{call('answer', value=14)}"
    )
    assert reply.content == "I add first."
    assert [type(b).__name__ for b in reply.blocks] == ["ToolCall", "str", "ToolCall"]
    assert reply.calls[0] == ToolCall("add", {"a": 3, "b": 11}, "call_0")
    assert reply.calls[1].id == "call_2" and "not valid JSON" in reply.errors[0]


def test_hermes_reads_an_unclosed_last_block_and_double_encoded_arguments():
    text = '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1, \\"b\\": 2}"}'
    assert get_format("hermes").parse(text).calls == [ToolCall("add", {"a": 1, "b": 2}, "call_0")]


@pytest.mark.parametrize("name", ["hermes", "mistral", "llama3_json"])
def test_render_then_parse_gives_the_calls_back(name):
    fmt = get_format(name)
    calls = [ToolCall("add", {"a": 1, "b": [2, "x"]}, "call_0"), ToolCall("answer", {"value": 3}, "call_1")]
    assert fmt.parse(fmt.render(calls)).calls == calls


def test_mistral_and_llama3_report_what_is_wrong():
    assert "not a JSON list" in get_format("mistral").parse("[TOOL_CALLS] [{nope").errors[0]
    assert 'missing "name"' in get_format("llama3_json").parse('{"parameters": {}}').errors[0]
    assert get_format("llama3_json").parse("plain words").blocks == []


def test_the_format_comes_from_the_chat_template():
    from agentgym.models import CHAT_TEMPLATE

    assert detect_tool_format(CHAT_TEMPLATE) == "hermes"
    assert detect_tool_format("{{ '[TOOL_CALLS]' }}") == "mistral"
    assert detect_tool_format("{{ '<|python_tag|>' }} \"parameters\"") == "llama3_json"
    assert detect_tool_format("{{ messages }}") is None
    with pytest.raises(ConfigError, match="expected one of"):
        get_format("xml")


# ---- schemas and checks ---------------------------------------------------------------------------
def test_schemas_come_from_signature_and_docstring():
    env = ToolCalcEnv()
    add = Tool.from_callable(env.add)
    assert add.schema == {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two integers.",
            "parameters": {
                "type": "object",
                "properties": {
                    "a": {"type": "integer", "description": "the first number"},
                    "b": {"type": "integer", "description": "the second number"},
                },
                "required": ["a", "b"],
            },
        },
    }
    assert add.signature() == "add(a: integer, b: integer)"


def test_a_callable_without_documented_arguments_is_rejected():
    def bad(x):  # no type hint, no docstring
        return x

    with pytest.raises(ConfigError, match="type hints"):
        Tool.from_callable(bad)
    with pytest.raises(ConfigError, match="unique"):
        ToolSet([ToolCalcEnv().add, ToolCalcEnv().add])


@pytest.mark.parametrize(
    "value, schema, problem",
    [
        ("3", {"type": "integer"}, "expected integer, got string"),
        (True, {"type": "integer"}, "expected integer, got boolean"),
        (2.5, {"type": "integer"}, "expected integer, got number"),
        (["a", 1], {"type": "array", "items": {"type": "string"}}, "x[1]: expected string"),
        ("c", {"type": "string", "enum": ["a", "b"]}, "expected one of"),
        (
            {"k": "v"},
            {"type": "object", "additionalProperties": {"type": "integer"}},
            "x.k: expected integer",
        ),
    ],
)
def test_check_value_names_the_wrong_part(value, schema, problem):
    problems = check_value(value, schema, "x")
    assert len(problems) == 1 and problem in problems[0]


@pytest.mark.parametrize(
    "value, schema",
    [
        (3, {"type": "number"}),
        (None, {"type": "string", "nullable": True}),
        ("a", {"anyOf": [{"type": "integer"}, {"type": "string"}]}),
    ],
)
def test_check_value_accepts_what_the_schema_allows(value, schema):
    assert check_value(value, schema, "x") == []


# ---- ToolEnv ---------------------------------------------------------------------------------------
def test_check_env_passes_on_the_tool_env():
    check_env(agentgym.make("toolcalc").unwrapped)


def test_a_correct_episode_runs_the_tools_and_records_the_calls():
    env = ToolCalcEnv()
    obs, info = env.reset(options={"task_id": "toolcalc-train-0"})
    assert [t["function"]["name"] for t in info["tools"]] == ["add", "answer"]
    obs, reward, terminated, _, info = env.step("Let me add. " + ADD)
    assert obs == "14" and reward == 0.0 and not terminated and info["valid_action"] is True
    assert info["tool_calls"] == [{"id": "call_0", "name": "add", "arguments": {"a": 3, "b": 11}}]
    assert info["tool_messages"] == [
        {"role": "tool", "tool_call_id": "call_0", "name": "add", "content": "14"}
    ]
    assert info["progress"] == 0.5
    obs, reward, terminated, truncated, info = env.step(call("answer", value=14))
    assert (obs, reward, terminated, truncated, info["won"]) == ("Correct.", 1.0, True, False, True)


@pytest.mark.parametrize(
    "action, problem",
    [
        ('<tool_call>{"name": "add", "arguments": {"a": 3, b: 1}}</tool_call>', "not valid JSON"),
        (call("mul", a=1, b=2), "unknown tool 'mul'"),
        (call("add", a="3", b=11), "a: expected integer, got string"),
        (call("add", a=3), "missing required argument b"),
        (call("add", a=3, b=1, c=2), "unknown argument c"),
        (call("answer", value=-1), "cannot be negative"),  # the tool's own ToolError
        ('<tool_call>{"arguments": {}}</tool_call>', 'missing "name"'),
        ('<tool_call>["add"]</tool_call>', "expected a JSON object"),
    ],
)
def test_a_malformed_call_is_an_observation_with_the_expected_schema(action, problem):
    env = ToolCalcEnv()
    env.reset(options={"task_id": "toolcalc-train-0"})
    obs, reward, terminated, truncated, info = env.step(action)
    assert problem in obs and problem in info["tool_errors"][0]
    assert info["valid_action"] is False and (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_messages"][0]["role"] == "tool"
    if "argument" in problem:  # a schema problem shows the tool's schema
        assert '"required": ["a", "b"]' in obs
    assert env.step(ADD)[0] == "14"  # the episode goes on


def test_a_reply_without_a_call_lists_the_tools():
    env = ToolCalcEnv()
    env.reset(options={"task_id": "toolcalc-train-0"})
    obs, _, _, _, info = env.step("the answer is 14")
    assert "No tool call found" in obs and "answer(value: integer)" in obs and "<tool_call>" in obs
    assert info["valid_action"] is False and info["tool_calls"] == []


def test_calls_after_the_episode_ended_are_not_run():
    env = ToolCalcEnv()
    env.reset(options={"task_id": "toolcalc-train-0"})
    obs, reward, terminated, _, info = env.step(call("answer", value=14) + ADD)
    assert terminated and reward == 1.0 and "Not run" in info["tool_messages"][1]["content"]


def test_the_reset_option_picks_the_call_format():
    env = ToolCalcEnv()
    env.reset(options={"task_id": "toolcalc-train-0", "tool_format": "mistral"})
    assert env.step('[TOOL_CALLS][{"name": "add", "arguments": {"a": 3, "b": 11}}]')[0] == "14"
    assert "[TOOL_CALLS]" in env.step("hi")[0]  # the expected format follows the policy's
    with pytest.raises(ConfigError, match="unknown tool-call format"):
        env.reset(options={"tool_format": "xml"})
    # envs without tools accept and ignore the option
    agentgym.make("countdown").reset(options={"tool_format": "hermes"})


# ---- conversations and tokens ----------------------------------------------------------------------
def tool_trajectory() -> Trajectory:
    env = ToolCalcEnv()
    obs, info = env.reset(options={"task_id": "toolcalc-train-0"})
    traj = Trajectory("toolcalc", "toolcalc-train-0", "train", initial_observation=obs, reset_info=info)
    for action in ["I add. " + ADD + call("add", a=1, b=1), "no call", call("answer", value=14)]:
        nxt, reward, _, _, step_info = env.step(action)
        traj.turns.append(Turn(len(traj.turns), obs, action, float(reward), step_info))
        obs = nxt
    traj.final_observation = obs
    return traj


def test_the_conversation_has_tool_messages_where_the_env_answered_with_tools():
    messages = conversation(tool_trajectory(), final_observation=True)
    assert [m["role"] for m in messages] == [
        "user", "assistant", "tool", "tool", "assistant", "user", "assistant", "tool",
    ]  # fmt: skip
    assert messages[3] == {"role": "tool", "tool_call_id": "call_1", "name": "add", "content": "2"}
    assert messages[5]["content"].startswith("No tool call found")


# A template of our own that, like Qwen's, puts consecutive tool results in one user block.
MERGING = (
    "{%- if tools -%}{{ '<|im_start|>system\\n<tools>' + (tools | map(attribute='function.name') | join(',')) + '</tools><|im_end|>\\n' }}{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'tool' -%}"
    "{%- if loop.first or loop.previtem['role'] != 'tool' -%}{{ '<|im_start|>user' }}{%- endif -%}"
    "{{ '\\n<tool_response>\\n' + m['content'] + '\\n</tool_response>' }}"
    "{%- if loop.last or loop.nextitem['role'] != 'tool' -%}{{ '<|im_end|>\\n' }}{%- endif -%}"
    "{%- else -%}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@pytest.mark.parametrize("template", ["tiny", "merging"])
def test_encoded_tool_conversations_hold_exact_action_spans(tiny_tokenizer, template):
    tok = copy.deepcopy(tiny_tokenizer)
    if template == "merging":
        tok.chat_template = MERGING
    traj = tool_trajectory()
    encoder = ChatEncoder(tok)
    enc = encoder.encode(traj, final_observation=True)
    messages = conversation(traj, final_observation=True)
    full = tok.apply_chat_template(messages, tools=traj.reset_info["tools"], tokenize=False)
    assert tok.decode(enc.input_ids) == full
    assert "<tools>" in full and "add" in full.split("<|im_end|>")[0]
    assert [tok.decode(enc.input_ids[s:e]) for s, e in enc.action_spans] == [t.action for t in traj.turns]
    assert enc.message_ends[-1] == len(enc.input_ids) and enc.message_ends == sorted(enc.message_ends)
    prompt = encoder.prompt_ids(messages[:2], tools=traj.reset_info["tools"])
    assert (
        prompt
        == encoder.encode_messages(
            messages[:2], tools=traj.reset_info["tools"], add_generation_prompt=True
        ).input_ids
    )


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from agentgym.models import builtin_corpus, train_tokenizer

    return train_tokenizer(builtin_corpus(), vocab_size=500)
