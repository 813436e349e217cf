"""The HTML viewer, rendered for real in headless Chromium."""

from __future__ import annotations

from agentgym.cli import main
from agentgym.io import read_jsonl, write_jsonl
from agentgym.viewer import render_html


def test_view_renders_every_turn_in_chromium(tmp_path, chromium):
    run = tmp_path / "run"
    assert (
        main(
            [
                "eval",
                "countdown",
                "--policy",
                "random",
                "--episodes",
                "3",
                "--out",
                str(run),
                "--max-turns",
                "4",
            ]
        )
        == 0
    )
    trajs = read_jsonl(run / "trajectories.jsonl")
    trajs[0].turns[0].advantage = 0.125  # a credit column value the page must show
    trajs[0].turns[0].action = "<script>alert(1)</script>"  # must be escaped, not executed
    write_jsonl(run / "trajectories.jsonl", trajs)
    assert main(["view", str(run)]) == 0
    page = run / "view.html"
    dom, console = chromium.dump_dom(page, budget_ms=2000)
    assert console == [], console
    assert "Trajectories (3)" in dom
    assert dom.count('class="traj"') == 3
    n_turns = sum(len(t.turns) for t in trajs)
    assert dom.count("<tr") - dom.count("<tr><th>") >= n_turns
    assert "0.125" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    shot = chromium.screenshot(page, tmp_path / "view.png", width=1200, height=900)
    assert shot.exists() and shot.stat().st_size > 5000


def test_render_html_has_no_external_resources():
    page = render_html([], None)
    assert "http://" not in page and "https://" not in page and "<link" not in page
