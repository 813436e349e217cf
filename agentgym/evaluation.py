"""Evaluate a policy on held-out tasks: rollouts → ``summary.json`` + ``trajectories.jsonl``.

Tasks are the first ``episodes`` task ids of the split (deterministic, so an evaluation can be
rerun exactly); ``seeds`` repeats them with different seeds and ``success_std`` is the spread of
the per-seed success rates. Failed rollouts (env crash/hang, policy error) are counted apart in
``failed`` and as unsuccessful, never silently scored.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError
from agentgym.io import TrajectoryWriter
from agentgym.policies.base import Policy
from agentgym.records import Trajectory
from agentgym.registry import make, resolve
from agentgym.rollout import Rollout, RolloutConfig


@dataclass
class EvalConfig:
    split: str = "test"
    episodes: int = 20
    seeds: int = 1
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {self.seeds}")


def select_tasks(
    env_name: str, split: str, episodes: int, env_kwargs: dict[str, Any]
) -> tuple[list[str], Any]:
    """The first ``episodes`` task ids of ``split`` (cycled if the split is smaller) and the env."""
    env = make(env_name, **env_kwargs)
    base: Any = env.unwrapped
    if split not in base.splits:
        env.close()
        raise ConfigError(f"{resolve(env_name)} has no split {split!r}; its splits are {list(base.splits)}")
    ids = list(base.task_ids(split))
    if not ids:
        env.close()
        raise ConfigError(f"split {split!r} of {resolve(env_name)} has no tasks")
    tasks = [ids[i % len(ids)] for i in range(episodes)]
    return tasks, env


def summarize(trajs: Sequence[Trajectory], seeds: int) -> dict[str, Any]:
    """Success rate, its std over seeds, mean score/turns, failures and a per-category breakdown."""
    n = len(trajs)
    per_seed: dict[int, list[bool]] = defaultdict(list)
    cats: dict[str, list[Trajectory]] = defaultdict(list)
    for t in trajs:
        per_seed[int(t.meta.get("eval_seed", 0))].append(t.won)
        cats[t.category or "all"].append(t)
    seed_rates = [sum(v) / len(v) for v in per_seed.values()]

    def block(ts: Sequence[Trajectory]) -> dict[str, Any]:
        return {
            "episodes": len(ts),
            "success_rate": sum(t.won for t in ts) / len(ts),
            "mean_score": statistics.fmean(t.score for t in ts),
            "mean_turns": statistics.fmean(len(t.turns) for t in ts),
            "failed": sum(t.failed for t in ts),
        }

    summary: dict[str, Any] = block(trajs) if n else {"episodes": 0}
    summary["success_std"] = statistics.pstdev(seed_rates) if len(seed_rates) > 1 else 0.0
    summary["success_per_seed"] = seed_rates
    summary["seeds"] = seeds
    summary["stop_reasons"] = dict(sorted(_count(t.stop_reason for t in trajs).items()))
    summary["per_category"] = {c: block(ts) for c, ts in sorted(cats.items())}
    return summary


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for x in items:
        out[x] += 1
    return out


def evaluate(
    env_name: str,
    policy: Policy,
    cfg: EvalConfig,
    out_dir: str | Path | None = None,
    *,
    on_episode_end: Callable[[Trajectory], None] | None = None,
    on_prepare: Callable[[list[str], Any], None] | None = None,
) -> tuple[dict[str, Any], list[Trajectory]]:
    """Run the evaluation; writes ``summary.json`` and ``trajectories.jsonl`` into ``out_dir``."""
    env_id = resolve(env_name)
    tasks, env = select_tasks(env_id, cfg.split, cfg.episodes, cfg.env_kwargs)
    try:
        if on_prepare is not None:
            on_prepare(tasks, env.unwrapped)
        else:
            env.unwrapped.prepare(sorted(set(tasks)), progress=False)
    finally:
        env.close()
    out = Path(out_dir) if out_dir is not None else None
    writer = TrajectoryWriter(out / "trajectories.jsonl") if out is not None else None
    trajs: list[Trajectory] = []
    try:
        for k in range(cfg.seeds):
            rcfg = dataclasses.replace(cfg.rollout, seed=cfg.rollout.seed + 100_000 * k)
            policy.reset(seed=k)
            rollout = Rollout(
                env_id,
                policy,
                rcfg,
                env_kwargs=cfg.env_kwargs,
                writer=writer,
                on_episode_end=on_episode_end,
                meta={"eval_seed": k},
            )
            with rollout:
                trajs.extend(rollout.run(tasks, cfg.split, tag=f"seed{k}"))
    finally:
        if writer is not None:
            writer.close()
    summary = {"env": env_id, "policy": policy.name, "split": cfg.split, **summarize(trajs, cfg.seeds)}
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary, trajs
