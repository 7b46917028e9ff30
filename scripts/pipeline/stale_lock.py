"""Let the plain README command go on after `kill -9`, without ever touching a live run.

Snakemake's directory lock (.snakemake/locks/) outlives a killed run, and Snakemake cannot tell a
dead owner from a live one. The main process of every real run of this workflow takes an exclusive
`flock` on .snakemake/cnclip-run.lock at parse time and holds it for its whole life; the kernel
drops it when the process dies, whatever killed it. Once Snakemake holds the directory (onstart),
the run records who it is: host name, boot id, PID namespace, pid and the pid's start time.

At the next start, recovery happens only when the recorded owner is provably dead:
- this process got the flock (no live run of this workflow on this kernel holds it), and
- the record names this host, this boot and this PID namespace (a run seen from another node, a
  container or `unshare --pid` is never judged: its pid means nothing here), and
- the recorded pid is gone, or is now another process (its start time differs).
Then Snakemake's stale locks are removed, with a message. Anything else (a live run, a run on another
host, locks that no run of ours recorded) is left to Snakemake's own lock error, with one line of ours
saying who holds the directory. None of this runs in a dry run or in a job step (`--mode remote` or
`subprocess`): those never write.

A killed job's outputs are gone (Snakemake removes them before a job runs), and Snakemake does not
remake a missing intermediate file while everything downstream of it looks up to date (by design
since 7.7, snakemake/snakemake#1978). Snakemake's marker of each started job's outputs
(.snakemake/incomplete/) survives the kill: lost_outputs() reads it, and restore_placeholders() puts
an empty placeholder where each lost output was, the state `rerun-incomplete` (set in the profile)
remakes. Placeholders are planted only by a run that holds the flock while no Snakemake lock remains,
so no live run has a job in flight.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
from base64 import urlsafe_b64decode
from pathlib import Path

RECORD = Path(".snakemake") / "cnclip-lock-owner"
RUN_LOCK = Path(".snakemake") / "cnclip-run.lock"
LOCKS = Path(".snakemake") / "locks"
INCOMPLETE = Path(".snakemake") / "incomplete"

_held: dict[str, int] = {}  # resolved RUN_LOCK path -> open descriptor, kept for the process's life


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The pid's start time in clock ticks since boot (/proc/<pid>/stat field 22), or None when gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie is gone for our purposes


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def identity(pid: int | None = None) -> dict:
    """Who a process is, in terms another process can check: host, boot, PID namespace, pid, start."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "boot_id": _read("/proc/sys/kernel/random/boot_id"),
            "pid_namespace": _pid_namespace(), "pid": pid, "start_time": _start_time(pid)}


def _same_machine(record: dict, me: dict) -> bool:
    return all(record.get(k) == me[k] and me[k] is not None for k in ("host", "boot_id", "pid_namespace"))


def describe(record: dict) -> str:
    return f"pid {record.get('pid')} on host {record.get('host')}"


def hold_run_lock(root: str | os.PathLike = ".") -> bool | None:
    """Take the run flock for the rest of this process's life. True: taken (or already ours); False:
    a live process holds it; None: this file system cannot lock (recovery is then never automatic)."""
    path = (Path(root) / RUN_LOCK).resolve()
    if str(path) in _held:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    except OSError:
        os.close(fd)
        return None
    _held[str(path)] = fd
    return True


def read_record(root: str | os.PathLike = ".") -> dict | None:
    text = _read(str(Path(root) / RECORD))
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def record_owner(root: str | os.PathLike = ".") -> None:
    path = Path(root) / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(identity()))
    os.replace(tmp, path)


def forget_owner(root: str | os.PathLike = ".") -> None:
    """Remove the record if it is this process's own (a concurrent run's record is left alone)."""
    record = read_record(root)
    if record is not None and record.get("pid") == os.getpid() and _same_machine(record, identity()):
        (Path(root) / RECORD).unlink(missing_ok=True)


