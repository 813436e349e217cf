"""``agentgym train --backend verl``: the ``python -m verl.trainer.main_ppo`` command of a run.

The run is described by the embedded trainer's :class:`~trainers.local.TrainConfig` (same names in
both backends) plus :class:`VerlLaunch` (what only a cluster run has: data files, GPUs, nodes,
rollout engine, token budgets). :func:`hydra_overrides` maps one onto verl's ``ppo_trainer``
config; keys verl does not have go under ``+agentgym.*`` (the agent loop) and
``+algorithm.agentgym.*`` (the estimators). The routing of credit:

* model-free module + ``grpo`` / ``rloo`` / ``turn_grpo`` / ``pure``: per-turn rewards from the
  agent loop, the estimator ``agentgym_<name>`` registered with verl, verl's default trainer;
* a module with a side model or actor scoring (SPA, OPRL, IGPO) or an estimator that reads the
  trajectory (GiGPO, iStar): the ``agentgym_sync`` trainer subclass;
* ``algo=ppo``: verl's token-level ``gae`` with its critic.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any

from agentgym.errors import ConfigError
from trainers.local.config import TrainConfig

NATIVE = {"grpo", "rloo", "turn_grpo", "igpo_joint", "pure"}


@dataclass
class VerlLaunch:
    """Settings of a verl run that the embedded trainer has no counterpart for (validated)."""

    train_files: str = "data/train.parquet"
    val_files: str = "data/val.parquet"
    n_gpus_per_node: int = 1
    nnodes: int = 1
    #: rollout engine: vllm or sglang
    rollout: str = "vllm"
    #: token budgets: the first observation, and the whole multi-turn response (env tokens included)
    max_prompt_length: int = 2048
    max_response_length: int = 4096
    #: fraction of GPU memory the rollout engine may take
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    out_dir: str = "checkpoints/agentgym"
    experiment_name: str = "agentgym"
    #: extra Hydra overrides appended verbatim (they win)
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("n_gpus_per_node", "nnodes", "max_prompt_length", "max_response_length"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"VerlLaunch.{name} must be an int >= 1, got {value!r}")
        if self.rollout not in ("vllm", "sglang"):
            raise ConfigError(f"VerlLaunch.rollout must be 'vllm' or 'sglang', got {self.rollout!r}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError("VerlLaunch.gpu_memory_utilization must be in (0, 1]")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VerlLaunch:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"VerlLaunch: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        return cls(**values)


def hydra_value(v: Any) -> str:
    """A Hydra override value: JSON-ish literals, quoted strings where Hydra needs them."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}:{hydra_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(hydra_value(x) for x in v) + "]"
    text = str(v)
    safe = text.replace("_", "").replace("-", "").replace(".", "").replace("/", "")
    return text if safe.isalnum() else "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def credit_route(cfg: TrainConfig) -> tuple[str, str, str]:
    """``(adv_estimator, trainer_mode, stat_turns)`` for the run's credit module and estimator."""
    import rewards
    from rewards.registry import lookup, parse_spec, resources_of

    module_entry = lookup(parse_spec(cfg.credit).name, "module")
    module_default = (
        rewards.make(cfg.credit).default_estimator
        if not resources_of(cfg.credit)
        else (module_entry.cls.default_estimator)
    )
    estimator = cfg.resolved_estimator(module_default)
    est_name = lookup(parse_spec(estimator).name, "estimator").name
    if cfg.algo == "ppo" and cfg.estimator is None:
        return "gae", "sync", "all"
    stat_turns = "last" if module_entry.name == "outcome" else "all"
    if resources_of(cfg.credit) or est_name not in NATIVE:
        return "agentgym_grpo", "agentgym_sync", stat_turns
    return f"agentgym_{est_name}", "sync", stat_turns


