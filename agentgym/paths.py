"""Where data and caches live: an explicit argument, then an environment variable, then a cache dir.

The cache root is ``$AGENTGYM_CACHE`` or ``~/.cache/agentgym``.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentgym.errors import DataNotFoundError


def cache_root() -> Path:
    return Path(os.environ.get("AGENTGYM_CACHE") or Path.home() / ".cache" / "agentgym")


def cache_dir(*parts: str, create: bool = True) -> Path:
    path = cache_root().joinpath(*parts)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def find_data(name: str, explicit: str | os.PathLike[str] | None, env_var: str, *, marker: str = "") -> Path:
    """Locate a data set: ``explicit`` argument, then ``$env_var``, then ``<cache>/data/<name>``.

    ``marker`` is a file or glob that must exist inside the folder for it to count. Fails with a
    message naming all three places and the download command.
    """
    candidates: list[tuple[str, Path]] = []
    if explicit is not None:
        candidates.append(("argument", Path(explicit)))
    if os.environ.get(env_var):
        candidates.append((f"${env_var}", Path(os.environ[env_var])))
    candidates.append(("cache", cache_root() / "data" / name))
    for _, path in candidates:
        if path.is_dir() and (not marker or any(path.glob(marker))):
            return path
    tried = "; ".join(f"{label}: {path}" for label, path in candidates)
    raise DataNotFoundError(
        f"no {name} data found (looked for {marker or 'a folder'} in {tried}). "
        f"Pass data_dir=..., set ${env_var}, or run `agentgym data download {name}` on a machine with internet."
    )
