"""Both towers: `towers: [image, text]` on the session's ViT-Toy-16 synthetic run (onnxruntime) adds only
the text jobs, the zero-shot check and the report, and report.json carries the zero-shot figures."""
from pathlib import Path

import numpy as np
import pytest

from pipeline import paths as P
from conftest import E2E_ARCH, E2E_EMBED, E2E_TARGET, E2E_TEXT_TARGET

pytestmark = pytest.mark.e2e

TEXT = {"towers": ["image", "text"]}
LABELS = ["猫", "咖啡", "宇航员", "火箭", "摩托车", "星空"]


def _image_artifacts(root: Path) -> dict[str, tuple[int, int]]:
    arch = root / "results" / E2E_ARCH
    return {str(p.relative_to(arch)): (p.stat().st_mtime_ns, p.stat().st_size) for p in arch.rglob("*")
            if p.is_file() and not {"text", "tokens"} & set(p.relative_to(arch).parts) and ".txt." not in p.name
            and p.name != "zero_shot.json"}


def test_text_tower_adds_only_text_jobs_and_zero_shot_figures(e2e_workflow):
    wf = e2e_workflow
    before = _image_artifacts(wf.root)
    plan = wf.plan("report", config=TEXT)
    plan.pop("all", None)
    # one code path for both towers: the text jobs are the image rules' jobs (infer's twin, text_infer)
    target_jobs = {"compile": 1, "text_infer": 1, "similarity": 1, "zero_shot": 1, "report": 1}
    arch_jobs = {"tokenize_labels": 1, "export_onnx": 1, "fp16_onnx": 1, "text_reference": 3}  # a job per stage: one shard of labels
    # the arch's text jobs are planned unless another test of this session made them already (ascend)
    assert plan == {**arch_jobs, **target_jobs} or (
        plan == target_jobs and (wf.root / P.onnx(E2E_ARCH, "text", "fp16")).is_file())
    try:
        wf.run("report", config=TEXT)
        assert _image_artifacts(wf.root) == before, "image artifacts untouched"
        assert wf.plan("report", config=TEXT) == {}
        onnx_dir = wf.root / "results" / E2E_ARCH / "onnx"
        assert sorted(p.name for p in onnx_dir.iterdir() if ".txt." in p.name) == [
            f"{P.prefix(E2E_ARCH)}.txt.fp16.onnx", f"{P.prefix(E2E_ARCH)}.txt.fp32.onnx",
            f"{P.prefix(E2E_ARCH)}.txt.fp32.onnx.extra_file"]
        ids = np.load(wf.root / P.tokens(E2E_ARCH, "猫"))
        assert ids.dtype == np.int64 and ids.shape == (1, 52)
        assert np.load(wf.root / E2E_TEXT_TARGET.dst("猫")).shape == (1, E2E_EMBED)

        r = wf.report()
        assert r["verdict"] == "PASS"
        assert any("only the agreement" in w for w in r["warnings"])
        target, text = r["targets"]  # the image target and its text twin, each a point of the matrix
        assert (target["tower"], text["tower"]) == ("image", "text")
        assert text["dir"] == E2E_TEXT_TARGET.dir and target["dir"] == E2E_TARGET.dir
        assert all(g["passed"] for g in target["text"]["accuracy"]["gates"])
        assert min(p["cosine_min"] for p in target["text"]["accuracy"]["pairs"]) >= 0.99
        assert any(a["path"] == f"{E2E_TEXT_TARGET.compiled(1)}/model.onnx" for a in target["text"]["artifacts"])
        costs = {row["rule"] for row in r["workflow"]["rules"]}
        assert {"text_infer", "text_reference"} <= costs, "every text job has its benchmark: record, as its image twin"
        z = target["zero_shot"]
        assert z["labels"] == LABELS and z["images"] == ["chelsea", "rocket"] and z["reference"] == "torch_fp32"
        assert set(z["stages"]) == {"onnx_fp16", "offline"}
        for stage, m in z["stages"].items():
            assert m["top1_agreement"] == 1.0 and m["image_to_text_recall1_agreement"] == 1.0
            assert m["text_to_image_recall1_agreement"] == 1.0 and m["spearman_min"] >= 0.99
            assert 0 <= m["max_prob_change"] <= 0.01, (stage, m["max_prob_change"])
        assert all(g["passed"] and g["threshold"] == 0.01 for g in z["gates"])
        assert {p["label"] for p in z["predictions"].values()} <= set(LABELS)
        md = (wf.root / "results" / "report.md").read_text()
        html = (wf.root / "results" / "report.html").read_text()
        assert "## Zero-shot and retrieval" in md and "only agreement is checked" in md
        assert 'id="zero-shot"' in html and "predicted label" not in md  # labels shown for real weights only

        # a bound below the measured change fails the run (report still written); only zero_shot reruns
        strict = {**TEXT, "gates": {"zero_shot_max_prob_change": 1e-12}}
        plan = wf.plan("report", config=strict)
        plan.pop("all", None)
        assert plan == {"zero_shot": 1, "report": 1}
        failed = wf.run("report", config=strict, check=False)
        assert failed.returncode != 0 and "zero-shot" in failed.stdout + failed.stderr
        assert wf.report()["verdict"] == "FAIL"
    finally:
        wf.run("report")
    r = wf.report()
    assert r["verdict"] == "PASS" and "zero_shot" not in r["targets"][0]

