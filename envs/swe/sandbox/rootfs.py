"""The slim root file system both backends share: the host's ``/usr`` read-only, nothing else.

Debian 12 has a merged ``/usr``, so ``bin``, ``lib``, ``lib64`` and ``sbin`` are links into it and a
root made of those links, a tiny ``/etc`` (``passwd``, ``group``, ``hosts``), ``/tmp`` and
``/root`` runs the host's ``bash``, ``git`` and ``python3`` without building anything. Host files
outside ``/usr`` (home folders, ``/etc/shadow``, the project) are simply absent. Docker gets the
same tree as an imported image (``agentgym-swe/slim``) run with ``-v /usr:/usr:ro``; bubblewrap
binds it piece by piece.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from agentgym.paths import cache_dir

ETC_FILES: dict[str, str] = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": "root:x:0:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
}
#: top-level links into the merged /usr (``sbin`` is a real folder so Docker can mount its init there)
USR_LINKS = {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64"}
SYSTEM_DIRS = frozenset(
    {"usr", "etc", "tmp", "proc", "dev", "sys", "bin", "lib", "lib64", "sbin", "root", "run", "var"}
)


def slim_etc_dir() -> Path:
    """A folder with the slim ``/etc`` files (created once in the cache)."""
    path = cache_dir("swe", "rootfs", "etc")
    for name, text in ETC_FILES.items():
        target = path / name
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
    return path


def host_usr_ok() -> tuple[bool, str]:
    """Whether the host's /usr can serve as the sandbox OS (merged /usr with bash, git, python3)."""
    for link in ("bin", "lib"):
        if not os.path.islink(f"/{link}"):
            return False, f"/{link} is not a link into /usr (the host has no merged /usr)"
    for tool in ("/usr/bin/bash", "/usr/bin/git", "/usr/bin/python3", "/usr/bin/timeout", "/usr/bin/base64"):
        if not os.access(tool, os.X_OK):
            return (
                False,
                f"{tool} is missing on the host (install it: apt-get install -y bash git python3 coreutils)",
            )
    return True, ""


def slim_tar() -> bytes:
    """The slim root as an uncompressed tar (for ``docker import``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for name, target in USR_LINKS.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        for name in ("sbin", "etc", "root", "usr", "testbed"):
            add_dir(name)
        add_dir("tmp", 0o1777)
        for name, text in ETC_FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(f"etc/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def slim_digest() -> str:
    """Changes when the slim layout or the host's Python changes (images built on it go stale)."""
    h = hashlib.sha256(slim_tar())
    try:
        h.update(os.path.realpath("/usr/bin/python3").encode())
        h.update(str(os.stat("/usr/bin/python3").st_mtime_ns).encode())
    except OSError:
        pass
    return h.hexdigest()[:12]
