"""The stand-in atc and ais_bench (tests/standins) keep the real tools' rules for dynamic batch
(--dynamic_batch_size / --dymBatch), several devices (--device 0,1), the H2D/D2H figures
(--display_all_summary), AIPP (--insert_op_conf) and --precision_mode_v2=cube_fp16in_fp32out: each rule
accepts the right command and refuses the broken one, outputs land where the real tool puts them, and the
AIPP and cube emulations compute what the documentation says. The models are built here with onnx.helper."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import STANDINS

VENV_BIN = str(Path(sys.executable).parent)
ENV = {**os.environ, "PATH": os.pathsep.join([VENV_BIN, str(STANDINS), os.environ.get("PATH", "")]),
       "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")]))}
for _var in ("STANDIN_LOG", "STANDIN_ATC_FAIL", "STANDIN_ATC_SLEEP", "STANDIN_AIS_BENCH_FAIL", "STANDIN_AIS_BENCH_FAIL_DEVICE",
             "STANDIN_AIS_BENCH_FP16_STORAGE", "STANDIN_AIS_BENCH_VERSION"):
    ENV.pop(_var, None)
SOC = "--soc_version=Ascend910B4"
STATS = {"min", "max", "mean", "median", "percentile(99%)", "count"}
# summary.display's line, e.g. "[INFO] H2D_latency (ms): min = 0.01, max = ..., percentile(99%) = 0.01"
LINE = r"\[INFO\] {} \(ms\): min = [0-9.e-]+, max = [0-9.e-]+, mean = [0-9.e-]+, median = [0-9.e-]+, percentile\(99%\) = [0-9.e-]+"


def save(model, path: Path) -> str:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def image_model(path: Path, channels: int = 3) -> str:
    """image [batch, C, 16, 16] -> Conv 4x4/4 -> Relu -> Flatten -> Gemm -> out [batch, 5]."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array((rng.standard_normal((4, channels, 4, 4)) * 0.3).astype(np.float32), "w"),
               numpy_helper.from_array((rng.standard_normal((64, 5)) * 0.3).astype(np.float32), "g")]
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"], kernel_shape=[4, 4], strides=[4, 4], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "g"], ["out"], name="gemm")]
    graph = helper.make_graph(nodes, "image", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 5])], weights)
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def identity_model(path: Path) -> str:
    """image [1, 3, 16, 16] -> Identity: ais_bench's output is then what AIPP fed the model."""
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "identity",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 16, 16])])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)


def wide_model(path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    """x [1, 8] -> MatMul w1 -> Add 1024 -> Sub 1024 -> MatMul w2 -> y [1, 4]: its vector ops see values near
    1024, where fp16's spacing is 1, so storing them in fp16 loses what fp32 keeps."""
    rng = np.random.default_rng(1)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 4)).astype(np.float32)
    big = numpy_helper.from_array(np.array(1024.0, np.float32), "big")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"), helper.make_node("Add", ["h", "big"], ["a"], name="add"),
             helper.make_node("Sub", ["a", "big"], ["s"], name="sub"), helper.make_node("MatMul", ["s", "w2"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"), big])
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path), w1, w2


def atc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(STANDINS / "atc"), "--framework=5", SOC, *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True)


def build(cwd: Path, model: str, name: str, *args: str) -> Path:
    """The .om ATC writes (made 0640: ais_bench refuses a group-writable model)."""
    result = atc(cwd, f"--model={model}", f"--output={cwd / name}", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    om = cwd / f"{name}.om"
    om.chmod(0o640)
    return om


def refused(result: subprocess.CompletedProcess, code: str) -> str:
    assert result.returncode == 255 and "ATC run failed" in result.stdout, result.stdout + result.stderr
    assert f"\n{code}: " in result.stdout, result.stdout
    return result.stdout


def ais_bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ais_bench", *map(str, args)], env={**ENV, **env}, capture_output=True,
                          text=True)


