"""bench/compare_runtimes.py: each row is a CPU plan's own target (its compile, benchmark and infer), timed
the workflow's way, with the features the cosine column is computed from; the rows come from the plans, not
from a list of backends; the table gives speed-ups against the PyTorch row and marks rows measured under
load."""
import sys
from pathlib import Path

import numpy as np
import pytest

import backends

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import compare_runtimes  # noqa: E402

CPU_ROWS = [r for r in compare_runtimes.runtimes() if r != "torch"]


def spec(tiny_onnx, tmp_path, runtime):
    return {"name": runtime, "runtime": runtime, "arch": "tiny", "threads": 1, "npy": tiny_onnx["npy"],
            "resolution": tiny_onnx["resolution"], "onnx_fp32": tiny_onnx["fp32"], "onnx_fp16": tiny_onnx["fp16"],
            "loop": 2, "warmup": 1, "quiet_wait_s": 0, "options": {}, "scratch": str(tmp_path / runtime),
            "features": str(tmp_path / "features" / runtime)}


def test_the_rows_are_every_precision_of_every_plan_on_the_host_cpu():
    plans = [backends.get(n) for n in backends.names() if backends.get(n).RUNS_ON_HOST_CPU]
    assert set(CPU_ROWS) == {f"{p.NAME}-{precision}" for p in plans for precision in p.PRECISIONS}
    assert all(compare_runtimes.runtimes()[f"{p.NAME}-fp32"].startswith(p.LABEL) for p in plans)


@pytest.mark.parametrize("runtime", CPU_ROWS)
def test_a_worker_times_the_plans_own_target_and_writes_its_features(tiny_onnx, tmp_path, runtime):
    out = compare_runtimes.worker(spec(tiny_onnx, tmp_path, runtime))
    assert out["s_per_image"] > 0 and out["loop"] == 2 and out["versions"]
    assert set(out["load"]) >= {"others_cpu_cores", "loadavg_before", "loadavg_after", "under_load"}
    features = tmp_path / "features" / runtime
    assert sorted(p.name for p in features.iterdir()) == ["a_0.npy", "b_0.npy", "c_0.npy"]
    run = backends.reference().load_reduced(tiny_onnx["fp32"], {"threads": 1})
    x = np.load(tiny_onnx["npy"][0])
    assert compare_runtimes.cosine(np.load(features / "a_0.npy"), run(x)) > 0.99


def load(others):
    return {"others_cpu_cores": others, "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [1.5, 1.0, 1.0],
            "under_load": others > 0.25}


def test_table_gives_speedups_against_pytorch_and_marks_load():
    rows = [{"runtime": "torch", "label": "PyTorch", "s_per_image": 2.0, "load": load(0.0)},
            {"runtime": "x-int8", "label": "X int8", "s_per_image": 0.5, "load": load(1.0), "min_cosine": 0.9995,
             "versions": {"x": "1.2"}},
            {"runtime": "y-int8", "label": "Y int8", "error": "exited 1 (its output is above)"}]
    text = compare_runtimes.table(rows, 6).splitlines()
    assert "| PyTorch | 2.000 | 1.00x | reference | 0.00 |" in text[2]
    assert "| X int8 | 0.500 | 4.00x | 0.999500 | 1.00 under load |" in text[3] and "x 1.2" in text[3]
    assert text[4].startswith("| Y int8 | exited 1")
