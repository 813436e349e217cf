"""Builders of small trajectories and synthetic data sets for the credit tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentgym.records import Trajectory, Turn

#: actions of the synthetic progress task and their true per-step contribution to the outcome
CONTRIBUTIONS = {
    "take the key": 0.4,
    "open the door": 0.3,
    "go north": 0.1,
    "look around": 0.0,
    "drop the key": -0.2,
}
OBSERVATIONS = ["you are in a small room", "you see a door and a table", "the hallway is dark"]


def traj(
    rewards: Sequence[float],
    *,
    group: str = "g",
    idx: int = 0,
    valid: Sequence[bool] | None = None,
    actions: Sequence[str] | None = None,
    observations: Sequence[str] | None = None,
    infos: Sequence[dict] | None = None,
    terminated: bool = True,
    reset_info: dict | None = None,
    error: str | None = None,
) -> Trajectory:
    """A trajectory with one turn per env reward."""
    n = len(rewards)
    turns = []
    for t in range(n):
        info = dict(infos[t]) if infos else {}
        if valid is not None:
            info["valid_action"] = bool(valid[t])
        turns.append(
            Turn(
                index=t,
                observation=observations[t] if observations else f"observation {t}",
                action=actions[t] if actions else f"action {t}",
                reward=float(rewards[t]),
                info=info,
                terminated=terminated and t == n - 1,
            )
        )
    first = observations[0] if observations else "observation 0"
    return Trajectory(
        env_id="test/Toy-v0",
        task_id=group,
        split="train",
        group_id=group,
        traj_id=f"{group}/{idx}",
        initial_observation=first,
        reset_info=dict(reset_info or {}),
        turns=turns,
        terminated=terminated,
        truncated=not terminated,
        error=error,
    )


def outcome_group(outcomes: Sequence[float], *, turns: int = 2, group: str = "g") -> list[Trajectory]:
    """One trajectory per outcome, the outcome on its last turn."""
    return [traj([0.0] * (turns - 1) + [float(r)], group=group, idx=i) for i, r in enumerate(outcomes)]


def progress_dataset(n: int, *, seed: int = 0, groups: int = 8) -> list[Trajectory]:
    """Trajectories whose outcome is the sum of known per-action contributions."""
    rng = random.Random(seed)
    names = list(CONTRIBUTIONS)
    out = []
    for i in range(n):
        k = rng.randint(1, 4)
        actions = [rng.choice(names) for _ in range(k)]
        obs = [rng.choice(OBSERVATIONS) for _ in range(k)]
        rewards = [0.0] * (k - 1) + [sum(CONTRIBUTIONS[a] for a in actions)]
        out.append(traj(rewards, group=f"task{i % groups}", idx=i, actions=actions, observations=obs))
    return out


def corpus() -> list[str]:
    """Text for the tiny tokenizer: every string the synthetic tasks use."""
    lines = list(CONTRIBUTIONS) + OBSERVATIONS
    lines += ["<answer> paris </answer>", "the capital of france is paris", "search capital of france"]
    lines += ["Now there's enough information to answer </think> <answer> </answer>"]
    lines += ["observation 0", "observation 1", "action 0", "action 1", "you won", "you lost"]
    return lines * 10
