"""kill -9 halfway through a step that had run before (so everything downstream of it exists and
looks up to date): a dry run then changes nothing and says what the next real run makes again, and
the plain README command completes, making the killed step's outputs again, byte-identical (the
profile sets rerun-incomplete; the Snakefile restores lost outputs as incomplete placeholders)."""
import pytest

from pipeline.common import sha256
from pipeline import paths as P
from conftest import E2E_ARCH, E2E_TARGET, kill_run, start_run_until, tree_hash

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("rule,log,marker,artifact", [
    ("export_onnx", P.log(P.onnx(E2E_ARCH, "image", "fp32")), "exporting the vision",
     P.onnx_data(E2E_ARCH, "image")),
    ("compile", E2E_TARGET.log("compile_bs1"), "optimising", f"{E2E_TARGET.compiled(1)}/model.onnx.data"),
    ("benchmark", E2E_TARGET.log("benchmark_bs1"), "timed runs", P.npy(E2E_ARCH, "chelsea")),
])
def test_killed_run_completes_on_the_next_plain_run(e2e_workflow, rule, log, marker, artifact):
    before = sha256(e2e_workflow.root / artifact)
    kill_run(start_run_until(e2e_workflow, marker, log, "--forcerun", rule))
    tree = tree_hash(e2e_workflow.root)
    dry = e2e_workflow.run("-n", "report")
    assert tree_hash(e2e_workflow.root) == tree, "a dry run after kill -9 changed files"
    if rule == "export_onnx":  # its outputs were removed before the kill: the dry run says so
        assert "the next real run makes them again" in dry.stdout + dry.stderr
    e2e_workflow.run("report")
    assert e2e_workflow.report()["verdict"] == "PASS"
    assert sha256(e2e_workflow.root / artifact) == before
    assert not list((e2e_workflow.root / "results").rglob(".export-*"))
    assert not list((e2e_workflow.root / "results").rglob(".compile-*"))
    assert e2e_workflow.plan("report") == {}
