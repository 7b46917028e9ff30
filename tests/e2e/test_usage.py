"""Every way a user runs the workflow: one target at a time (as a file or a rule), a dry run that
writes nothing in any state, and a second run that meets a live one (on this host, or from another
PID namespace: what a second login node, a container or a cluster job step on another node sees)."""
import json
import os
import shutil
import signal
import subprocess

import pytest

from pipeline import paths as P
from conftest import (E2E_ARCH, E2E_TARGET, SNAKEMAKE, Workflow, copy_workflow, kill_run, standin_env,
                      start_run_until, tree_hash)

pytestmark = pytest.mark.e2e

NEW_CHIP = "Ascend910B3"
NEW_CHIP_COMPILE = P.Target(E2E_ARCH, "image", "ascend", NEW_CHIP, "fp16").manifest(1)
FAIL_REPORT = {"verdict": "FAIL", "targets": [], "note": "an older run's report whose gates failed"}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, e2e_images):
    """A fresh copy (nothing built), with a FAIL report from an earlier run lying in results/."""
    root = copy_workflow(tmp_path_factory.mktemp("fresh"))
    env = standin_env(tmp_path_factory.mktemp("standins") / "calls.jsonl")
    wf = Workflow(root, {"model_arch": E2E_ARCH, "images": str(e2e_images), "loop": 3, "warmup": 1}, env=env)
    (root / "results").mkdir()
    (root / "results" / "report.json").write_text(json.dumps(FAIL_REPORT))
    return wf


def test_dry_run_of_a_fresh_copy_writes_nothing(fresh):
    before = tree_hash(fresh.root)
    assert fresh.plan("report")["report"] == 1
    assert tree_hash(fresh.root) == before


@pytest.mark.parametrize("target,config", [
    (P.checkpoint_info(E2E_ARCH), {}),
    (E2E_TARGET.dst("chelsea"), {}),
    (E2E_TARGET.similarity(), {}),
    (NEW_CHIP_COMPILE, {"backend": "ascend", "soc_version": NEW_CHIP}),
], ids=["checkpoint", "dst", "similarity", "compile-new-chip"])
def test_a_single_target_builds_and_exits_0_beside_a_failed_report(fresh, target, config):
    if target == NEW_CHIP_COMPILE:
        # the ONNX models exist by now (dst): a new chip plans that one compile, nothing else
        assert fresh.plan(target, config=config) == {"compile": 1}
    result = fresh.run(target, config=config, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (fresh.root / target).is_file()
    assert json.loads((fresh.root / "results" / "report.json").read_text()) == FAIL_REPORT, \
        "a single target must neither read nor rewrite the report"
    assert "FAIL" not in result.stdout + result.stderr


def test_dry_run_of_a_complete_run_writes_nothing(e2e_workflow):
    before = tree_hash(e2e_workflow.root)
    assert e2e_workflow.plan("report") == {}
    assert tree_hash(e2e_workflow.root) == before


def unshare(*cmd: str) -> list[str]:
    """`cmd` in a new PID namespace with its own /proc: the live run's pid does not exist there."""
    return ["unshare", "--pid", "--fork", "--mount-proc", *cmd]


@pytest.fixture
def live_run(e2e_workflow):
    """A real run busy in its benchmark job, stopped (SIGSTOP) so that it changes no file while the
    test looks; continued and finished afterwards."""
    log = E2E_TARGET.log("benchmark_bs1")
    proc = start_run_until(e2e_workflow, "timed runs", log, "--forcerun", "benchmark", config={"loop": 100000})
    os.killpg(proc.pid, signal.SIGSTOP)
    yield proc
    kill_run(proc)
    e2e_workflow.run("report")  # the copy as the other tests expect it


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_a_live_run_is_never_touched_by_a_dry_run_or_a_run_from_another_pid_namespace(e2e_workflow, live_run):
    root = e2e_workflow.root
    locks = sorted(p.name for p in (root / ".snakemake" / "locks").iterdir())
    assert locks, "the live run holds Snakemake's lock"
    before = tree_hash(root)
    e2e_workflow.run("-n", "report")
    assert tree_hash(root) == before, "a dry run beside a live run changed files"
    try:
        seen = subprocess.run(unshare(SNAKEMAKE, "-n", "report", *e2e_workflow.args({"loop": 100000})), cwd=root,
                              capture_output=True, text=True, timeout=300)
    except PermissionError as exc:  # pragma: no cover - unshare needs root or user namespaces
        pytest.skip(f"unshare not permitted here: {exc}")
    if "unshare failed" in seen.stderr or "Operation not permitted" in seen.stderr:
        pytest.skip(f"unshare not permitted here: {seen.stderr.strip()}")
    assert "Removed the lock" not in seen.stdout + seen.stderr
    assert tree_hash(root) == before, "a dry run from another PID namespace changed files"
    real = subprocess.run(unshare(SNAKEMAKE, "-c1", "report", *e2e_workflow.args({"loop": 100000})), cwd=root,
                          capture_output=True, text=True, timeout=300)
    out = real.stdout + real.stderr
    assert real.returncode != 0, "a second real run must not start beside a live one"
    assert "Removed the lock" not in out
    assert f"pid {live_run.pid} on host" in out, "our line says which run holds the directory"
    assert "LockException" in out or "cannot be locked" in out, "Snakemake's own lock error"
    assert sorted(p.name for p in (root / ".snakemake" / "locks").iterdir()) == locks
    assert tree_hash(root) == before
    # the live run goes on and finishes as if nothing had happened
    os.killpg(live_run.pid, signal.SIGCONT)
