import numpy as np
import onnx
import onnxruntime as ort
import pytest

from backends import onnxruntime as backend

OPTIONS = {"threads": 1, "device": "cpu"}


def reference(model_path, npy):
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    return sess.run(None, {"image": np.load(npy)})[0]


@pytest.mark.parametrize("bs", [1, 2])
def test_compile_fixes_batch_and_loads_without_reoptimising(tiny_onnx, tmp_path, bs):
    files = backend.compile(tiny_onnx["fp16"], tmp_path / f"bs{bs}", bs, tiny_onnx["resolution"], OPTIONS)
    model = onnx.load(files[0])
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [bs, 3, 16, 16]
    sess = backend.session(files[0], 1)  # optimisations disabled: what infer and benchmark use
    x = np.concatenate([np.load(f) for f in tiny_onnx["npy"][:bs]])
    out = sess.run(None, {"image": x})[0]
    assert out.shape == (bs, 16) and out.dtype == np.float32
    # no scratch files left beside the model
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".compile-")]


def test_infer_writes_ais_bench_layout_matching_onnx_runtime(tiny_onnx, tmp_path):
    model = backend.compile(tiny_onnx["fp16"], tmp_path / "m", 1, 16, OPTIONS)[0]
    backend.infer(model, tiny_onnx["npy"], tmp_path / "dst", OPTIONS)
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["a_0.npy", "b_0.npy", "c_0.npy"]
    for npy in tiny_onnx["npy"]:
        stem = npy.rsplit("/", 1)[1][:-4]
        got = np.load(tmp_path / "dst" / f"{stem}_0.npy")
        np.testing.assert_allclose(got, reference(tiny_onnx["fp16"], npy), rtol=1e-3, atol=1e-3)


def test_benchmark_reports_throughput_and_latency(tiny_onnx, tmp_path):
    model = backend.compile(tiny_onnx["fp32"], tmp_path / "m", 2, 16, OPTIONS)[0]
    result = backend.benchmark(model, tiny_onnx["npy"], 2, loop=4, warmup=1, options=OPTIONS)
    assert result["batch_size"] == 2 and result["loop"] == 4 and result["threads"] == 1
    assert result["throughput_fps"] > 0
    assert set(result["latency_ms"]) >= {"mean", "p50", "p90", "p99"}


def test_int8_compile_quantises_and_stays_close(tiny_onnx, tmp_path):
    files = backend.compile(tiny_onnx["fp32"], tmp_path / "int8", 1, 16, {**OPTIONS, "precision": "int8"})
    ops = {n.op_type for n in onnx.load(files[0]).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger"}, ops
    sess = backend.session(files[0], 1)
    x = np.load(tiny_onnx["npy"][0])
    got, ref = sess.run(None, {"image": x})[0].ravel(), reference(tiny_onnx["fp32"], tiny_onnx["npy"][0]).ravel()
    assert got @ ref / np.linalg.norm(got) / np.linalg.norm(ref) > 0.99


def test_scratch_left_by_a_killed_compile_is_removed_and_others_untouched(tiny_onnx, tmp_path):
    stale = tmp_path / ".compile-bs1-abc123"
    other = tmp_path / ".compile-bs2-def456"  # a concurrent job's scratch (another batch size)
    stale.mkdir()
    other.mkdir()
    (stale / "fixed.onnx.data").write_bytes(b"x" * 100)
    backend.compile(tiny_onnx["fp16"], tmp_path / "bs1", 1, 16, OPTIONS)
    assert not stale.exists() and other.exists()
