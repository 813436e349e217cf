"""Task setup and patch grading inside a sandbox, shared by the env and the generator.

Setup (what the agent sees): for a generated task, the bug diff is applied and the files holding
the FAIL_TO_PASS tests are removed (as SWE-smith hides them); then the repo's history is replaced
by one fresh commit, so neither ``git log -p`` nor dangling objects reveal the bug. SWE-bench rows
start as their image is (repo at ``base_commit``).

Grading (SWE-bench's procedure): the agent's patch is taken as ``git diff`` against the task
commit, minus its edits to graded test files; the sandbox is reset to the pristine image, the bug
re-applied, the patch applied with ``git apply``, ``test_patch`` applied, the test command run and
its ``pytest -rA`` log graded by :func:`envs.swe.grading.grade`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from envs.swe.gitutil import GIT_DATE
from envs.swe.grading import GradeReport, grade, parse_pytest_log
from envs.swe.sandbox.base import Sandbox, SandboxError
from envs.swe.tasks import SWEInstance

#: the test command of generated tasks (venv interpreter by absolute path; project addopts off)
GEN_TEST_CMD = "/venv/bin/python -m pytest -rA --tb=short -p no:cacheprovider -o addopts="
_GIT = (
    f"GIT_AUTHOR_DATE='{GIT_DATE}' GIT_COMMITTER_DATE='{GIT_DATE}' "
    "git -c user.name=agentgym -c user.email=agentgym@localhost -c commit.gpgsign=false"
)
_EXCLUDES = "'*.egg-info/' 'build/' '__pycache__/' '*.pyc' '.pytest_cache/' '.eggs/'"
PATCH_TMP = "/.agentgym/patch.diff"


def _check(sb: Sandbox, cmd: str, what: str, timeout: float = 120) -> str:
    res = sb.exec(cmd, timeout=timeout, output_bytes=1 << 22)
    if res.exit_code != 0:
        raise SandboxError(f"{what} failed (exit {res.exit_code}): {res.output.strip()[-2000:]}")
    return res.stdout


def apply_patch(sb: Sandbox, patch: str, *, check_only: bool = False) -> tuple[bool, str]:
    """``git apply`` a patch in the work dir; returns (applied, git's message)."""
    if not patch.strip():
        return True, ""
    sb.write_file(PATCH_TMP, patch if patch.endswith("\n") else patch + "\n")
    flag = "--check " if check_only else ""
    res = sb.exec(
        f"cd {shlex.quote(sb.spec.workdir)} && git apply {flag}--whitespace=nowarn {PATCH_TMP}; "
        f"rc=$?; rm -f {PATCH_TMP}; exit $rc",
        timeout=120,
    )
    return res.exit_code == 0, res.output.strip()


def setup_task(sb: Sandbox, inst: SWEInstance, *, hide_tests: bool = True) -> str:
    """Bring a fresh sandbox to the task's starting state; returns the commit the agent starts from."""
    wd = shlex.quote(sb.spec.workdir)
    if not inst.bug_patch:
        return _check(sb, f"cd {wd} && git rev-parse HEAD", "reading the base commit").strip()
    ok, msg = apply_patch(sb, inst.bug_patch)
    if not ok:
        raise SandboxError(f"the bug diff of {inst.instance_id} does not apply to the task folder: {msg}")
    hidden = " ".join(shlex.quote(f) for f in inst.fail_files) if hide_tests else ""
    script = [
        f"cd {wd}",
        f"rm -f -- {hidden}" if hidden else ":",
        "rm -rf .git && git init -q",
        f"printf '%s\\n' {_EXCLUDES} > .git/info/exclude",
        "git add -A",
        f"{_GIT} commit -q -m {shlex.quote(f'{inst.repo} at the start of the task')}",
        "git rev-parse HEAD",
    ]
    return _check(sb, " && ".join(script), "setting up the task").strip().splitlines()[-1]


#: files that steer how tests run: an agent's edits to them are never graded
_TEST_CONFIG = re.compile(r"(^|/)(conftest\.py|pytest\.ini)$")


def drop_files(patch: str, paths: list[str] | tuple[str, ...]) -> str:
    """The patch without its sections for ``paths`` and for ``conftest.py``/``pytest.ini`` files
    (the agent's edits to graded tests and test configuration are discarded)."""
    keep = []
    for section in re.split(r"(?m)^(?=diff --git )", patch):
        m = re.match(r"diff --git a/(\S+) b/(\S+)", section)
        if m and any(p in paths or _TEST_CONFIG.search(p) for p in m.groups()):
            continue
        keep.append(section)
    return "".join(keep)


@dataclass
class Evaluation:
    """The result of grading one patch."""

    patch_applied: bool
    report: GradeReport | None
    log: str = ""
    message: str = ""

    @property
    def resolved(self) -> bool:
        return self.report is not None and self.report.resolved


def run_tests(sb: Sandbox, inst: SWEInstance, *, timeout: float) -> tuple[dict[str, str], str, bool]:
    """Run the instance's test command; returns (statuses, log, timed_out)."""
    cmd = f"cd {shlex.quote(sb.spec.workdir)} && {inst.test_command()}"
    res = sb.exec(cmd, timeout=timeout, output_bytes=1 << 26)
    log = res.stdout + res.stderr
    return parse_pytest_log(log), log, res.timed_out


def evaluate_patch(sb: Sandbox, inst: SWEInstance, patch: str, *, timeout: float = 600) -> Evaluation:
    """Grade ``patch`` from a pristine sandbox (this resets ``sb``): SWE-bench's procedure."""
    patch = drop_files(patch, inst.test_files)
    sb.reset()
    if inst.bug_patch:
        ok, msg = apply_patch(sb, inst.bug_patch)
        if not ok:
            raise SandboxError(f"the bug diff of {inst.instance_id} does not apply: {msg}")
    ok, msg = apply_patch(sb, patch)
    if not ok:
        return Evaluation(False, None, message=f"the patch does not apply: {msg}")
    if inst.test_patch.strip():
        # test files back to base_commit; files the test_patch creates must not exist
        files = " ".join(shlex.quote(f) for f in inst.test_files)
        base = shlex.quote(inst.base_commit)
        sb.exec(
            f"cd {shlex.quote(sb.spec.workdir)} && for f in {files}; do "
            f'git checkout -q {base} -- "$f" 2>/dev/null || rm -f -- "$f"; done'
        )
        ok, msg = apply_patch(sb, inst.test_patch)
        if not ok:
            raise SandboxError(f"the test_patch of {inst.instance_id} does not apply: {msg}")
    statuses, log, timed_out = run_tests(sb, inst, timeout=timeout)
    report = grade(statuses, inst.FAIL_TO_PASS, inst.PASS_TO_PASS)
    message = "the tests timed out" if timed_out else ""
    return Evaluation(True, report, log=log, message=message)
