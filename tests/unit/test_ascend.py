"""backend ascend: the exact ATC and ais_bench command lines, the parsers of ais_bench's figures, and
compile/infer/benchmark end to end through the stand-in tools (tests/standins), on a tiny model."""
import json
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from backends import ascend
from conftest import STANDINS, image_spec

VENV_BIN = str(Path(sys.executable).parent)
OPTIONS = {"threads": 1, "device": "Ascend910B4", "atc": {}, "ais_bench_python": "python3", "device_id": 0}

# What ais_bench prints at the end of a pure-inference run (format of ais_bench/infer/summary.py; the
# figures are the seed's: 72.426 fps at batch 1 on a 910B4).
AIS_BENCH_LOG = """\
[INFO] acl init success
[INFO] open device 0 success
[INFO] load model ./models/vit-h-14.img.fp16.om success
[INFO] create model description success
[INFO] warm up 1 done
Inference array Processing: 100%|##########| 1/1 [00:01<00:00,  1.38s/it]
[INFO] -----------------Performance Summary------------------
[INFO] NPU_compute_time (ms): min = 13.765, max = 13.871, mean = 13.807, median = 13.806, percentile(99%) = 13.866
[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(13.807): 72.42703
[INFO] ------------------------------------------------------
[INFO] unload model success, model Id is 1
"""

SUMMARY = {
    "filesinfo": {},
    "args": ["ais_bench", "--model", "m.om", "--loop", "10"],
    "NPU_compute_time": {"min": 13.765, "max": 13.871, "mean": 13.807, "median": 13.806, "percentile(99%)": 13.866,
                         "count": 10},
    "H2D_latency": {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0},
    "D2H_latency": {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0},
    "throughput": 72.42703,
    "npu_compute_time_list": [13.765, 13.79, 13.8, 13.801, 13.805, 13.807, 13.81, 13.812, 13.82, 13.871],
    "pid": 1234,
}


