"""Compatibility of verl 0.9.1 with the rest of the installed stack (no change to verl's code).

``trl``: verl's ``apply_monkey_patch`` (``verl/models/transformers/monkey_patch.py``), run on every
FSDP model build, imports ``AutoModelForCausalLMWithValueHead`` from ``trl.experimental.ppo`` (or
``trl``) whenever ``trl`` is installed, to override its ``state_dict``. trl 1.x removed the PPO
value-head model, so with agentgym's ``bench`` extra (trl) installed every actor init fails with
``ImportError``. :func:`shim_trl_value_head` registers a placeholder module
``trl.experimental.ppo`` holding an empty class of that name: verl's import succeeds and its patch
lands on a class nothing uses. It acts only when trl is installed and has neither location.
"""

from __future__ import annotations

import importlib.util
import sys
import types


class AutoModelForCausalLMWithValueHead:
    """Placeholder for trl's removed PPO value-head model (never instantiated; see the module docstring)."""


def shim_trl_value_head() -> bool:
    """Register the placeholder when verl's trl import would fail; returns whether it did."""
    if "trl.experimental.ppo" in sys.modules or importlib.util.find_spec("trl") is None:
        return False
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    try:
        import trl.experimental.ppo  # noqa: F401
    except ImportError:
        import trl

        if hasattr(trl, "AutoModelForCausalLMWithValueHead"):
            return False
        module = types.ModuleType("trl.experimental.ppo")
        module.AutoModelForCausalLMWithValueHead = AutoModelForCausalLMWithValueHead  # type: ignore[attr-defined]
        sys.modules["trl.experimental.ppo"] = module
        return True
    return False
