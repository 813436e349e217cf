"""Escape suite: from inside the sandbox, try to get out or take the machine down.

Every attempt must be contained (the sandbox keeps answering or says why not) and leave the host and
the task's own files untouched. Runs on both backends.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]


def _tree_digest(root: Path) -> list[tuple[str, int]]:
    return sorted((p.relative_to(root).as_posix(), p.stat().st_size) for p in root.rglob("*") if p.is_file())


def test_network_is_unreachable(sandbox):
    """The host's loopback is another network: a server listening on it cannot be reached.

    Only loopback addresses are probed (never an outside address), as these machines require.
    """
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        probe = (
            "python3 - <<'EOF'\nimport socket, errno\n"
            f"s = socket.socket(); s.settimeout(3)\nprint(errno.errorcode.get(s.connect_ex(('127.0.0.1', {port})), 'OPEN'))\nEOF"
        )
        assert sandbox.exec(probe).stdout.split() == ["ECONNREFUSED"]
    finally:
        server.close()
    assert sandbox.exec("tail -n +2 /proc/net/route | wc -l").stdout.strip() == "0"
    assert sandbox.exec("getent hosts pypi.org").exit_code != 0


def test_host_files_are_not_visible(sandbox):
    for path in ("/etc/shadow", "/home", "/var", "/root/.ssh", str(REPO_ROOT), str(Path.home() / ".cache")):
        res = sandbox.exec(f"ls -d {path}")
        assert res.exit_code != 0, f"{path} is visible inside the sandbox"
    assert sandbox.exec("cut -d: -f1 /etc/passwd").stdout.split() == ["root", "nobody"]
    # the host's processes are in another pid namespace: ours cannot even be named
    assert sandbox.exec(f"kill -0 {os.getpid()}").exit_code != 0
    res = sandbox.exec("touch /usr/bin/evil; touch /etc/evil; touch /evil")
    assert res.stderr.count("Read-only file system") == 3


def test_fork_bomb_is_contained(sandbox):
    res = sandbox.exec("bomb() { bomb | bomb & }; bomb; sleep 4", timeout=4)
    assert res.exit_code != 0 or res.timed_out or "Resource temporarily unavailable" in res.stderr
    # the bomb's processes are gone (killed with the command's group and reaped by PID 1)
    count = int(sandbox.exec("ls -d /proc/[0-9]* | wc -l").stdout)
    assert count < 12
    assert sandbox.exec("echo alive").stdout == "alive\n"


def test_memory_hog_is_killed(sandbox):
    res = sandbox.exec("python3 -c \"x = b'1' * (700 << 20); print('allocated')\"")
    assert "allocated" not in res.stdout and res.exit_code != 0
    assert sandbox.exec("echo alive").stdout == "alive\n"


def test_disk_filling_is_bounded(sandbox, tiny_env):
    before = _tree_digest(tiny_env)
    # one huge file: stopped by the file-size limit (32 MiB here)
    res = sandbox.exec("dd if=/dev/zero of=big bs=1M count=200 2>&1; ls -l big")
    assert int(res.stdout.split()[-5]) <= 32 << 20
    # many files: the work dir's writable layer is full at disk_mb (128 MiB here)
    res = sandbox.exec(
        "for i in $(seq 50); do head -c 10000000 /dev/zero > f$i || break; done; du -sm /testbed"
    )
    assert "No space left on device" in res.stderr
    assert int(res.stdout.split()[0]) <= 130
    res = sandbox.exec(
        "for i in $(seq 20); do head -c 20000000 /dev/zero > /tmp/f$i || break; done; du -sm /tmp"
    )
    assert "No space left on device" in res.stderr and int(res.stdout.split()[0]) <= 65
    assert sandbox.exec("echo alive").stdout == "alive\n"
    assert _tree_digest(tiny_env) == before


@pytest.mark.parametrize("loop", ["while :; do :; done", "trap '' TERM INT; while :; do :; done"])
def test_infinite_loop_times_out(sandbox, loop):
    res = sandbox.exec(loop, timeout=2)
    assert res.timed_out and res.exit_code in (124, 137)
    assert sandbox.exec("echo alive").stdout == "alive\n"


@pytest.mark.parametrize(
    "attack", ["kill -9 $PPID", "kill -9 1", "kill -9 -1", "kill -9 $(ls /proc | grep '^[0-9]')"]
)
def test_killing_the_parent_is_contained(sandbox, attack):
    sandbox.exec("echo kept > kept.txt")
    res = sandbox.exec(attack)
    assert res.exit_code != 0 or res.shell_restarted or attack == "kill -9 1"
    assert sandbox.exec("echo alive").stdout == "alive\n"
    assert sandbox.read_file("kept.txt") == b"kept\n"


def test_stopping_the_shell_is_contained(sandbox):
    """SIGSTOP on the driver shell: the host notices it stopped answering and starts a new one."""
    sandbox.exec("echo kept > kept.txt")
    res = sandbox.exec("kill -STOP $(cut -d' ' -f4 /proc/$PPID/stat)", timeout=1)
    assert res.shell_restarted
    assert sandbox.exec("echo alive").stdout == "alive\n"
    assert sandbox.read_file("kept.txt") == b"kept\n"