@pytest.fixture
def standins(monkeypatch, tmp_path):
    """The stand-in atc on PATH (after the venv's python3), the stand-in ais_bench on PYTHONPATH, every
    call recorded; returns a function giving the recorded calls."""
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("PATH", os.pathsep.join([VENV_BIN, str(STANDINS), os.environ.get("PATH", "")]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("STANDIN_LOG", str(log))
    for var in ("STANDIN_ATC_FAIL", "STANDIN_ATC_SLEEP", "STANDIN_AIS_BENCH_FAIL"):
        monkeypatch.delenv(var, raising=False)

    def calls(tool=None):
        if not log.exists():
            return []
        records = [json.loads(line) for line in log.read_text().splitlines()]
        return [r for r in records if tool is None or r["tool"] == tool]

    return calls


def onnx_reference(model, npy):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": np.load(npy)})[0]


# ---------------------------------------------------------------------------------------------
# command lines
# ---------------------------------------------------------------------------------------------

def test_atc_command_is_the_seeds_command():
    cmd = ascend.commands.atc_command("/m/vit-h-14.img.fp16.onnx", "/r/model_bs1/model", 1, "Ascend910B4", image_spec(224))
    assert cmd == ["atc", "--framework=5", "--model=/m/vit-h-14.img.fp16.onnx", "--output=/r/model_bs1/model",
                   "--input_format=NCHW", "--input_shape=image:1,3,224,224", "--soc_version=Ascend910B4",
                   "--log=error"]
    # the seed's shell command, as the shell would split it, is the same argument list
    seed = ('atc --framework=5 --model=models/vit-h-14.img.fp16.onnx --output=models/vit-h-14.img.fp16 '
            '--input_format=NCHW --input_shape="image:1,3,224,224" --soc_version=Ascend910B4 --log=error')
    assert shlex.split(seed) == ascend.commands.atc_command("models/vit-h-14.img.fp16.onnx", "models/vit-h-14.img.fp16", 1,
                                                            "Ascend910B4", image_spec(224))


def test_atc_command_passes_only_the_set_options_in_a_fixed_order():
    base = ascend.commands.atc_command("a.onnx", "o/model", 4, "Ascend310P3", image_spec(336))
    assert base[5] == "--input_shape=image:4,3,336,336" and base[6] == "--soc_version=Ascend310P3"
    full = ascend.commands.atc_command("a.onnx", "o/model", 4, "Ascend310P3", image_spec(336),
                              {"optypelist_for_implmode": "Gelu,Softmax", "op_select_implmode": "high_precision",
                               "precision_mode": "must_keep_origin_dtype"})
    assert full == base + ["--precision_mode=must_keep_origin_dtype", "--op_select_implmode=high_precision",
                           "--optypelist_for_implmode=Gelu,Softmax"]
    unset = {"precision_mode": "", "op_select_implmode": None, "optypelist_for_implmode": ""}
    assert ascend.commands.atc_command("a.onnx", "o/model", 4, "Ascend310P3", image_spec(336), unset) == base
    assert ascend.commands.atc_command("a.onnx", "o/model", 4, "Ascend310P3", image_spec(336), {"precision_mode": "force_fp32"}) == \
        base + ["--precision_mode=force_fp32"]


def test_atc_command_refuses_what_atc_would_refuse():
    with pytest.raises(ValueError, match="unknown ATC option.*fusion_switch_file"):
        ascend.commands.atc_command("a.onnx", "o/model", 1, "Ascend910B4", image_spec(224), {"fusion_switch_file": "x.cfg"})
    with pytest.raises(ValueError, match="optypelist_for_implmode needs op_select_implmode"):
        ascend.commands.atc_command("a.onnx", "o/model", 1, "Ascend910B4", image_spec(224), {"optypelist_for_implmode": "Gelu"})
    with pytest.raises(ValueError, match="npu-smi info"):
        ascend.commands.atc_command("a.onnx", "o/model", 1, "", image_spec(224), {})


def test_ais_bench_command_lines():
    assert ascend.commands.ais_bench_infer_command("/r/model_bs1/model.om", "/tmp/in", "/r", "dst", 3) == [
        "python3", "-m", "ais_bench", "--model", "/r/model_bs1/model.om", "--input", "/tmp/in", "--output", "/r",
        "--output_dirname", "dst", "--outfmt", "NPY", "--device", "3"]
    assert ascend.commands.ais_bench_infer_command("m.om", "in", "out", ais_bench_python="/opt/py/bin/python3.8")[0] == \
        "/opt/py/bin/python3.8"
    assert ascend.commands.ais_bench_benchmark_command("m.om", 100, 8, 5, 1) == [
        "python3", "-m", "ais_bench", "--model", "m.om", "--loop", "100", "--batchsize", "8", "--warmup_count", "5",
        "--device", "1", "--display_all_summary", "true"]
    assert ascend.commands.ais_bench_benchmark_command("m.om", 100, 1, 0, output="/tmp/s", output_dirname="bench")[-4:] == [
        "--output", "/tmp/s", "--output_dirname", "bench"]


# ---------------------------------------------------------------------------------------------
# parsing ais_bench's figures
# ---------------------------------------------------------------------------------------------

def test_parse_the_real_ais_bench_log():
    parsed = ascend.commands.parse_ais_bench_stdout(AIS_BENCH_LOG)
    assert parsed == {"batch_size": 1.0, "throughput_fps": 72.42703,
                      "latency_ms": {"mean": 13.807, "min": 13.765, "max": 13.871, "p50": 13.806, "p99": 13.866}}


def test_parse_stdout_is_tolerant_of_spacing_and_takes_the_last_summary():
    text = ("[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(99): 10.1\n"
            "[INFO] NPU_compute_time (ms):min=27.5,  max = 28.0,mean =27.6, median= 27.61, percentile( 99% ) = 27.9\n"
            "[INFO]  throughput  1000 * batchsize.mean( 2.0 ) / NPU_compute_time.mean( 27.6 ) :  72.46376811594203\n")
    parsed = ascend.commands.parse_ais_bench_stdout(text)
    assert parsed["batch_size"] == 2.0 and parsed["throughput_fps"] == pytest.approx(72.46376811594203)
    assert parsed["latency_ms"] == {"mean": 27.6, "min": 27.5, "max": 28.0, "p50": 27.61, "p99": 27.9}


def test_parse_stdout_without_the_compute_time_line_keeps_the_throughput_lines_mean():
    parsed = ascend.commands.parse_ais_bench_stdout("[INFO] throughput 1000*batchsize.mean(4)/NPU_compute_time.mean(1e1): 400")
    assert parsed == {"batch_size": 4.0, "throughput_fps": 400.0, "latency_ms": {"mean": 10.0}}
    with pytest.raises(ValueError, match="throughput"):
        ascend.commands.parse_ais_bench_stdout(AIS_BENCH_LOG.replace("throughput", "thruput"))


def test_parse_summary_maps_ais_bench_keys_and_derives_p90_from_its_per_run_times():
    parsed = ascend.commands.parse_summary(SUMMARY)
    assert parsed["throughput_fps"] == 72.42703 and parsed["count"] == 10 and parsed["notes"] == []
    lat = parsed["latency_ms"]
    assert (lat["mean"], lat["p50"], lat["p99"], lat["min"], lat["max"]) == (13.807, 13.806, 13.866, 13.765, 13.871)
    assert lat["p90"] == pytest.approx(np.percentile(SUMMARY["npu_compute_time_list"], 90))
    assert list(lat) == ["mean", "p50", "p90", "p99", "min", "max"]
    assert parsed["runs_ms"] == SUMMARY["npu_compute_time_list"]


def test_ais_bench_figures_get_intervals_from_its_per_run_times_and_none_without_them():
    record, notes = ascend.commands.speed_intervals(SUMMARY["npu_compute_time_list"], 1)
    lo, hi = record["throughput_fps_ci95"]
    assert lo < SUMMARY["throughput"] < hi and notes == []
    assert record["seconds"] == pytest.approx([v / 1000 for v in SUMMARY["npu_compute_time_list"]])
    assert set(record["latency_ms_ci95"]) == {"mean", "p50", "p90", "p99"}
    record, notes = ascend.commands.speed_intervals(None, 1)
    assert record["throughput_fps_ci95"] is None and record["seconds"] is None
    assert set(record["latency_ms_ci95"].values()) == {None} and "npu_compute_time_list" in notes[0]


def test_parse_summary_without_per_run_times_gives_no_p90_and_says_so():
    summary = {k: v for k, v in SUMMARY.items() if k != "npu_compute_time_list"}
    parsed = ascend.commands.parse_summary(summary)
    assert parsed["latency_ms"]["p90"] is None and "p90 unavailable" in parsed["notes"][0]
    with pytest.raises(ValueError, match="NPU_compute_time"):
        ascend.commands.parse_summary({"throughput": 1.0})


# ---------------------------------------------------------------------------------------------
# the stand-in atc honours the real tool's argument contract
# ---------------------------------------------------------------------------------------------

def run_standin_atc(args, cwd):
    env = {**os.environ, "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])}
    return subprocess.run([str(STANDINS / "atc"), *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("change, code", [
    ({"--bogus_flag": "1"}, "E10001"),
    ({"--soc_version": None}, "E10054"),
    ({"--input_shape": "image:1,3,16"}, "E10001"),  # well formed, but the model's input has 4 dimensions
    ({"--input_shape": "image;1,3,16,16"}, "E10002"),
    ({"--input_shape": "image:1,3,x,16"}, "E10002"),
    ({"--framework": "3"}, "E10001"),
    ({"--framework": None}, "E10007"),
    ({"--model": "missing.onnx"}, "E10001"),
    ({"--soc_version": "Ascend999"}, "E10001"),
    ({"--input_shape": "img:1,3,16,16"}, "E10016"),
    ({"--precision_mode": "fp8_please"}, "E10001"),
])
def test_standin_atc_rejects_bad_arguments_like_the_real_tool(tiny_onnx, tmp_path, change, code):
    args = dict(arg.split("=", 1) for arg in ascend.commands.atc_command(tiny_onnx["fp16"], tmp_path / "out" / "model", 1,
                                                                           "Ascend910B4", image_spec(16))[1:])
    for key, value in change.items():
        if value is None:
            args.pop(key)
        else:
            args[key] = value
    result = run_standin_atc([f"{k}={v}" for k, v in args.items()], tmp_path)
    assert result.returncode == 255, result.stdout + result.stderr
    assert "ATC run failed" in result.stdout and f"{code}:" in result.stdout
    assert not (tmp_path / "out" / "model.om").exists()


def test_standin_atc_success_writes_om_and_fusion_result_into_its_cwd(tiny_onnx, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_standin_atc(ascend.commands.atc_command(tiny_onnx["fp16"], tmp_path / "model", 2, "Ascend310P3", image_spec(16))[1:], cwd)
    assert result.returncode == 0 and "ATC run success, welcome to the next use." in result.stdout
    assert (tmp_path / "model.om").is_file() and (cwd / "fusion_result.json").is_file()


# ---------------------------------------------------------------------------------------------
# compile / infer / benchmark through the stand-ins
# ---------------------------------------------------------------------------------------------

def test_compile_runs_atc_in_a_fresh_directory_and_keeps_fusion_result(tiny_onnx, tmp_path, standins):
    out_dir = tmp_path / "results" / "ascend" / "Ascend910B4" / "model_bs2"
    options = {**OPTIONS, "atc": {"precision_mode": "must_keep_origin_dtype"}}
    files = ascend.compile(tiny_onnx["fp16"], out_dir, 2, tiny_onnx["resolution"], options)
    assert files == [str(out_dir / "model.om")], "the caller's form of the path"
    om = out_dir.resolve() / "model.om"
    assert om.is_file()
    (call,) = standins("atc")
    assert call["argv"] == ascend.commands.atc_command(Path(tiny_onnx["fp16"]).resolve(), om.with_suffix(""), 2,
                                                       "Ascend910B4", image_spec(16), options["atc"])[1:]
    cwd = Path(call["cwd"])
    assert cwd.parent == out_dir.parent.resolve() and cwd.name.startswith(".atc-model_bs2-")
    assert not cwd.exists(), "the scratch directory is removed"
    assert sorted(p.name for p in out_dir.parent.iterdir()) == ["model_bs2"]
    fusion = json.loads((out_dir / "fusion_result.json").read_text())
    assert fusion["standin"]["output"] == str(om.with_suffix(""))


def test_compile_returns_a_relative_path_for_a_relative_out_dir(tiny_onnx, tmp_path, standins, monkeypatch):
    monkeypatch.chdir(tmp_path)  # as in a workflow job: cwd is the workflow root, paths relative to it
    files = ascend.compile(tiny_onnx["fp16"], "results/ascend/Ascend910B4/model_bs1", 1, 16, OPTIONS)
    assert files == ["results/ascend/Ascend910B4/model_bs1/model.om"] and Path(files[0]).is_file()
    (call,) = standins("atc")
    assert f"--output={tmp_path.resolve()}/results/ascend/Ascend910B4/model_bs1/model" in call["argv"]


def test_concurrent_compile_jobs_never_share_a_working_directory(tiny_onnx, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("STANDIN_ATC_SLEEP", "0.5")  # make the three ATC runs overlap
    jobs = [("Ascend910B4", 1), ("Ascend910B4", 2), ("Ascend310P3", 1)]
    out = {job: tmp_path / "results" / job[0] / f"model_bs{job[1]}" for job in jobs}
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(ascend.compile, tiny_onnx["fp16"], out[(soc, bs)], bs, 16, {**OPTIONS, "device": soc})
                   for soc, bs in jobs]
        results = [f.result() for f in futures]
    calls = standins("atc")
    assert len(calls) == 3 and len({c["cwd"] for c in calls}) == 3
    for (soc, bs), files in zip(jobs, results):
        assert Path(files[0]).is_file()
        fusion = json.loads((out[(soc, bs)] / "fusion_result.json").read_text())
        assert fusion["standin"]["soc_version"] == soc and fusion["standin"]["output"].endswith(f"model_bs{bs}/model")


def test_atc_failure_shows_command_and_log_tail_and_leaves_no_om(tiny_onnx, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("STANDIN_ATC_FAIL", "1")  # writes a partial .om, then fails
    out_dir = tmp_path / "t" / "model_bs1"
    with pytest.raises(ascend.commands.ToolError) as err:
        ascend.compile(tiny_onnx["fp16"], out_dir, 1, 16, OPTIONS)
    message = str(err.value)
    expected = ascend.commands.atc_command(Path(tiny_onnx["fp16"]).resolve(), out_dir.resolve() / "model", 1, "Ascend910B4", image_spec(16))
    assert shlex.join(expected) in message
    assert "ATC run failed" in message and "EZ3003" in message and "exit code 255" in message
    assert not list(out_dir.glob("*.om")) and not list(out_dir.parent.glob(".atc-*"))


def test_atc_success_without_om_is_a_failure(tiny_onnx, tmp_path, standins, monkeypatch):
    monkeypatch.setenv("STANDIN_ATC_FAIL", "no_om")
    with pytest.raises(ascend.commands.ToolError, match="exit code 0 but no model.om"):
        ascend.compile(tiny_onnx["fp16"], tmp_path / "m", 1, 16, OPTIONS)


def test_atc_argument_error_reaches_the_user(tiny_onnx, tmp_path, standins):
    options = {**OPTIONS, "atc": {"precision_mode": "not_a_mode"}}
    with pytest.raises(ascend.commands.ToolError, match=r"(?s)--precision_mode=not_a_mode.*E10001: Value \[not_a_mode\]"):
        ascend.compile(tiny_onnx["fp16"], tmp_path / "m", 1, 16, options)
    assert not (tmp_path / "m" / "model.om").exists()


def test_infer_writes_ais_bench_layout_from_exactly_the_given_inputs(tiny_onnx, tmp_path, standins):
    om = ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs1", 1, 16, OPTIONS)[0]
    npy_dir = Path(tiny_onnx["npy"][0]).parent
    np.save(npy_dir / "stale.npy", np.zeros((1, 3, 16, 16), np.float32))  # not an input of this run
    (npy_dir / "x.y.npy").write_bytes(b"junk")
    dst = tmp_path / "t" / "dst"
    ascend.infer(om, tiny_onnx["npy"], dst, OPTIONS)
    assert sorted(p.name for p in dst.iterdir()) == ["a_0.npy", "b_0.npy", "c_0.npy"]
    assert (tmp_path / "t" / "dst_summary.json").is_file(), "ais_bench's summary beside dst/"
    for npy in tiny_onnx["npy"]:
        got = np.load(dst / f"{Path(npy).stem}_0.npy")
        assert got.dtype == np.float32 and got.shape == (1, 16)
        np.testing.assert_allclose(got, onnx_reference(tiny_onnx["fp16"], npy), rtol=1e-3, atol=1e-3)
    (call,) = standins("ais_bench")
    argv = call["argv"]
    scratch = Path(call["cwd"])
    # ais_bench ran in a private scratch folder: the .om, the inputs (safe names) and --output all inside it
    assert ["python3", "-m", "ais_bench", *argv] == ascend.commands.ais_bench_infer_command(
        scratch / "model.om", scratch / "input", scratch / "out", "dst", 0)
    assert not scratch.exists(), "the scratch folder is removed after"
    names = json.loads((tmp_path / "t" / "dst_names.json").read_text())["inputs"]
    assert {k: v["stem"] for k, v in names.items()} == {"in_000000.npy": "a", "in_000001.npy": "b",
                                                          "in_000002.npy": "c"}
    assert not list((tmp_path / "t").glob(".ais_bench-*"))


def test_infer_takes_dotted_stems_and_refuses_inputs_ais_bench_would_pair(tiny_onnx, tmp_path, standins):
    """ais_bench cuts output names at the first dot; it only sees in_000000.npy ..., so `cat.v2` keeps its name."""
    om = ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs1", 1, 16, OPTIONS)[0]
    dotted = tmp_path / "cat.v2.npy"
    np.save(dotted, np.zeros((1, 3, 16, 16), np.float32))
    ascend.infer(om, [*tiny_onnx["npy"], str(dotted)], tmp_path / "dst", OPTIONS)
    assert (tmp_path / "dst" / "cat.v2_0.npy").is_file()
    calls_before = len(standins())
    half = tmp_path / "half.npy"
    np.save(half, np.zeros((1, 3, 16, 16), np.float16))
    with pytest.raises(ValueError, match="float32"):
        ascend.infer("unused.om", [str(half)], tmp_path / "dst", OPTIONS)
    assert len(standins()) == calls_before, "refused before ais_bench runs"


def test_infer_failure_names_the_command(tiny_onnx, tmp_path, standins, monkeypatch):
    om = ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs1", 1, 16, OPTIONS)[0]
    monkeypatch.setenv("STANDIN_AIS_BENCH_FAIL", "1")
    with pytest.raises(ascend.commands.ToolError, match=r"(?s)ais_bench failed \(exit code 1\).*-m ais_bench --model.*507011"):
        ascend.infer(om, tiny_onnx["npy"], tmp_path / "t" / "dst", OPTIONS)


def test_benchmark_reports_ais_bench_figures(tiny_onnx, tmp_path, standins):
    om = ascend.compile(tiny_onnx["fp16"], tmp_path / "t" / "model_bs2", 2, 16, OPTIONS)[0]
    result = ascend.benchmark(om, tiny_onnx["npy"], 2, loop=5, warmup=1, options=OPTIONS)
    assert (result["batch_size"], result["loop"], result["warmup"]) == (2, 5, 1)
    assert result["measured_by"] == "ais_bench" and result["notes"] == []
    lat = result["latency_ms"]
    assert set(lat) == {"mean", "p50", "p90", "p99", "min", "max"} and all(v > 0 for v in lat.values())
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    printed = result["ais_bench"]["printed"]
    assert result["throughput_fps"] == printed["throughput_fps"] == pytest.approx(1000 * 2 / lat["mean"], rel=1e-6)
    assert result["ais_bench"]["summary_count"] == 5
    assert len(result["seconds"]) == 5 and result["throughput_fps_ci95"] is not None
    assert (result["loop_max"], result["stopped_early"]) == (5, False), "ais_bench runs --loop exactly"
    (call,) = standins("ais_bench")
    argv = ["python3", "-m", "ais_bench", *call["argv"]]
    scratch = Path(call["cwd"])
    assert argv == ascend.commands.ais_bench_benchmark_command(scratch / "model.om", 5, 2, 1, 0, output=scratch / "out")
    assert result["command"] == argv, "the command the report prints under Reproduce"
    assert not scratch.exists()


# ---------------------------------------------------------------------------------------------
# missing tools, versions
# ---------------------------------------------------------------------------------------------

def test_missing_tools_are_named_with_their_fix(monkeypatch, tmp_path, tiny_onnx):
    monkeypatch.setenv("PATH", VENV_BIN)  # python3, but neither atc nor ais_bench
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(ascend.commands.MissingToolError) as err:
        ascend.probe.check_tools("python3")
    message = str(err.value)
    assert "`atc`" in message and "set_env.sh" in message and "CANN" in message
    assert "`ais_bench` is not installed in `python3`" in message and "pip3 install" in message
    with pytest.raises(ascend.commands.MissingToolError, match="`python3.99-nowhere`.*ais_bench_python"):
        ascend.probe.check_tools("python3.99-nowhere")
    with pytest.raises(ascend.commands.MissingToolError, match="`atc`.*set_env.sh"):
        ascend.compile(tiny_onnx["fp16"], tmp_path / "m", 1, 16, OPTIONS)
    assert not (tmp_path / "m" / "model.om").exists()


def test_check_tools_passes_with_the_standins(standins):
    ascend.probe.check_tools("python3")


def test_a_typer_ais_bench_is_refused_before_any_job(standins, monkeypatch, tmp_path):
    """The Typer front end of aclruntime's refactor spells options with dashes and takes bare switches: every
    command the workflow writes would fail there mid-run, so the probe names it first."""
    package = tmp_path / "ais_bench"
    package.mkdir()
    (package / "__init__.py").write_text("import typer\n\napp = typer.Typer()\n")
    (package / "__main__.py").write_text("from ais_bench import app\n\napp()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(ascend.commands.MissingToolError, match="Typer front end.*--output-dirname.*pip3 install"):
        ascend.probe.check_tools("python3")
    (package / "infer").mkdir()
    (package / "infer" / "__main__.py").write_text("")
    (package / "__init__.py").write_text("")
    ascend.probe.check_tools("python3")  # the argparse front end (ais_bench/infer/__main__.py) passes


def test_versions_without_running_atc(standins, monkeypatch, tmp_path):
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    v = ascend.versions({"ais_bench_python": "python3"})
    assert v["atc"] == str(STANDINS / "atc") and v["cann"].startswith("absent: no version.info")
    assert v["ais_bench"] == "0.0.2+standin"
    # a CANN install records its version beside the toolkit; atc itself is never run for it
    bin_dir = tmp_path / "Ascend" / "ascend-toolkit" / "latest" / "compiler" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "atc").write_text("#!/bin/sh\nexit 99\n")
    (bin_dir / "atc").chmod(0o755)
    info = tmp_path / "Ascend" / "ascend-toolkit" / "latest" / "aarch64-linux" / "ascend_toolkit_install.info"
    info.parent.mkdir()
    info.write_text("package_name=Ascend-cann-toolkit\nversion=7.0.RC1\ninnerversion=V100R001C13\n")
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), VENV_BIN]))
    monkeypatch.delenv("PYTHONPATH")
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    v = ascend.versions({"ais_bench_python": "python3"})
    assert v["cann"] == "7.0.RC1" and v["atc"] == str(bin_dir / "atc")
    assert v["ais_bench"] == "absent: ais_bench is not installed in python3"
    monkeypatch.setenv("PATH", VENV_BIN)
    assert ascend.versions({"ais_bench_python": "python3"})["atc"].startswith("absent: atc not on PATH")


def test_standin_ais_bench_can_store_fp16_between_nodes_like_an_npu(tmp_path, standins, monkeypatch):
    """STANDIN_AIS_BENCH_FP16_STORAGE=1: the fp16 overflow that ONNX Runtime's CPU computes away (its fp32
    chains) shows in the stand-in's outputs, as on an NPU; without it the stand-in matches ONNX Runtime."""
    from backends.onnxruntime import build_fp16
    from test_locate import inputs, mlp_onnx

    monkeypatch.syspath_prepend(str(STANDINS))
    import standin_om

    fp16 = build_fp16(mlp_onnx(tmp_path / "m.onnx", scale=2.0 ** 16), tmp_path / "m.fp16.onnx")
    om = tmp_path / "m.om"
    standin_om.write_om(str(om), {"stand-in": True}, fp16.read_bytes())
    os.chmod(om, 0o640)
    src = tmp_path / "in"
    src.mkdir(mode=0o750)
    np.save(src / "a.npy", inputs(1)[0])
    os.chmod(src / "a.npy", 0o640)

    def run(name, storage):
        monkeypatch.setenv("STANDIN_AIS_BENCH_FP16_STORAGE", "1" if storage else "0")
        out = tmp_path / "out"
        out.mkdir(mode=0o750, exist_ok=True)
        os.chmod(out, 0o750)
        subprocess.run([sys.executable, "-m", "ais_bench", "--model", str(om), "--input", str(src), "--output",
                        str(out), "--output_dirname", name, "--outfmt", "NPY"], check=True, capture_output=True)
        return np.load(out / name / "a_0.npy")

    assert np.isfinite(run("cpu", False)).all()
    assert not np.isfinite(run("npu", True)).all()


def test_ais_bench_dump_command_is_the_real_tools():
    cmd = ascend.commands.ais_bench_dump_command("m.om", "in/x.npy", "out", 3, "python3")
    assert cmd == ["python3", "-m", "ais_bench", "--model", "m.om", "--input", "in/x.npy", "--output", "out",
                   "--outfmt", "NPY", "--loop", "1", "--warmup_count", "0", "--dump", "true", "--dump_npy", "true",
                   "--device", "3"]


def test_the_npu_dump_is_read_and_located_to_the_overflowing_node(tmp_path, standins, monkeypatch):
    """backends.ascend.dumps.dump runs ais_bench --dump on one input (the stand-in storing fp16 like an NPU) and
    keeps its converted dump; locate reads it and names the node whose output passed fp16's range."""
    from accuracy import locate as L
    from backends.onnxruntime import build_fp16
    from test_locate import NAMES, inputs, mlp_onnx

    monkeypatch.syspath_prepend(str(STANDINS))
    import standin_om

    monkeypatch.setenv("STANDIN_AIS_BENCH_FP16_STORAGE", "1")
    fp32 = mlp_onnx(tmp_path / "m.onnx", scale=2.0 ** 16)
    fp16 = build_fp16(fp32, tmp_path / "m.fp16.onnx")
    om = tmp_path / "m.om"
    standin_om.write_om(str(om), {"stand-in": True}, fp16.read_bytes())
    np.save(tmp_path / "a b.npy", inputs(1)[0])  # any name: ais_bench sees a safe copy
    options = {"ais_bench_python": sys.executable}
    folder = ascend.dumps.dump(om, tmp_path / "a b.npy", tmp_path / "dump", options)
    converted = sorted(folder.glob("*_npy"))
    assert len(converted) == 1 and [p.parent.name for p in converted[0].rglob("*.npy")][0] == "0"
    # the plan's node_tensors: the same dump read back by ONNX tensor name, what locate compares
    import onnx

    tensors = ascend.node_tensors(om, tmp_path / "a b.npy", onnx.load(str(fp32)), tmp_path / "again", options)
    assert set(tensors) == {"h1", "h2", "h3", "h4", "r", "y"}
    rows, summary = L.compare_tensors(fp32, tensors, inputs(1)[0], input_name="x")
    assert summary["first_jump"]["node"] == NAMES["fc1"] and summary["overflow_nodes"]
    # the real tool's rule: a dump needs --output
    bad = subprocess.run([sys.executable, "-m", "ais_bench", "--model", str(om), "--dump", "true"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "miss output parameter" in bad.stdout + bad.stderr


# ---------------------------------------------------------------------------------------------
# cube_fp16in_fp32out (issue 33): ATC's --precision_mode_v2, never beside --precision_mode
# ---------------------------------------------------------------------------------------------

CUBE = "cube_fp16in_fp32out"
CONFIG = {"atc": {"op_select_implmode": "", "optypelist_for_implmode": ""}, "ais_bench_python": "python3",
          "npu_device": 0, "locate_npu_dump": False}


def plan_options(precision, atc=None):
    return {**ascend.options({**CONFIG, "atc": {**CONFIG["atc"], **(atc or {})}}, precision), "device": "Ascend910B4",
            "threads": 1, "precision": precision}


def test_cube_fp16in_fp32out_compiles_the_fp32_onnx_with_precision_mode_v2(tiny_onnx, tmp_path, standins, monkeypatch):
    """The new precision's command line, and today's precisions' unchanged; the stand-in atc (CANN's documented
    values) takes it and records it in the .om."""
    assert ascend.PRECISIONS[CUBE] == "fp32" and CUBE in ascend.REDUCED
    out = tmp_path / "model_bs1"
    base = ["atc", "--framework=5", f"--model={Path(tiny_onnx['fp32']).resolve()}", f"--output={out.resolve()}/model",
            "--input_format=NCHW", "--input_shape=image:1,3,16,16", "--soc_version=Ascend910B4", "--log=error"]
    tails = {CUBE: ["--precision_mode_v2=cube_fp16in_fp32out"], "fp16": [],
             "fp32": ["--precision_mode=must_keep_origin_dtype"], "mixed_fp16": ["--precision_mode=allow_mix_precision_fp16"],
             "mixed_bf16": ["--precision_mode=allow_mix_precision_bf16"]}
    assert set(tails) == set(ascend.PRECISIONS)
    for precision, tail in tails.items():
        assert ascend.compile_command(tiny_onnx["fp32"], out, 1, 16, plan_options(precision)) == base + tail, precision
    # with a tuned option: ATC_OPTIONS order, the precision's option first
    assert ascend.compile_command(tiny_onnx["fp32"], out, 1, 16, plan_options(CUBE, {"op_select_implmode": "high_precision"})
                                  )[-2:] == ["--precision_mode_v2=cube_fp16in_fp32out", "--op_select_implmode=high_precision"]
    monkeypatch.syspath_prepend(str(STANDINS))
    import standin_om

    (om,) = ascend.compile(tiny_onnx["fp32"], out, 1, 16, plan_options(CUBE))
    header, _ = standin_om.read_om(om)
    assert header["precision_mode_v2"] == CUBE and header["precision_mode"] is None


@pytest.mark.parametrize("precision, atc", [(CUBE, {"precision_mode": "force_fp16"}), (CUBE, {"precision_mode_v2": "fp16"}),
                                            ("fp32", {"precision_mode_v2": CUBE}),
                                            ("mixed_fp16", {"precision_mode": "force_fp32"})])
def test_a_precision_mode_in_config_atc_beside_a_precision_that_sets_one_is_a_config_error(precision, atc):
    """ATC takes one precision mode and the target's precision names it: a config that sets its own (the schema
    has no such key; a module use or bench/ could pass one) is refused, naming both, before any job."""
    from pipeline.paths import ConfigError

    (key, value), = atc.items()
    with pytest.raises(ConfigError, match=rf"config `atc: {key}: {value}` conflicts with precision {precision}, which "
                                          rf"sets ATC's --precision_mode"):
        ascend.options({**CONFIG, "atc": atc}, precision)


def test_a_precision_mode_in_config_atc_that_agrees_or_meets_no_precision_mode_is_passed():
    assert plan_options(CUBE, {"precision_mode_v2": CUBE})["atc"] == {"precision_mode_v2": CUBE}
    # fp16 (ATC's default on the fp16 ONNX) sets none: a setting of the config's own goes to ATC, as before
    assert plan_options("fp16", {"precision_mode": "force_fp32"})["atc"] == {"precision_mode": "force_fp32"}


def test_the_repaired_cube_target_is_built_with_precision_mode_v2_and_its_keep_dtype(tiny_onnx, tmp_path, standins):
    """kept_command under the target's precision: cube_fp16in_fp32out's own option with --keep_dtype (CANN: keep_dtype
    applies to every --precision_mode_v2 but origin), fp16's force_fp16 as before; the stand-in atc takes both."""
    import onnx

    nodes = [n.name for n in onnx.load(tiny_onnx["fp32"]).graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    kept = tmp_path / "kept_fp32.txt"
    ascend.write_kept(kept, nodes[:1])
    cmd = ascend.kept_command(tiny_onnx["fp32"], kept, tmp_path / "om", plan_options(CUBE))
    assert cmd == ascend.commands.atc_command(Path(tiny_onnx["fp32"]).resolve(), (tmp_path / "om").resolve() / "model", 1,
                                              "Ascend910B4", image_spec(16), {"precision_mode_v2": CUBE}) + \
        [f"--keep_dtype={kept.resolve()}"]
    old = ascend.kept_command(tiny_onnx["fp32"], kept, tmp_path / "om", {"device": "Ascend910B4"})
    assert old == cmd[:-2] + ["--precision_mode=force_fp16", cmd[-1]]
    assert ascend.kept_command(tiny_onnx["fp32"], kept, tmp_path / "om", plan_options("fp16")) == old
    for command in (cmd, old):
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0 and "ATC run success" in done.stdout, done.stdout[-2000:]
    with pytest.raises(ValueError, match="fp32 has no --keep_dtype build"):
        ascend.kept_command(tiny_onnx["fp32"], kept, tmp_path / "om", plan_options("fp32"))


def test_the_standin_npu_computes_cube_fp16in_fp32out_as_the_proxy_does(tiny_onnx, tmp_path, standins):
    options = plan_options(CUBE)
    (om,) = ascend.compile(tiny_onnx["fp32"], tmp_path / "t" / "model_bs1", 1, 16, options)
    ascend.infer(om, tiny_onnx["npy"], tmp_path / "t" / "dst", options)
    proxy = ascend.load_reduced(ascend.build_reduced(tiny_onnx["fp32"], CUBE, [], tmp_path / "proxy", {}), {"threads": 1})
    for npy in tiny_onnx["npy"]:
        got = np.load(tmp_path / "t" / "dst" / f"{Path(npy).stem}_0.npy")
        want, fp32 = proxy(np.load(npy)), onnx_reference(tiny_onnx["fp32"], npy)
        assert not np.allclose(want, fp32, rtol=1e-5, atol=1e-6), "the proxy differs from fp32 on this model"
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
