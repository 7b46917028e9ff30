"""backend ascend end to end, with the stand-in atc and ais_bench (tests/standins) on PATH/PYTHONPATH:
two chips in one run in the session's workflow copy (reusing its checkpoint, ONNX models and
references), the report, and the dry-run plans after a chip change, a switch back and an ATC option
change. The copy's onnxruntime report is restored afterwards for the other e2e tests."""
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import paths as P
from backends import ascend
from conftest import E2E_ARCH, E2E_EMBED, E2E_RESOLUTION, SNAKEMAKE, STANDINS, Workflow, image_spec

pytestmark = pytest.mark.e2e

VENV_BIN = str(Path(sys.executable).parent)
CHIPS = ["Ascend910B4", "Ascend310P3"]
NEW_CHIP = "Ascend910B3"
# an Ascend target is fp16: its locate job reads similarity.json and locates only a missed gate
TARGET_JOBS = {"compile": 1, "infer": 1, "similarity": 1, "locate": 1, "benchmark": 1, "report": 1}


def plan(wf, **config):
    counts = wf.plan("report", config=config)
    counts.pop("all", None)
    return counts


def chip_target(chip, precision=ascend.DEFAULT_PRECISION):
    """The image tower's ascend target on one chip (ATC's default precision unless told)."""
    return P.Target(E2E_ARCH, "image", "ascend", chip, precision)


def chip_dir(wf, chip) -> Path:
    """A chip's target folder: the report's `dir` when the report holds that target, else paths.py's."""
    report = wf.root / "results" / "report.json"
    if report.is_file():
        for t in json.loads(report.read_text())["targets"]:
            if t["backend"] == "ascend" and t["device"] == chip and t.get("tower", "image") == "image":
                return wf.root / t["dir"]
    return wf.root / chip_target(chip).dir


def calls(wf, tool):
    lines = wf.standin_log.read_text().splitlines() if wf.standin_log.exists() else []
    return [c for c in map(json.loads, lines) if c["tool"] == tool]


@pytest.fixture(scope="module")
def ascend_wf(e2e_workflow, tmp_path_factory):
    log = tmp_path_factory.mktemp("standins") / "calls.jsonl"
    env = {"PATH": os.pathsep.join([VENV_BIN, str(STANDINS), os.environ.get("PATH", "")]),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])),
           "STANDIN_LOG": str(log)}
    wf = Workflow(e2e_workflow.root, {**e2e_workflow.config, "backend": "ascend"}, env=env)
    wf.standin_log = log
    wf.run("report", config={"soc_versions": CHIPS})
    yield wf
    e2e_workflow.run("report")  # the onnxruntime report again, as the other e2e tests expect


def test_report_has_one_passing_target_per_chip_with_ais_bench_figures(ascend_wf):
    r = ascend_wf.report()
    assert r["verdict"] == "PASS"
    targets = {t["device"]: t for t in r["targets"] if t["backend"] == "ascend"}
    assert sorted(targets) == sorted(CHIPS)
    for chip, t in targets.items():
        target_dir = ascend_wf.root / t["dir"]
        (art,) = t["artifacts"]
        assert art["path"] == f"{t['dir']}/model_bs1/model.om" and art["batch_size"] == 1
        assert (ascend_wf.root / art["path"]).stat().st_size == art["bytes"]
        assert (target_dir / "model_bs1" / "fusion_result.json").is_file(), "ATC's record kept beside the model"
        pairs = {(p["a"], p["b"]): p for p in t["accuracy"]["pairs"]}
        assert min(pairs[("offline", "onnx_fp16")]["per_image"].values()) >= 0.999
        assert ("offline", "torch_fp32") in pairs
        assert t["accuracy"]["gates"] and all(g["passed"] for g in t["accuracy"]["gates"])
        for stem in ("chelsea", "rocket"):
            assert np.load(target_dir / "dst" / f"{stem}_0.npy").shape == (1, E2E_EMBED)
        assert (target_dir / "dst_summary.json").is_file(), "ais_bench's own layout"
        (perf,) = t["performance"]
        bench = json.loads((target_dir / "benchmark_bs1.json").read_text())
        assert bench["measured_by"] == "ais_bench" and perf["loop"] == 3 and perf["batch_size"] == 1
        assert perf["throughput_fps"] == bench["ais_bench"]["printed"]["throughput_fps"] > 0
        assert perf["latency_ms"]["mean"] == bench["ais_bench"]["printed"]["latency_ms"]["mean"]
        assert all(isinstance(perf["latency_ms"][k], float) for k in ("mean", "p50", "p90", "p99"))
    assert "atc" in r["environment"]["backend_tools"]


