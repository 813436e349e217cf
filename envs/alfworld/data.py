"""Where the ALFWorld game files live, how they are unpacked, and how they are indexed.

The data folder is found the agentgym way (:func:`agentgym.paths.find_data`): the ``data_dir``
argument, then ``$ALFWORLD_DATA``, then ``<cache>/data/alfworld``. It may hold

* an unpacked ``json_2.1.1/<split>/<task dir>/trial_*/game.tw-pddl`` tree (what ``alfworld-download``
  and ``agentgym data download alfworld`` leave; a ``json_2.1.1`` folder may also be given directly),
* and/or the archives ``json_2.1.1.tar.gz`` (all splits) and ``json_2.1.1_valid.tar.gz``
  (valid_seen + valid_unseen only).

Archives are unpacked on first use, split by split, into ``<cache>/data/alfworld/json_2.1.1`` (where
later runs find them without any setting) or ``<cache_dir>/json_2.1.1``; the small valid archive
is preferred when it has the split. A split is unpacked into a temporary folder and renamed into
place, so a split folder that exists is complete (an interrupted extraction leaves none), and a
lock file keeps parallel workers from extracting at the same time.

Task ids are ``<split>/<task dir>/<trial>``: stable across machines and releases of this code. Games
marked ``"solvable": false`` are left out, as ALFWorld's own loader does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentgym.errors import DataNotFoundError
from agentgym.paths import cache_root, find_data

ENV_VAR = "ALFWORLD_DATA"
TREE = "json_2.1.1"
GAME_FILE = "game.tw-pddl"
FULL_ARCHIVE = "json_2.1.1.tar.gz"
VALID_ARCHIVE = "json_2.1.1_valid.tar.gz"
SPLITS = ("train", "valid_seen", "valid_unseen", "valid_train")
#: splits each archive holds, smallest archive first (the preferred source)
ARCHIVE_SPLITS = {VALID_ARCHIVE: ("valid_seen", "valid_unseen"), FULL_ARCHIVE: SPLITS}
TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
#: the game files of the official release, as alfworld's own ``alfworld-download`` script fetches them
RELEASE_URL = "https://github.com/alfworld/alfworld/releases/download/0.4.0/json_2.1.2_tw-pddl.zip"

_UNSOLVABLE = re.compile(rb'"solvable"\s*:\s*false')


class DownloadError(DataNotFoundError):
    """The official release could not be fetched (offline, HTTP error, unexpected archive)."""


@dataclass(frozen=True)
class Game:
    """One playable game: its stable id, split, task type (the category) and file."""

    task_id: str
    split: str
    task_type: str
    path: Path


def _is_tree(path: Path) -> bool:
    """A ``json_2.1.1`` folder itself (holds split folders)."""
    return any((path / s).is_dir() for s in SPLITS)


def _locations_text(data_dir: str | os.PathLike[str] | None) -> str:
    env = os.environ.get(ENV_VAR)
    return (
        f"argument data_dir={str(data_dir) if data_dir is not None else '(not given)'}; "
        f"${ENV_VAR}={env or '(not set)'}; cache {cache_root() / 'data' / 'alfworld'}"
    )


def locate(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: argument, then ``$ALFWORLD_DATA``, then the cache (see module docstring)."""
    env = os.environ.get(ENV_VAR)
    if data_dir is not None and _is_tree(Path(data_dir)):
        return Path(data_dir)
    if data_dir is None and env and _is_tree(Path(env)):
        return Path(env)
    try:
        return find_data("alfworld", data_dir, ENV_VAR, marker=f"{TREE}*")
    except DataNotFoundError as exc:
        raise DataNotFoundError(
            f"no ALFWorld game files found (looked in {_locations_text(data_dir)}). Each place may hold "
            f"an unpacked {TREE}/ tree or the archives {FULL_ARCHIVE} / {VALID_ARCHIVE}. Pass "
            f"data_dir=..., set ${ENV_VAR}, or run `agentgym data download alfworld` on a machine "
            "with internet."
        ) from exc