def _locks(root) -> list[Path]:
    locks = Path(root) / LOCKS
    return sorted(locks.glob("*.lock")) if locks.is_dir() else []


def owner_is_dead(record: dict, got_flock: bool | None) -> bool:
    """Provably dead: we hold the flock, the record is of this host/boot/PID namespace, and its pid
    is gone or now belongs to another process."""
    me = identity()
    if got_flock is not True or not _same_machine(record, me) or not isinstance(record.get("pid"), int):
        return False
    if record["pid"] == me["pid"]:
        return False
    now = _start_time(record["pid"])
    return now is None or now != record.get("start_time")


def clear_stale_lock(root: str | os.PathLike = ".", got_flock: bool | None = None) -> str:
    """Remove the locks of a provably dead run. Returns what was found: "free" (no locks), "cleared",
    "live" (held by a live or unprovable run: left to Snakemake, with a line saying who) or
    "unknown" (locks no run of ours recorded: left to Snakemake)."""
    root = Path(root)
    if got_flock is None:
        got_flock = hold_run_lock(root)
    locks, record = _locks(root), read_record(root)
    if record is not None and owner_is_dead(record, got_flock):
        for lock in locks:
            lock.unlink(missing_ok=True)
        (root / RECORD).unlink(missing_ok=True)
        if locks:
            print(f"Removed the lock of an interrupted run ({describe(record)} is gone); its incomplete jobs "
                  f"will be redone.")
            return "cleared"
        return "free"
    if not locks:
        return "free"
    if record:
        where = "this host" if _same_machine(record, identity()) else "another host or PID namespace"
        print(f"This directory is held by a run of this workflow ({describe(record)}, {where}). Wait for it "
              f"to end; if it is gone for good, run `snakemake --unlock` once, then start again.")
        return "live"
    return "unknown"


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


def restore_placeholders(lost: dict[str, str], root: str | os.PathLike = ".") -> None:
    """An empty file (or folder, for directory outputs) at each lost output {path: "file"|"dir"}."""
    for path, kind in lost.items():
        target = Path(root) / path
        if kind == "dir":
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()


def recover(output_kind, dry_run: bool, main_process: bool, root: str | os.PathLike = ".") -> dict[str, str]:
    """What the Snakefile runs at parse time. A real run's main process clears a provably dead run's
    locks and restores the outputs its jobs lost ({path: kind}, where output_kind(path) says whether
    this config's jobs make it). A dry run only says what the next real run would do; a job step does
    nothing. Returns the placeholders planted."""
    if not main_process:
        return {}
    if dry_run:
        lost = {f: k for f in lost_outputs(root) if (k := output_kind(f))}
        if lost:
            print("An interrupted run left these unfinished; the next real run makes them again:",
                  *lost, sep="\n  ")
        return {}
    got = hold_run_lock(root)
    state = clear_stale_lock(root, got)
    if got is not True or state not in ("free", "cleared") or _locks(root):
        return {}
    lost = {f: k for f in lost_outputs(root) if (k := output_kind(f))}
    if lost:
        print("Making again what an interrupted run left unfinished:", *lost, sep="\n  ")
        restore_placeholders(lost, root)
    return lost



def output_kind(path: str, rules, wildcard_values: dict) -> str | None:
    """ "dir" or "file" when a job of this config's run makes `path` (a directory() output or not), else
    None (the first rule with a matching output decides; `wildcard_values`: the values this run's jobs
    take, pipeline.matrix.Matrix.wildcard_values). What recover() asks of each lost output."""
    from snakemake.io import is_flagged

    for producer in rules:
        for out in producer.output:
            if out.match(path):
                wildcards = producer.get_wildcards(path)
                if all(v in wildcard_values.get(k, {v}) for k, v in wildcards.items()):
                    return "dir" if is_flagged(out, "directory") else "file"
                return None
    return None
