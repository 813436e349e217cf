"""Hostile tool-call text never raises: it is parsed, checked and answered as an observation."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgym.policies.openai import to_openai_messages
from agentgym.testing import ToolCalcEnv
from agentgym.toolformats import TOOL_FORMATS

FORMATS = sorted(TOOL_FORMATS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
markup = st.sampled_from(
    ["<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "{", "}", "[", "]", '"', ":", ",", "\\", "\x00",
     '"name"', '"arguments"', '"parameters"', '"add"', '"answer"', "{" * 50, "[" * 3000]
)  # fmt: skip
# text built from the markers and fragments of JSON, and whole calls with arbitrary arguments
hostile = st.one_of(
    st.lists(st.one_of(markup, st.text(max_size=10)), max_size=30).map("".join),
    st.builds(
        lambda name, args, wrap: wrap.format(json.dumps({"name": name, "arguments": args})),
        st.sampled_from(["add", "answer", "", "nope"]) | st.text(max_size=6),
        json_values,
        st.sampled_from(["<tool_call>{}</tool_call>", "<tool_call>{}", "[TOOL_CALLS][{}]", "{}", "x {} y"]),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=hostile, fmt=st.sampled_from(FORMATS))
def test_hostile_replies_are_observations(text, fmt):
    env = ToolCalcEnv()
    env.reset(options={"task_id": "toolcalc-train-0", "tool_format": fmt})
    obs, reward, terminated, truncated, info = env.step(text)
    assert isinstance(obs, str) and obs
    assert isinstance(info["valid_action"], bool) and isinstance(info["tool_calls"], list)
    json.dumps(info)  # what the rollout records is JSON
    if terminated:  # only an answer call can end the episode, and it scores by the sum
        assert reward == float(info.get("won", False))
    else:
        assert reward == 0.0 and not truncated
    for parsed in TOOL_FORMATS.values():
        parsed.parse(text)


@settings(max_examples=100, deadline=None)
@given(text=hostile)
def test_hostile_history_converts_to_openai_messages(text):
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": text},
        {"role": "tool", "tool_call_id": "call_0", "name": "add", "content": "r"},
    ]
    out = to_openai_messages(messages)
    assert [m["role"] for m in out][:2] == ["user", "assistant"] and out[2]["role"] in ("tool", "user")
    json.dumps(out)
