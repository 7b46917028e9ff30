"""Issue 15 end to end: the overflow checkpoint variant (scripts/model/variants.py: one image block's
MLP scaled so its activations pass fp16's 65504) deployed on an Ascend target (stand-in atc and ais_bench;
the stand-in stores fp16 between nodes like an NPU, STANDIN_AIS_BENCH_FP16_STORAGE=1) with `repair: true`
and `locate_npu_dump: true` (locate reads the stand-in ais_bench's dump of the NPU's tensors).
The target misses its gate, the workflow locates it to the scaled block by itself in the same run (the
measured cause, and the first jump of the NPU's own tensors) and repairs it: the nodes kept in fp32 are
that block's, the repaired model passes, ATC's --keep_dtype file names them, and the report shows both
sections.

ONNX Runtime's own CPU computes most fp16 nodes in fp32 (docs/accuracy.md), so an onnxruntime fp16 target
of this checkpoint passes its gates as deployed: the case is shown on the Ascend path, where the fp16
ONNX with fp16 storage is the proxy of ATC's fp16 computation."""
import json
import os
from pathlib import Path

import pytest

from conftest import E2E_ARCH, Workflow, copy_workflow, standin_env
from pipeline.paths import Target, checkpoint_path

pytestmark = pytest.mark.e2e

TARGET = Target(E2E_ARCH, "image", "ascend", "Ascend910B4", "fp16")


@pytest.fixture(scope="module")
def overflow_run(tmp_path_factory, e2e_images):
    from model.variants import write_variant_checkpoint

    root = copy_workflow(tmp_path_factory.mktemp("overflow"))
    log = tmp_path_factory.mktemp("standins") / "calls.jsonl"
    env = {**standin_env(log), "STANDIN_AIS_BENCH_FP16_STORAGE": "1"}
    base = {"model_arch": E2E_ARCH, "images": str(e2e_images), "loop": 1, "warmup": 0, "baseline_loop": 1}
    wf = Workflow(root, base, env=env)
    ordinary = checkpoint_path("synthetic", E2E_ARCH, 0)
    wf.run(ordinary)
    variant = root / "resources" / "checkpoints" / "overflow" / f"{E2E_ARCH}.pt"
    record = write_variant_checkpoint(root / ordinary, variant, E2E_ARCH, "fp16_overflow")
    wf.config.update(checkpoint=str(variant), backend="ascend", repair=True, locate_npu_dump=True)
    result = wf.run("report", check=False)
    return wf, record, result


def test_the_overflow_variant_misses_its_gate_is_located_and_repaired_by_itself(overflow_run):
    wf, record, result = overflow_run
    out = result.stdout + result.stderr
    assert result.returncode == 1 and "accuracy gates missed" in out, out[-3000:]
    assert "rule locate:" in out and "rule repair:" in out
    report = wf.report()
    (t,) = report["targets"]
    assert t["dir"] == TARGET.dir and report["verdict"] == "FAIL"
    assert any(not g["passed"] and g["b"] == "torch_fp32" and g["a"] == "offline" for g in t["accuracy"]["gates"])
    block = record["block"]
    # located: the measured cause is the scaled block; the first jump is in its MLP, the overflow nodes its
    loc = t["locate"]
    assert loc["top_cause"]["unit"] == f"resblocks.{block}" and loc["causes"]["units"][0]["error"] == 2.0
    # the node-by-node view from the NPU's own tensors: the (stand-in) ais_bench's dump, in its real layout
    assert "device's own tensors" in loc["source"] and loc["inputs"] == 1
    calls = [json.loads(line) for line in Path(wf.env["STANDIN_LOG"]).read_text().splitlines()]
    assert any(c["tool"] == "ais_bench" and "--dump" in c["argv"] for c in calls)
    assert loc["first_jump"]["block"] == block and "mlp/c_fc" in loc["first_jump"]["node"], loc["first_jump"]
    assert loc["overflow"] and all(f"resblocks.{block}/" in n for n in loc["overflow_nodes"])
    assert (wf.root / loc["csv"]).stat().st_size > 0 and (wf.root / loc["chart"]).stat().st_size > 0
    # repaired: before fails, after passes vs torch_fp32, only that block's nodes kept in fp32
    rep = t["repair"]
    assert not rep["before"]["passed"] and rep["passed"] and rep["repaired"], rep
    assert rep["after"]["cosine_min"] >= rep["gate"] and rep["after"]["nonfinite"] == 0
    assert rep["kept"] and all(f"resblocks.{block}/" in n for n in rep["kept"])
    assert rep["kept_units"] == [f"resblocks.{block}"] and rep["grown"] == 1 and rep["shrunk"] > 0
    keep_dtype = wf.root / TARGET.repair("kept")  # ATC's --keep_dtype file: the kept nodes and their closure
    assert keep_dtype.read_text().splitlines() == rep["kept"] + rep["closure"]
    assert rep["closure"] and all(f"resblocks.{block}/" in n for n in rep["closure"])
    # ATC-ready: the command repair gives builds the repaired .om through the stand-in atc, which fails a
    # --keep_dtype file naming an operator the graph does not have (E10042), as GraphEngine does
    import subprocess

    done = subprocess.run(rep["kept_command"], capture_output=True, text=True, cwd=wf.root,
                          env={**os.environ, **wf.env})
    assert done.returncode == 0 and "ATC run success" in done.stdout, done.stdout[-2000:]
    saved = json.loads((wf.root / TARGET.repair("json")).read_text())
    assert saved["kept"] == rep["kept"] and (wf.root / TARGET.repair("model") / "model.onnx").stat().st_size > 0
    md = (wf.root / "results" / "report.md").read_text()
    assert "### Where accuracy is lost (locate)" in md and "### Repair (nodes kept in fp32)" in md
    assert "where accuracy is lost (locate)" in (wf.root / "results" / "report.html").read_text()


def test_a_rerun_plans_nothing_new(overflow_run):
    wf, _, _ = overflow_run
    assert wf.plan("report") == {}
