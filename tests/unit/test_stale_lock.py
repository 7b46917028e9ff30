"""Lock recovery acts only on a provably dead run of this host; a dry run and a job step never write."""
import hashlib
import json
import os
import subprocess
import sys

from pipeline import stale_lock


def make_lock(root, record: dict | None):
    (root / ".snakemake" / "locks").mkdir(parents=True, exist_ok=True)
    (root / ".snakemake" / "locks" / "0.output.lock").write_text("x")
    if record is not None:
        (root / stale_lock.RECORD).write_text(json.dumps(record))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def locked(root):
    return (root / ".snakemake" / "locks" / "0.output.lock").exists()


def tree_hash(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_lock_of_a_dead_run_of_this_host_is_removed(tmp_path, capsys):
    make_lock(tmp_path, stale_lock.identity(dead_pid()))
    assert stale_lock.clear_stale_lock(tmp_path) == "cleared"
    assert not locked(tmp_path) and not (tmp_path / stale_lock.RECORD).exists()
    assert "Removed the lock of an interrupted run" in capsys.readouterr().out


def test_pid_taken_by_another_process_counts_as_dead(tmp_path):
    record = stale_lock.identity(os.getppid())  # a live process, but not the one recorded:
    record["start_time"] = "1"  # it started at another time
    make_lock(tmp_path, record)
    assert stale_lock.clear_stale_lock(tmp_path) == "cleared"


def test_a_live_run_holding_the_run_lock_is_never_touched(tmp_path, capsys):
    (tmp_path / ".snakemake").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / stale_lock.RUN_LOCK)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print(flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        holder.stdout.readline()
        make_lock(tmp_path, stale_lock.identity(holder.pid))
        assert stale_lock.clear_stale_lock(tmp_path) == "live"
        assert locked(tmp_path) and (tmp_path / stale_lock.RECORD).exists()
        assert f"pid {holder.pid} on host" in capsys.readouterr().out
        # even with a dead pid in the record, a held run lock means a live run of this workflow
        make_lock(tmp_path, stale_lock.identity(dead_pid()))
        assert stale_lock.clear_stale_lock(tmp_path) == "live" and locked(tmp_path)
    finally:
        holder.kill()
        holder.wait()


def test_a_run_on_another_host_or_pid_namespace_is_never_judged(tmp_path, capsys):
    for key, value in (("host", "login2"), ("boot_id", "another-boot"), ("pid_namespace", "pid:[1]")):
        record = {**stale_lock.identity(dead_pid()), key: value}
        make_lock(tmp_path, record)
        assert stale_lock.clear_stale_lock(tmp_path) == "live", key
        assert locked(tmp_path)
        assert "another host or PID namespace" in capsys.readouterr().out


def test_unrecorded_lock_is_left_to_snakemake(tmp_path):
    make_lock(tmp_path, None)
    assert stale_lock.clear_stale_lock(tmp_path) == "unknown"
    assert locked(tmp_path)


def incomplete_marker(root, path, name_max=255):
    """Snakemake's marker for an output of a started job (persistence/file.py's layout)."""
    from base64 import urlsafe_b64encode

    encoded = urlsafe_b64encode(path.encode()).decode()
    chunks = [encoded[i:i + name_max - 1] for i in range(0, len(encoded), name_max - 1)]
    marker = root / stale_lock.INCOMPLETE / "/".join(["@" + c for c in chunks[:-1]] + [chunks[-1]])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"external_jobid": null}')


def test_lost_outputs_are_the_missing_outputs_of_unfinished_jobs(tmp_path):
    long = "results/ViT-H-14/reference/onnx_fp16/" + "长" * 90 + ".npy"  # longer than one file name
    for path in ("results/a.onnx", "results/kept.onnx", long):
        incomplete_marker(tmp_path, path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "kept.onnx").write_text("half written")  # present: Snakemake's own case
    assert stale_lock.lost_outputs(tmp_path) == sorted(["results/a.onnx", long])
    stale_lock.restore_placeholders({"results/a.onnx": "file", "results/m/model_bs1": "dir"}, tmp_path)
    assert (tmp_path / "results" / "a.onnx").is_file() and (tmp_path / "results/m/model_bs1").is_dir()
    assert stale_lock.lost_outputs(tmp_path) == [long]


def test_recover_after_a_kill_plants_placeholders_and_clears_the_lock(tmp_path):
    make_lock(tmp_path, stale_lock.identity(dead_pid()))
    incomplete_marker(tmp_path, "results/a.onnx")
    planted = stale_lock.recover(lambda f: "file", dry_run=False, main_process=True, root=tmp_path)
    assert planted == {"results/a.onnx": "file"} and (tmp_path / "results" / "a.onnx").is_file()
    assert not locked(tmp_path)


def test_dry_run_and_job_step_write_nothing(tmp_path, capsys):
    make_lock(tmp_path, stale_lock.identity(dead_pid()))
    incomplete_marker(tmp_path, "results/a.onnx")
    before = tree_hash(tmp_path)
    assert stale_lock.recover(lambda f: "file", dry_run=True, main_process=True, root=tmp_path) == {}
    assert "the next real run makes them again" in capsys.readouterr().out
    assert stale_lock.recover(lambda f: "file", dry_run=False, main_process=False, root=tmp_path) == {}
    assert tree_hash(tmp_path) == before


def test_no_placeholders_while_a_run_of_another_host_holds_the_directory(tmp_path):
    make_lock(tmp_path, {**stale_lock.identity(dead_pid()), "host": "node7"})
    incomplete_marker(tmp_path, "results/a.onnx")
    assert stale_lock.recover(lambda f: "file", dry_run=False, main_process=True, root=tmp_path) == {}
    assert not (tmp_path / "results" / "a.onnx").exists() and locked(tmp_path)


def test_forget_owner_removes_only_its_own_record(tmp_path):
    (tmp_path / ".snakemake").mkdir()
    (tmp_path / stale_lock.RECORD).write_text(json.dumps(stale_lock.identity(os.getppid())))
    stale_lock.forget_owner(tmp_path)
    assert (tmp_path / stale_lock.RECORD).exists()
    stale_lock.record_owner(tmp_path)
    stale_lock.forget_owner(tmp_path)
    assert not (tmp_path / stale_lock.RECORD).exists()