def test_tools_got_the_seeds_command_lines_one_fresh_directory_per_atc_job(ascend_wf):
    atc_calls = [c for c in calls(ascend_wf, "atc") if any(a.split("=", 1)[1] in CHIPS for a in c["argv"]
                                                             if a.startswith("--soc_version="))]
    assert len(atc_calls) == 2 and len({c["cwd"] for c in atc_calls}) == 2
    onnx = (ascend_wf.root / P.onnx(E2E_ARCH, "image", "fp16")).resolve()
    for call in atc_calls:
        chip = next(a.split("=", 1)[1] for a in call["argv"] if a.startswith("--soc_version="))
        prefix = (chip_dir(ascend_wf, chip) / "model_bs1").resolve() / "model"
        assert call["argv"] == ascend.commands.atc_command(onnx, prefix, 1, chip, image_spec(E2E_RESOLUTION))[1:]
        # and the report's "Reproduce" section prints that very line
        (target,) = [t for t in ascend_wf.report()["targets"] if t["device"] == chip]
        assert target["compiled"][0]["command"] == shlex.join(["atc", *call["argv"]])
        assert Path(call["cwd"]).resolve() != ascend_wf.root.resolve() and not Path(call["cwd"]).exists()
    bench_argv = [c["argv"] for c in calls(ascend_wf, "ais_bench") if "--loop" in c["argv"]]
    assert bench_argv and all(a[a.index("--loop") + 1] == "3" and a[a.index("--batchsize") + 1] == "1"
                              and a[a.index("--warmup_count") + 1] == "1" for a in bench_argv)
    infer_argv = [c["argv"] for c in calls(ascend_wf, "ais_bench") if "--input" in c["argv"]]
    assert len(infer_argv) >= 2 and all(a[a.index("--output_dirname") + 1] == "dst" for a in infer_argv)


def test_nothing_to_do_after_the_run(ascend_wf):
    assert plan(ascend_wf, soc_versions=CHIPS) == {}


def test_chip_change_plans_only_the_new_chips_target_and_the_report(ascend_wf):
    assert plan(ascend_wf, soc_versions=[], soc_version=NEW_CHIP) == TARGET_JOBS
    assert plan(ascend_wf, soc_versions=[*CHIPS, NEW_CHIP]) == TARGET_JOBS


def test_both_backends_in_one_report(ascend_wf):
    """backends: [onnxruntime, ascend] puts the CPU target beside the chips; all were built, so only the
    report is made, with a row per (backend, device, batch size)."""
    both = {"backends": ["onnxruntime", "ascend"], "soc_versions": CHIPS}
    assert plan(ascend_wf, **both) == {"report": 1}
    ascend_wf.run("report", config=both)
    r = ascend_wf.report()
    assert sorted((t["backend"], t["device"]) for t in r["targets"]) == sorted(
        [("onnxruntime", "cpu")] + [("ascend", chip) for chip in CHIPS])
    assert r["verdict"] == "PASS" and plan(ascend_wf, **both) == {}
    ascend_wf.run("report", config={"soc_versions": CHIPS})


def test_switching_back_and_forth_rebuilds_nothing_but_the_report(ascend_wf):
    ascend_wf.run("report", config={"soc_versions": [], "soc_version": NEW_CHIP})
    assert {t["device"] for t in ascend_wf.report()["targets"] if t["backend"] == "ascend"} == {NEW_CHIP}
    assert plan(ascend_wf, soc_versions=CHIPS) == {"report": 1}
    assert plan(ascend_wf, soc_versions=[*CHIPS, NEW_CHIP]) == {"report": 1}
    ascend_wf.run("report", config={"soc_versions": CHIPS})
    assert plan(ascend_wf, soc_versions=[], soc_version=NEW_CHIP) == {"report": 1}
    for chip in [*CHIPS, NEW_CHIP]:  # side by side
        assert (ascend_wf.root / chip_target(chip).dir / "model_bs1" / "model.om").is_file()


def test_an_atc_option_change_recompiles_only_that_backends_models(ascend_wf):
    option = {"op_select_implmode": "high_precision"}
    assert plan(ascend_wf, soc_versions=CHIPS[:1], atc=option) == TARGET_JOBS
    assert plan(ascend_wf, soc_versions=CHIPS, atc=option) == {k: (1 if k == "report" else 2) for k in TARGET_JOBS}
    # an ATC option is no concern of the CPU target
    cpu = plan(ascend_wf, backend="onnxruntime", atc=option)
    assert not {"compile", "infer", "benchmark", "similarity"} & set(cpu)


