"""Turn/Trajectory records: lossless JSONL round trip and clear errors on malformed input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgym.errors import TrajectoryFormatError
from agentgym.io import TrajectoryWriter, iter_jsonl, read_jsonl, write_jsonl
from agentgym.records import Trajectory, Turn, to_jsonable

json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_value = st.recursive(
    json_scalar,
    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
    max_leaves=8,
)

turns = st.builds(
    Turn,
    index=st.integers(0, 100),
    observation=st.text(max_size=50),
    action=st.text(max_size=30),
    reward=st.floats(allow_nan=False),
    info=st.dictionaries(st.text(max_size=10), json_value, max_size=4),
    terminated=st.booleans(),
    truncated=st.booleans(),
    token_ids=st.none() | st.lists(st.integers(0, 50_000), max_size=8),
    logprobs=st.none() | st.lists(st.floats(max_value=0, allow_nan=False), max_size=8),
    advantage=st.none() | st.floats(allow_nan=False),
)
trajectories = st.builds(
    Trajectory,
    env_id=st.text(min_size=1, max_size=20),
    task_id=st.text(max_size=20),
    split=st.sampled_from(["train", "test"]),
    seed=st.none() | st.integers(0, 2**31),
    turns=st.lists(turns, max_size=4),
    error=st.none() | st.text(max_size=20),
    meta=st.dictionaries(st.text(max_size=5), json_value, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(trajectories, max_size=3))
def test_jsonl_round_trip_is_lossless(tmp_path_factory, trajs):
    path = tmp_path_factory.mktemp("io") / "t.jsonl"
    assert write_jsonl(path, trajs) == len(trajs)
    assert read_jsonl(path) == trajs


def test_writer_streams_each_record(tmp_path):
    path = tmp_path / "stream.jsonl"
    with TrajectoryWriter(path) as w:
        w.write(Trajectory("e", "t0", "train"))
        # flushed already: a reader sees the first record before the writer closes
        assert [t.task_id for t in iter_jsonl(path)] == ["t0"]
        w.write(Trajectory("e", "t1", "train"))
    assert [t.task_id for t in read_jsonl(path)] == ["t0", "t1"]


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    good = json.dumps(Trajectory("e", "t", "train").to_dict())
    path.write_text(good + "\n{not json\n")
    with pytest.raises(TrajectoryFormatError, match=r"bad.jsonl:2"):
        read_jsonl(path)


def test_unknown_field_is_rejected_listing_known_fields(tmp_path):
    data = Trajectory("e", "t", "train", turns=[Turn(0, "o", "a")]).to_dict()
    data["turns"][0]["rewrd"] = 1
    with pytest.raises(TrajectoryFormatError, match="rewrd.*known fields"):
        Trajectory.from_dict(data)


def test_derived_outcome_won_and_failed():
    t = Trajectory(
        "e", "t", "train", turns=[Turn(0, "o", "a", 0.5), Turn(1, "o", "b", 0.5, info={"won": True})]
    )
    assert t.outcome == 1.0 and t.won and not t.failed
    t.error = "boom"
    assert t.failed and not t.won  # a failed rollout never counts as a win


def test_to_jsonable_converts_numpy_and_tuples():
    import numpy as np

    assert to_jsonable({"a": (1, np.int64(2)), "b": {np.float32(0.5).item()}}) == {"a": [1, 2], "b": [0.5]}
