import subprocess
import sys

import stale_lock


def make_lock(root, pid):
    (root / ".snakemake" / "locks").mkdir(parents=True)
    (root / ".snakemake" / "locks" / "0.output.lock").write_text("x")
    (root / stale_lock.RECORD).write_text(str(pid))


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_of_a_dead_run_is_removed(tmp_path):
    make_lock(tmp_path, dead_pid())
    assert stale_lock.clear_stale_lock(tmp_path)
    assert not list((tmp_path / ".snakemake" / "locks").iterdir())
    assert not (tmp_path / stale_lock.RECORD).exists()


def test_lock_of_a_live_snakemake_is_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import sys, time; print(flush=True); time.sleep(30)", "snakemake"],
                            stdout=subprocess.PIPE)
    try:
        live.stdout.readline()  # the child has exec'd: its command line is its own, not pytest's
        make_lock(tmp_path, live.pid)
        assert not stale_lock.clear_stale_lock(tmp_path)
        assert (tmp_path / ".snakemake" / "locks" / "0.output.lock").exists()
    finally:
        live.kill()
        live.wait()


def test_unrecorded_lock_is_left_to_snakemake(tmp_path):
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.output.lock").write_text("x")
    assert not stale_lock.clear_stale_lock(tmp_path)
    assert (tmp_path / ".snakemake" / "locks" / "0.output.lock").exists()


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


def test_no_placeholders_while_a_run_holds_the_directory(tmp_path):
    assert stale_lock.lock_is_free(tmp_path)
    make_lock(tmp_path, 1)
    assert not stale_lock.lock_is_free(tmp_path)
