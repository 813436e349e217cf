"""Building the credit pipeline of a run from its spec strings (a thin adapter over :mod:`rewards`).

``rewards.make`` rejects runtime objects that no module in the spec takes, so the trainer asks
``rewards.registry.resources_of`` and hands ``model`` / ``tokenizer`` only to trees that declare them (SPA, IGPO,
OPRL). The model handed over is the live policy: IGPO scores with the current actor and OPRL reads
π_θold from it; SPA deep-copies it into its own progress estimator.
"""

from __future__ import annotations

from typing import Any

import rewards
from rewards.registry import resources_of
from trainers.local.config import TrainConfig


def build_credit(cfg: TrainConfig, model: Any, tokenizer: Any) -> rewards.Credit:
    """The :class:`rewards.Credit` of ``cfg.credit`` with the estimator ``cfg`` resolves to."""
    available = {"model": model, "tokenizer": tokenizer}
    resources = {k: v for k, v in available.items() if k in resources_of(cfg.credit)}
    module = rewards.make(cfg.credit, **dict(cfg.credit_kwargs), **resources)
    if not isinstance(module, rewards.CreditModule):
        raise TypeError(f"--credit {cfg.credit!r} names an estimator; give a credit module (e.g. outcome)")
    estimator = rewards.make(cfg.resolved_estimator(module.default_estimator))
    if not isinstance(estimator, rewards.Estimator):
        raise TypeError(
            f"estimator spec {cfg.estimator!r} names a credit module; give an estimator (e.g. grpo)"
        )
    return rewards.Credit(module, estimator)
