"""``agentgym bench ablation``: its pure pieces by hand, and its one-seed smoke form end to end."""

from __future__ import annotations

import json

import pytest

from agentgym.bench import ablation


def test_auc_is_the_trapezoid_mean_over_the_step_span():
    # (0, 0) → (10, 0.5) → (20, 0.5): area = 10·0.25 + 10·0.5 = 7.5 over a span of 20 → 0.375
    assert ablation.auc([(0, 0.0), (10, 0.5), (20, 0.5)]) == pytest.approx(0.375)
    assert ablation.auc([(0, 0.4)]) == pytest.approx(0.4)


def test_steps_to_reach_is_the_first_eval_at_or_above_the_target():
    curve = [(0, 0.1), (10, 0.3), (20, 0.5), (30, 0.4)]
    assert ablation.steps_to_reach(curve, 0.3) == 10
    assert ablation.steps_to_reach(curve, 0.45) == 20
    assert ablation.steps_to_reach(curve, 0.9) is None


def test_summarise_tables_mean_std_and_steps_to_outcome():
    runs = {
        "coin10": {
            "outcome": [
                {"curve": [(0, 0.0), (10, 0.2), (20, 0.4)], "final": 0.4, "seconds": 1.0, "diagnostics": {}},
                {"curve": [(0, 0.0), (10, 0.4), (20, 0.2)], "final": 0.2, "seconds": 3.0, "diagnostics": {}},
            ],
            "gigpo": [
                {"curve": [(0, 0.0), (10, 0.3), (20, 0.6)], "final": 0.6, "seconds": 2.0, "diagnostics": {}},
                {"curve": [(0, 0.0), (10, 0.2), (20, 0.2)], "final": 0.2, "seconds": 2.0, "diagnostics": {}},
            ],
            "spa": [{"error": "ValueError: no"}, {"error": "ValueError: no"}],
        }
    }
    sft = {"coin10": [{"success": 0.0, "score": 0.0}, {"success": 0.2, "score": 0.2}]}
    t = ablation.summarise(runs, sft)["coin10"]
    assert t["sft_only"] == {"mean": pytest.approx(0.1), "std": pytest.approx(0.1)}
    # outcome finals 0.4, 0.2 → mean 0.3, population std 0.1; the target for steps-to-reach is 0.3
    assert t["outcome"]["final"] == {"mean": pytest.approx(0.3), "std": pytest.approx(0.1)}
    assert t["gigpo"]["outcome_final_target"] == pytest.approx(0.3)
    # gigpo seed 0 first reaches 0.3 at step 10; seed 1 never does
    assert t["gigpo"]["steps_to_outcome_final"] == [10, None]
    # outcome seed 0: trapezoid (10·0.1 + 10·0.3)/20 = 0.2; seed 1: (10·0.2 + 10·0.3)/20 = 0.25
    assert t["outcome"]["auc"]["mean"] == pytest.approx(0.225)
    assert t["spa"] == {"error": "ValueError: no"}


def test_paired_steps_compare_each_seed_with_its_own_outcome_run():
    outcome = [(0, 0.2), (5, 0.3), (10, 0.5)]  # outcome ends at 0.5 on this seed
    assert ablation.paired_steps_to_reach([(0, 0.2), (5, 0.5), (10, 0.6)], outcome) == 5
    assert ablation.paired_steps_to_reach([(0, 0.2), (5, 0.4), (10, 0.4)], outcome) is None
    # step 0 never counts: a start at or above the target is not "reaching" it by RL
    assert ablation.paired_steps_to_reach([(0, 0.6), (5, 0.1), (10, 0.5)], outcome) == 10
    # outcome did not end above its start: nothing to reach on this seed
    assert ablation.paired_steps_to_reach([(0, 0.2), (5, 0.9)], [(0, 0.4), (5, 0.4)]) is None


