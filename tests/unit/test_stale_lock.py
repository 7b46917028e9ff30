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
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "snakemake"])
    try:
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
