"""Per-step credit diagnostics: is the credit module assigning credit where the oracle would?

:func:`credit_diagnostics` reads a credited RL batch (``turn.advantage`` written by
:class:`rewards.Credit`) and returns flat ``diag/*`` scalars the trainer logs every step:

* ``diag/group_all_fail_frac`` / ``diag/group_all_success_frac``: groups whose trajectories all
  lost / all won. Under outcome GRPO such a group has zero advantage everywhere, i.e. no gradient;
* ``diag/group_zero_adv_frac``: groups where every turn's advantage is 0 (whatever the module);
* ``diag/adv_var``: variance of the per-turn advantages over the batch's turns;
* ``diag/adv_nonzero_frac``: share of turns with a non-zero advantage;
* ``diag/on_path_frac`` and ``diag/credit_oracle_corr``: share of turns whose action is on the
  oracle's path, and the Pearson correlation of a turn's advantage with that 0/1 indicator (NaN
  when either is constant, e.g. all-fail batches). "On the oracle's path" is
  ``info["expert_action"]`` of the state before the turn when the env gives one (ALFWorld), else
  the walkthrough of ``reset_info`` (TextWorld): turn t is on path when actions 0..t all equal the
  walkthrough's — a strict prefix, so a turn after any detour counts as off path. The correlation
  is left out of a step's record when it is undefined (constant credit, e.g. all-fail groups);
* ``diag/adv_won_minus_lost``: in groups with both won and lost trajectories, the mean turn
  advantage of the won ones minus that of the lost ones, averaged over those groups (left out when
  no group is mixed). Positive when the credit prefers what succeeded; a module whose shaped
  rewards can be farmed (e.g. a per-turn bonus that long failures collect) drives it to 0 or below;
* ``diag/turns_won`` / ``diag/turns_lost``: mean turns of won and lost trajectories;
* ``diag/action_tokens_mean`` and ``diag/truncated_action_frac``: generated tokens per action and
  the share of actions cut by ``max_new_tokens`` (no stop token), a decoding budget too small;
* ``diag/success_sampled``: the rollout's (temperature-sampled) success, to compare with the
  greedy held-out evaluation.

Side-model accuracies (SPA's progress loss, OPRL's ``pair_acc``) already come from the credit
modules' own metrics; the trainer logs them next to these.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from agentgym.records import Trajectory


def on_oracle_path(traj: Trajectory) -> list[bool | None]:
    """Per turn: was the action the oracle's (None when the env gives no oracle)?"""
    out: list[bool | None] = []
    walkthrough = traj.reset_info.get("walkthrough")
    on_prefix = True
    for t, turn in enumerate(traj.turns):
        before = traj.turns[t - 1].info if t > 0 else traj.reset_info
        expert = before.get("expert_action") if isinstance(before, dict) else None
        action = _norm(turn.action)
        if expert:
            out.append(action == _norm(str(expert)))
            continue
        if not walkthrough:
            out.append(None)
            continue
        on_prefix = on_prefix and t < len(walkthrough) and action == _norm(str(walkthrough[t]))
        out.append(on_prefix)
    return out


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; NaN when fewer than 2 points or either side is constant."""
    if len(xs) < 2 or len(xs) != len(ys):
        return math.nan
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return math.nan
    return sxy / math.sqrt(sxx * syy)


def credit_diagnostics(
    trajs: Sequence[Trajectory], *, stop_ids: Collection[int] = (), max_new_tokens: int | None = None
) -> dict[str, float]:
    """The ``diag/*`` scalars of one credited batch (see the module docstring)."""
    live = [t for t in trajs if not t.failed and t.turns]
    if not live:
        return {"diag/turns": 0.0}
    groups: dict[str, list[Trajectory]] = {}
    for traj in live:
        groups.setdefault(traj.group_id or traj.task_id, []).append(traj)
    n_groups = len(groups)
    adv = [float(turn.advantage or 0.0) for traj in live for turn in traj.turns]
    out: dict[str, float] = {
        "diag/turns": float(len(adv)),
        "diag/group_all_fail_frac": sum(not any(t.won for t in g) for g in groups.values()) / n_groups,
        "diag/group_all_success_frac": sum(all(t.won for t in g) for g in groups.values()) / n_groups,
        "diag/group_zero_adv_frac": sum(
            all((turn.advantage or 0.0) == 0.0 for t in g for turn in t.turns) for g in groups.values()
        )
        / n_groups,
        "diag/adv_var": statistics.pvariance(adv) if len(adv) > 1 else 0.0,
        "diag/adv_nonzero_frac": sum(a != 0.0 for a in adv) / len(adv),
        "diag/success_sampled": statistics.fmean(float(t.won) for t in live),
    }
    pairs = [
        (float(turn.advantage or 0.0), float(flag))
        for traj in live
        for turn, flag in zip(traj.turns, on_oracle_path(traj))
        if flag is not None
    ]
    if pairs:
        out["diag/on_path_frac"] = statistics.fmean(p for _, p in pairs)
        corr = pearson([a for a, _ in pairs], [p for _, p in pairs])
        if math.isfinite(corr):  # undefined (left out) when the credit or the flags are constant
            out["diag/credit_oracle_corr"] = corr
    out.update(_won_lost_stats(live, groups.values()))
    out.update(_token_stats(live, stop_ids, max_new_tokens))
    return out


def _won_lost_stats(live: Sequence[Trajectory], groups: Iterable[list[Trajectory]]) -> dict[str, float]:
    def mean_adv(traj: Trajectory) -> float:
        return statistics.fmean(float(turn.advantage or 0.0) for turn in traj.turns)

    out: dict[str, float] = {}
    gaps = []
    for g in groups:
        won, lost = [t for t in g if t.won], [t for t in g if not t.won]
        if won and lost:
            gaps.append(statistics.fmean(map(mean_adv, won)) - statistics.fmean(map(mean_adv, lost)))
    if gaps:
        out["diag/adv_won_minus_lost"] = statistics.fmean(gaps)
    for key, side in (("won", [t for t in live if t.won]), ("lost", [t for t in live if not t.won])):
        if side:
            out[f"diag/turns_{key}"] = statistics.fmean(len(t.turns) for t in side)
    return out


def _token_stats(
    live: Sequence[Trajectory], stop_ids: Collection[int], max_new_tokens: int | None
) -> dict[str, float]:
    ids = [turn.token_ids for traj in live for turn in traj.turns if turn.token_ids is not None]
    if not ids:
        return {}
    out = {"diag/action_tokens_mean": statistics.fmean(len(x) for x in ids)}
    if stop_ids:
        stops = set(stop_ids)
        cut = [not x or x[-1] not in stops for x in ids]
        if max_new_tokens is not None:
            cut = [c and len(x) >= max_new_tokens for c, x in zip(cut, ids)]
        out["diag/truncated_action_frac"] = sum(cut) / len(ids)
    return out


def summarise_diagnostics(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Mean of every finite ``diag/*`` scalar over a run's RL records (for closing notes)."""
    keys = sorted({k for r in records for k in r if k.startswith("diag/")})
    out = {}
    for key in keys:
        vals = [float(r[key]) for r in records if key in r and math.isfinite(float(r[key]))]
        if vals:
            out[key] = statistics.fmean(vals)
    return out


def logprob_gap(logp: Any, rollout_logprobs: Any, mask: Any) -> float:
    """Mean |training-forward log-prob − rollout log-prob| over action tokens (0 = they agree).

    The loss's ``old`` log-probs are recomputed by the training forward; a large gap means the
    rollout sampled from a different distribution than the one the ratio/KL assume (temperature,
    prompt rendering or tokenisation mismatch).
    """
    if rollout_logprobs is None:
        return math.nan
    n = max(float(mask.sum()), 1.0)
    return float(((logp.detach() - rollout_logprobs).abs() * mask).sum() / n)
