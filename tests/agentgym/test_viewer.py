"""The HTML viewer, rendered for real in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from agentgym.cli import main
from agentgym.io import read_jsonl, write_jsonl
from agentgym.viewer import render_html


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (apt-get install chromium)")


CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_view_renders_every_turn_in_chromium(tmp_path):
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
    res = subprocess.run(
        [_chromium(), *CHROME_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = res.stdout
    assert "Trajectories (3)" in dom, res.stderr[-2000:]
    assert dom.count('class="traj"') == 3
    n_turns = sum(len(t.turns) for t in trajs)
    assert dom.count("<tr") - dom.count("<tr><th>") >= n_turns
    assert "0.125" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    shot = tmp_path / "view.png"
    subprocess.run(
        [
            _chromium(),
            *CHROME_FLAGS,
            f"--user-data-dir={tmp_path / 'profile2'}",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 5000


def test_render_html_has_no_external_resources():
    page = render_html([], None)
    assert "http://" not in page and "https://" not in page and "<link" not in page
