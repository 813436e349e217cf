"""Monte Carlo ground-truth advantages (agentgym.groundtruth) on real TextWorld Coin Collector games.

The exact case, derived by hand: pi = the state-dependent expert (TextWorld's planner, deterministic)
and a turn budget equal to the walkthrough's length L. From any state on the expert's path the expert
wins in exactly the turns left, so Q = V = 1 there; one wasted turn (any other admissible command)
makes the budget too short, so at a deviation Q = 0 and V = 1, A = -1; after it nothing can win,
Q = V = 0, A = 0. Every continuation is deterministic, so every standard error is 0.
"""

from __future__ import annotations

import pytest

pytest.importorskip("textworld", reason="TextWorld is not installed (pip install 'agentgym[textworld]')")

from agentgym.errors import ConfigError  # noqa: E402
from agentgym.groundtruth import PrefixPolicy, monte_carlo_advantages  # noqa: E402
from agentgym.policies import make_policy  # noqa: E402
from agentgym.policies.base import PolicyInput  # noqa: E402
from agentgym.rollout import EpisodeSpec, Rollout, RolloutConfig  # noqa: E402

TASK = "coin-easy-train-0000"


@pytest.fixture(scope="module")
def env_kwargs(env_cache_dir):
    return {"n_games": {"train": 1, "valid": 1, "test": 1}, "cache_dir": str(env_cache_dir), "expert": True}


@pytest.fixture(scope="module")
def walkthrough(env_kwargs):
    import agentgym

    env = agentgym.make("textworld-coin", **env_kwargs)
    _, info = env.reset(seed=0, options={"task_id": TASK})
    env.close()
    assert len(info["walkthrough"]) >= 2 and info["expert_action"] == info["walkthrough"][0]
    return info["walkthrough"]


def sample(env_kwargs, actions, budget):
    """One trajectory that plays ``actions`` (then the expert) with a turn budget."""
    cfg = RolloutConfig(max_turns=budget)
    spec = EpisodeSpec(TASK, "train", "g", "tau", 0)
    with Rollout(
        "textworld-coin", PrefixPolicy(make_policy("oracle"), {"tau": actions}), cfg, env_kwargs=env_kwargs
    ) as r:
        return r.run_episodes([spec])[0], cfg


def test_expert_path_has_zero_advantage_everywhere(env_kwargs, walkthrough):
    traj, cfg = sample(env_kwargs, [], len(walkthrough))
    assert traj.won and len(traj.turns) == len(walkthrough)
    rows = monte_carlo_advantages(
        "textworld-coin", make_policy("oracle"), [traj], k=2, cfg=cfg, env_kwargs=env_kwargs
    )
    assert [(r.q, r.v, r.advantage, r.se) for r in rows["tau"]] == [(1.0, 1.0, 0.0, 0.0)] * len(walkthrough)


def test_a_wasted_turn_under_a_tight_budget_has_advantage_minus_one(env_kwargs, walkthrough):
    detour = "inventory"  # admissible in every Coin Collector state, changes nothing
    traj, cfg = sample(env_kwargs, [walkthrough[0], detour], len(walkthrough))
    assert not traj.won and traj.turns[1].action == detour and len(traj.turns) == len(walkthrough)
    rows = monte_carlo_advantages(
        "textworld-coin", make_policy("oracle"), [traj], k=3, cfg=cfg, env_kwargs=env_kwargs
    )
    got = [(r.turn, r.q, r.v, r.advantage) for r in rows["tau"]]
    expected = [(0, 1.0, 1.0, 0.0), (1, 0.0, 1.0, -1.0)] + [
        (t, 0.0, 0.0, 0.0) for t in range(2, len(walkthrough))
    ]
    assert got == expected
    assert all(r.se == 0.0 and r.n_q == r.n_v == 3 for r in rows["tau"])
    assert rows["tau"][1].significant and not rows["tau"][0].significant


def test_eps_oracle_deviates_at_about_its_rate_and_never_picks_the_expert_when_it_does(env_kwargs):
    import agentgym

    env = agentgym.make("textworld-coin", **env_kwargs)
    _, info = env.reset(seed=0, options={"task_id": TASK})
    env.close()
    policy = make_policy("eps-oracle:0.25", seed=1)
    msgs = [{"role": "user", "content": "x"}]
    items = [PolicyInput(messages=msgs, info=info, turn_index=1, episode_id=f"e{i}") for i in range(2000)]
    actions = [a.text for a in policy.act(items)]
    # an episode's draw depends on (seed, episode, turn) only: the batch around it changes nothing
    assert [a.text for a in policy.act(items[::-1])] == actions[::-1]
    deviations = [a for a in actions if a != info["expert_action"]]
    # Binomial(2000, 0.25): mean 500, sd 19.4; +-5 sd
    assert 403 <= len(deviations) <= 597
    assert set(deviations) <= set(info["admissible_actions"]) - {info["expert_action"]}
    with pytest.raises(ConfigError, match="eps-oracle:EPS"):
        make_policy("eps-oracle:lots")


