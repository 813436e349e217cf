"""The training-run page of ``agentgym view RUN [RUN ...]``: curves, eval panels, rollouts with credit.

One self-contained HTML file that works offline: plotly.js is embedded from the installed
``plotly`` package (no CDN), every figure is a plotly figure built in Python. Several runs overlay
their curves (one colour per run), so runs that differ in one setting (e.g. the credit module)
compare at a glance.

* **Curves** (``metrics.jsonl``, verl's names): held-out success per evaluation, train reward and
  success, KL, entropy, grad norm, clip fraction, advantage mean/std and the share of non-zero
  advantages, step time, policy loss, SFT loss.
* **Eval panels**: per-category held-out success at every evaluation point, one panel per run.
* **Rollouts** (``rollouts/*.jsonl``): every saved RL step and evaluation; for each trajectory a
  bar chart of raw reward, shaped reward and advantage per turn above the turn table (observation,
  action, credit extras); turns that kept per-token advantages shade each action token by the
  advantage the loss gave it (green positive, red negative). Per-trajectory charts are drawn when
  their section is opened (hundreds of trajectories stay fast); the first trajectory with token
  data of each run's last sampled step starts open.
"""

from __future__ import annotations

import html
import json
import statistics
from collections.abc import Sequence
from typing import Any

from agentgym.errors import ConfigError
from agentgym.records import Trajectory, Turn
from agentgym.runs import RolloutSet, RunData

#: (panel title, metrics phase, keys) of the curve grid; panels without data are left out
CURVES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("held-out success", "eval", ("success_rate",)),
    ("train reward (critic/score/mean)", "rl", ("critic/score/mean",)),
    ("train success", "rl", ("success",)),
    ("KL (actor/ppo_kl, actor/kl_loss)", "rl", ("actor/ppo_kl", "actor/kl_loss")),
    ("entropy (actor/entropy)", "rl", ("actor/entropy",)),
    ("grad norm (actor/grad_norm)", "rl", ("actor/grad_norm",)),
    ("clip fraction (actor/pg_clipfrac)", "rl", ("actor/pg_clipfrac",)),
    ("advantage mean / std", "rl", ("critic/advantages/mean", "critic/advantages/std")),
    ("share of non-zero advantages", "rl", ("credit/advantage_nonzero_frac",)),
    ("step time s (timing_s/step, /gen)", "rl", ("timing_s/step", "timing_s/gen")),
    ("policy loss (actor/pg_loss)", "rl", ("actor/pg_loss",)),
    ("SFT loss", "sft", ("loss",)),
)
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DASHES = ("solid", "dot", "dash")
BAR_COLORS = {"raw reward": "#7f7f7f", "shaped reward": "#1f77b4", "advantage": "#ff7f0e"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222}
h1{font-size:1.4em} h2{font-size:1.2em;margin-top:1.2em}
table{border-collapse:collapse;width:100%;margin:.4em 0}
td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3} pre{white-space:pre-wrap;margin:0;font:12px/1.3 ui-monospace,monospace}
details{border:1px solid #bbb;border-radius:4px;margin:.4em 0;padding:.3em .6em}
summary{cursor:pointer} .won{color:#176f2c;font-weight:600} .lost{color:#9a1c1c}
.num{text-align:right;font-variant-numeric:tabular-nums} .invalid{background:#fff6dd}
.tok{font:12px ui-monospace,monospace;border-radius:2px;padding:0 1px;margin:0 1px;white-space:pre}
.panels{display:flex;flex-wrap:wrap;gap:8px} .turnplot{height:230px}
"""

_JS = """
function agDraw(d){
  const div=d.querySelector(':scope > .turnplot');
  if(!div||div.dataset.drawn)return;
  const fig=AG_TURN_FIGS[+d.dataset.fig];
  Plotly.newPlot(div,fig.data,fig.layout,{responsive:true,displaylogo:false});
  div.dataset.drawn='1';
}
document.addEventListener('toggle',e=>{const d=e.target;
  if(d.classList&&d.classList.contains('traj')&&d.open)agDraw(d);},true);
window.addEventListener('load',()=>{
  for(const d of document.querySelectorAll('details.traj[open]'))agDraw(d);});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.4g}"


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise ConfigError(
            "viewing training runs needs plotly: pip install 'agentgym[train]' (or pip install plotly)"
        ) from exc
    return go


def _div(fig: Any, div_id: str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config={"displaylogo": False, "responsive": True},
        )
    )


# ---- curves ------------------------------------------------------------------------------------
def _series(run: RunData, phase: str, key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in run.metrics if r.get("phase") == phase and _is_num(r.get(key))]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def curves_figure(runs: Sequence[RunData]) -> Any:
    """One subplot per metric panel, every run overlaid (colour = run, dash = key)."""
    from plotly.subplots import make_subplots

    go = _plotly()
    panels = [p for p in CURVES if any(_series(r, p[1], k)[0] for r in runs for k in p[2])]
    cols = 3
    rows = max((len(panels) + cols - 1) // cols, 1)
    fig = make_subplots(
        rows=rows, cols=cols, subplot_titles=[p[0] for p in panels], vertical_spacing=0.35 / rows
    )
    for n, (_title, phase, keys) in enumerate(panels):
        for r, run in enumerate(runs):
            for k, key in enumerate(keys):
                xs, ys = _series(run, phase, key)
                if not xs:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines+markers" if phase == "eval" or len(xs) < 30 else "lines",
                        name=f"{run.name} · {key}",
                        legendgroup=run.name,
                        line={"color": COLORS[r % len(COLORS)], "dash": DASHES[k % len(DASHES)]},
                        hovertemplate=f"{_e(run.name)}<br>{key}<br>step %{{x}}: %{{y:.4g}}<extra></extra>",
                    ),
                    row=n // cols + 1,
                    col=n % cols + 1,
                )
    fig.update_layout(height=260 * rows + 80, margin={"t": 40, "b": 30, "l": 40, "r": 10})
    fig.update_xaxes(title_text="step", title_standoff=2)
    return fig