def load(path: Path):
    """A stand-in module by its file, leaving sys.path and the name ais_bench alone."""
    spec = importlib.util.spec_from_file_location(f"standin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_om(om: Path) -> tuple[dict, bytes]:
    """The stand-in .om's header and ONNX (tests/standins/standin_om.py)."""
    return load(STANDINS / "standin_om.py").read_om(str(om))


def header(om: Path) -> dict:
    return read_om(om)[0]


def out_dir(root: Path, name: str = "out") -> Path:
    folder = root / name
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    return folder


def inputs(folder: Path, arrays: dict[str, np.ndarray]) -> Path:
    folder.mkdir(mode=0o750)
    folder.chmod(0o750)
    for stem, array in arrays.items():
        np.save(folder / f"{stem}.npy", array)
        (folder / f"{stem}.npy").chmod(0o640)
    return folder


def run_onnx(model: str, feed: dict) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.fixture(scope="module")
def oms(tmp_path_factory):
    """The image model compiled three ways: dynamic batch 1,2,4; static batch 2; static batch 1 with AIPP."""
    root = tmp_path_factory.mktemp("oms")
    model = image_model(root / "image.onnx")
    aipp = root / "aipp.cfg"
    aipp.write_text("aipp_op {\n  aipp_mode: static\n  input_format: RGB888_U8\n  mean_chn_0: 10\n  var_reci_chn_0: 0.5\n}\n")
    return {"root": root, "onnx": model, "aipp_cfg": aipp,
            "dynamic": build(root, model, "dynamic", "--input_shape=image:-1,3,16,16", "--dynamic_batch_size=1,2,4"),
            "static": build(root, model, "static", "--input_shape=image:2,3,16,16"),
            "aipp": build(root, model, "aipp", "--input_shape=image:1,3,16,16", f"--insert_op_conf={aipp}")}


# ---------------------------------------------------------------------------------------------
# atc --dynamic_batch_size
# ---------------------------------------------------------------------------------------------

def test_atc_dynamic_batch_records_the_gears_and_keeps_a_symbolic_batch(oms):
    head = header(oms["dynamic"])
    assert head["dynamic_batch_size"] == [1, 2, 4] and head["input_shape"] == "image:-1,3,16,16"
    graph = onnx.load_from_string(read_om(oms["dynamic"])[1]).graph
    batch, *rest = graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value and [d.dim_value for d in rest] == [3, 16, 16]
    assert header(oms["static"])["dynamic_batch_size"] is None and header(oms["static"])["aipp"] is None
    # a trailing comma is dropped, empty items skipped (GraphEngine reads "1,,8," as 1,8)
    head = header(build(oms["root"], oms["onnx"], "commas", "--input_shape=image:-1,3,16,16", "--dynamic_batch_size=1,,8,"))
    assert head["dynamic_batch_size"] == [1, 8]


@pytest.mark.parametrize("shape, extra, code", [
    ("image:-1,3,16,16", ["--dynamic_batch_size=4"], "E10035"),  # one gear
    ("image:-1,3,16,16", ["--dynamic_batch_size=" + ",".join(map(str, range(1, 102)))], "E10036"),  # 101 gears
    ("image:-1,3,16,16", ["--dynamic_batch_size=1,2,2"], "E10039"),
    ("image:-1,3,16,16", ["--dynamic_batch_size=1,two"], "E10003"),
    ("image:-1,3,16,16", ["--dynamic_batch_size=0,2"], "E10038"),
    ("image:2,3,16,16", ["--dynamic_batch_size=1,2"], "E10031"),  # no -1 on a batch axis
    ("image:-1,3,-1,16", ["--dynamic_batch_size=1,2"], "E10018"),  # -1 off the batch axis
    ("image:1~4,3,16,16", ["--dynamic_batch_size=1,2"], "E10040"),
    ("image:-1,3,16,16", ["--dynamic_batch_size=1,2", "--dynamic_dims=1;2"], "E10009"),
    ("image:-1,3,16,16", ["--dynamic_batch_size=1,2", "--dynamic_image_size=16,16;32,32"], "E10009"),
    ("image:-1,3,16,16", [], "E10001"),  # -1 without a dynamic option
])
def test_atc_refuses_a_broken_dynamic_batch(oms, tmp_path, shape, extra, code):
    refused(atc(tmp_path, f"--model={oms['onnx']}", f"--output={tmp_path / 'm'}", f"--input_shape={shape}", *extra), code)
    assert not (tmp_path / "m.om").exists()


# ---------------------------------------------------------------------------------------------
# atc --insert_op_conf
# ---------------------------------------------------------------------------------------------

def test_atc_aipp_records_the_parsed_parameters(oms, tmp_path):
    config = tmp_path / "insert_op.cfg"
    config.write_text("# AIPP for cn_clip\naipp_op {\n  aipp_mode : static   # static AIPP\n  input_format:RGB888_U8\n"
                      "  src_image_size_w: 16\n  src_image_size_h: 16\n  csc_switch: false\n  rbuv_swap_switch: true\n"
                      "  mean_chn_0: 122 mean_chn_1: 116\n  mean_chn_2: 104\n  min_chn_0: 0.75\n  var_reci_chn_2: 0.0142\n}\n")
    om = build(tmp_path, oms["onnx"], "m", "--input_shape=image:-1,3,16,16", "--dynamic_batch_size=1,2",
               f"--insert_op_conf={config}")
    head = header(om)
    assert head["dynamic_batch_size"] == [1, 2]
    assert head["aipp"] == {"aipp_mode": "static", "input_format": "RGB888_U8", "related_input_rank": 0, "input": "image",
                            "src_image_size_w": 16, "src_image_size_h": 16, "csc_switch": False, "rbuv_swap_switch": True,
                            "mean_chn_0": 122, "mean_chn_1": 116, "mean_chn_2": 104,
                            "min_chn_0": 0.75, "min_chn_1": 0.0, "min_chn_2": 0.0,
                            "var_reci_chn_0": 1.0, "var_reci_chn_1": 1.0, "var_reci_chn_2": float(np.float32(0.0142))}
    # sizes left out (0) take the model input's W and H
    assert header(oms["aipp"])["aipp"]["src_image_size_w"] == 16 and header(oms["aipp"])["aipp"]["mean_chn_0"] == 10


GOOD = "aipp_mode: static\ninput_format: RGB888_U8\n"


@pytest.mark.parametrize("body, extra, code, message", [
    (GOOD + "mean_chn_0: 300", [], "E81012", "mean_chn_0[300] should be within[0, 255]"),
    (GOOD + "min_chn_1: -0.5", [], "E81012", "min_chn_1[-0.5] should be within[0, 255]"),
    (GOOD + "var_reci_chn_2: 70000", [], "E81012", "var_reci_chn_2[70000] should be within[-65504, 65504]"),
    (GOOD + "src_image_size_w: 224\nsrc_image_size_h: 224", [], "E81012", "input h[16] of network should be equal to "
                                                                          "src_image_size_h[224]"),
    ("aipp_mode: static", [], "E10052", "Input format of AIPP conf must be set in static aipp"),
    ("input_format: RGB888_U8", [], "E10052", "aipp_mode must be configured as static or dynamic"),
    (GOOD + "var_reci_chn_0: 1\nvar_reci_chn_0: 2", [], "E10052", "var_reci_chn_0 cannot be configured repeatedly"),
    (GOOD + "mean_chn: 1", [], "E13005", "no field named \"mean_chn\""),
    (GOOD + "mean_chn_0: 0.5", [], "E13005", "Failed to parse file"),
    ("aipp_mode: dynamic\nmax_src_image_size: 768", [], "E10001", "static AIPP only"),
    ("aipp_mode: static\ninput_format: YUV420SP_U8", [], "E10001", "RGB888_U8 only"),
    (GOOD + "csc_switch: true", [], "E10001", "csc_switch"),
    (GOOD, ["--input_shape=image:1,3,16,16", "--input_format=ND"], "E10001", "4-d NCHW input only"),
    (GOOD, ["--input_shape=image:1,3,16,16", "--dynamic_dims=1;2"], "E10001", "does not support AIPP"),
])
def test_atc_refuses_a_broken_aipp_config(oms, tmp_path, body, extra, code, message):
    config = tmp_path / "aipp.cfg"
    config.write_text("aipp_op {\n" + body + "\n}\n")
    args = extra or ["--input_shape=image:1,3,16,16"]
    out = refused(atc(tmp_path, f"--model={oms['onnx']}", f"--output={tmp_path / 'm'}", f"--insert_op_conf={config}", *args),
                  code)
    assert message in out
    assert not (tmp_path / "m.om").exists()


def test_atc_aipp_needs_three_channels(tmp_path):
    model = image_model(tmp_path / "gray.onnx", channels=1)
    config = tmp_path / "aipp.cfg"
    config.write_text("aipp_op { " + GOOD + " }")
    out = refused(atc(tmp_path, f"--model={model}", f"--output={tmp_path / 'm'}", "--input_shape=image:1,1,16,16",
                      f"--insert_op_conf={config}"), "E81012")
    assert "input c[1] must be 3 when input_format is RGB888_U8" in out


# ---------------------------------------------------------------------------------------------
# ais_bench --dymBatch
# ---------------------------------------------------------------------------------------------

def test_ais_bench_dym_batch_groups_inputs_by_the_n_batch_size(oms, tmp_path):
    rng = np.random.default_rng(2)
    images = {stem: rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for stem in ("a", "b", "c")}
    src, out = inputs(tmp_path / "in", images), out_dir(tmp_path)
    result = ais_bench("--model", oms["dynamic"], "--dymBatch", 2, "--input", src, "--output", out, "--output_dirname", "dst",
                       "--outfmt", "NPY")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "try get model batchsize:2" in result.stdout and "batchsize.mean(2)" in result.stdout
    summary = json.loads((out / "dst_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 2, "a and b in one batch of 2, c padded to the second"
    assert {k: v["infiles"] for k, v in summary["filesinfo"].items()} == {str(i): [str(src / f"{s}.npy")]
                                                                          for i, s in enumerate("abc")}
    for stem, image in images.items():
        got = np.load(out / "dst" / f"{stem}_0.npy")
        assert got.shape == (1, 5)
        np.testing.assert_allclose(got, run_onnx(oms["onnx"], {"image": image}), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("om, args, rc, messages", [
    ("dynamic", ["--dymBatch", "3"], 1, ["[ERROR] the dymBatch parameter is not correct",
                                        "[ERROR] model has dynamic batch size:{[1][2][4]}, please set correct dynamic batch size",
                                        "[1][ACL: invalid parameter]"]),
    ("dynamic", [], 1, ["dynamic batch om model detected, but dymbatch, dymdims or dymshape not set!"]),
    ("dynamic", ["--batchsize", "2"], 1, ["aclmdlSetDynamicBatchSize"]),
    ("static", ["--dymBatch", "2"], 1, ["[ERROR] the dynamic_batch_size parameter is not specified for model conversion"]),
    ("dynamic", ["--dymBatch", "5000"], 1, ["--dymBatch: 5000 is over 4096"]),
    ("dynamic", ["--dymBatch", "0"], 2, ["argument --dymBatch: 0 is an invalid positive int value"]),
    ("dynamic", ["--dymBatch", "2x"], 2, ["argument --dymBatch: 2x contains special characters other than numbers."]),
])
def test_ais_bench_refuses_a_broken_dym_batch(oms, om, args, rc, messages):
    result = ais_bench("--model", oms[om], "--loop", 1, *args)
    assert result.returncode == rc, result.stdout + result.stderr
    for message in messages:
        assert message in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# ais_bench --device 0,1
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("device, message", [
    ("256", "device:256 is invalid. valid value range is [0, 255]"),
    ("0,256", "256 of device:0,256 is invalid. valid value range is [0, 255]"),
    ("0,x", "Argument npu-id invalid input value: 0,x."),
    ("-1", "-1 contains special characters other than numbers."),
    (",".join(["0"] * 257), "too much device id in --device, max permitted count is 256"),
])
def test_ais_bench_refuses_a_broken_device_list(oms, device, message):
    result = ais_bench("--model", oms["static"], "--device", device)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_ais_bench_runs_one_process_per_device_into_the_real_folders(oms, tmp_path):
    rng = np.random.default_rng(3)
    images = {stem: rng.standard_normal((1, 3, 16, 16)).astype(np.float32) for stem in ("a", "b")}
    src, out = inputs(tmp_path / "in", images), out_dir(tmp_path)
    result = ais_bench("--model", oms["dynamic"], "--dymBatch", 1, "--input", src, "--output", out, "--output_dirname", "multi",
                       "--outfmt", "NPY", "--device", "2,0")
    log = result.stdout
    assert result.returncode == 0, log + result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "multi", "multi/device0_1", "multi/device0_1/a_0.npy", "multi/device0_1/b_0.npy", "multi/device0_1_summary.json",
        "multi/device2_0", "multi/device2_0/a_0.npy", "multi/device2_0/b_0.npy", "multi/device2_0_summary.json"]
    summaries = {name: json.loads((out / "multi" / f"{name}_summary.json").read_text()) for name in ("device2_0", "device0_1")}
    assert len({s["pid"] for s in summaries.values()}) == 2, "one process per device"
    for name, summary in summaries.items():
        assert summary["NPU_compute_time"]["count"] == 2 and summary["filesinfo"]["0"]["outfiles"][0].startswith(
            str(out / "multi" / name))
        for stem, image in images.items():
            np.testing.assert_allclose(np.load(out / "multi" / name / f"{stem}_0.npy"), run_onnx(oms["onnx"], {"image": image}),
                                       rtol=1e-5, atol=1e-6)
    assert log.count("Performance Summary") == 2 and "[INFO] multidevice:[2, 0] run begin" in log
    assert "[INFO] multidevice run end qsize:4 result:0" in log
    lines = re.findall(r"\[INFO\] i:(\d) device_(\d) throughput:([0-9.e+-]+) {17}start_time:[0-9.]+ end_time:[0-9.]+\n", log)
    assert sorted((i, d) for i, d, _ in lines) == [("0", "2"), ("1", "0")]
    for i, device, throughput in lines:
        assert float(throughput) == pytest.approx(summaries[f"device{device}_{i}"]["throughput"])
    total = float(re.search(r"\[INFO\] summary throughput:([0-9.e+-]+)", log)[1])
    assert total == pytest.approx(sum(s["throughput"] for s in summaries.values()))


def test_ais_bench_exits_1_when_a_device_fails(oms, tmp_path):
    out = out_dir(tmp_path)
    result = ais_bench("--model", oms["static"], "--output", out, "--output_dirname", "multi", "--device", "0,1",
                       STANDIN_AIS_BENCH_FAIL_DEVICE="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "subprocess run failed error_callback:aclmdlExecute failed" in result.stdout
    assert "multidevice run end qsize:3 result:1" in result.stdout
    assert re.findall(r"i:(\d) device_(\d) throughput", result.stdout) == [("0", "0")]
    assert (out / "multi" / "device0_0_summary.json").is_file() and not (out / "multi" / "device1_1_summary.json").exists()


# ---------------------------------------------------------------------------------------------
# ais_bench --display_all_summary, H2D / D2H
# ---------------------------------------------------------------------------------------------

def test_display_all_summary_prints_the_real_lines_and_the_copies_are_counted(oms, tmp_path):
    out = out_dir(tmp_path)
    result = ais_bench("--model", oms["static"], "--loop", 3, "--output", out, "--output_dirname", "pure",
                       "--display_all_summary", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search("\n".join([r"\[INFO\] -+Performance Summary-+", LINE.format("H2D_latency"),
                                LINE.format("NPU_compute_time"), LINE.format("D2H_latency"),
                                r"\[INFO\] throughput 1000\*batchsize"]), result.stdout), result.stdout
    summary = json.loads((out / "pure_summary.json").read_text())
    # pure inference: the zero input goes to the device once, the --loop runs reuse it, the output comes back once
    assert (summary["H2D_latency"]["count"], summary["D2H_latency"]["count"], summary["NPU_compute_time"]["count"]) == (1, 1, 3)
    for key in ("H2D_latency", "D2H_latency"):
        assert set(summary[key]) == STATS and summary[key]["min"] > 0, summary[key]
    # without the switch: no H2D/D2H lines, the figures still in the summary; with --input, one copy each way per batch
    src = inputs(tmp_path / "in", {s: np.zeros((2, 3, 16, 16), np.float32) for s in ("a", "b", "c")})
    result = ais_bench("--model", oms["static"], "--loop", 2, "--input", src, "--output", out, "--output_dirname", "files")
    assert result.returncode == 0 and "H2D_latency" not in result.stdout and "D2H_latency" not in result.stdout
    summary = json.loads((out / "files_summary.json").read_text())
    assert (summary["H2D_latency"]["count"], summary["D2H_latency"]["count"], summary["NPU_compute_time"]["count"]) == (3, 3, 6)
    assert summary["H2D_latency"]["mean"] > 0 and summary["D2H_latency"]["mean"] > 0


# ---------------------------------------------------------------------------------------------
# ais_bench on an AIPP .om
# ---------------------------------------------------------------------------------------------

def test_ais_bench_feeds_an_aipp_model_uint8_nhwc(oms, tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    src, out = inputs(tmp_path / "in", {"p": pixels}), out_dir(tmp_path)
    result = ais_bench("--model", oms["aipp"], "--input", src, "--output", out, "--output_dirname", "dst", "--outfmt", "NPY")
    assert result.returncode == 0, result.stdout + result.stderr
    f16 = np.float16
    expected = pixels.astype(np.float32).transpose(0, 3, 1, 2).copy()  # the config: channel 0 is (x - 10) * 0.5
    expected[:, 0] = ((pixels[..., 0].astype(f16) - f16(10)) * f16(0.5)).astype(np.float32)
    np.testing.assert_allclose(np.load(out / "dst" / "p_0.npy"), run_onnx(oms["onnx"], {"image": expected}), rtol=1e-5,
                               atol=1e-5)
    # pure inference: zeros of N*H*W*3 bytes
    assert ais_bench("--model", oms["aipp"], "--loop", 1).returncode == 0
    # the model's float NCHW image, or a uint8 image of another size, is not this model's input
    for name, wrong in (("float", np.zeros((1, 3, 16, 16), np.float32)), ("big", np.zeros((1, 32, 32, 3), np.uint8)),
                        ("nchw", np.zeros((1, 3, 16, 17), np.uint8))):
        bad = inputs(tmp_path / name, {"x": wrong})
        result = ais_bench("--model", oms["aipp"], "--input", bad)
        assert result.returncode == 1 and "arg0 tensorsize: 768 filesize: " in result.stdout, result.stdout


def cn_clip_normalisation():
    from cn_clip.clip.utils import image_transform

    normalize = image_transform(16).transforms[-1]
    return np.array(normalize.mean, np.float64), np.array(normalize.std, np.float64)


def test_aipp_emulation_matches_cn_clip_normalisation_within_fp16_rounding(tmp_path):
    """cn_clip's (x / 255 - mean) / std as AIPP's (x - mean_chn - min_chn) * var_reci_chn: mean_chn the integer
    part of 255 * mean, min_chn the rest, var_reci_chn 1 / (255 * std); through ATC and ais_bench (an Identity
    model returns what AIPP gave it) every one of the 256 values per channel lands within the fp16 rounding
    the AIPP unit does."""
    mean, std = cn_clip_normalisation()
    mean_chn = np.floor(255 * mean).astype(int)
    min_chn, var_reci = 255 * mean - mean_chn, 1 / (255 * std)
    config = tmp_path / "cn_clip.cfg"
    config.write_text("aipp_op {\n aipp_mode: static\n input_format: RGB888_U8\n csc_switch: false\n rbuv_swap_switch: false\n"
                      + "".join(f" mean_chn_{c}: {mean_chn[c]}\n min_chn_{c}: {float(min_chn[c])!r}\n"
                                f" var_reci_chn_{c}: {float(var_reci[c])!r}\n" for c in range(3)) + "}\n")
    om = build(tmp_path, identity_model(tmp_path / "identity.onnx"), "identity", "--input_shape=image:1,3,16,16",
               f"--insert_op_conf={config}")
    pixels = np.arange(256 * 3, dtype=np.int64).reshape(1, 16, 16, 3) % 256  # every value in every channel
    pixels = pixels.astype(np.uint8)
    src, out = inputs(tmp_path / "in", {"p": pixels}), out_dir(tmp_path)
    result = ais_bench("--model", om, "--input", src, "--output", out, "--output_dirname", "dst", "--outfmt", "NPY")
    assert result.returncode == 0, result.stdout + result.stderr
    got = np.load(out / "dst" / "p_0.npy").astype(np.float64)  # NCHW
    x = pixels.transpose(0, 3, 1, 2).astype(np.float64)
    m, s = mean[None, :, None, None], std[None, :, None, None]
    reference = (x / 255 - m) / s
    # AIPP's fp16 rounding (ATC keeps min_chn/var_reci as float32, the unit as fp16): b = fp16(x - mean_chn - mn16),
    # out = fp16(b * vr16); so |out - reference| <= half an fp16 step at out + (half a step at b + |mn16 - mn|) * |vr16|
    # + |x - mean_chn - mn| * |vr16 - vr|
    mn, vr = min_chn[None, :, None, None], var_reci[None, :, None, None]
    mn16 = mn.astype(np.float32).astype(np.float16).astype(np.float64)
    vr16 = vr.astype(np.float32).astype(np.float16).astype(np.float64)
    whole = x - mean_chn[None, :, None, None]
    half_step = lambda v: np.spacing(np.abs(v).astype(np.float16)).astype(np.float64) / 2  # noqa: E731
    bound = (half_step(np.maximum(np.abs(got), np.abs(reference))) + (half_step(whole - mn16) + np.abs(mn16 - mn)) * np.abs(vr16)
             + np.abs(whole - mn) * np.abs(vr16 - vr))
    error = np.abs(got - reference)
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert (error <= bound * (1 + 1e-6)).all(), f"error {error[worst]} over its bound {bound[worst]} at {worst}"
    # the rounding is fp16's (float32 arithmetic would stay near 1e-6), and small at the values' size (|out| < 2.2)
    assert 1e-4 < error.max() < 5e-3, error.max()


# ---------------------------------------------------------------------------------------------
# --precision_mode_v2=cube_fp16in_fp32out
# ---------------------------------------------------------------------------------------------

def test_cube_emulation_rounds_matmul_inputs_only_and_sits_between_fp32_and_fp16(tmp_path):
    from backends.onnxruntime import build_fp16  # the fp16 ONNX the workflow compiles for its fp16 target

    model, w1, w2 = wide_model(tmp_path / "wide.onnx")
    fp16 = str(build_fp16(model, tmp_path / "wide.fp16.onnx"))
    shape = ["--input_format=ND", "--input_shape=x:1,8"]
    cube = build(tmp_path, model, "cube", *shape, "--precision_mode_v2=cube_fp16in_fp32out")
    assert header(cube)["precision_mode_v2"] == "cube_fp16in_fp32out"
    fp32 = build(tmp_path, model, "fp32", *shape, "--precision_mode=must_keep_origin_dtype")
    half = build(tmp_path, fp16, "fp16", *shape)
    x = (np.random.default_rng(5).standard_normal((1, 8)) * 3).astype(np.float32)
    src = inputs(tmp_path / "in", {"x": x})

    def run(om, name, **env):
        out = out_dir(tmp_path, name)
        result = ais_bench("--model", om, "--input", src, "--output", out, "--output_dirname", "dst", "--outfmt", "NPY", **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return np.load(out / "dst" / "x_0.npy").astype(np.float64)

    got_cube, got_fp32 = run(cube, "cube"), run(fp32, "fp32")
    got_fp16 = run(half, "fp16", STANDIN_AIS_BENCH_FP16_STORAGE="1")  # the fp16 model stored in fp16 between nodes
    r = lambda a: a.astype(np.float16).astype(np.float32)  # noqa: E731
    h = r(x) @ r(w1)  # fp16 operands, fp32 products and sums; Add and Sub in fp32
    expected = r((h + np.float32(1024)) - np.float32(1024)) @ r(w2)
    np.testing.assert_allclose(got_cube, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got_fp32, x @ w1 @ w2, rtol=1e-4, atol=1e-3)
    cube_error, fp16_error = np.abs(got_cube - got_fp32).max(), np.abs(got_fp16 - got_fp32).max()
    assert 0 < cube_error < fp16_error, (cube_error, fp16_error)


# ---------------------------------------------------------------------------------------------
# all four on the shared tiny image model (conftest.tiny_onnx: a torch export with cn_clip's I/O names)
# ---------------------------------------------------------------------------------------------

def test_the_features_together_on_the_exported_tiny_model(tiny_onnx, tmp_path):
    config = tmp_path / "aipp.cfg"
    config.write_text("aipp_op { aipp_mode: static input_format: RGB888_U8 mean_chn_0: 122 mean_chn_1: 116 mean_chn_2: 104 "
                      "var_reci_chn_0: 0.0146 var_reci_chn_1: 0.0150 var_reci_chn_2: 0.0142 }")
    om = build(tmp_path, tiny_onnx["fp32"], "model", "--input_format=NCHW", "--input_shape=image:-1,3,16,16",
               "--dynamic_batch_size=1,2,4", f"--insert_op_conf={config}", "--precision_mode_v2=cube_fp16in_fp32out")
    head = header(om)
    assert head["dynamic_batch_size"] == [1, 2, 4] and head["aipp"]["input"] == "image"
    pixels = np.random.default_rng(6).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    src = inputs(tmp_path / "in", {f"p{i}": pixels[i:i + 1] for i in range(4)})
    out = out_dir(tmp_path)
    result = ais_bench("--model", om, "--dymBatch", 4, "--input", src, "--output", out, "--output_dirname", "dst",
                       "--outfmt", "NPY", "--device", "0,1", "--display_all_summary", "true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("batchsize.mean(4)") == 2 and len(re.findall(LINE.format("H2D_latency"), result.stdout)) == 2
    got = np.stack([np.load(out / "dst" / "device0_0" / f"p{i}_0.npy")[0] for i in range(4)])
    assert got.shape == (4, 16)
    np.testing.assert_array_equal(got, np.stack([np.load(out / "dst" / "device1_1" / f"p{i}_0.npy")[0] for i in range(4)]))
    npu = load(STANDINS / "ais_bench" / "npu.py")
    image = npu.aipp(pixels, head["aipp"], np.float32)
    cube = onnx.load_from_string(npu.cube_graph(read_om(om)[1]))
    np.testing.assert_allclose(got, run_onnx(cube.SerializeToString(), {"image": image}), rtol=1e-5, atol=1e-5)
    assert np.abs(got - run_onnx(tiny_onnx["fp32"], {"image": image})).max() > 0, "the cube mode's rounding shows"
