"""How right is each credit module's per-turn credit? Scored against Monte Carlo ground truth.

Trajectories (Coin Collector, or the key-door games with ``--family keydoor``) are sampled from a
policy with known structure, the ε-oracle (TextWorld's planner,
deviating to a random other admissible command with probability ε, ``expert=True``), or any
policy given as ``--policy`` (e.g. ``hf:PATH``, a tiny model's warm-start checkpoint from
``bench ablation``, at whatever success level it was saved), in groups of ``--group-size`` per task. Each turn's ground truth is its Monte Carlo advantage under that policy
(:func:`agentgym.groundtruth.monte_carlo_advantages`, ``--k`` continuations per side, with standard
errors). Every credit arm of the ablation (:data:`agentgym.bench.ablation.MODULES`, model-free ones
by default; ``--learned`` adds the side-model arms on a tiny local model) then scores the same
trajectories, and its per-turn advantages are compared with the ground truth:

- ``spearman``: rank correlation over all turns (pooled);
- ``spearman_within``: mean rank correlation within a trajectory (trajectories of >= 3 turns where
  both sides vary);
- ``sign_acc``: sign agreement on turns whose MC advantage is clearly non-zero (|A| > 2 SE); a zero
  advantage counts as wrong;
- ``deviation_auc``: probability that a harmful deviation (an ε-turn with A < -2 SE) gets less credit
  than an expert turn (ties count half).

Two reference rows: ``mc`` (the ground truth itself: 1 by construction, the ceiling) and
``oracle`` (the ablation's oracle-credit arm: the change of TextWorld's plan progress each turn,
turn-level GRPO). With ``--batches B > 1`` the
learned arms are updated batch after batch and their accuracy is reported per batch.

Run: ``agentgym bench credit-accuracy`` (``--smoke`` for the seconds-long CI form).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

from agentgym.bench import progress
from agentgym.bench.ablation import MODULES

#: the TextWorld families it samples (both have TextWorld's planner for the ε-oracle and the oracle arm)
FAMILIES = ("coin", "keydoor")
MODEL_FREE = ("oracle", "outcome", "gated", "gigpo")
LEARNED = ("spa", "spa-progress", "spa-turn", "oprl", "pure")
#: resources a module takes but builds itself when absent
OPTIONAL_RESOURCES = {"prm"}


# ---- statistics -------------------------------------------------------------------------------
def ranks(xs: Sequence[float]) -> list[float]:
    """Ranks 1..n, ties sharing their average rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for m in range(i, j + 1):
            out[order[m]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None when either side is constant or there are < 3 points."""
    if len(xs) != len(ys):
        raise ValueError(f"spearman of {len(xs)} and {len(ys)} values")
    if len(xs) < 3:
        return None
    rx, ry = ranks(xs), ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return None
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True)) / (sx * sy)


def auc(low: Sequence[float], high: Sequence[float]) -> float | None:
    """P(a value of ``low`` < a value of ``high``), ties half; None if either is empty."""
    if not low or not high:
        return None
    wins = sum((a < b) + 0.5 * (a == b) for a in low for b in high)
    return wins / (len(low) * len(high))


# ---- one measurement ------------------------------------------------------------------------
def expert_at(traj: Any, t: int) -> str | None:
    """The expert's action in the state of turn t (from the info the previous step returned)."""
    info = traj.reset_info if t == 0 else traj.turns[t - 1].info
    return info.get("expert_action")


def score_arm(
    truth: dict[str, list[Any]], trajs: Sequence[Any], credit_of: dict[tuple[str, int], float]
) -> dict:
    """The four accuracy figures of one arm's per-turn credit against the MC ground truth."""
    mine, gold, within = [], [], []
    dev, expert = [], []
    sign_ok = sign_n = 0
    by_id = {t.traj_id: t for t in trajs}
    for traj_id, rows in truth.items():
        traj = by_id[traj_id]
        a = [credit_of[(traj_id, r.turn)] for r in rows]
        g = [r.advantage for r in rows]
        mine += a
        gold += g
        rho = spearman(a, g)
        if rho is not None:
            within.append(rho)
        for r, value in zip(rows, a, strict=True):
            if r.significant:
                sign_n += 1
                sign_ok += (value > 0) == (r.advantage > 0) and value != 0
            action, best = traj.turns[r.turn].action, expert_at(traj, r.turn)
            if best is not None and action == best:
                expert.append(value)
            elif best is not None and r.significant and r.advantage < 0:
                dev.append(value)
    return {
        "spearman": spearman(mine, gold),
        "spearman_within": statistics.fmean(within) if within else None,
        "sign_acc": sign_ok / sign_n if sign_n else None,
        "deviation_auc": auc(dev, expert),
        "turns": len(mine),
        "significant_turns": sign_n,
        "harmful_deviations": len(dev),
    }


def arm_credit(arm: str, trajs: Sequence[Any], resources: dict[str, Any], cache: dict) -> dict:
    """Per-turn advantages of one arm on ``trajs`` (learned arms keep their module across batches)."""
    from agentgym import rewards

    credit, estimator = MODULES[arm]
    if arm not in cache:
        # a module's optional resources (OPRL's prm: a trainable copy of the model by default) may be absent
        missing = sorted(rewards.needs(credit).resources - set(resources) - OPTIONAL_RESOURCES)
        if missing:
            raise SystemExit(f"arm {arm!r} needs {missing}: run with --learned (a tiny local model)")
        cache[arm] = rewards.build(credit, estimator, resources=resources)
    cache[arm].assign(trajs)
    return {(t.traj_id, turn.index): float(turn.advantage or 0.0) for t in trajs for turn in t.turns}


def policy_spec(args: argparse.Namespace) -> str:
    """The sampling policy: ``--policy`` (any ``make_policy`` spec), else the ε-oracle at ``--epsilon``."""
    return args.policy or f"eps-oracle:{args.epsilon}"


def sample(args: argparse.Namespace, batch: int, env_kwargs: dict[str, Any]) -> tuple[list[Any], Any]:
    from agentgym.policies import make_policy
    from agentgym.rollout import Rollout, RolloutConfig

    cfg = RolloutConfig(group_size=args.group_size, max_turns=args.max_turns, seed=1000 * batch)
    policy = make_policy(policy_spec(args), seed=args.seed + batch)
    tasks = [f"{args.family}-{args.difficulty}-train-{i:04d}" for i in range(args.tasks)]
    with Rollout(f"textworld-{args.family}", policy, cfg, env_kwargs=env_kwargs) as rollout:
        trajs = rollout.run(tasks, "train", tag=f"b{batch}")
    return trajs, cfg


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="agentgym bench credit-accuracy", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--family",
        choices=FAMILIES,
        default="coin",
        help="TextWorld family sampled: Coin Collector, or the key-door games (a silent early pick-up "
        "that decides the episode at the door)",
    )
    p.add_argument("--difficulty", default="medium", help="the family's level name (keydoor: short/easy/...)")
    p.add_argument("--tasks", type=int, default=6, help="train tasks (one group each)")
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--epsilon", type=float, default=0.2, help="deviation rate of the sampling ε-oracle")
    p.add_argument("--max-turns", type=int, default=20)
    p.add_argument(
        "--policy",
        default=None,
        help="the policy sampled and scored under (a make_policy spec: random, tiny, hf:PATH for a "
        "warm-start checkpoint...; default: eps-oracle at --epsilon)",
    )
    p.add_argument("--k", type=int, default=8, help="Monte Carlo continuations per side of each turn")
    p.add_argument("--batches", type=int, default=1, help="batches; learned arms update after each")
    p.add_argument("--learned", action="store_true", help="add the side-model arms (tiny local model)")
    p.add_argument(
        "--arms",
        default=None,
        help="score only these arms (comma-separated ablation arms, e.g. spa,spa-turn; the MC "
        "ground truth is always scored); a side-model arm builds the tiny local model",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="seconds-long form for CI (easy, 2 tasks, k=4)")
    p.add_argument("--cache-dir", default=None, help="TextWorld game cache (default: agentgym's cache)")
    args = p.parse_args(argv)
    if args.smoke and args.family == "keydoor":
        # the short level (13-step walkthrough), two turns of slack: a skipped key costs the episode
        args.difficulty, args.tasks, args.group_size, args.k, args.max_turns = "short", 1, 2, 2, 15
        args.epsilon = 0.3
    elif args.smoke:
        # a turn budget one above the easy walkthroughs' length: a deviation can cost the episode
        args.difficulty, args.tasks, args.group_size, args.k, args.max_turns = "easy", 2, 4, 4, 4
        args.epsilon = 0.3
    from agentgym.groundtruth import monte_carlo_advantages
    from agentgym.policies import make_policy

    env_kwargs: dict[str, Any] = {"difficulty": args.difficulty, "expert": True}
    env_kwargs["n_games"] = {"train": args.tasks, "valid": 1, "test": 1}
    if args.cache_dir:
        env_kwargs["cache_dir"] = args.cache_dir
    arms = ["mc", *MODEL_FREE, *(LEARNED if args.learned else ())]
    if args.arms:
        wanted = [a.strip() for a in args.arms.split(",") if a.strip()]
        unknown = sorted(set(wanted) - set(MODULES))
        if not wanted or unknown:
            raise SystemExit(
                f"no or unknown arm(s) {unknown or args.arms!r} in --arms; known: {', '.join(MODULES)}"
            )
        arms = ["mc", *dict.fromkeys(wanted)]
        args.learned = args.learned or any(a not in MODEL_FREE for a in wanted)
    resources: dict[str, Any] = {}
    if args.learned:
        from agentgym.models import build_tiny_model, builtin_corpus

        resources["model"], resources["tokenizer"] = build_tiny_model(builtin_corpus(), seed=args.seed)
    cache: dict[str, Any] = {}
    per_batch: list[dict[str, Any]] = []
    for b in progress(range(args.batches), "credit-accuracy batches"):
        t0 = time.perf_counter()
        trajs, cfg = sample(args, b, env_kwargs)
        policy = make_policy(policy_spec(args), seed=10_000 + args.seed + b)
        truth = monte_carlo_advantages(
            f"textworld-{args.family}", policy, trajs, k=args.k, cfg=cfg, env_kwargs=env_kwargs
        )
        mc_seconds = time.perf_counter() - t0
        rows: dict[str, Any] = {}
        for arm in arms:
            if arm == "mc":
                credit_of = {(tid, r.turn): r.advantage for tid, rs in truth.items() for r in rs}
            else:
                credit_of = arm_credit(arm, trajs, resources, cache)
            rows[arm] = score_arm(truth, trajs, credit_of)
        ses = [r.se for rs in truth.values() for r in rs]
        per_batch.append(
            {
                "batch": b,
                "success": statistics.fmean(float(t.won) for t in trajs),
                "mean_se": statistics.fmean(ses) if ses else None,
                "mc_seconds": round(mc_seconds, 1),
                "arms": rows,
            }
        )
        print(
            f"[credit-accuracy] batch {b + 1}/{args.batches}: {len(trajs)} trajectories, MC {mc_seconds:.0f}s"
        )
    setting = ("family", "difficulty", "tasks", "group_size", "epsilon", "k", "max_turns", "batches")
    result: dict[str, Any] = {"setting": {k: getattr(args, k) for k in setting}}
    result["setting"]["policy"] = policy_spec(args)
    last = per_batch[-1]
    result["sample"] = {k: last[k] for k in ("success", "mean_se", "mc_seconds")}
    result["final"] = last["arms"]
    if args.batches > 1:  # the learned arms' accuracy after each batch of updates
        result["by_batch"] = {
            str(b["batch"]): {arm: b["arms"][arm]["spearman"] for arm in arms} for b in per_batch
        }
    return result
