"""agentgym on verl: a plugin (``verl.plugins`` entry point), not a fork.

* :mod:`trainers.verl.plugin` — registers everything with verl's registries (loaded by ``import verl``);
* :mod:`trainers.verl.agent_loop` — the ``agentgym`` agent loop (any env, token-in/token-out, per-turn
  rewards as per-token ``rm_scores``);
* :mod:`trainers.verl.estimators` — agentgym's estimators in verl's signature;
* :mod:`trainers.verl.trainer` — ``agentgym_sync``, for credit that needs the whole trajectory;
* :mod:`trainers.verl.export` / :mod:`trainers.verl.cli` — ``agentgym export verl``;
* :mod:`trainers.verl.launch` — the ``main_ppo`` command of ``agentgym train --backend verl``
  (Ray / TransferQueue sized to the machine);
* :mod:`trainers.verl.cpu` — verl on CPU (``--device cpu``): platform, FSDP2 engines, gloo workers,
  the ``hf`` rollout, registered only with ``VERL_PLATFORM=cpu``;
* :mod:`trainers.verl.compat` — a placeholder for the trl class verl 0.9.1 imports and trl 1.x removed;
* :mod:`trainers.verl.gpu_recipe` — N verl steps on one GPU with vLLM, step time and throughput.

See RECIPES.md for GPU runs. Nothing here is imported by ``import trainers``: verl stays optional.
"""