class GameStore:
    """The games of one data folder; unpacks archives into the cache when a split needs them."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        verbose: bool = True,
    ):
        self.root = locate(data_dir)
        self.verbose = verbose
        self._tree = self.root if _is_tree(self.root) else self.root / TREE
        #: archives unpack to <cache_dir>/json_2.1.1 (default: the cache place that locate() searches)
        self.extract_dir = Path(cache_dir or cache_root() / "data" / "alfworld") / TREE
        self._index: dict[str, tuple[Game, ...]] = {}

    def available_splits(self) -> list[str]:
        """Splits playable from this folder (unpacked or in an archive)."""
        have = {s for s in SPLITS if (self._tree / s).is_dir()}
        for archive, splits in ARCHIVE_SPLITS.items():
            if (self.root / archive).is_file():
                have.update(splits)
        return [s for s in SPLITS if s in have]

    def split_dir(self, split: str) -> Path:
        """The folder of a split's games, unpacking an archive first if needed."""
        for folder in (self._tree / split, self.extract_dir / split):
            if folder.is_dir():
                return folder
        for archive, splits in ARCHIVE_SPLITS.items():
            if split in splits and (self.root / archive).is_file():
                self._extract(self.root / archive, splits)
                return self.extract_dir / split
        raise DataNotFoundError(
            f"split {split!r} is not in {self.root}: it has {self.available_splits() or 'no splits'}. "
            f"{FULL_ARCHIVE} (or an unpacked {TREE}/{split}/ folder) holds every split; "
            f"{VALID_ARCHIVE} only valid_seen and valid_unseen."
        )

    def games(self, split: str) -> tuple[Game, ...]:
        """The solvable games of a split, sorted by task id."""
        if split not in self._index:
            folder = self.split_dir(split)
            games = []
            for path in sorted(folder.glob(f"*/*/{GAME_FILE}")):
                if _UNSOLVABLE.search(path.read_bytes()):
                    continue
                task_dir, trial = path.parent.parent.name, path.parent.name
                task_type = task_dir.split("-", 1)[0]
                games.append(Game(f"{split}/{task_dir}/{trial}", split, task_type, path))
            self._index[split] = tuple(games)
        return self._index[split]

    # ---- extraction ----------------------------------------------------------------------------
    def _extract(self, archive: Path, splits: Sequence[str]) -> None:
        target = self.extract_dir
        target.mkdir(parents=True, exist_ok=True)
        with _file_lock(target / ".extract.lock"):
            todo = [s for s in splits if not (target / s).is_dir()]
            if not todo:  # another process finished while we waited for the lock
                return
            self._say(f"agentgym: unpacking {', '.join(todo)} from {archive} into {target} (once) ...")
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(dir=target, prefix=".unpack-") as tmp:
                n = _safe_untar(archive, Path(tmp), [f"{TREE}/{s}/" for s in todo], self._say)
                for s in todo:
                    src, dst = Path(tmp) / TREE / s, target / s
                    if not src.is_dir():
                        raise DataNotFoundError(
                            f"{archive} has no {TREE}/{s}/ folder; is it the ALFWorld release?"
                        )
                    src.rename(dst)  # atomic: the split appears complete or not at all
            self._say(f"agentgym: unpacked {n} games in {time.perf_counter() - t0:.1f} s")

    def _say(self, message: str) -> None:
        if self.verbose:
            print(message, file=sys.stderr, flush=True)


def _safe_untar(archive: Path, dest: Path, prefixes: Sequence[str], say: Callable[[str], None]) -> int:
    """Unpack the game files under ``prefixes``; refuses links and paths leaving ``dest``."""
    n = 0
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not member.name.startswith(tuple(prefixes)) or not member.isfile():
                continue
            if ".." in Path(member.name).parts or member.name.startswith("/"):
                raise DataNotFoundError(f"{archive}: refusing unsafe member path {member.name!r}")
            out = dest / member.name
            out.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            if src is None:
                continue
            with src, open(out, "wb") as fh:
                shutil.copyfileobj(src, fh)
            n += out.name == GAME_FILE
            if out.name == GAME_FILE and n % 1000 == 0:
                say(f"agentgym:   ... {n} games")
    return n


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): extraction is still atomic per split
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def interleave_by_type(games: Sequence[Game]) -> list[Game]:
    """Round-robin over task types (each in id order), so any prefix covers every type.

    Evaluations take the first N task ids of a split; with plain sorting those would all be of one
    or two task types.
    """
    by_type: dict[str, list[Game]] = {}
    for g in games:
        by_type.setdefault(g.task_type, []).append(g)
    queues = [by_type[t] for t in sorted(by_type)]
    out: list[Game] = []
    for k in range(max((len(q) for q in queues), default=0)):
        out.extend(q[k] for q in queues if k < len(q))
    return out


# ---- download ----------------------------------------------------------------------------------
def download(dest: Path, *, url: str = RELEASE_URL, timeout: float = 60.0) -> None:
    """Fetch the official ALFWorld game files into ``dest`` (entry point ``agentgym.data``).

    Needs internet access; leaves ``dest/json_2.1.1/<split>/...`` as the env expects.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    zip_path = dest / url.rsplit("/", 1)[-1]
    partial = zip_path.with_suffix(zip_path.suffix + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(partial, "wb") as fh:
            total = int(resp.headers.get("Content-Length") or 0)
            done, last = 0, 0.0
            while chunk := resp.read(1 << 20):
                fh.write(chunk)
                done += len(chunk)
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    size = f"/{total / 1e6:.0f}" if total else ""
                    print(f"agentgym: downloading {url}: {done / 1e6:.0f}{size} MB", file=sys.stderr)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"could not download the ALFWorld game files from {url}: {exc}. This machine may be offline: "
            f"download it elsewhere, or copy {FULL_ARCHIVE} / {VALID_ARCHIVE} or an unpacked {TREE}/ "
            f"folder into {dest} (or point ${ENV_VAR} at one)."
        ) from exc
    partial.rename(zip_path)
    _unzip(zip_path, dest)
    zip_path.unlink()


def _unzip(zip_path: Path, dest: Path) -> None:
    """Unpack the release into ``dest/json_2.1.1/<split>/`` (each split renamed into place whole)."""
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if name.startswith("/") or ".." in Path(name).parts:
                raise DownloadError(f"{zip_path}: refusing unsafe member path {name!r}")
        with tempfile.TemporaryDirectory(dir=dest, prefix=".unpack-") as tmp:
            zf.extractall(tmp)
            # the release is versioned (json_2.1.2_...): find its split tree whatever its name
            trees = [p for p in [Path(tmp), *Path(tmp).iterdir()] if p.is_dir() and _is_tree(p)]
            if not trees:
                raise DownloadError(f"{zip_path} holds no <tree>/<split>/ folders ({', '.join(SPLITS)})")
            target = dest / TREE
            target.mkdir(exist_ok=True)
            for split in SPLITS:
                src = trees[-1] / split
                if src.is_dir() and not (target / split).exists():
                    src.rename(target / split)
