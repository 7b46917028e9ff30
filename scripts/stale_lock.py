"""Let the plain README command go on after `kill -9`: Snakemake's directory lock outlives a killed
run, and Snakemake cannot tell a dead owner from a live one. The workflow records the pid of the run
holding the lock (onstart) and forgets it when the run ends (onsuccess/onerror); at the next start,
a lock whose recorded owner is no longer a running Snakemake is removed, with a message. A lock held
by a live run, or one this workflow did not record, is left for Snakemake to report.

A killed job's outputs are gone (Snakemake removes them before a job runs), and Snakemake does not
remake a missing intermediate file while everything downstream of it looks up to date (by design
since 7.7, snakemake/snakemake#1978): after `kill -9` during a rerun of, say, export_onnx, the next
run would do nothing and leave the fp32 ONNX missing. Snakemake's marker of each started job's
outputs (.snakemake/incomplete/) survives the kill. lost_outputs() reads it, and restore_placeholders()
puts an empty placeholder where each lost output was: the state Snakemake knows from a job killed
mid-write (an output present and marked incomplete), which `rerun-incomplete` (set in the profile)
remakes, with everything made from it.
"""
import os
from base64 import urlsafe_b64decode
from pathlib import Path

RECORD = Path(".snakemake") / "cnclip-lock-owner"
LOCKS = Path(".snakemake") / "locks"
INCOMPLETE = Path(".snakemake") / "incomplete"


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


def lost_outputs(root: str | os.PathLike = ".") -> list[str]:
    """Outputs of jobs that were started and never finished (Snakemake's incomplete markers: the
    urlsafe-base64 of the path, split into '@'-prefixed folders when longer than a file name may be)
    and that no longer exist, relative to `root` as the jobs named them."""
    root = Path(root)
    folder = root / INCOMPLETE
    if not folder.is_dir():
        return []
    lost = []
    for marker in folder.rglob("*"):
        if not marker.is_file() or marker.name == "migration_underway":
            continue
        encoded = "".join(part.lstrip("@") for part in marker.relative_to(folder).parts)
        try:
            path = urlsafe_b64decode(encoded).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if not (root / path).exists():
            lost.append(path)
    return sorted(lost)


def lock_is_free(root: str | os.PathLike = ".") -> bool:
    """No run holds the directory (after clear_stale_lock): no job of a live run is in flight."""
    locks = Path(root) / LOCKS
    return not (locks.is_dir() and any(locks.glob("*.lock")))


def restore_placeholders(lost: dict[str, str], root: str | os.PathLike = ".") -> None:
    """An empty file (or folder, for directory outputs) at each lost output {path: "file"|"dir"}."""
    for path, kind in lost.items():
        target = Path(root) / path
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