def hydra_overrides(cfg: TrainConfig, launch: VerlLaunch) -> list[str]:
    """The Hydra overrides of ``verl.trainer.main_ppo`` for ``cfg`` (see the module docstring)."""
    if cfg.algo == "sft":
        raise ConfigError(
            "--backend verl runs RL (grpo/rloo/ppo); run SFT with verl's sft trainer or --backend local"
        )
    if cfg.sft_steps:
        raise ConfigError(
            "--backend verl runs no SFT warm start; set --sft-steps 0 (SFT with verl's sft trainer)"
        )
    if cfg.model == "tiny":
        raise ConfigError(
            "--backend verl needs --model PATH (a local Hugging Face checkpoint dir or hub id); "
            "the built-in tiny model trains with --backend local"
        )
    if cfg.context != "full":
        raise ConfigError(
            "--backend verl plays the full history token-in/token-out; set context='full' "
            "(window contexts exist only in the embedded trainer)"
        )
    adv, mode, stat_turns = credit_route(cfg)
    estimator = cfg.estimator or None
    mini = max(1, (cfg.mini_batch_size or cfg.tasks_per_step * cfg.group_size) // cfg.group_size)
    pairs: list[tuple[str, Any]] = [
        ("data.train_files", launch.train_files),
        ("data.val_files", launch.val_files),
        ("data.train_batch_size", cfg.tasks_per_step),
        ("data.max_prompt_length", launch.max_prompt_length),
        ("data.max_response_length", launch.max_response_length),
        ("data.seed", cfg.seed),
        ("actor_rollout_ref.model.path", cfg.model),
        ("actor_rollout_ref.actor.optim.lr", cfg.learning_rate),
        ("actor_rollout_ref.actor.optim.weight_decay", cfg.weight_decay),
        ("actor_rollout_ref.actor.clip_ratio_low", cfg.clip_eps),
        ("actor_rollout_ref.actor.clip_ratio_high", cfg.clip_eps_high or cfg.clip_eps),
        ("actor_rollout_ref.actor.ppo_epochs", cfg.ppo_epochs),
        ("actor_rollout_ref.actor.ppo_mini_batch_size", min(mini, cfg.tasks_per_step)),
        ("actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu", cfg.micro_batch_size),
        ("actor_rollout_ref.actor.grad_clip", cfg.max_grad_norm),
        ("actor_rollout_ref.actor.use_kl_loss", cfg.kl_coef > 0),
        ("actor_rollout_ref.actor.kl_loss_coef", cfg.kl_coef),
        ("actor_rollout_ref.rollout.name", launch.rollout),
        ("actor_rollout_ref.rollout.n", cfg.group_size),
        ("actor_rollout_ref.rollout.temperature", cfg.temperature),
        ("actor_rollout_ref.rollout.gpu_memory_utilization", launch.gpu_memory_utilization),
        ("actor_rollout_ref.rollout.tensor_model_parallel_size", launch.tensor_parallel_size),
        ("actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu", cfg.micro_batch_size),
        ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu", cfg.micro_batch_size),
        ("actor_rollout_ref.rollout.agent.default_agent_loop", "agentgym"),
        ("algorithm.adv_estimator", adv),
        ("algorithm.use_kl_in_reward", False),
        ("trainer.v1.trainer_mode", mode),
        ("trainer.total_training_steps", cfg.steps),
        ("trainer.test_freq", cfg.eval_every or -1),
        ("trainer.save_freq", cfg.save_every or -1),
        ("trainer.logger", ["console", "wandb"] if cfg.wandb else ["console"]),
        ("trainer.project_name", cfg.wandb_project),
        ("trainer.experiment_name", launch.experiment_name),
        ("trainer.default_local_dir", launch.out_dir),
        ("trainer.n_gpus_per_node", launch.n_gpus_per_node),
        ("trainer.nnodes", launch.nnodes),
        ("+agentgym.credit", cfg.credit),
        ("+agentgym.max_turns", cfg.max_turns),
        ("+agentgym.env_kwargs", cfg.env_kwargs),
        ("+agentgym.credit_kwargs", cfg.credit_kwargs),
        ("+algorithm.agentgym.stat_turns", stat_turns),
    ]
    if estimator is not None and adv != "gae":
        pairs.append(("+algorithm.agentgym.estimator", estimator))
    return [f"{k}={hydra_value(v)}" for k, v in pairs] + list(launch.extra)


def verl_command(cfg: TrainConfig, launch: VerlLaunch | None = None, *, python: str = "python3") -> list[str]:
    """``[python, -m, verl.trainer.main_ppo, *overrides]`` for ``cfg``."""
    return [python, "-m", "verl.trainer.main_ppo", *hydra_overrides(cfg, launch or VerlLaunch())]


def format_command(argv: list[str]) -> str:
    """A copy-pasteable shell command, one override per line."""
    head, rest = argv[:3], argv[3:]
    return " \\\n  ".join([" ".join(shlex.quote(a) for a in head)] + [shlex.quote(a) for a in rest])