# ---- eval panels -------------------------------------------------------------------------------
def eval_figure(run: RunData) -> Any | None:
    """Per-category held-out success at each evaluation point of ``run`` (grouped bars)."""
    go = _plotly()
    evals = [r for r in run.metrics if r.get("phase") == "eval" and isinstance(r.get("per_category"), dict)]
    if not evals:
        return None
    points = [f"{r.get('tag', '')} (step {r['step']})" for r in evals]
    cats = sorted({c for r in evals for c in r["per_category"]})
    fig = go.Figure()
    for c in cats:
        ys = [r["per_category"].get(c, {}).get("success_rate") for r in evals]
        fig.add_trace(go.Bar(x=points, y=ys, name=c, texttemplate="%{y:.2f}", textposition="outside"))
    fig.update_layout(
        title=f"{run.name}: held-out success per category",
        barmode="group",
        yaxis={"range": [0, 1.15], "title": "success"},
        height=320,
        width=560,
        margin={"t": 60, "b": 40, "l": 50, "r": 10},
        modebar={"orientation": "v"},
    )
    return fig


# ---- rollouts ----------------------------------------------------------------------------------
def turn_figure(traj: Trajectory) -> dict[str, Any]:
    """Per-turn bars of raw reward, shaped reward and advantage (plotly JSON, drawn on open)."""
    go = _plotly()
    xs = [f"turn {t.index}" for t in traj.turns]
    fig = go.Figure()
    for name, attr in (
        ("raw reward", "raw_reward"),
        ("shaped reward", "shaped_reward"),
        ("advantage", "advantage"),
    ):
        ys = [getattr(t, attr) for t in traj.turns]
        fig.add_trace(
            go.Bar(
                x=xs,
                y=ys,
                name=name,
                marker_color=BAR_COLORS[name],
                texttemplate="%{y:.3~g}",
                textposition="outside",
                cliponaxis=False,
            )
        )
    fig.update_layout(barmode="group", height=230, margin={"t": 20, "b": 30, "l": 40, "r": 10})
    return json.loads(fig.to_json())


def _token_cells(turn: Turn) -> str:
    text, adv = turn.credit.get("token_text"), turn.credit.get("token_advantage")
    if not isinstance(text, list) or not isinstance(adv, list) or len(text) != len(adv):
        return ""
    scale = max((abs(a) for a in adv), default=0.0) or 1.0
    spans = []
    for tok, a in zip(text, adv):
        alpha = min(abs(a) / scale, 1.0) * 0.6
        rgb = "44,160,44" if a > 0 else "214,39,40"
        spans.append(
            f'<span class="tok" style="background:rgba({rgb},{alpha:.2f})" title="advantage {a:+.4g}">'
            f"{_e(tok)}</span>"
        )
    return f'<div class="tokens">tokens: {"".join(spans)}</div>'


def _turn_row(turn: Turn) -> str:
    extras = {k: v for k, v in turn.credit.items() if k not in ("token_text", "token_advantage")}
    extra = f"<pre>{_e(json.dumps(extras, ensure_ascii=False))}</pre>" if extras else ""
    cls = "" if turn.valid_action else ' class="invalid"'
    return (
        f"<tr{cls}><td class=num>{turn.index}</td><td><pre>{_e(turn.observation)}</pre></td>"
        f"<td><pre>{_e(turn.action)}</pre>{_token_cells(turn)}</td><td class=num>{_num(turn.reward)}</td>"
        f"<td class=num>{_num(turn.raw_reward)}</td><td class=num>{_num(turn.shaped_reward)}</td>"
        f'<td class="num adv">{_num(turn.advantage)}</td><td>{extra}</td></tr>'
    )


