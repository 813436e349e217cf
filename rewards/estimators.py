"""Advantage estimators: ``(group, per-turn rewards) -> per-turn advantages``.

Trajectory-level: ``grpo`` (group mean, optionally ÷ std) and ``rloo`` (leave-one-out baseline)
score a trajectory by the sum of its turn rewards, as verl's built-ins sum token rewards, and give
every turn the same advantage. Turn-level: ``turn_grpo`` (alias ``igpo_joint``) normalises every
reward-bearing turn of the group jointly (or per channel), then accumulates discounted returns
``A_t = r̃_t + γ A_{t+1}`` — the fixed order group-normalise → discount; ``pure`` is the same with
PURE's min-form return in place of the discounted sum. ``gae`` is PPO's GAE over turns with values
read from ``turn.credit["value"]``. GiGPO (:mod:`rewards.gigpo`) and iStar (:mod:`rewards.oprl`)
live with their modules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from agentgym.records import Trajectory
from rewards.base import Estimator, PerTurn
from rewards.config import Config, require
from rewards.registry import register
from rewards.stats import EPS, Std, discounted_returns, gae, leave_one_out, min_form_returns, normalise


@dataclass(frozen=True)
class GRPOConfig(Config):
    #: divide by the group std (verl's ``norm_adv_by_std_in_grpo``)
    norm_by_std: bool = True
    #: verl uses torch.std (unbiased)
    std: Std = "unbiased"
    eps: float = EPS

    def check(self) -> None:
        require(self.eps >= 0, f"grpo.eps must be >= 0, got {self.eps}")


@register("grpo")
class GRPO(Estimator):
    """Trajectory score Σ_t r_t, normalised over the group; every turn gets its trajectory's value."""

    Config = GRPOConfig

    def advantages_live(self, group, rewards, stat_mask, channel) -> PerTurn:
        c = self.config
        scores = [math.fsum(row) for row in rewards]
        adv = normalise(scores, by_std=c.norm_by_std, std=c.std, eps=c.eps)
        return [[a] * len(row) for a, row in zip(adv, rewards)]


@dataclass(frozen=True)
class RLOOConfig(Config):
    pass


@register("rloo")
class RLOO(Estimator):
    """Trajectory score minus the mean score of the other trajectories of the group."""

    Config = RLOOConfig

    def advantages_live(self, group, rewards, stat_mask, channel) -> PerTurn:
        adv = leave_one_out([math.fsum(row) for row in rewards])
        return [[a] * len(row) for a, row in zip(adv, rewards)]


@dataclass(frozen=True)
class GAEConfig(Config):
    gamma: float = 1.0
    lam: float = 1.0
    #: key of ``turn.credit`` holding the critic's value of the state before the turn
    value_key: str = "value"

    def check(self) -> None:
        require(0.0 <= self.gamma <= 1.0, f"gae.gamma must be in [0, 1], got {self.gamma}")
        require(0.0 <= self.lam <= 1.0, f"gae.lam must be in [0, 1], got {self.lam}")


@register("gae")
class GAE(Estimator):
    """PPO's generalised advantage estimation over turns, with given per-turn values.

    The state after the last turn is worth 0 when the episode terminated; for a truncated episode
    the value of the final state is ``traj.meta["final_value"]`` when the rollout recorded one,
    else 0. Returns (A + V) are not needed by the pipeline; use :func:`rewards.stats.gae` for them.
    """

    Config = GAEConfig

    def advantages_live(self, group, rewards, stat_mask, channel) -> PerTurn:
        c = self.config
        out = []
        for traj, row in zip(group, rewards):
            values = [self._value(traj, t) for t in range(len(traj.turns))]
            bootstrap = 0.0 if traj.terminated else float(traj.meta.get("final_value", 0.0))
            adv, _ = gae(row, values, gamma=c.gamma, lam=c.lam, bootstrap=bootstrap)
            out.append(adv)
        return out

    def _value(self, traj: Trajectory, t: int) -> float:
        value = traj.turns[t].credit.get(self.config.value_key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"gae: turn {t} of trajectory {traj.traj_id or traj.task_id!r} has no value in "
                f"turn.credit[{self.config.value_key!r}]; run the critic first (one value per turn)"
            )
        return float(value)


@dataclass(frozen=True)
class TurnGRPOConfig(Config):
    gamma: float = 1.0
    #: ``joint``: one mean/std over all reward-bearing turns of the group; ``separate``: one per
    #: channel (IGPO: IG and answer); ``none``: no normalisation
    norm: Literal["joint", "separate", "none"] = "joint"
    norm_by_std: bool = True
    std: Std = "population"
    eps: float = EPS
    #: σ = √(var + var_eps) (IGPO: 1e-8)
    var_eps: float = 1e-8
    #: ``discounted``: Σ γ^(k-t) r̃_k; ``min_form``: PURE's Σ softmax(-r̃/T) r̃ over k ≥ t
    returns: Literal["discounted", "min_form"] = "discounted"
    #: min-form temperature (0 = exact min, inf = mean); [unconfirmed] default
    temperature: float = 0.1

    def check(self) -> None:
        require(0.0 <= self.gamma <= 1.0, f"{type(self).__name__}.gamma must be in [0, 1], got {self.gamma}")
        require(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        require(self.eps >= 0 and self.var_eps >= 0, "eps and var_eps must be >= 0")


def normalise_turns(
    rewards: PerTurn, stat_mask: list[list[bool]], channel: list[list[str]], cfg: TurnGRPOConfig
) -> PerTurn:
    """Group-normalise the reward-bearing turns; turns outside ``stat_mask`` become 0."""
    if cfg.norm == "none":
        return [[r if m else 0.0 for r, m in zip(row, mrow)] for row, mrow in zip(rewards, stat_mask)]
    keys = sorted({ch for crow, mrow in zip(channel, stat_mask) for ch, m in zip(crow, mrow) if m})
    out = [[0.0] * len(row) for row in rewards]
    for key in keys if cfg.norm == "separate" else [None]:
        cells = [
            (i, t)
            for i, (crow, mrow) in enumerate(zip(channel, stat_mask))
            for t, (ch, m) in enumerate(zip(crow, mrow))
            if m and (key is None or ch == key)
        ]
        normed = normalise(
            [rewards[i][t] for i, t in cells],
            by_std=cfg.norm_by_std,
            std=cfg.std,
            eps=cfg.eps,
            var_eps=cfg.var_eps,
        )
        for (i, t), v in zip(cells, normed):
            out[i][t] = v
    return out


@register("turn_grpo", aliases=("igpo_joint",))
class TurnGRPO(Estimator):
    """Turn-level group normalisation, then discounted returns (IGPO's ``joint`` mode by default)."""

    Config = TurnGRPOConfig

    def advantages_live(self, group, rewards, stat_mask, channel) -> PerTurn:
        c = self.config
        normed = normalise_turns(rewards, stat_mask, channel, c)
        if c.returns == "min_form":
            return [min_form_returns(row, c.temperature) for row in normed]
        return [discounted_returns(row, c.gamma) for row in normed]


@dataclass(frozen=True)
class PureConfig(TurnGRPOConfig):
    returns: Literal["discounted", "min_form"] = "min_form"


@register("pure")
class Pure(TurnGRPO):
    """PURE min-form credit: turn t's return is the soft minimum of the (normalised) rewards from t on."""

    Config = PureConfig