def test_early_and_apart_is_issue_15s_criterion_at_60_percent_of_the_steps():
    # 20 steps, evals every 5: the last step <= 0.6 * 20 = 12 is step 10
    outcome = [
        [(0, 0.1), (5, 0.1), (10, 0.2), (15, 0.3), (20, 0.5)],
        [(0, 0.1), (5, 0.2), (10, 0.2), (15, 0.4), (20, 0.3)],
    ]
    # outcome's final mean is 0.4; at step 10 it is 0.2 ± 0.0
    fast = [
        [(0, 0.1), (5, 0.3), (10, 0.5), (15, 0.5), (20, 0.6)],
        [(0, 0.1), (5, 0.2), (10, 0.4), (15, 0.5), (20, 0.5)],
    ]
    res = ablation.early_and_apart(fast, outcome)
    # module at step 10: mean 0.45, std 0.05 → reaches 0.4, and 0.40 > 0.20: holds
    assert res["step"] == 10 and res["holds"]
    assert res["module"] == {"mean": pytest.approx(0.45), "std": pytest.approx(0.05)}
    assert res["outcome_final"] == pytest.approx(0.4)
    # reaches the mean but the spreads overlap outcome's at that step: does not hold
    wide = [
        [(0, 0.1), (5, 0.3), (10, 0.8), (15, 0.5), (20, 0.6)],
        [(0, 0.1), (5, 0.2), (10, 0.1), (15, 0.5), (20, 0.5)],
    ]
    assert not ablation.early_and_apart(wide, outcome)["holds"]
    # does not reach outcome's final by step 10
    slow = [
        [(0, 0.1), (5, 0.3), (10, 0.35), (15, 0.5), (20, 0.6)],
        [(0, 0.1), (5, 0.2), (10, 0.35), (15, 0.5), (20, 0.5)],
    ]
    assert not ablation.early_and_apart(slow, outcome)["holds"]


def test_paired_difference_is_seed_by_seed_and_beats_only_when_mean_minus_std_is_positive():
    # seeds' finals: module 0.5, 0.6, 0.4 vs outcome 0.3, 0.3, 0.3 -> diffs 0.2, 0.3, 0.1:
    # mean 0.2, population std sqrt((0.01 + 0.01 + 0) / 3) = 0.08165 -> 0.2 - 0.0816 > 0
    res = ablation.paired_difference([0.5, 0.6, 0.4], [0.3, 0.3, 0.3])
    assert res["diffs"] == pytest.approx([0.2, 0.3, 0.1])
    assert res["mean"] == pytest.approx(0.2) and res["std"] == pytest.approx((0.02 / 3) ** 0.5)
    assert res["beats"] is True and res["n"] == 3
    # same means, but one seed far behind: diffs 0.5, 0.5, -0.4 -> mean 0.2, std 0.4243: no
    wide = ablation.paired_difference([0.8, 0.8, 0.0], [0.3, 0.3, 0.4])
    assert wide["mean"] == pytest.approx(0.2) and wide["std"] == pytest.approx(0.18**0.5)
    assert wide["beats"] is False
    # ahead on average but unpaired sets would hide that each seed moves with its own outcome run
    assert ablation.paired_difference([0.3], [0.1])["beats"] is None
    with pytest.raises(ValueError, match="paired seeds differ"):
        ablation.paired_difference([0.1, 0.2], [0.1])


def test_igpo_only_runs_where_the_env_gives_a_reference_answer():
    assert "igpo" not in ablation.arms_for("coin10", list(ablation.MODULES))
    assert "igpo" in ablation.arms_for("qa", list(ablation.MODULES))