def _traj_section(traj: Trajectory, fig_index: int, *, open_: bool) -> str:
    status = '<span class="won">won</span>' if traj.won else '<span class="lost">not won</span>'
    if traj.failed:
        status = f'<span class="lost">FAILED {_e(traj.error_type)}</span>'
    has_tokens = any("token_advantage" in t.credit for t in traj.turns)
    head = (
        f"{_e(traj.task_id)} · {status} · reward {_num(traj.outcome)} · {len(traj.turns)} turns · "
        f"group {_e(traj.group_id)}{' · per-token advantages' if has_tokens else ''}"
    )
    rows = "".join(_turn_row(t) for t in traj.turns)
    return (
        f'<details class="traj" data-fig="{fig_index}" data-traj="{_e(traj.traj_id)}"'
        f"{' open data-default=1' if open_ else ''}><summary>{head}</summary>"
        '<div class="turnplot"></div>'
        f"<p><b>initial observation</b></p><pre>{_e(traj.initial_observation)}</pre>"
        "<table><tr><th>#</th><th>observation (before acting)</th><th>action</th><th>reward</th>"
        "<th>raw</th><th>shaped</th><th>advantage</th><th>credit extras</th></tr>"
        f"{rows}</table></details>"
    )


def _default_open(run: RunData) -> tuple[int, str] | None:
    """(rollout set index, traj_id) shown open: from the last sampled step backwards, the first
    trajectory with per-token advantages and a non-zero advantage (else the last step's first)."""
    train = [i for i, rs in enumerate(run.rollouts) if rs.phase == "train" and rs.trajectories]
    for i in reversed(train):
        for traj in run.rollouts[i].trajectories:
            if any("token_advantage" in t.credit and t.advantage for t in traj.turns):
                return i, traj.traj_id
    return (train[-1], run.rollouts[train[-1]].trajectories[0].traj_id) if train else None


def _rollout_set(rs: RolloutSet, figs: list[dict[str, Any]], open_traj: str | None) -> str:
    live = [t for t in rs.trajectories if not t.failed]
    reward = statistics.fmean(t.outcome for t in live) if live else 0.0
    won = statistics.fmean(t.won for t in live) if live else 0.0
    what = f"RL step {rs.step}" if rs.phase == "train" else f"held-out eval '{_e(rs.tag)}' at step {rs.step}"
    parts = []
    for traj in rs.trajectories:
        figs.append(turn_figure(traj))
        parts.append(_traj_section(traj, len(figs) - 1, open_=traj.traj_id == open_traj))
    return (
        f'<details class="rollouts"{" open" if open_traj else ""}><summary>{what} · '
        f"{len(rs.trajectories)} trajectories · mean reward {reward:.3f} · success {won:.3f}</summary>"
        f"{''.join(parts)}</details>"
    )


# ---- the page ----------------------------------------------------------------------------------
def _runs_table(runs: Sequence[RunData]) -> str:
    rows = []
    for r, run in enumerate(runs):
        s = run.summary or {}
        evals = [x for x in run.metrics if x.get("phase") == "eval"]
        first = evals[0]["success_rate"] if evals else None
        last = evals[-1]["success_rate"] if evals else None
        dot = f'<span style="color:{COLORS[r % len(COLORS)]}">&#9632;</span>'
        rows.append(
            f"<tr><td>{dot} {_e(run.name)}</td><td>{_e(s.get('env', ''))}</td><td>{_e(s.get('algo', ''))}</td>"
            f"<td>{_e(s.get('credit', ''))}</td><td class=num>{_e(s.get('steps', ''))}</td>"
            f"<td class=num>{_num(first)} → {_num(last)}</td><td class=num>{len(run.rollouts)}</td></tr>"
        )
    return (
        "<table><tr><th>run</th><th>env</th><th>algo</th><th>credit</th><th>RL steps</th>"
        f"<th>held-out success first → last</th><th>saved rollout sets</th></tr>{''.join(rows)}</table>"
    )


def render_runs(runs: Sequence[RunData], title: str = "agentgym runs") -> str:
    """The whole page for one or more training runs (see the module docstring)."""
    from plotly.offline import get_plotlyjs

    if not runs:
        raise ValueError("render_runs needs at least one run")
    figs: list[dict[str, Any]] = []
    evals = [(run, fig) for run in runs if (fig := eval_figure(run)) is not None]
    eval_html = "".join(_div(fig, f"eval-{i}") for i, (_, fig) in enumerate(evals))
    sections = []
    for r, run in enumerate(runs):
        default = _default_open(run)
        sets = "".join(
            _rollout_set(rs, figs, default[1] if default and default[0] == i else None)
            for i, rs in enumerate(run.rollouts)
        )
        sections.append(
            f'<details class="run"{" open" if r == 0 else ""}><summary><b>{_e(run.name)}</b> · '
            f"{len(run.rollouts)} saved rollout sets</summary>{sets or '<p>no saved rollouts</p>'}</details>"
        )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{_e(title)}</h1>{_runs_table(runs)}"
        f"<h2>Learning curves</h2>{_div(curves_figure(runs), 'curves')}"
        f"<h2>Held-out success per category</h2><div class='panels'>{eval_html or '<p>no evaluations</p>'}</div>"
        f"<h2>Rollouts and per-turn credit</h2>{''.join(sections)}"
        f"<script>const AG_TURN_FIGS={_script_json(figs)};{_JS}</script></body></html>"
    )
