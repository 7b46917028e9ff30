"""The real workflow, end to end, on synthetic weights and two images: the contract's files on a real
architecture (contract_workflow, ViT-B-16), the rest on the few-layer ViT-Toy-16 (e2e_workflow)."""
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import CONTRACT_ARCH, CONTRACT_TARGET, E2E_ARCH, E2E_RESOLUTION, E2E_TARGET

pytestmark = pytest.mark.e2e

CONTRACT_PERF_KEYS = {"batch_size", "loop", "throughput_fps", "latency_ms"}


def test_report_has_every_contract_key_and_gates_pass(contract_workflow):
    e2e_workflow = contract_workflow
    r = e2e_workflow.report()
    assert set(r["model"]) >= {"arch", "checkpoint", "checkpoint_sha256", "synthetic"}
    assert r["model"]["arch"] == CONTRACT_ARCH and r["model"]["synthetic"] is True and r["verdict"] == "PASS"
    assert r["warnings"], "synthetic weights must be called out"
    (target,) = [t for t in r["targets"] if t["backend"] == "onnxruntime"]
    assert target["device"] == "cpu"
    for a in target["artifacts"]:
        assert set(a) >= {"path", "bytes", "sha256", "batch_size"} and (e2e_workflow.root / a["path"]).is_file()
    pairs = {(p["a"], p["b"]): p for p in target["accuracy"]["pairs"]}
    assert set(pairs) == {("offline", "onnx_fp16"), ("offline", "torch_fp32"), ("onnx_fp16", "torch_fp32"),
                          ("onnx_fp32", "torch_fp32")}
    for p in pairs.values():
        assert set(p) >= {"cosine_min", "cosine_mean", "max_abs_err", "per_image"}
        assert sorted(p["per_image"]) == ["chelsea", "rocket"]
    assert min(pairs[("offline", "onnx_fp16")]["per_image"].values()) >= 0.999
    assert all(g["passed"] and set(g) >= {"a", "b", "threshold", "passed"} for g in target["accuracy"]["gates"])
    (perf,) = target["performance"]
    assert set(perf) >= CONTRACT_PERF_KEYS and perf["loop"] == 3 and perf["throughput_fps"] > 0
    assert set(perf["latency_ms"]) >= {"mean", "p50", "p90", "p99"}
    (base,) = r["baseline"]["torch_fp32"]
    assert base["batch_size"] == 1 and base["throughput_fps"] > 0 and set(base["latency_ms"]) >= {"mean", "p99"}
    assert {"torch", "onnx", "onnxruntime", "cn-clip", "snakemake"} <= set(r["environment"]["versions"])
    for fmt in ("md", "html"):
        text = (e2e_workflow.root / "results" / f"report.{fmt}").read_text()
        assert "PASS" in text and "SYNTHETIC" in text


def test_onnx_models_follow_the_contract(contract_workflow):
    e2e_workflow = contract_workflow
    onnx_dir = e2e_workflow.root / "results" / CONTRACT_ARCH / "onnx"
    names = sorted(p.name for p in onnx_dir.iterdir() if ".img." in p.name)  # the text tower's sit beside
    assert names == ["vit-b-16.img.fp16.onnx", "vit-b-16.img.fp32.onnx", "vit-b-16.img.fp32.onnx.extra_file"]
    fp32 = onnx.load(str(onnx_dir / names[1]), load_external_data=False)
    locations = {e.value for t in fp32.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"vit-b-16.img.fp32.onnx.extra_file"}, "all fp32 weights in one external data file"
    for name in names[:2]:
        sess = ort.InferenceSession(str(onnx_dir / name), providers=["CPUExecutionProvider"])
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        assert (inp.name, inp.type, out.name, out.type) == ("image", "tensor(float)", "unnorm_image_features",
                                                             "tensor(float)")
        assert isinstance(inp.shape[0], str), "batch axis is symbolic"
        x = np.load(e2e_workflow.root / "results" / CONTRACT_ARCH / "npy" / "chelsea.npy")
        assert sess.run(None, {"image": np.concatenate([x, x])})[0].shape == (2, 512)


def test_npy_and_dst_layout(contract_workflow):
    arch_dir = contract_workflow.root / "results" / CONTRACT_ARCH
    for stem in ("chelsea", "rocket"):
        x = np.load(arch_dir / "npy" / f"{stem}.npy")
        assert x.dtype == np.float32 and x.shape == (1, 3, 224, 224)
        assert np.load(contract_workflow.root / CONTRACT_TARGET.dst(stem)).shape == (1, 512)


def test_nothing_to_do_after_a_complete_run(e2e_workflow):
    assert e2e_workflow.plan("report") == {}


def test_loop_change_plans_only_benchmark_and_report(e2e_workflow):
    plan = e2e_workflow.plan("report", config={"loop": 20})
    plan.pop("all", None)
    assert plan == {"benchmark": 1, "report": 1}


