"""Pure numeric building blocks shared by the estimators (plain Python floats, no state).

The conventions of the credit spec live here once: ε = 1e-6 is added to σ, a single value has
σ := 1 (so its normalised value is 0), population or unbiased std is chosen per estimator, and an
optional variance floor (IGPO: σ = √(var + 1e-8)). Returns are computed per trajectory, right to
left: discounted sums, PURE's min-form (one softmax per trajectory), and GAE over turns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Std = Literal["population", "unbiased"]

EPS = 1e-6


def mean_std(
    values: Sequence[float], *, std: Std = "population", var_eps: float = 0.0
) -> tuple[float, float]:
    """Mean and standard deviation of ``values``; σ := 1 for a single value.

    >>> mean_std([1.0, 3.0])
    (2.0, 1.0)
    >>> mean_std([5.0])
    (5.0, 1.0)
    """
    n = len(values)
    if n == 0:
        raise ValueError("mean_std of no values: a group needs at least one live trajectory")
    mu = math.fsum(values) / n
    if n == 1:
        return mu, 1.0
    ddof = 1 if std == "unbiased" else 0
    var = math.fsum((x - mu) ** 2 for x in values) / (n - ddof)
    return mu, math.sqrt(var + var_eps)


def normalise(
    values: Sequence[float],
    *,
    by_std: bool = True,
    std: Std = "population",
    eps: float = EPS,
    var_eps: float = 0.0,
) -> list[float]:
    """``(x - μ) / (σ + ε)`` (or ``x - μ`` without ``by_std``) over ``values``.

    >>> [round(v, 4) for v in normalise([0.0, 1.0], std="population")]
    [-1.0, 1.0]
    """
    if not values:
        return []
    mu, sigma = mean_std(values, std=std, var_eps=var_eps)
    if not by_std:
        return [x - mu for x in values]
    return [(x - mu) / (sigma + eps) for x in values]


def leave_one_out(values: Sequence[float]) -> list[float]:
    """RLOO: ``x_i - mean_{j≠i} x_j`` = ``N/(N-1) (x_i - mean)``; 0 for a single value.

    >>> leave_one_out([1.0, 0.0, 0.0])
    [1.0, -0.5, -0.5]
    """
    n = len(values)
    if n <= 1:
        return [0.0] * n
    total = math.fsum(values)
    return [x - (total - x) / (n - 1) for x in values]


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """``G_t = Σ_{k≥t} γ^{k-t} r_k``, i.e. ``G_t = r_t + γ G_{t+1}``.

    >>> discounted_returns([1.0, 0.0, 2.0], 0.5)
    [1.5, 1.0, 2.0]
    """
    out = [0.0] * len(rewards)
    acc = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def min_form_weights(rewards: Sequence[float], temperature: float) -> list[float]:
    """PURE's weights ``w_k = softmax_k(-r_k / T)``: ONE softmax over all steps of a trajectory.

    Source: CJReinforce/PURE @ 41f9363, ``openrlhf/utils/utils.py:turn_process_reward_logits_to_reward``.
    T = 0 puts the whole weight on the minimum (split equally between tied minima, the softmax's
    limit); T = inf weighs every step ``1/K``.

    >>> min_form_weights([1.0, 1.0], 0.1)
    [0.5, 0.5]
    >>> min_form_weights([0.0, -1.0, -1.0], 0.0)
    [0.0, 0.5, 0.5]
    """
    if temperature < 0:
        raise ValueError(f"min-form temperature must be >= 0, got {temperature}")
    n = len(rewards)
    if n == 0:
        return []
    if math.isinf(temperature):
        return [1.0 / n] * n
    if temperature == 0:
        low = min(rewards)
        ties = sum(r == low for r in rewards)
        return [1.0 / ties if r == low else 0.0 for r in rewards]
    logits = [-r / temperature for r in rewards]
    top = max(logits)
    weights = [math.exp(z - top) for z in logits]
    total = math.fsum(weights)
    return [w / total for w in weights]


def min_form_returns(rewards: Sequence[float], temperature: float) -> list[float]:
    """PURE's min-form return ``G_t = Σ_{k≥t} w_k r_k`` with ``w = softmax(-r / T)`` over ALL steps.

    The weighted rewards ``w_k r_k`` are summed right to left (PURE's reverse cumulative sum in
    ``experience_maker.py``); the softmax is taken once per trajectory, never per tail. T → 0
    gives every step before the minimum the minimum and every step after it 0; T → ∞ the reverse
    cumulative sum of ``r / K``.

    >>> min_form_returns([0.5, -1.0, 2.0], 0.0)
    [-1.0, -1.0, 0.0]
    >>> min_form_returns([0.0, 1.0], math.inf)
    [0.5, 0.5]
    """
    weighted = [w * r for w, r in zip(min_form_weights(rewards, temperature), rewards)]
    return discounted_returns(weighted, 1.0)


def gae(
    rewards: Sequence[float],
    values: Sequence[float],
    *,
    gamma: float,
    lam: float,
    bootstrap: float = 0.0,
) -> tuple[list[float], list[float]]:
    """Generalised advantage estimation over turns; returns ``(advantages, returns)``.

    ``δ_t = r_t + γ V_{t+1} - V_t`` with ``V_T = bootstrap`` (0 at a terminal state),
    ``A_t = δ_t + γλ A_{t+1}``, ``returns = A + V``.

    >>> gae([0.0, 1.0], [0.5, 0.5], gamma=1.0, lam=1.0)
    ([0.5, 0.5], [1.0, 1.0])
    """
    if len(rewards) != len(values):
        raise ValueError(f"gae: {len(rewards)} rewards but {len(values)} values (one value per turn)")
    adv = [0.0] * len(rewards)
    acc = 0.0
    next_value = bootstrap
    for t in range(len(rewards) - 1, -1, -1):
        delta = rewards[t] + gamma * next_value - values[t]
        acc = delta + gamma * lam * acc
        adv[t] = acc
        next_value = values[t]
    return adv, [a + v for a, v in zip(adv, values)]
