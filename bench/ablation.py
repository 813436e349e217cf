"""Credit ablation: every credit module trained with identical budgets and seeds on long-horizon settings.

``agentgym bench ablation [--settings coin10,qa] (keydoor, alfworld-pick: opt-in) [--modules outcome,gated,...]
[--seeds 3] [--workers 2] [--run-dir runs/bench-ablation] [--smoke]``

Design. For every (setting, seed) one SFT warm start on oracle trajectories is trained and saved
(``<run-dir>/<setting>/seed<k>/sft``); every module of that seed starts from this same checkpoint
and gets the same RL budget (steps, tasks per step, group size, evaluation points) — only the
credit module / estimator differ. Jobs run in ``--workers`` spawned processes (SFT jobs first,
then the RL jobs). Every finished job writes ``result.json`` in its run dir; a rerun after a kill
skips the jobs whose ``result.json`` exists (``--fresh`` ignores them), so no finished run is
redone; a job that failed (e.g. an env's data missing) writes none and is retried.

Outputs per setting and module, over seeds: final held-out success (mean token F1 for QA, the
env's ``score``) mean ± std; the area under the held-out learning curve (trapezoid over RL steps,
divided by the step span, so it is a mean success in [0, 1]); the steps a module needs to reach
outcome-only's final mean success (first evaluation step at or above it; None when never); wall
time; and the per-step credit diagnostics of :mod:`agentgym.trainers.local.diagnostics` averaged over the
run (advantage variance, non-zero-advantage share, credit/oracle-path correlation, side-model
metrics). ``ablation.json`` holds the tables and the per-run curves; ``ablation_<setting>.png``
plots mean ± std curves.

Module arms (credit spec, estimator): outcome = (``outcome``, grpo); gated = G-RA
(``gated(valid)``, grpo); spa = (``spa``, turn_grpo); spa-progress = (``spa(beta=0.0)``,
turn_grpo), SPA without its grounding bonus; spa-turn = (``spa``, turn_grpo(gamma=0.0)), SPA's step
rewards credited per turn instead of as returns-to-go (a named deviation); oprl = iStar (``oprl``, istar); gigpo =
(``outcome``, gigpo); pure = (``oprl``, pure: min-form over the implicit PRM's step rewards, plus
the outcome as the verifiable reward after the transform: PURE-PRM+VR);
igpo = (``igpo``, its default) on QA only (it needs a ``ground_truth`` answer).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

#: the RL learning rate of every arm (``_RL_COMMON``)
_POLICY_LR = 3e-4
#: OPRL's implicit PRM learns at twice the policy's rate, as in the official recipe (PRM 1e-6, actor
#: 5e-7). Its default lr (1e-6) is the official absolute value for 7B models, 300x below this tiny
#: policy's 3e-4: a PRM that stays at its initial weights makes r = beta·(log pi_phi − log pi_old)
#: measure how far the policy has moved from the warm start, with the sign that undoes learning
#: (measurements in docs/learning.md).
_PRM_SPEC = f"oprl(lr={2 * _POLICY_LR:g})"

#: module arm → (credit spec, estimator spec or None = the module's default)
MODULES: dict[str, tuple[str, str | None]] = {
    "outcome": ("outcome", None),
    "gated": ("gated(valid)", None),
    "spa": ("spa", None),
    # SPA without its grounding bonus (beta = 0): progress credit only. Where every action is valid
    # (Coin Collector), the official 0.5·1[valid] per turn pays long failures more than short wins
    # under the critic-free return-to-go (the spec's "valid no-ops farm grounding")
    "spa-progress": ("spa(beta=0.0)", None),
    # SPA's step rewards with per-turn credit (turn GRPO, gamma 0, as the oracle arm) instead of
    # the critic-free return-to-go: a named deviation. On Coin Collector the return-to-go halves even
    # perfect progress credit's rank correlation with the MC advantage (oracle 0.285 -> 0.131) and
    # left SPA's at 0.011; per turn, SPA's reached 0.105 (docs/credit.md)
    "spa-turn": ("spa", "turn_grpo(gamma=0.0)"),
    "oprl": (_PRM_SPEC, None),
    "gigpo": ("outcome", "gigpo"),
    # PURE-PRM+VR: without verifiable_source the oprl module's turns carry no verifiable reward, and
    # PURE would train on the implicit PRM alone
    "pure": (_PRM_SPEC, "pure(verifiable_source='outcome')"),
    "igpo": ("igpo", None),
    # oracle credit, for the headroom: the change of TextWorld's ground-truth plan progress at each
    # turn (its planner's remaining plan length, env arg expert=True), group-normalised per turn
    # (gamma 0: a turn's credit is its own step towards the goal, not the luck of the turns after it)
    "oracle": ("progress(key='plan_progress')", "turn_grpo(gamma=0.0)"),
}
#: env kwargs an arm adds to its setting's (the oracle arm needs TextWorld's planner)
ARM_ENV_KWARGS: dict[str, dict[str, Any]] = {"oracle": {"expert": True}}
#: arms that need TextWorld's planner (not on QA)
TEXTWORLD_ONLY = ("oracle",)
#: arms that only apply where the env gives a reference answer (QA)
QA_ONLY = ("igpo",)

_RL_COMMON: dict[str, Any] = {
    "algo": "grpo",
    "model": "tiny",
    "context": "window",
    "window": 1,
    "tensorboard": False,
    "progress": False,
    "plot": False,
    "save_every": 0,
    "log_rollouts_every": 10,
    # one budget for every setting (override per setting where the task needs it). SFT at 1e-3:
    # at 1e-2 the tiny model collapses to the action marginal ("go north" whatever the room)
    "sft_steps": 200,
    "sft_tasks": 40,
    "sft_batch_size": 8,
    "sft_learning_rate": 1e-3,
    # RL: 8 tasks x 4 episodes a step, two PPO passes in mini-batches of 8 trajectories (eight
    # optimiser steps per RL step, as in the default run; docs/learning.md has the smaller budgets
    # that moved no module)
    "steps": 20,
    "tasks_per_step": 8,
    "group_size": 4,
    "ppo_epochs": 2,
    "mini_batch_size": 8,
    "learning_rate": _POLICY_LR,
    "lr_warmup_steps": 3,
    "eval_episodes": 20,
    "eval_every": 5,
}

#: long-horizon settings, sized for <= 90 min for all arms x 3 seeds on 2 cores (2 workers, one
#: torch thread each); the measured wall time is in ablation.json
SETTINGS: dict[str, dict[str, Any]] = {
    # Coin Collector level 10: a chain of 10 rooms, the coin at the far end (10-step walkthrough);
    # every room but the ends has two exits, so a wrong turn is a detour to undo
    "coin10": {
        **_RL_COMMON,
        "env": "textworld-coin",
        # 40 demonstration games, 20 more train games for the SFT stop rule, and all 60 for RL
        "env_kwargs": {"difficulty": 10, "n_games": {"train": 60, "test": 20}},
        "max_turns": 14,  # the walkthrough is 10 steps (9 moves, take coin): little slack for detours
        "max_new_tokens": 8,
        # The tiny model's SFT on 10-step walkthroughs jumps from ~0.05 to ~0.8 at a step that
        # varies with the seed, so fixed-step warm starts split the seeds (docs/learning.md). Each
        # seed's warm start stops at the first probe with train-probe success >= 0.3 (probe = 20
        # train games that are not demonstrations), at most 1200 steps
        "sft_steps": 1200,
        "sft_target_success": 0.3,
        "sft_probe_every": 25,
        # evaluations at steps 4, 8, 12, 16, 20: step 12 is 60 % of the steps (early_and_apart)
        "eval_every": 4,
    },
    # Key-door (easy): a corridor of 10 rooms with a locked door before the last; its key lies one
    # room off one of the first two, and the objective names only the goal. 15-step walkthrough;
    # a policy that passes the key by needs >= 31 turns (keydoor.min_turns_without_key), so at this
    # budget the early pick-up decides the episode with no signal until the door, ~10 turns later.
    # Sized as coin10 (same SFT stop rule, budgets and evaluation points)
    "keydoor": {
        **_RL_COMMON,
        "env": "textworld-keydoor",
        "env_kwargs": {"difficulty": "easy", "n_games": {"train": 60, "test": 20}},
        "max_turns": 20,  # walkthrough 15 + 5 turns of slack (coin10: 10 + 4); < 31 without the key
        # "unlock fudge scented gateway with fudge scented key": key and door names run to 3 words
        "max_new_tokens": 16,
        "sft_steps": 1200,
        "sft_target_success": 0.3,
        "sft_probe_every": 25,
        "eval_every": 4,
    },
    # Key-door (short): a chain of 10 rooms, the key in sight in one of the first two, plain names
    # (key, door, coin); 13-step walkthrough. The pick-up decides the episode: a policy that leaves
    # the key behind needs >= 27 turns (keydoor.min_turns_without_key), and the locked door that says
    # so is 8-9 turns later. 17 turns (walkthrough + 4, coin10's slack). The hidden-key levels (easy
    # and up: the key a room off the corridor, dead ends, grammar names) left the tiny model's warm
    # start at 0 (docs/credit.md)
    "keydoor-short": {
        **_RL_COMMON,
        "env": "textworld-keydoor",
        "env_kwargs": {"difficulty": "short", "n_games": {"train": 60, "test": 20}},
        "max_turns": 17,
        "max_new_tokens": 8,  # "unlock door with key": plain names fit coin10's budget
        # three turns of context (coin10: one). "take key", "unlock", "open" and a wrong move answer
        # without the room ("You open door."): with fewer turns the room's exits leave the prompt
        # (after "open door", the way through it: 2 turns back), and the warm start stayed at 0.00
        # (window 1: every probe; window 2: 3000 SFT steps, held-out 0.00, docs/credit.md)
        "window": 3,
        "sft_steps": 3000,  # at window 2 the probe was 0.05 after 1000 steps (coin10: 0.3 by 450-700)
        "sft_target_success": 0.3,
        "sft_probe_every": 25,
        # 12 RL steps (coin10: 20): 17-turn episodes with three turns of context cost ~2x coin10's per
        # step; evaluations at steps 4, 8, 12 (60 % of the steps is step 7.2: step 4 is the early point)
        "steps": 12,
        "eval_every": 4,
    },
    # the QA env: multi-turn search then answer; success = answer F1 (env score)
    "qa": {
        **_RL_COMMON,
        "env": "qa",
        # data: $AGENTGYM_QA_DATA or --qa-data (the env's own lookup). One hit per search (Search-R1
        # shows 3): the windowed prompt stays ~3x shorter, which the 2-core budget needs
        "env_kwargs": {"topk": 1},
        "max_turns": 5,
        "max_new_tokens": 24,
        "sft_steps": 400,
        "steps": 10,
    },
    # ALFWorld, one task type (pick_and_place_simple); evaluated on valid_seen. Not in the default
    # set: it does not fit the 90-minute budget on 2 cores, and 400 SFT steps leave the tiny model
    # with no success to learn from (docs/learning.md). Run it with --settings alfworld-pick.
    "alfworld-pick": {
        **_RL_COMMON,
        "env": "alfworld",
        "env_kwargs": {"task_types": ["pick_and_place_simple"]},
        "eval_split": "valid_seen",
        "max_turns": 12,
        "max_new_tokens": 12,
        "sft_tasks": 32,
        "sft_steps": 400,
    },
}
DEFAULT_SETTINGS = ("coin10", "qa")
#: the smoke form (test suite): one seed, two RL steps, tiny task sets
SMOKE: dict[str, Any] = {
    "sft_steps": 4,
    "sft_tasks": 2,
    "sft_batch_size": 2,
    "steps": 2,
    "tasks_per_step": 1,
    "group_size": 2,
    "eval_episodes": 1,
    "eval_every": 0,
    "max_turns": 3,
    "tiny_hidden_size": 32,
}
QA_ENV_IDS = ("qa",)


def available_settings(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """The settings whose env is registered here, and why each other one is skipped."""
    from agentgym.registry import resolve

    keep, skipped = [], {}
    for name in names:
        if name not in SETTINGS:
            raise SystemExit(f"unknown ablation setting {name!r}; known: {', '.join(SETTINGS)}")
        try:
            resolve(SETTINGS[name]["env"])
        except Exception as exc:  # noqa: BLE001 - an env not on this branch yet is skipped with its reason
            skipped[name] = f"env {SETTINGS[name]['env']!r} is not registered: {exc}"
            continue
        keep.append(name)
    return keep, skipped


#: per-setting env kwargs given on the command line (e.g. ``--qa-data`` → the QA setting's data_dir)
ENV_OVERRIDES: dict[str, dict[str, Any]] = {}


def setting_config(name: str, seed: int, smoke: bool) -> dict[str, Any]:
    values = {**SETTINGS[name], "seed": seed}
    values["env_kwargs"] = {**values["env_kwargs"], **ENV_OVERRIDES.get(name, {})}
    if smoke:
        values.update(SMOKE)
        values["env_kwargs"] = _smoke_env_kwargs(values["env_kwargs"])
    return values


def _smoke_env_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    if "n_games" in kwargs:
        return {**kwargs, "n_games": {"train": 2, "test": 2}}
    return dict(kwargs)


def arms_for(setting: str, modules: list[str]) -> list[str]:
    is_qa = SETTINGS[setting]["env"] in QA_ENV_IDS
    is_textworld = str(SETTINGS[setting]["env"]).startswith("textworld")
    return [m for m in modules if (is_qa or m not in QA_ONLY) and (is_textworld or m not in TEXTWORLD_ONLY)]


# ---- jobs (run in worker processes) --------------------------------------------------------
WARM_STARTS = ("per-seed", "shared")


def warm_start_dir(run_dir: str | Path, setting: str, seed: int, warm_start: str) -> Path:
    """Where the SFT warm start that ``seed``'s RL runs start from lives.

    ``per-seed``: each seed trains its own (``<setting>/seed<k>/sft``). ``shared``: one warm start,
    trained with seed 0, for every seed (``<setting>/shared/sft``), as every RL run of a paper starts
    from the same base model; the seeds then vary only the RL (sampling, task order, side models).
    """
    sub = "shared" if warm_start == "shared" else f"seed{seed}"
    return Path(run_dir) / setting / sub / "sft"


def sft_job(
    setting: str, seed: int, smoke: bool, run_dir: str, warm_start: str = "per-seed"
) -> dict[str, Any]:
    """Train and save the seed's SFT warm start; evaluates it (the curve's step-0 point)."""
    from agentgym.trainers.local import LocalTrainer, TrainConfig

    out = warm_start_dir(run_dir, setting, seed, warm_start)
    done = out / "result.json"
    if (finished := _saved_result(out)) is not None:
        return finished
    cfg = TrainConfig.from_dict({**setting_config(setting, seed, smoke), "algo": "sft"})
    t0 = time.perf_counter()
    try:
        with LocalTrainer(cfg.replace(steps=0), out) as tr:
            sft_steps = len(tr.sft())
            ev = tr.evaluate("after_sft")
            from agentgym.models import save_tiny_model

            save_tiny_model(tr.model, tr.tokenizer, out / "model", trainer="agentgym.local", step=0)
    except Exception as exc:  # noqa: BLE001 - e.g. the env's data is missing here: reported per setting
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
    result = {
        "success": ev["success_rate"],
        "score": ev["mean_score"],
        "sft_steps": sft_steps,
        "seconds": time.perf_counter() - t0,
    }
    done.write_text(json.dumps(result) + "\n")
    return result


def rl_job(
    setting: str, seed: int, module: str, smoke: bool, run_dir: str, warm_start: str = "per-seed"
) -> dict[str, Any]:
    """RL from the seed's SFT checkpoint with one module arm; writes ``result.json``."""
    from agentgym.models import load_model
    from agentgym.trainers.local import LocalTrainer, TrainConfig
    from agentgym.trainers.local.diagnostics import summarise_diagnostics
    from agentgym.trainers.local.metrics import read_metrics

    seed_dir = Path(run_dir) / setting / f"seed{seed}"
    out = seed_dir / module
    done = out / "result.json"
    if (finished := _saved_result(out)) is not None:
        return finished
    credit, estimator = MODULES[module]
    values = {
        **setting_config(setting, seed, smoke),
        "credit": credit,
        "estimator": estimator,
        "sft_steps": 0,
    }
    values["env_kwargs"] = {**values["env_kwargs"], **ARM_ENV_KWARGS.get(module, {})}
    cfg = TrainConfig.from_dict(values)
    sft_dir = warm_start_dir(run_dir, setting, seed, warm_start)
    sft = json.loads((sft_dir / "result.json").read_text())
    if "error" in sft:
        return {"error": f"SFT warm start failed: {sft['error']}", "seconds": 0.0}
    model, tok = load_model(sft_dir / "model")
    metric = "mean_score" if SETTINGS[setting]["env"] in QA_ENV_IDS else "success_rate"
    t0 = time.perf_counter()
    if (out / "metrics.jsonl").exists():  # a half-finished run from a killed ablation: start it over
        (out / "metrics.jsonl").unlink()
    try:
        with LocalTrainer(cfg, out, model=model, tokenizer=tok) as tr:
            summary = tr.train()
    except Exception as exc:  # noqa: BLE001 - a module that cannot run on this env is reported, not scored
        # not saved as done: a rerun retries it (e.g. after the env's data was installed)
        return {"error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
    start = sft["score"] if metric == "mean_score" else sft["success"]
    curve = [(0, start)] + [(e["step"], e[metric]) for e in summary["evals"] if e["step"] > 0]
    rl_records = [r for r in read_metrics(out) if r.get("phase") == "rl"]
    result = {
        "curve": curve,
        "final": curve[-1][1],
        "seconds": time.perf_counter() - t0,
        "diagnostics": summarise_diagnostics(rl_records) | _side_metrics(rl_records),
    }
    done.write_text(json.dumps(result) + "\n")
    return result


def _side_metrics(records: list[dict[str, Any]]) -> dict[str, float]:
    """Run means of the credit modules' own side-model metrics (SPA, OPRL, gate)."""
    prefixes = ("spa/", "oprl/", "gated/", "gate_", "igpo/", "credit/advantage")
    keys = sorted({k for r in records for k in r if k.startswith(prefixes)})
    out = {}
    for key in keys:
        vals = [float(r[key]) for r in records if isinstance(r.get(key), (int, float))]
        vals = [v for v in vals if math.isfinite(v)]
        if vals:
            out[key] = statistics.fmean(vals)
    return out


def _saved_result(run: Path) -> dict[str, Any] | None:
    """A finished job's ``result.json`` (what resuming skips to), else None."""
    done = run / "result.json"
    return json.loads(done.read_text()) if done.is_file() else None


def _finished(run: Path) -> dict[str, Any]:
    """A job's ``result.json``, or an error row saying it has not finished (``--report``)."""
    saved = _saved_result(run)
    return saved if saved is not None else {"error": f"not finished yet ({run})"}


def _call(job: tuple[Any, ...]) -> dict[str, Any]:
    kind, overrides, *rest = job
    ENV_OVERRIDES.clear()  # a spawned worker does not inherit the parent's module state
    ENV_OVERRIDES.update(overrides)
    return (sft_job if kind == "sft" else rl_job)(*rest)


def _init_worker(threads: int) -> None:
    """One worker's torch threads: the cores split between workers (oversubscription ~halves speed)."""
    import torch

    torch.set_num_threads(threads)


def run_jobs(jobs: list[tuple[Any, ...]], workers: int) -> list[dict[str, Any]]:
    """Run the jobs (in ``workers`` processes), with a progress bar and ETA; results in job order."""
    from concurrent.futures import as_completed

    from agentgym.cli import progress_bar

    kinds = sorted({str(j[0]) for j in jobs})
    with progress_bar() as bar:
        task = bar.add_task(f"ablation {'+'.join(kinds)} jobs", total=len(jobs))
        if workers <= 1:
            results = []
            for job in jobs:
                results.append(_call(job))
                bar.advance(task)
            return results
        import multiprocessing
        import os

        threads = max(1, (os.cpu_count() or 1) // workers)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(_call, job): i for i, job in enumerate(jobs)}
            done: dict[int, dict[str, Any]] = {}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.advance(task)
        return [done[i] for i in range(len(jobs))]


# ---- tables and plots ------------------------------------------------------------------------
def _mean_std(xs: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(xs), "std": statistics.pstdev(xs) if len(xs) > 1 else 0.0}


def auc(curve: list[tuple[int, float]]) -> float:
    """Trapezoid area under ``[(step, value), ...]`` divided by the step span (a mean value)."""
    if len(curve) < 2:
        return float(curve[0][1]) if curve else 0.0
    area = math.fsum((s1 - s0) * (v0 + v1) / 2 for (s0, v0), (s1, v1) in zip(curve, curve[1:]))
    return area / (curve[-1][0] - curve[0][0])


def steps_to_reach(curve: list[tuple[int, float]], target: float) -> int | None:
    """The first RL step whose held-out value is ≥ ``target`` (None when never)."""
    return next((int(s) for s, v in curve if v >= target - 1e-9), None)


def paired_steps_to_reach(
    curve: list[tuple[int, float]], outcome_curve: list[tuple[int, float]]
) -> int | None:
    """Same seed: the first step ≥ 1 at which ``curve`` reaches outcome-only's final on that seed.

    None when outcome-only did not end above its start on that seed (nothing to reach), or when
    ``curve`` never gets there. Pairing by seed removes the spread of the SFT starts, which share
    the seed.
    """
    start, final = outcome_curve[0][1], outcome_curve[-1][1]
    if final <= start + 1e-9:
        return None
    return next((int(s) for s, v in curve if s >= 1 and v >= final - 1e-9), None)


def early_and_apart(
    curves: list[list[tuple[int, float]]], outcome_curves: list[list[tuple[int, float]]], frac: float = 0.6
) -> dict[str, Any]:
    """The test of the papers' direction (turn-level credit learns faster) for one module against
    outcome-only, over seeds.

    At the last evaluation step ≤ ``frac`` × the run's steps: does the module's mean reach
    outcome-only's final mean, with its seed spread (mean ± std) above outcome-only's at that step?
    """
    steps = [s for s, _ in outcome_curves[0]]
    last = steps[-1]
    at = max((s for s in steps if 1 <= s <= frac * last), default=None)
    if at is None or any([s for s, _ in c] != steps for c in curves):
        return {"step": at, "holds": False, "why": "no evaluation step early enough, or curves differ"}

    def stats(cs: list[list[tuple[int, float]]], step: int) -> dict[str, float]:
        return _mean_std([dict(c)[step] for c in cs])

    mod, out = stats(curves, at), stats(outcome_curves, at)
    target = statistics.fmean(c[-1][1] for c in outcome_curves)
    reaches = mod["mean"] >= target - 1e-9
    apart = mod["mean"] - mod["std"] > out["mean"] + out["std"]
    return {"step": at, "module": mod, "outcome": out, "outcome_final": target, "holds": reaches and apart}


def paired_difference(module: list[float], outcome: list[float]) -> dict[str, Any]:
    """Seed by seed ``module − outcome`` (same seed = same warm start and task order), over seeds.

    ``beats`` is the acceptance test of the credit ablation: the paired differences' mean minus
    their (population) std is above zero, i.e. the module is ahead on the typical seed, not only on
    average. None for fewer than two pairs.
    """
    if len(module) != len(outcome):
        raise ValueError(f"paired seeds differ: {len(module)} module runs vs {len(outcome)} outcome runs")
    diffs = [m - o for m, o in zip(module, outcome)]
    if len(diffs) < 2:
        return {"mean": None, "std": None, "n": len(diffs), "beats": None, "diffs": diffs}
    ms = _mean_std(diffs)
    return {**ms, "n": len(diffs), "beats": ms["mean"] - ms["std"] > 0, "diffs": diffs}


def summarise(
    runs: dict[str, dict[str, list[dict[str, Any]]]], sft: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """``runs[setting][module]`` = the per-seed results → the per-setting tables."""
    tables: dict[str, Any] = {}
    for setting, by_module in runs.items():
        metric = "score" if SETTINGS[setting]["env"] in QA_ENV_IDS else "success"
        sft_errors = [r["error"] for r in sft[setting] if "error" in r]
        if sft_errors:
            tables[setting] = {"error": sft_errors[0]}
            continue
        table: dict[str, Any] = {"sft_only": _mean_std([r[metric] for r in sft[setting]])}
        outcome_runs = [r for r in by_module.get("outcome", []) if "error" not in r]
        target = statistics.fmean(r["final"] for r in outcome_runs) if outcome_runs else None
        for module, seeds in by_module.items():
            errors = [r["error"] for r in seeds if "error" in r]
            if errors:
                table[module] = {"error": errors[0]}
                continue
            reach = [steps_to_reach(r["curve"], target) for r in seeds] if target is not None else []
            paired: list[int | None] = []
            early = None
            vs_outcome: dict[str, Any] = {}
            if module != "outcome" and len(outcome_runs) == len(seeds):
                paired = [paired_steps_to_reach(r["curve"], o["curve"]) for r, o in zip(seeds, outcome_runs)]
                early = early_and_apart([r["curve"] for r in seeds], [o["curve"] for o in outcome_runs])
                vs_outcome = {
                    "final": paired_difference(
                        [r["final"] for r in seeds], [o["final"] for o in outcome_runs]
                    ),
                    "auc": paired_difference(
                        [auc(r["curve"]) for r in seeds], [auc(o["curve"]) for o in outcome_runs]
                    ),
                }
            diag_keys = sorted({k for r in seeds for k in r["diagnostics"]})
            table[module] = {
                "final": _mean_std([r["final"] for r in seeds]),
                "auc": _mean_std([auc(r["curve"]) for r in seeds]),
                "steps_to_outcome_final": reach,
                "steps_to_outcome_final_same_seed": paired,
                "early_and_apart": early,
                "paired_vs_outcome": vs_outcome,
                "outcome_final_target": target,
                "seconds": _mean_std([r["seconds"] for r in seeds]),
                "diagnostics": {
                    k: statistics.fmean(r["diagnostics"][k] for r in seeds if k in r["diagnostics"])
                    for k in diag_keys
                },
                "per_seed_final": [r["final"] for r in seeds],
            }
        tables[setting] = table
    return tables


def plot(runs: dict[str, dict[str, list[dict[str, Any]]]], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for setting, by_module in runs.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        for module, seeds in by_module.items():
            curves = [r["curve"] for r in seeds if "curve" in r]
            if not curves or len({len(c) for c in curves}) != 1:
                continue
            steps = [s for s, _ in curves[0]]
            vals = [[c[k][1] for c in curves] for k in range(len(steps))]
            mean = [statistics.fmean(v) for v in vals]
            std = [statistics.pstdev(v) if len(v) > 1 else 0.0 for v in vals]
            ax.plot(steps, mean, "o-", label=module)
            ax.fill_between(
                steps, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.15
            )
        metric = "F1" if SETTINGS[setting]["env"] in QA_ENV_IDS else "success"
        ax.set_xlabel("RL step")
        ax.set_ylabel(f"held-out {metric} (mean ± std over seeds)")
        ax.set_title(f"credit ablation · {setting}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"ablation_{setting}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(str(path))
    return paths


def _fmt(ms: dict[str, float]) -> str:
    return f"{ms['mean']:.3f} ± {ms['std']:.3f}"


def _paired_cell(row: dict[str, Any], key: str) -> str:
    """``+0.100 ± 0.050 ✓``: the paired difference's mean ± std, ✓ where mean − std > 0."""
    pd = (row.get("paired_vs_outcome") or {}).get(key)
    if not pd or pd["mean"] is None:
        return "n/a"
    return f"{pd['mean']:+.3f} ± {pd['std']:.3f}{' ✓' if pd['beats'] else ''}"


def _early_cell(early: dict[str, Any] | None) -> str:
    if not early or "module" not in early:
        return "n/a"
    m, o = early["module"], early["outcome"]
    verdict = "yes" if early["holds"] else "no"
    return (
        f"{verdict} (step {early['step']}: {m['mean']:.2f}±{m['std']:.2f} vs {o['mean']:.2f}±{o['std']:.2f})"
    )


def render_markdown(result: dict[str, Any]) -> str:
    """The tables of ``ablation.json`` as Markdown (``ablation.md``): one table per setting."""
    jobs = f"jobs' own time {result.get('job_seconds_total', 0.0) / 60:.1f} min"
    wall = (
        "tabulated with --report"
        if result.get("report_only")
        else f"wall {result['wall_seconds'] / 60:.1f} min"
    )
    lines = [f"# Credit ablation ({result['seeds']} seeds, {wall}, {jobs})", ""]
    for setting, table in result["tables"].items():
        metric = "F1" if SETTINGS[setting]["env"] in QA_ENV_IDS else "success"
        lines += [f"## {setting}", ""]
        if "error" in table:
            lines += [f"error: {table['error']}", ""]
            continue
        lines += [
            f"SFT warm start (every module's step 0): held-out {metric} {_fmt(table['sft_only'])}",
            "",
            f"| module | final {metric} | per seed | AUC | Δfinal vs outcome (paired) | ΔAUC (paired) | "
            "steps to outcome's final (mean; same seed) | "
            "≤60% and apart | adv var | non-zero adv | credit-oracle corr | won−lost adv | min/run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for module, row in table.items():
            if module == "sft_only":
                continue
            if "error" in row:
                lines.append(f"| {module} | error: {row['error']} |" + "  |" * 11)
                continue
            d = row["diagnostics"]
            corr = d.get("diag/credit_oracle_corr")
            gap = d.get("diag/adv_won_minus_lost")
            lines.append(
                f"| {module} | {_fmt(row['final'])} | {', '.join(f'{v:.2f}' for v in row['per_seed_final'])} "
                f"| {_fmt(row['auc'])} | {_paired_cell(row, 'final')} | {_paired_cell(row, 'auc')} "
                f"| {row['steps_to_outcome_final']}; "
                f"{row.get('steps_to_outcome_final_same_seed', [])} | {_early_cell(row.get('early_and_apart'))} "
                f"| {d.get('diag/adv_var', float('nan')):.3f} | {d.get('diag/adv_nonzero_frac', float('nan')):.2f} "
                f"| {'n/a' if corr is None else f'{corr:.2f}'} | {'n/a' if gap is None else f'{gap:.2f}'} "
                f"| {row['seconds']['mean'] / 60:.1f} |"
            )
        lines.append("")
    if result.get("skipped"):
        lines += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items()), ""]
    return "\n".join(lines)


def compare_pages(runs: dict[str, dict[str, Any]], out: Path, seeds: list[int]) -> list[str]:
    """One ``agentgym view`` page per (setting, seed) overlaying every module's run."""
    from agentgym.viewer import write_view

    pages = []
    for setting, by_module in runs.items():
        for seed in seeds:
            dirs = [out / setting / f"seed{seed}" / m for m in by_module]
            dirs = [d for d in dirs if (d / "result.json").is_file()]
            if len(dirs) >= 2:
                target = out / f"compare_{setting}_seed{seed}.html"
                pages.append(str(write_view(dirs, target)))
    return pages


def _check_warm_start(out: Path, warm_start: str) -> None:
    """A run dir holds one kind of warm start: resuming it with the other would mix RL runs that
    started from different checkpoints in one table."""
    marker = out / "warm_start.json"
    if marker.is_file():
        recorded = json.loads(marker.read_text())["warm_start"]
        if recorded != warm_start:
            raise SystemExit(
                f"{out} holds an ablation with --warm-start {recorded}; rerun with --warm-start {recorded} "
                f"to resume it, or give another --run-dir for --warm-start {warm_start}"
            )
    elif warm_start != "per-seed" and any(out.glob("*/seed*/*/result.json")):
        # a run dir from before the marker existed: per-seed warm starts were the only kind
        raise SystemExit(
            f"{out} holds an ablation with per-seed warm starts; give another --run-dir for "
            f"--warm-start {warm_start}"
        )
    marker.write_text(json.dumps({"warm_start": warm_start}) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="agentgym bench ablation", description=__doc__.splitlines()[0])
    p.add_argument(
        "--settings", default=",".join(DEFAULT_SETTINGS), help=f"comma-separated, of {list(SETTINGS)}"
    )
    p.add_argument("--modules", default=",".join(MODULES), help=f"comma-separated, of {list(MODULES)}")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 3; --smoke: 1)")
    p.add_argument("--workers", type=int, default=2, help="parallel worker processes (1 = in-process)")
    p.add_argument("--run-dir", default="runs/bench-ablation")
    p.add_argument(
        "--smoke", "--quick", action="store_true", help="one-seed, two-step form (the test suite's)"
    )
    p.add_argument("--fresh", action="store_true", help="redo finished runs instead of resuming")
    p.add_argument(
        "--report",
        action="store_true",
        help="train nothing: tabulate the runs finished so far (e.g. while the ablation still runs)",
    )
    p.add_argument(
        "--qa-data", default=None, help="QA data dir (default: $AGENTGYM_QA_DATA, the env's lookup)"
    )
    p.add_argument(
        "--warm-start",
        choices=WARM_STARTS,
        default="per-seed",
        help="per-seed: each seed trains its own SFT warm start; shared: one (seed 0's) for every seed, "
        "so the seeds vary only the RL",
    )
    p.add_argument("--json", action="store_true", help="(accepted for the bench runner)")
    args = p.parse_args(argv)
    overrides = {"qa": {"data_dir": args.qa_data}} if args.qa_data else {}
    modules = [m.strip() for m in args.modules.split(",") if m.strip()]
    unknown = sorted(set(modules) - set(MODULES))
    if unknown:
        raise SystemExit(f"unknown module arm(s) {unknown}; known: {', '.join(MODULES)}")
    settings, skipped = available_settings([s.strip() for s in args.settings.split(",") if s.strip()])
    seeds = list(range(args.seeds if args.seeds is not None else 1 if args.smoke else 3))
    out = Path(args.run_dir)
    if args.fresh and out.exists():
        for done in out.glob("**/result.json"):
            done.unlink()
    out.mkdir(parents=True, exist_ok=True)
    _check_warm_start(out, args.warm_start)
    t0 = time.perf_counter()
    sft_seeds = seeds[:1] if args.warm_start == "shared" else seeds
    sft_jobs: list[tuple[Any, ...]] = [
        ("sft", overrides, s, k, args.smoke, str(out), args.warm_start) for s in settings for k in sft_seeds
    ]
    rl_jobs: list[tuple[Any, ...]] = [
        ("rl", overrides, s, k, m, args.smoke, str(out), args.warm_start)
        for s in settings
        for k in seeds  # seed-major: an ablation stopped early leaves whole paired seeds
        for m in arms_for(s, modules)
    ]
    if args.report:
        sft_res = [_finished(warm_start_dir(out, j[2], j[3], args.warm_start)) for j in sft_jobs]
        rl_res = [_finished(out / j[2] / f"seed{j[3]}" / j[4]) for j in rl_jobs]
    else:
        sft_res = run_jobs(sft_jobs, args.workers)
        rl_res = run_jobs(rl_jobs, args.workers)
    sft: dict[str, list[dict[str, Any]]] = {s: [] for s in settings}
    for job, res in zip(sft_jobs, sft_res):
        sft[job[2]].append(res)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {s: {} for s in settings}
    for job, res in zip(rl_jobs, rl_res):
        runs[job[2]].setdefault(job[4], []).append(res)
    result = {
        "seeds": len(seeds),
        "warm_start": args.warm_start,
        "smoke": args.smoke,
        "settings": {s: {k: v for k, v in SETTINGS[s].items() if k not in _RL_COMMON} for s in settings},
        "skipped": skipped,
        "tables": summarise(runs, sft),
        "runs": runs,
        "plots": plot(runs, out),
        "compare_pages": compare_pages(runs, out, seeds),
        "wall_seconds": time.perf_counter() - t0,
        # the jobs' own run times (sum over workers): what a --report of a finished ablation can show
        "job_seconds_total": math.fsum(float(r.get("seconds", 0.0)) for r in [*sft_res, *rl_res]),
        "report_only": args.report,
    }
    (out / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ablation.md").write_text(render_markdown(result))
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