def test_new_image_plans_only_its_own_jobs_and_aggregates(e2e_workflow):
    from sample_images import sample_image_source

    new_image = Path(e2e_workflow.config["images"]) / "coffee.png"
    shutil.copyfile(sample_image_source("coffee.png"), new_image)
    try:
        plan = e2e_workflow.plan("report")
    finally:
        new_image.unlink()
    assert plan == {"preprocess": 1, "reference": 3, "infer": 1, "similarity": 1, "benchmark": 1, "report": 1}


def test_missed_gate_fails_the_run_but_writes_the_report(e2e_workflow):
    strict = {"gates": {"offline_vs_onnx_fp16": 1.0, "vs_torch_fp32": 1.0}}
    try:
        result = e2e_workflow.run("report", config=strict, check=False)
        assert result.returncode != 0
        assert "FAIL" in result.stdout + result.stderr
        r = e2e_workflow.report()
        assert r["verdict"] == "FAIL"
        assert "FAIL" in (e2e_workflow.root / "results" / "report.md").read_text()
    finally:
        e2e_workflow.run("report")
    assert e2e_workflow.report()["verdict"] == "PASS"


def test_shell_metacharacters_in_image_names_reach_no_shell(e2e_workflow, tmp_path):
    from PIL import Image

    from conftest import Workflow

    images = tmp_path / "hostile names"
    images.mkdir()
    stems = ["$(touch pwned)", "a;b", "'q'", "空 格", "`touch pwned2`"]
    for stem in stems:
        Image.new("RGB", (32, 24), (200, 30, 30)).save(images / f"{stem}.jpg")
    wf = Workflow(e2e_workflow.root, {**e2e_workflow.config, "images": str(images)})
    wf.run(*[f"results/{E2E_ARCH}/npy/{stem}.npy" for stem in stems])
    for stem in stems:
        assert np.load(e2e_workflow.root / "results" / E2E_ARCH / "npy" / f"{stem}.npy").shape == \
            (1, 3, E2E_RESOLUTION, E2E_RESOLUTION)
    for where in (e2e_workflow.root, images, tmp_path):
        assert not (where / "pwned").exists() and not (where / "pwned2").exists()


def test_bad_files_stop_the_run_or_are_skipped_and_listed_in_the_report(e2e_workflow):
    images = Path(e2e_workflow.config["images"])
    (images / "zero.jpg").write_bytes(b"")
    (images / "page.png").write_text("<html><body>not a picture</body></html>")
    try:
        stopped = e2e_workflow.run("report", check=False)
        out = stopped.stdout + stopped.stderr
        assert stopped.returncode != 0 and "zero.jpg" in out and "page.png" in out and "skip_bad_images" in out
        assert e2e_workflow.plan("report", config={"skip_bad_images": True}) == {"report": 1}
        e2e_workflow.run("report", config={"skip_bad_images": True})
        r = e2e_workflow.report()
        assert sorted(Path(s["path"]).name for s in r["inputs"]["skipped"]) == ["page.png", "zero.jpg"]
        assert any("skipped" in w for w in r["warnings"])
        md = (e2e_workflow.root / "results" / "report.md").read_text()
        html = (e2e_workflow.root / "results" / "report.html").read_text()
        assert "## Skipped input files" in md and "zero.jpg" in md and "page.png" in html
    finally:
        (images / "zero.jpg").unlink()
        (images / "page.png").unlink()
        e2e_workflow.run("report")
    assert e2e_workflow.report()["inputs"]["skipped"] == []


def test_report_shows_each_rules_time_and_peak_memory(e2e_workflow):
    costs = {row["rule"]: row for row in e2e_workflow.report()["workflow"]["rules"]}
    assert {"synthetic_checkpoint", "export_onnx", "fp16_onnx", "reference", "compile", "infer", "benchmark"} <= set(costs)
    assert costs["reference"]["jobs"] == 3  # three stages, each a job for the one shard of two images
    assert costs["preprocess"]["jobs"] == 1
    assert costs["export_onnx"]["peak_rss_mb"] > 300 and costs["export_onnx"]["wall_s"] > 0
    assert "## Workflow cost" in (e2e_workflow.root / "results" / "report.md").read_text()


def test_a_second_architecture_plans_only_its_own_jobs_and_the_report(e2e_workflow):
    plan = e2e_workflow.plan("report", config={"model_archs": [E2E_ARCH, "ViT-L-14"]})
    # in a matrix of architectures, the sharded rules carry the architecture in their names
    assert plan == {"synthetic_checkpoint": 1, "checkpoint_info": 1, "preprocess_ViT-L-14": 1, "export_onnx": 1,
                    "fp16_onnx": 1, "reference_ViT-L-14": 3, "compile": 1, "infer": 1, "similarity": 1, "benchmark": 1,
                    "report": 1}
    # the same single arch spelt as a list: nothing is rebuilt, the report only records the new spelling
    assert e2e_workflow.plan("report", config={"model_archs": [E2E_ARCH]}) == {"report": 1}