def test_an_ascend_precision_is_a_target_of_its_own_compiled_with_its_documented_mode(ascend_wf):
    """precision fp32 on Ascend: a target beside the fp16 one, ATC on the fp32 ONNX with
    --precision_mode=must_keep_origin_dtype (the plan's mapping); fp32 is not reduced: no locate job."""
    jobs = plan(ascend_wf, soc_versions=CHIPS[:1], precision="fp32")
    assert jobs == {k: v for k, v in TARGET_JOBS.items() if k != "locate"}
    fp32 = chip_target(CHIPS[0], "fp32")
    dry = ascend_wf.run("-n", fp32.manifest(1), config={"soc_versions": CHIPS[:1], "precision": "fp32"})
    compile_job = (dry.stdout + dry.stderr).split("rule compile:", 1)[1].split("\n\n", 1)[0]
    assert P.onnx(E2E_ARCH, "image", "fp32") in compile_job, "ATC gets the fp32 ONNX"
    assert ascend.options({**ascend_wf.config, "atc": {}, "ais_bench_python": "python3", "npu_device": 0,
                           "locate_npu_dump": False}, "fp32")["atc"] == {"precision_mode": "must_keep_origin_dtype"}


def test_missing_tools_stop_the_run_before_any_job(e2e_workflow):
    """No stand-ins on PATH: a real run names the missing tool and the fix, and runs no job."""
    env = {"PATH": os.pathsep.join([VENV_BIN, "/usr/bin", "/bin"])}
    wf = Workflow(e2e_workflow.root, {**e2e_workflow.config, "backend": "ascend", "soc_version": "Ascend310B1"},
                  env=env)
    result = wf.run("report", check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "atc" in out and "set_env.sh" in out
    assert not (e2e_workflow.root / chip_target("Ascend310B1").dir).exists()


def target_files(wf, chip):
    """{path: sha256} of everything in one chip's target folder."""
    from pipeline.common import sha256

    folder = chip_dir(wf, chip)
    return {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fault,env,shown", [
    ("atc crash", {"STANDIN_ATC_FAIL": "1"}, "ATC run failed"),
    ("runtime crash", {"STANDIN_AIS_BENCH_FAIL": "1"}, "aclmdlExecute failed"),
])
def test_a_failing_step_shows_its_log_tail_leaves_no_partial_artifact_and_touches_no_other_target(
        ascend_wf, fault, env, shown):
    chip = "Ascend910B2"
    before = {c: target_files(ascend_wf, c) for c in CHIPS}
    wf = Workflow(ascend_wf.root, ascend_wf.config, env={**ascend_wf.env, **env})
    if fault == "runtime crash":  # the model compiles; ais_bench then crashes at run time
        wf.run(chip_target(chip).manifest(1), config={"soc_versions": [chip]})
    result = wf.run("report", config={"soc_versions": [*CHIPS, chip]}, check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert shown in out, "the failed job's log tail reaches the terminal"
    folder = ascend_wf.root / chip_target(chip).dir
    if fault == "atc crash":
        assert "command: atc --framework=5" in out
        assert not (folder / "model_bs1" / "model.om").exists(), "no partial .om survives"
        assert not (folder / "compile_bs1.json").exists()
    else:
        assert not list((folder / "dst").glob("*.npy")) if (folder / "dst").exists() else True
        assert not (folder / "benchmark_bs1.json").exists()
    assert not list(folder.parent.glob(".atc-*")) and not list(folder.glob(".ais_bench-*")), "no scratch left"
    assert {c: target_files(ascend_wf, c) for c in CHIPS} == before, "other targets untouched"
    assert not (folder / "similarity.json").exists()


def test_two_cores_two_chips_two_batch_sizes_give_the_one_core_results(ascend_wf):
    """-c2 runs jobs of both chips and both batch sizes side by side: the compiled models and outputs
    equal those of a -c1 run (no shared scratch, no crossed files); only timings differ."""
    config = {"soc_versions": CHIPS, "batch_sizes": [1, 2]}
    ascend_wf.run("report", config=config)  # -c2 (Workflow.run's default)
    parallel = {c: target_files(ascend_wf, c) for c in CHIPS}
    result = subprocess.run([SNAKEMAKE, "-c1", "report", "--forcerun", "compile", *ascend_wf.args(config)],
                            cwd=ascend_wf.root, env={**os.environ, **ascend_wf.env}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    serial = {c: target_files(ascend_wf, c) for c in CHIPS}
    for chip in CHIPS:
        # per-run records: timings, and ATC's fusion_result.json (it names the session of the build)
        timed = {f for f in parallel[chip] if f.startswith("benchmark_bs") or f.endswith("_summary.json")
                 or f.endswith("fusion_result.json")}
        assert {f: h for f, h in serial[chip].items() if f not in timed} == \
               {f: h for f, h in parallel[chip].items() if f not in timed}
        assert {f for f in parallel[chip]} == {f for f in serial[chip]}
        assert (chip_dir(ascend_wf, chip) / "model_bs2" / "model.om").is_file()
    ascend_wf.run("report", config={"soc_versions": CHIPS})


# ---- the choices after the seed (issue 33): one run with all of them ------------------------------------------

CHOICES = {"soc_versions": CHIPS[:1], "ascend_dynamic_batch": "both", "batch_sizes": [1, 2], "npu_devices": [0, 1],
           "aipp": True}


@pytest.fixture(scope="module")
def choices_wf(ascend_wf):
    """The ascend run again with a dynamic-batch model beside the static ones, a benchmark over two NPUs and
    AIPP; the two-chip run is restored afterwards for the tests after these."""
    before = len(calls(ascend_wf, "atc")), len(calls(ascend_wf, "ais_bench"))
    ascend_wf.run("report", config=CHOICES)
    ascend_wf.choice_calls = before
    yield ascend_wf
    ascend_wf.run("report", config={"soc_versions": CHIPS})


def choice_target(wf):
    (t,) = [t for t in wf.report()["targets"] if t["backend"] == "ascend"]
    return t


def test_one_dynamic_model_is_benchmarked_at_each_batch_beside_the_static_models(choices_wf):
    t = choice_target(choices_wf)
    rows = {(p["batch_size"], bool(p.get("dynamic_batch"))): p for p in t["performance"]}
    assert sorted(rows) == [(1, False), (1, True), (2, False), (2, True)]
    assert rows[(2, True)]["dynamic_batch"] == [1, 2]
    atc = [c["argv"] for c in calls(choices_wf, "atc")[choices_wf.choice_calls[0]:]]
    dynamic = [a for a in atc if "--dynamic_batch_size=1,2" in a]
    assert len(dynamic) == 1 and f"--input_shape=image:-1,3,{E2E_RESOLUTION},{E2E_RESOLUTION}" in dynamic[0]
    bench = [c["argv"] for c in calls(choices_wf, "ais_bench")[choices_wf.choice_calls[1]:] if "--loop" in c["argv"]]
    picked = sorted(a[a.index("--dymBatch") + 1] for a in bench if "--dymBatch" in a)
    assert picked == ["1", "2"], "each dynamic benchmark picks its batch with --dymBatch"
    md = (choices_wf.root / "results" / "report.md").read_text()
    assert "2 (dynamic 1,2)" in md


def test_a_benchmark_over_two_npus_keeps_each_device_and_the_summary(choices_wf):
    t = choice_target(choices_wf)
    for p in t["performance"]:
        assert [d["device"] for d in p["devices"]] == [0, 1]
        assert p["throughput_fps"] == pytest.approx(sum(d["throughput_fps"] for d in p["devices"]), rel=1e-3)
    bench = [c["argv"] for c in calls(choices_wf, "ais_bench")[choices_wf.choice_calls[1]:] if "--loop" in c["argv"]]
    assert bench and all(a[a.index("--device") + 1] == "0,1" for a in bench)
    md = (choices_wf.root / "results" / "report.md").read_text()
    assert "all 0,1" in md


def test_every_benchmark_carries_the_pure_inference_and_the_end_to_end_figures(choices_wf):
    for p in choice_target(choices_wf)["performance"]:
        e2e = p["end_to_end"]
        assert e2e["throughput_fps"] < p["throughput_fps"], "the copies cost time"
        lo, hi = e2e["throughput_fps_ci95"]
        assert lo <= e2e["throughput_fps"] <= hi and p["throughput_fps_ci95"] is not None
        assert e2e["latency_ms"]["h2d"] > 0 and e2e["latency_ms"]["d2h"] > 0


def test_aipp_takes_the_pixels_and_the_chain_gate_measures_it(choices_wf):
    t = choice_target(choices_wf)
    model_dir = choices_wf.root / t["dir"] / "model_bs1"
    fields = ascend.aipp.parse((model_dir / ascend.AIPP_CONFIG).read_text())
    assert fields["src_image_size_w"] == E2E_RESOLUTION
    pixels = np.load(choices_wf.root / P.npy(E2E_ARCH, "chelsea", pixels=True))
    assert pixels.dtype == np.uint8 and pixels.shape == (1, E2E_RESOLUTION, E2E_RESOLUTION, 3)
    gate = next(g for g in t["accuracy"]["gates"] if (g["a"], g["b"]) == ("offline", "torch_fp32"))
    assert gate["passed"] and gate["cosine_min"] < 1.0
    (compiled,) = [c for c in t["compiled"] if c["batch_size"] == 1]
    assert compiled["input"]["device"]["bytes_per_item"] * 4 == compiled["input"]["onnx"]["bytes_per_item"]
    assert "Bytes per item sent to the device" in (choices_wf.root / "results" / "report.md").read_text()
