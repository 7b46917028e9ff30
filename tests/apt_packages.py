"""Debian packages the tests need (Slurm, munge, Chromium), installed with apt-get when missing (not a
test module). The suite runs on several workers at once (pytest-xdist) and two of them may ask for
packages together: one apt-get at a time, under a file lock every worker shares, and apt's own lock
timeout for any other session installing at the same time."""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
# per user: another user's lock file in /tmp is not ours to open (their sessions wait on apt's own lock)
LOCK = Path(tempfile.gettempdir()) / f"cnclip-tests-apt-{os.getuid()}.lock"


class AptUnavailable(RuntimeError):
    """The packages cannot be installed here (no apt, no mirror, not root): the reason, verbatim."""


def which(name: str) -> str | None:
    return shutil.which(name, path=SBIN_PATH)


def apt_install(packages: tuple[str, ...], tools: tuple[str, ...], recommends: bool = False,
                timeout: int = 1200) -> None:
    """`apt-get install packages` (their recommended packages too if `recommends`) unless every one of
    `tools` is already on the PATH (or in sbin).
    Raises AptUnavailable with the failing command and its output, or the tools still missing."""
    if all(which(tool) for tool in tools):
        return
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "PATH": SBIN_PATH}
    lock = ["-o", "DPkg::Lock::Timeout=600"]  # another session may be installing at the same time
    with LOCK.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another worker of this session: wait for its install
        if all(which(tool) for tool in tools):
            return
        for cmd in (["apt-get", *lock, "update"],
                    ["apt-get", *lock, "install", "-y", *([] if recommends else ["--no-install-recommends"]), *packages]):
            try:
                done = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise AptUnavailable(f"`{' '.join(prefix + cmd)}` could not run: {exc}") from exc
            if done.returncode != 0:
                raise AptUnavailable(f"`{' '.join(prefix + cmd)}` exited {done.returncode}: "
                                     f"{(done.stderr or done.stdout).strip()[-600:]}")
    missing = [tool for tool in tools if not which(tool)]
    if missing:
        raise AptUnavailable(f"after installing {' '.join(packages)}: {', '.join(missing)} not found")