def test_bench_summary_prints_rule_costs_and_speed_per_batch_size(e2e_workflow):
    import subprocess
    import sys

    from conftest import REPO

    out = subprocess.run([sys.executable, str(REPO / "bench" / "summary.py"), str(e2e_workflow.root / "results" / "report.json")],
                         capture_output=True, text=True, check=True).stdout
    assert "| export_onnx | 1 |" in out and "| reference | 3 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| onnxruntime/cpu | 1 |"))
    assert row.count("|") == 10 and "x |" in row and "%" in row


def test_precisions_are_targets_side_by_side_and_a_list_change_builds_only_new_points(e2e_workflow):
    from pipeline import paths as P

    both = {"precisions": ["fp32", "fp16"]}
    assert e2e_workflow.plan("report", config=both) == {"compile": 1, "infer": 1, "similarity": 1, "benchmark": 1,
                                                       "locate": 1, "report": 1}  # locate: fp16 is reduced
    fp16 = P.Target(E2E_ARCH, "image", "onnxruntime", "cpu", "fp16")
    try:
        e2e_workflow.run("report", config=both)
        r = e2e_workflow.report()
        assert [(t["precision"], t["dir"]) for t in r["targets"]] == [("fp32", E2E_TARGET.dir), ("fp16", fp16.dir)]
        assert all(g["passed"] for t in r["targets"] for g in t["accuracy"]["gates"])
        assert (e2e_workflow.root / "results" / "report" / "accuracy_vs_speed.png").stat().st_size > 0
        # removing a point rebuilds only the report
        assert e2e_workflow.plan("report", config={"precisions": ["fp32"]}) == {"report": 1}
    finally:
        e2e_workflow.run("report")
    # the fp16 target stays on disk beside the fp32 one: asking for it again builds only the report
    assert e2e_workflow.plan("report", config=both) == {"report": 1}
    assert (e2e_workflow.root / fp16.dst("chelsea")).is_file()


def test_locate_compares_every_tensor_of_a_target_on_demand(e2e_workflow):
    """`snakemake <target>/locate/locate.json --config locate=all` for the fp16 target (built by the test
    above, whose locate job only recorded that its gates were met): only the locate job runs, now
    localising, and the ordinary synthetic checkpoint shows no jump."""
    import csv
    import json

    from pipeline import paths as P

    fp16 = P.Target(E2E_ARCH, "image", "onnxruntime", "cpu", "fp16")
    out = f"{fp16.dir}/locate/locate.json"
    assert json.loads((e2e_workflow.root / out).read_text())["located"] is False, "its gates were met"
    assert e2e_workflow.plan(out, config={"locate": "all"}) == {"locate": 1}
    e2e_workflow.run(out, config={"locate": "all"})
    summary = json.loads((e2e_workflow.root / out).read_text())
    assert summary["located"] is True
    assert summary["first_jump"] is None and summary["final"]["cosine_min"] > 0.9999
    rows = list(csv.DictReader((e2e_workflow.root / fp16.dir / "locate" / "locate.csv").open()))
    assert len(rows) > 100 and rows[-1]["tensor"] == "unnorm_image_features"
    assert (e2e_workflow.root / fp16.dir / "locate" / "locate.png").stat().st_size > 0


def test_compare_sets_two_real_runs_that_differ_in_one_known_way_side_by_side(e2e_workflow, tmp_path):
    """The session's run against a private copy of it rerun with another synthetic seed: `snakemake
    compare --config baseline=<the first run's results>` lists the checkpoint's sha256 as the one version
    that differs, and leaves the first run as it was."""
    import json

    from conftest import Workflow, private_copy

    (tmp_path / "wf").mkdir()
    wf = Workflow(private_copy(e2e_workflow, tmp_path / "wf"), {**e2e_workflow.config, "seed": 1})
    plan = wf.plan("compare", config={"baseline": str(e2e_workflow.root / "results")})
    assert plan.get("compare") == 1 and plan.get("synthetic_checkpoint") == 1
    missing = wf.run("compare", check=False)  # no baseline given
    assert missing.returncode != 0 and "--config baseline=" in missing.stdout + missing.stderr
    wf.run("compare", config={"baseline": str(e2e_workflow.root / "results")})
    result = json.loads((wf.root / "results" / "compare.json").read_text())
    # the one known difference: the checkpoint (same packages, tools and host)
    assert [v["kind"] for v in result["versions"]] == ["model"], result["versions"]
    assert "checkpoint_sha256" in result["versions"][0]["what"]
    assert result["summary"]["targets_compared"] == 1
    assert (wf.root / "results" / "compare.md").read_text().count("checkpoint_sha256") >= 1
    assert e2e_workflow.plan("report") == {}, "the baseline run is untouched"
