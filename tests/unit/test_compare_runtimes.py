"""bench/compare_runtimes.py: each runtime's worker times the workflow's own compiled model and
writes the features the cosine column is computed from; the table gives speed-ups against the
PyTorch row, marks rows measured under load, and names the install command when OpenVINO is absent."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compare_runtimes  # noqa: E402


def spec(tiny_onnx, tmp_path, runtime):
    return {"name": runtime, "runtime": runtime, "arch": "tiny", "threads": 1, "npy": tiny_onnx["npy"],
            "resolution": tiny_onnx["resolution"], "onnx_fp32": tiny_onnx["fp32"], "loop": 2, "warmup": 1,
            "quiet_wait_s": 0, "scratch": str(tmp_path / runtime), "features": str(tmp_path / "features" / runtime)}


@pytest.mark.parametrize("runtime", ["ort-fp32", "ort-int8", "ort-int8_dynamic", "ort-int8:attention"])
def test_an_onnx_runtime_worker_times_the_compiled_model_and_writes_its_features(tiny_onnx, tmp_path, runtime):
    out = compare_runtimes.worker(spec(tiny_onnx, tmp_path, runtime))
    assert out["s_per_image"] > 0 and out["loop"] == 2
    assert set(out["load"]) == {"others_cpu_cores", "loadavg_before", "loadavg_after", "under_load"}
    features = tmp_path / "features" / runtime
    assert sorted(p.name for p in features.iterdir()) == ["a.npy", "b.npy", "c.npy"]
    import onnxruntime as ort

    ref = ort.InferenceSession(tiny_onnx["fp32"], providers=["CPUExecutionProvider"])
    x = np.load(tiny_onnx["npy"][0])
    assert compare_runtimes.cosine(np.load(features / "a.npy"), ref.run(None, {"image": x})[0]) > 0.99


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
                    reason="OpenVINO/NNCF are an optional extra (envs/bench-openvino.txt)")
@pytest.mark.parametrize("runtime", ["ov-fp32", "ov-int8"])
def test_an_openvino_worker_runs_the_same_onnx(tiny_onnx, tmp_path, runtime):
    out = compare_runtimes.worker(spec(tiny_onnx, tmp_path, runtime))
    assert out["s_per_image"] > 0 and out["openvino"]
    assert (tmp_path / "features" / runtime / "a.npy").exists()


def load(others):
    return {"others_cpu_cores": others, "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [1.5, 1.0, 1.0],
            "under_load": others > 0.25}


def test_table_gives_speedups_against_pytorch_and_marks_load():
    rows = [{"runtime": "torch", "label": "PyTorch", "s_per_image": 2.0, "load": load(0.0)},
            {"runtime": "ort-int8", "label": "ORT int8", "s_per_image": 0.5, "load": load(1.0), "min_cosine": 0.9995,
             "static_recipe": "weights", "reduce_range": True},
            {"runtime": "ov-int8", "label": "OpenVINO int8", "error": compare_runtimes.openvino_missing() or "absent"}]
    text = compare_runtimes.table(rows, 6).splitlines()
    assert "| PyTorch | 2.000 | 1.00x | reference | 0.00 |" in text[2]
    assert "| ORT int8 | 0.500 | 4.00x | 0.999500 | 1.00 under load |" in text[3]
    assert "recipe weights, 7-bit int8 weights" in text[3]
    assert text[4].startswith("| OpenVINO int8 | ")
