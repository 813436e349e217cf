"""Run logging: JSONL metrics (always), TensorBoard events and W&B (optional), a PNG learning curve.

Every record is one JSON line ``{"step": k, "phase": ..., **metrics}`` in ``metrics.jsonl``; the
same scalars go to TensorBoard (``tb/``) and W&B when enabled. :func:`plot_learning_curve` reads
the JSONL back, so the curve can be redrawn from any run dir (``learning_curve.png``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError

METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "learning_curve.png"


class MetricsLogger:
    """Appends metrics to ``out/metrics.jsonl`` and mirrors scalars to TensorBoard / W&B."""

    def __init__(
        self,
        out_dir: Path,
        *,
        tensorboard: bool = True,
        wandb: bool = False,
        project: str = "agentgym",
        config: dict[str, Any] | None = None,
    ):
        self.path = Path(out_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tb: Any = None
        self._wandb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(
                    "tensorboard logging needs the tensorboard package: pip install tensorboard "
                    "(or pass --no-tensorboard)"
                ) from exc
            self._tb = SummaryWriter(str(Path(out_dir) / "tb"))
        if wandb:
            try:
                import wandb as wandb_mod
            except ImportError as exc:
                raise ConfigError("--wandb needs the wandb package: pip install wandb") from exc
            self._wandb = wandb_mod.init(project=project, config=config or {}, dir=str(out_dir))

    def log(self, step: int, metrics: dict[str, Any], *, phase: str = "rl") -> None:
        record = {"step": int(step), "phase": phase, **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
        scalars = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        scalars = {k: v for k, v in scalars.items() if math.isfinite(v)}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(f"{phase}/{key}", value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log({f"{phase}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_learning_curve(out_dir: Path, *, title: str = "") -> Path | None:
    """Held-out success and mean train reward vs RL step → ``out/learning_curve.png`` (None: nothing to plot)."""
    records = read_metrics(out_dir)
    evals = [
        (r["step"], r["success_rate"]) for r in records if r.get("phase") == "eval" and "success_rate" in r
    ]
    rewards = [
        (r["step"], r["reward_mean"]) for r in records if r.get("phase") == "rl" and "reward_mean" in r
    ]
    if not evals and not rewards:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    if evals:
        ax.plot(*zip(*evals), "o-", label="held-out success")
    if rewards:
        ax.plot(*zip(*rewards), "-", alpha=0.7, label="mean train reward")
    ax.set_xlabel("RL step")
    ax.set_ylabel("success / reward")
    ax.set_title(title or "learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(out_dir) / CURVE_FILE
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
