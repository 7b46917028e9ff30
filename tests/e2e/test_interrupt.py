"""kill -9 halfway through a step that had run before (so everything downstream of it exists and
looks up to date), then the plain README command again: it completes, the killed step's outputs are
made again, and deterministic artifacts come out byte-identical (the profile sets rerun-incomplete;
the Snakefile restores lost outputs as incomplete placeholders)."""
import os
import signal
import subprocess
import time

import pytest

from common import sha256
from conftest import E2E_ARCH, SNAKEMAKE

pytestmark = pytest.mark.e2e


def kill_during(wf, rule: str, log: str, marker: str, timeout: float = 300.0) -> None:
    """Force `rule` to rerun, SIGKILL the whole run (Snakemake and its job) once `marker` is in the
    job's log, and wait until every process of the run is gone."""
    log_path = wf.root / log
    if log_path.exists():
        log_path.unlink()
    proc = subprocess.Popen([SNAKEMAKE, "-c1", "report", "--forcerun", rule, *wf.args()], cwd=wf.root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while marker not in (log_path.read_text() if log_path.exists() else ""):
            assert proc.poll() is None, f"the run ended before '{marker}' appeared in {log}"
            assert time.time() < deadline, f"'{marker}' never appeared in {log}"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.parametrize("rule,log,marker,artifact", [
    ("export_onnx", f"logs/{E2E_ARCH}/export_onnx.vit-b-16.log", "exporting the vision",
     f"results/{E2E_ARCH}/onnx/vit-b-16.img.fp32.onnx.extra_file"),
    ("compile", f"logs/{E2E_ARCH}/onnxruntime/cpu/compile_bs1.log", "optimising",
     f"results/{E2E_ARCH}/onnxruntime/cpu/model_bs1/model.onnx.data"),
    ("benchmark", f"logs/{E2E_ARCH}/onnxruntime/cpu/benchmark_bs1.log", "timed runs",
     f"results/{E2E_ARCH}/npy/chelsea.npy"),
])
def test_killed_run_completes_on_the_next_plain_run(e2e_workflow, rule, log, marker, artifact):
    before = sha256(e2e_workflow.root / artifact)
    kill_during(e2e_workflow, rule, log, marker)
    e2e_workflow.run("report")
    assert e2e_workflow.report()["verdict"] == "PASS"
    assert sha256(e2e_workflow.root / artifact) == before
    assert not list((e2e_workflow.root / "results").rglob(".export-*"))
    assert not list((e2e_workflow.root / "results").rglob(".compile-*"))
    assert e2e_workflow.plan("report") == {}
