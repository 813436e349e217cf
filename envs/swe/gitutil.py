"""Reproducible git commits for task repositories: fixed author, committer and dates.

The same files always give the same commit id, so a rebuilt task keeps its ``base_commit`` and a
task image built from it is reused instead of rebuilt.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: the author/committer date of every commit agentgym makes in a task repository
GIT_DATE = "2000-01-01T00:00:00+0000"


def commit_all(repo: Path, message: str = "base", *, user: str = "agentgym") -> None:
    """``git init`` (if needed), add everything and commit with fixed identity and dates."""
    git = ["git", "-c", f"user.name={user}", "-c", f"user.email={user}@localhost", "-C", str(repo)]
    env = {**os.environ, "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE}
    if not (repo / ".git").exists():
        subprocess.run([*git, "init", "-q", "-b", "main"], check=True, env=env)
    subprocess.run([*git, "add", "-A"], check=True, env=env)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True, env=env)
