"""Task instances in the SWE-bench schema, loaded from JSON or JSONL.

SWE-bench, SWE-bench Verified/Lite and SWE-Gym rows load unchanged (``FAIL_TO_PASS`` may be a list
or, as in the Hub exports, a JSON string of one). SWE-smith rows (``image_name`` and no
``base_commit``) carry the *bug-introducing* diff as ``patch``: it becomes ``bug_patch`` and the
gold fix is its reverse (:func:`reverse_patch`); the task starts from the image's ``HEAD`` with the
bug applied, as SWE-smith's own harness does. agentgym adds two optional fields for generated tasks:

``bug_patch``    a diff applied on top of ``base_commit`` to create the buggy state the agent sees
                 (``patch`` stays the gold *fix*, as in SWE-bench)
``environment``  where the task runs: ``{"name", "env_dir", "workdir", "test_cmd"}`` (see
                 :class:`TaskEnvironment`); absent for SWE-bench rows, which run in their image

Docker images: ``image`` (ours, swebench 5.x), else ``image_name`` (SWE-smith), else the first
local one of ``sweb.eval.x86_64.<id>`` (swebench), ``swebench/sweb.eval.x86_64.<id: __→_1776_>``
(Hub) and ``xingyaoww/sweb.eval.x86_64.<id: __→_s_>`` (SWE-Gym).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.errors import ConfigError, DataNotFoundError
from agentgym.paths import cache_dir

#: pytest with every test reported in the short summary (``-rA``), the way swebench's logs are parsed
SWEBENCH_TEST_CMD = (
    "if [ -f /opt/miniconda3/bin/activate ]; then . /opt/miniconda3/bin/activate testbed; fi; "
    "python -m pytest -rA --tb=short -p no:cacheprovider"
)
#: fields of other SWE data sets that carry no meaning here but must load (kept in ``extra``)
PASSTHROUGH_FIELDS = frozenset({"difficulty", "image_assets", "meta", "FAIL_TO_FAIL", "PASS_TO_FAIL"})


@dataclass(frozen=True)
class TaskEnvironment:
    """Where an instance runs and how its tests are invoked."""

    #: task folder name under the envs root (``<cache>/swe/envs/<name>``): testbed/, venv/, env.json
    name: str = ""
    #: explicit task folder (overrides ``name``)
    env_dir: str | None = None
    workdir: str = "/testbed"
    #: the test command; test files (from FAIL_TO_PASS/PASS_TO_PASS ids) are appended
    test_cmd: str = SWEBENCH_TEST_CMD

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskEnvironment:
        _reject_unknown(cls, data, "environment")
        return cls(**data)


@dataclass(frozen=True)
class SWEInstance:
    """One task in the SWE-bench schema (plus the optional agentgym fields above)."""

    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    FAIL_TO_PASS: tuple[str, ...]
    PASS_TO_PASS: tuple[str, ...] = ()
    test_patch: str = ""
    hints_text: str = ""
    created_at: str = ""
    version: str = ""
    environment_setup_commit: str = ""
    image: str | None = None
    image_name: str | None = None
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: str | None = None
    bug_patch: str = ""
    environment: TaskEnvironment = field(default_factory=TaskEnvironment)
    #: fields from other data sets that are kept but not used (``difficulty``, ...)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SWEInstance:
        if not isinstance(data, dict):
            raise ConfigError(f"an instance must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        if "image_name" in data and "base_commit" not in data:
            data = _from_swesmith(data)
        if "base_commit" not in data:
            raise ConfigError(
                f"instance {data.get('instance_id', '?')!r} has no base_commit (a SWE-bench row needs it; "
                "a SWE-smith row is recognised by its image_name)"
            )
        extra = {k: data.pop(k) for k in list(data) if k in PASSTHROUGH_FIELDS}
        _reject_unknown(cls, data, f"instance {data.get('instance_id', '?')!r}")
        for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            data[key] = tuple(_as_list(data.get(key, []), key))
        env = data.get("environment")
        data["environment"] = TaskEnvironment.from_dict(env) if isinstance(env, dict) else TaskEnvironment()
        try:
            inst = cls(**data, extra=extra)
        except TypeError as exc:
            raise ConfigError(f"instance {data.get('instance_id', '?')!r}: {exc}") from exc
        if not inst.FAIL_TO_PASS:
            raise ConfigError(f"instance {inst.instance_id!r} has no FAIL_TO_PASS tests; nothing to grade")
        return inst

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["FAIL_TO_PASS"], data["PASS_TO_PASS"] = list(self.FAIL_TO_PASS), list(self.PASS_TO_PASS)
        extra = data.pop("extra")
        return {**data, **extra}

    # ---- derived -------------------------------------------------------------------------
    @property
    def test_files(self) -> list[str]:
        """Test files named by FAIL_TO_PASS/PASS_TO_PASS node ids and touched by ``test_patch``."""
        files = {tid.split("::", 1)[0] for tid in (*self.FAIL_TO_PASS, *self.PASS_TO_PASS) if "::" in tid}
        files.update(patch_files(self.test_patch))
        return sorted(files)

    @property
    def fail_files(self) -> list[str]:
        """Files holding the FAIL_TO_PASS tests (hidden from the agent, as SWE-smith does)."""
        return sorted({tid.split("::", 1)[0] for tid in self.FAIL_TO_PASS if "::" in tid})

    def test_command(self) -> str:
        targets = " ".join(shlex.quote(f) for f in self.test_files)
        return f"{self.environment.test_cmd} {targets}".strip()

    def image_candidates(self) -> list[str]:
        if self.image:
            return [self.image]
        if self.image_name:
            return [self.image_name]
        iid = self.instance_id.lower()
        return [
            f"sweb.eval.x86_64.{iid}:latest",
            f"swebench/sweb.eval.x86_64.{iid.replace('__', '_1776_')}:latest",
            f"xingyaoww/sweb.eval.x86_64.{iid.replace('__', '_s_')}:latest",
        ]

    def env_dir(self, envs_root: str | os.PathLike[str] | None = None) -> Path | None:
        """The task folder for folder-based backends (bwrap), if this instance has one."""
        env = self.environment
        if env.env_dir:
            return Path(env.env_dir)
        if env.name:
            return Path(envs_root or default_envs_root()) / env.name
        return None


def _from_swesmith(row: dict[str, Any]) -> dict[str, Any]:
    """A SWE-smith row in this schema: its ``patch`` introduces the bug, so it is the ``bug_patch``
    and the gold fix is the reverse; the repository's state is the image's ``HEAD``."""
    where = f"SWE-smith instance {row.get('instance_id', '?')!r}"
    if row.get("bug_patch"):
        raise ConfigError(f"{where}: has both a bug_patch and SWE-smith's image_name without base_commit")
    bug = row.get("patch")
    if not isinstance(bug, str) or not bug.strip():
        raise ConfigError(f"{where}: its patch (the bug-introducing diff) is empty")
    try:
        fix = reverse_patch(bug)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return {
        **row,
        "bug_patch": bug,
        "patch": fix,
        "base_commit": "HEAD",
        "problem_statement": row.get("problem_statement") or "",
    }


def reverse_patch(patch: str) -> str:
    r"""The unified git diff that undoes ``patch`` (old and new sides swapped, hunk by hunk).

    >>> print(reverse_patch("diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n x\n-old\n+new\n"), end="")
    diff --git a/f b/f
    --- a/f
    +++ b/f
    @@ -1,2 +1,2 @@
     x
    +old
    -new
    """
    out: list[str] = []
    lines = patch.split("\n")
    i = 0
    swap_words = {
        "new file mode": "deleted file mode",
        "deleted file mode": "new file mode",
        "old mode": "new mode",
        "new mode": "old mode",
        "rename from": "rename to",
        "rename to": "rename from",
        "copy from": "copy to",
        "copy to": "copy from",
    }
    while i < len(lines):
        line = lines[i]
        if line.startswith("diff --git "):
            m = re.match(r"diff --git a/(\S+) b/(\S+)$", line)
            if not m:
                raise ValueError(f"cannot reverse a diff header with unusual paths: {line!r}")
            out.append(f"diff --git a/{m.group(2)} b/{m.group(1)}")
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = line[4:], lines[i + 1][4:]
            flip = lambda p, side: p if p == "/dev/null" else f"{side}/{p[2:]}"  # noqa: E731
            out += [f"--- {flip(new, 'a')}", f"+++ {flip(old, 'b')}"]
            i += 1
        elif line.startswith("@@"):
            m = re.match(r"@@ -(\S+) \+(\S+) @@(.*)$", line)
            if not m:
                raise ValueError(f"cannot reverse the hunk header {line!r}")
            out.append(f"@@ -{m.group(2)} +{m.group(1)} @@{m.group(3)}")
        elif line.startswith("index "):
            m = re.match(r"index (\w+)\.\.(\w+)(.*)$", line)
            out.append(f"index {m.group(2)}..{m.group(1)}{m.group(3)}" if m else line)
        elif line.startswith(("GIT binary patch", "Binary files ")):
            raise ValueError("cannot reverse a binary diff")
        elif line.startswith("+"):
            out.append("-" + line[1:])
        elif line.startswith("-"):
            out.append("+" + line[1:])
        else:
            word = next((w for w in swap_words if line.startswith(w)), None)
            out.append(swap_words[word] + line[len(word) :] if word else line)
        i += 1
    return "\n".join(out)


def default_envs_root() -> Path:
    """Where task folders live: ``$AGENTGYM_SWE_ENVS``, else ``<cache>/swe/envs``."""
    return Path(os.environ.get("AGENTGYM_SWE_ENVS") or cache_dir("swe", "envs", create=False))


def patch_files(patch: str) -> list[str]:
    """Paths a unified diff touches (new and old names)."""
    files: set[str] = set()
    for m in re.finditer(r"^diff --git a/(\S+) b/(\S+)$", patch, flags=re.M):
        files.update(m.groups())
    return sorted(files)


def load_instances(path: str | os.PathLike[str]) -> list[SWEInstance]:
    """Instances from a ``.jsonl`` file (one per line) or a ``.json`` file (a list or one object)."""
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"task file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    rows: list[tuple[str, Any]] = []
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                rows.append((f"{path}:{lineno}", _json(line, f"{path}:{lineno}")))
    else:
        data = _json(text, str(path))
        items = data if isinstance(data, list) else [data]
        rows = [(f"{path}[{i}]", item) for i, item in enumerate(items)]
    out, seen = [], set()
    for where, row in rows:
        try:
            inst = SWEInstance.from_dict(row)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        if inst.instance_id in seen:
            raise ConfigError(f"{where}: duplicate instance_id {inst.instance_id!r}")
        seen.add(inst.instance_id)
        out.append(inst)
    return out


def write_instances(path: str | os.PathLike[str], instances: list[SWEInstance]) -> None:
    """Write instances as JSONL (the format :func:`load_instances` reads)."""
    with open(path, "w", encoding="utf-8") as fh:
        for inst in instances:
            fh.write(json.dumps(inst.to_dict(), ensure_ascii=False) + "\n")


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where}: not valid JSON ({exc})") from exc


def _as_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):  # Hub exports store the lists as JSON strings
        value = _json(value, key) if value.strip() else []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of test ids (strings), got {value!r:.80}")
    return list(value)


def _reject_unknown(cls: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{what}: unknown field(s) {sorted(unknown)}; known fields are {sorted(known)}")