@pytest.mark.slow
def test_smoke_form_runs_every_module_and_resumes(tmp_path):
    modules = "outcome,gated,spa,spa-turn,oprl,gigpo,pure"
    argv = [
        "--settings",
        "coin10",
        "--modules",
        modules,
        "--smoke",
        "--workers",
        "1",
        "--run-dir",
        str(tmp_path),
    ]
    result = ablation.main(argv)
    table = result["tables"]["coin10"]
    assert result["seeds"] == 1
    for module in modules.split(","):
        row = table[module]
        assert "error" not in row, row
        assert 0.0 <= row["final"]["mean"] <= 1.0
        assert "diag/adv_nonzero_frac" in row["diagnostics"]
    saved = json.loads((tmp_path / "ablation.json").read_text())
    assert saved["tables"]["coin10"].keys() == table.keys()
    # the viewer overlays the seed's module runs on one page
    page = tmp_path / "compare_coin10_seed0.html"
    assert saved["compare_pages"] == [str(page)]
    assert all(m in page.read_text() for m in modules.split(","))
    md = (tmp_path / "ablation.md").read_text()
    assert all(f"| {m} | " in md for m in modules.split(","))
    # --report trains nothing and tabulates the same finished runs
    report = ablation.main([*argv, "--report"])
    assert report["report_only"] and report["tables"]["coin10"] == table
    assert (tmp_path / "ablation_coin10.png").is_file()
    # resume: every job's result.json exists, so a rerun trains nothing and reproduces the tables
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("**/result.json")}
    again = ablation.main(argv)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("**/result.json")} == stamps
    assert again["tables"] == json.loads(json.dumps(result["tables"]))
    # a job that has not finished is reported as such, not scored
    (tmp_path / "coin10" / "seed0" / "spa" / "result.json").unlink()
    partial = ablation.main([*argv, "--report"])["tables"]["coin10"]
    assert "not finished yet" in partial["spa"]["error"] and partial["outcome"] == table["outcome"]


@pytest.mark.slow
def test_a_shared_warm_start_is_trained_once_and_every_seed_starts_from_it(tmp_path):
    argv = ["--settings", "coin10", "--modules", "outcome", "--smoke", "--seeds", "2", "--workers", "1"]
    result = ablation.main([*argv, "--warm-start", "shared", "--run-dir", str(tmp_path)])
    assert result["warm_start"] == "shared" and result["seeds"] == 2
    sft = json.loads((tmp_path / "coin10" / "shared" / "sft" / "result.json").read_text())
    assert not list(tmp_path.glob("coin10/seed*/sft"))  # no per-seed warm start was trained
    runs = result["runs"]["coin10"]["outcome"]
    # both seeds' curves start at the one warm start's held-out success
    assert len(runs) == 2 and all(list(r["curve"][0]) == [0, sft["success"]] for r in runs)
    assert result["tables"]["coin10"]["sft_only"] == {"mean": sft["success"], "std": 0.0}
    # the same run dir cannot be resumed with the other kind of warm start (the table would mix them)
    with pytest.raises(SystemExit, match="--warm-start shared"):
        ablation.main([*argv, "--warm-start", "per-seed", "--run-dir", str(tmp_path)])


def test_qa_data_dir_and_smoke_sizes_reach_the_job_config(monkeypatch):
    monkeypatch.setattr(ablation, "ENV_OVERRIDES", {"qa": {"data_dir": "/data/qa"}})
    qa = ablation.setting_config("qa", seed=2, smoke=False)
    assert qa["env_kwargs"] == {"topk": 1, "data_dir": "/data/qa"} and qa["seed"] == 2
    coin = ablation.setting_config("coin10", seed=0, smoke=True)
    assert coin["env_kwargs"]["n_games"] == {"train": 2, "test": 2}
    assert coin["env_kwargs"]["difficulty"] == 10 and coin["steps"] == ablation.SMOKE["steps"]
    # the full form is the long-horizon one: Coin Collector level 10 with room for >= 10 turns
    assert ablation.SETTINGS["coin10"]["max_turns"] >= 10


def test_the_prm_arms_train_the_prm_at_twice_the_policy_rate():
    from agentgym.rewards.registry import parse_spec

    # official iStar: PRM lr 1e-6 for an actor at 5e-7; the 7B default under a 3e-4 policy froze it
    for arm in ("oprl", "pure"):
        node = parse_spec(ablation.MODULES[arm][0])
        assert node.name == "oprl"
        for setting in ("coin10", "qa"):
            assert node.config["lr"] == pytest.approx(2 * ablation.SETTINGS[setting]["learning_rate"])
    assert ablation.MODULES["spa-progress"] == ("spa(beta=0.0)", None)
