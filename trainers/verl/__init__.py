"""agentgym on verl: a plugin (``verl.plugins`` entry point), not a fork.

* :mod:`trainers.verl.plugin` — registers everything with verl's registries (loaded by ``import verl``);
* :mod:`trainers.verl.agent_loop` — the ``agentgym`` agent loop (any env, token-in/token-out, per-turn
  rewards as per-token ``rm_scores``);
* :mod:`trainers.verl.estimators` — agentgym's estimators in verl's signature;
* :mod:`trainers.verl.trainer` — ``agentgym_sync``, for credit that needs the whole trajectory;
* :mod:`trainers.verl.export` / :mod:`trainers.verl.cli` — ``agentgym export verl``;
* :mod:`trainers.verl.launch` — the ``main_ppo`` command of ``agentgym train --backend verl``.

See RECIPES.md for GPU runs. Nothing here is imported by ``import trainers``: verl stays optional.
"""