def test_k_below_two_and_nothing_to_estimate_are_refused(env_kwargs, walkthrough):
    traj, cfg = sample(env_kwargs, [], len(walkthrough))
    with pytest.raises(ConfigError, match="k must be >= 2"):
        monte_carlo_advantages("textworld-coin", make_policy("oracle"), [traj], k=1, cfg=cfg)
    traj.error = "boom"
    with pytest.raises(ConfigError, match="every one failed"):
        monte_carlo_advantages("textworld-coin", make_policy("oracle"), [traj], k=2, cfg=cfg)


# ---- the credit-accuracy benchmark ---------------------------------------------------------------
def test_rank_statistics_by_hand():
    from agentgym.bench.credit_accuracy import auc, ranks, spearman

    assert ranks([10, 20, 20, 5]) == [2, 3.5, 3.5, 1]
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # d = (0, 1, -1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1, 2], [2, 1]) is None
    # pairs (0,1) (0,2) (1,1) (1,2): 1 + 1 + 0.5 + 1 = 3.5 of 4
    assert auc([0, 1], [1, 2]) == 0.875 and auc([], [1]) is None


def test_credit_accuracy_smoke_scores_every_arm_against_the_ground_truth(env_cache_dir):
    from agentgym.bench.credit_accuracy import LEARNED, MODEL_FREE, main

    # with the learned arms (side models on a tiny local model), updated after each of 2 batches
    result = main(["--smoke", "--learned", "--batches", "2", "--cache-dir", str(env_cache_dir)])
    final = result["final"]
    assert (
        set(final)
        == {"mc", *MODEL_FREE, *LEARNED}
        == {
            *("mc", "oracle", "outcome", "gated", "gigpo"),
            *("spa", "spa-progress", "spa-turn", "oprl", "pure"),
        }
    )
    assert list(result["by_batch"]) == ["0", "1"]
    assert all(set(final) == set(batch) for batch in result["by_batch"].values())
    mc = final["mc"]
    assert mc["turns"] > 10 and mc["spearman"] == pytest.approx(1.0)  # the ground truth against itself
    if mc["significant_turns"]:
        assert mc["sign_acc"] == 1.0
    for arm, row in final.items():
        assert row["turns"] == mc["turns"], arm  # every arm is scored on the same turns
        for key in ("spearman", "spearman_within", "sign_acc", "deviation_auc"):
            assert row[key] is None or -1.0 <= row[key] <= 1.0, (arm, key, row[key])


def test_credit_accuracy_samples_and_scores_under_any_policy(env_cache_dir):
    from agentgym.bench.credit_accuracy import main

    result = main(["--smoke", "--policy", "random", "--cache-dir", str(env_cache_dir)])
    assert result["setting"]["policy"] == "random"
    mc = result["final"]["mc"]
    assert mc["turns"] > 0 and mc["spearman"] in (None, pytest.approx(1.0))


def test_credit_accuracy_scores_the_key_door_games_too(env_cache_dir):
    from agentgym.bench.credit_accuracy import main

    result = main(["--smoke", "--family", "keydoor", "--cache-dir", str(env_cache_dir)])
    assert result["setting"]["family"] == "keydoor" and result["setting"]["difficulty"] == "short"
    mc = result["final"]["mc"]
    # two ε-oracle trajectories of the 13-step walkthrough (or longer): every turn has its MC row
    assert mc["turns"] >= 2 * 13 and mc["spearman"] == pytest.approx(1.0)
    assert all(row["turns"] == mc["turns"] for row in result["final"].values())


@pytest.mark.parametrize("arms", [",", "spa,nonsense"])
def test_credit_accuracy_refuses_an_empty_or_unknown_arm_list_before_sampling(arms):
    from agentgym.bench.credit_accuracy import main

    with pytest.raises(SystemExit, match="in --arms; known: outcome"):
        main(["--smoke", "--arms", arms])


def test_plan_progress_counts_the_planners_remaining_steps(env_kwargs, walkthrough):
    import agentgym

    env = agentgym.make("textworld-coin", **env_kwargs)
    _, info = env.reset(seed=0, options={"task_id": TASK})
    assert info["plan_progress"] == 0.0
    n = len(walkthrough)
    _, _, _, _, info = env.step("inventory")  # a wasted turn: the plan is as long as before
    assert info["plan_progress"] == 0.0
    seen = []
    for action in walkthrough:
        _, _, terminated, _, info = env.step(action)
        seen.append(info["plan_progress"])
    env.close()
    # k expert steps of a shortest plan of n leave n - k: progress k / n, 1 when won
    assert terminated and seen == pytest.approx([k / n for k in range(1, n + 1)])
    assert info["expert_action"] is None


def test_the_oracle_arm_reads_plan_progress_and_only_runs_on_textworld():
    from agentgym import rewards
    from agentgym.bench.ablation import ARM_ENV_KWARGS, MODULES, arms_for

    credit, estimator = MODULES["oracle"]
    assert isinstance(rewards.make(credit), rewards.CreditModule) and estimator == "turn_grpo(gamma=0.0)"
    assert ARM_ENV_KWARGS["oracle"] == {"expert": True}
    assert "oracle" in arms_for("coin10", ["outcome", "oracle"])
    assert arms_for("qa", ["outcome", "oracle"]) == ["outcome"]
