"""Let the plain README command go on after `kill -9`: Snakemake's directory lock outlives a killed
run, and Snakemake cannot tell a dead owner from a live one. The workflow records the pid of the run
holding the lock (onstart) and forgets it when the run ends (onsuccess/onerror); at the next start,
a lock whose recorded owner is no longer a running Snakemake is removed, with a message. A lock held
by a live run, or one this workflow did not record, is left for Snakemake to report."""
import os
from pathlib import Path

RECORD = Path(".snakemake") / "cnclip-lock-owner"
LOCKS = Path(".snakemake") / "locks"


def _is_running_snakemake(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"snakemake" in cmdline


def record_owner(root: str | os.PathLike = ".") -> None:
    path = Path(root) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def forget_owner(root: str | os.PathLike = ".") -> None:
    (Path(root) / RECORD).unlink(missing_ok=True)


def clear_stale_lock(root: str | os.PathLike = ".") -> bool:
    """Remove the locks of a killed run; True when something was removed."""
    root = Path(root)
    record, locks = root / RECORD, root / LOCKS
    if not record.is_file():
        return False
    try:
        pid = int(record.read_text().strip())
    except ValueError:
        pid = -1
    if pid == os.getpid() or (pid > 0 and _is_running_snakemake(pid)):
        return False
    removed = [p for p in locks.glob("*.lock")] if locks.is_dir() else []
    for lock in removed:
        lock.unlink(missing_ok=True)
    record.unlink(missing_ok=True)
    if removed:
        print(f"Removed the lock of an interrupted run (pid {pid} is gone); its incomplete jobs will be redone.")
    return bool(removed)
