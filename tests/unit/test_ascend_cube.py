"""Ascend's cube_fp16in_fp32out (ATC --precision_mode_v2=cube_fp16in_fp32out: matrix products take fp16 inputs
and give fp32, vector ops in fp32) and its CPU proxy (scripts/backends/ascend/cube.py), on graphs built here:
it rounds exactly the floating inputs of MatMul, Gemm and Conv (checked against numpy), differs from fp32,
stays far closer to fp32 than the fp16 proxy where activations span a wide range, leaves a kept node
unrounded, and locate and repair find and keep the matrix product whose fp16 input overflows."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper, numpy_helper

import backends
from accuracy import causes as C
from accuracy.measures import cosine
from backends import ascend
from backends.ascend import cube

CUBE = "cube_fp16in_fp32out"


def r16(a) -> np.ndarray:
    """a rounded to fp16, back in fp32 (numpy's float16 rounds to nearest even, as a Cast does)."""
    return np.asarray(a, np.float32).astype(np.float16).astype(np.float32)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """image (1x3x8x8) -> Conv (4 filters 4x4, stride 4, bias) -> Reshape 1x16 -> Gemm (W 16x8, C) -> Sigmoid
    -> MatMul (with W_m) -> Add b_m -> Add ReduceSum(W_m) -> y (1x5). W_m is also read by the ReduceSum (a
    vector op): rounded for the MatMul in a copy, fp32 for the sum."""
    rng = np.random.default_rng(0)
    w = {"W_c": rng.standard_normal((4, 3, 4, 4)), "B_c": rng.standard_normal(4), "W_g": rng.standard_normal((16, 8)) / 4,
         "C_g": rng.standard_normal(8), "W_m": rng.standard_normal((8, 5)), "b_m": rng.standard_normal(5)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [numpy_helper.from_array(np.array([1, 16], np.int64), "shape"),
              numpy_helper.from_array(np.array([0], np.int64), "axes")]
    nodes = [helper.make_node("Conv", ["image", "W_c", "B_c"], ["conv"], name="/conv/Conv", kernel_shape=[4, 4],
                              strides=[4, 4]),
             helper.make_node("Reshape", ["conv", "shape"], ["flat"], name="/flat/Reshape"),
             helper.make_node("Gemm", ["flat", "W_g", "C_g"], ["gemm"], name="/fc/Gemm"),
             helper.make_node("Sigmoid", ["gemm"], ["act"], name="/act/Sigmoid"),
             helper.make_node("MatMul", ["act", "W_m"], ["mm"], name="/head/MatMul"),
             helper.make_node("Add", ["mm", "b_m"], ["biased"], name="/head/Add"),
             helper.make_node("ReduceSum", ["W_m", "axes"], ["colsum"], name="/head/ReduceSum", keepdims=0),
             helper.make_node("Add", ["biased", "colsum"], ["y"], name="/head/Add_1")]
    graph = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("image", T.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 5])], initializer=inits)
    path = tmp_path_factory.mktemp("mixed") / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    xs = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    return {"fp32": str(path), "w": w, "xs": xs}


def reference(x, w, rounded: bool = True, keep=()):
    """The mixed graph in float64 from (optionally) fp16-rounded inputs of its Conv, Gemm and MatMul."""
    def r(a, node):
        return r16(a).astype(np.float64) if rounded and node not in keep else np.asarray(a, np.float64)

    patches = r(x, "conv").reshape(1, 3, 2, 4, 2, 4)  # c, H, h, W, w
    conv = np.einsum("cHhWw,ochw->oHW", patches[0], r(w["W_c"], "conv")) + r(w["B_c"], "conv")[:, None, None]
    gemm = r(conv.reshape(1, 16).astype(np.float32), "gemm") @ r(w["W_g"], "gemm") + r(w["C_g"], "gemm")
    act = sigmoid(gemm).astype(np.float32)
    return r(act, "mm") @ r(w["W_m"], "mm") + w["b_m"] + w["W_m"].astype(np.float64).sum(axis=0)


def run(plan, model, x):
    return np.asarray(plan.load_reduced(model, {"threads": 1})(x), np.float64)


def test_the_proxy_rounds_exactly_the_matrix_products_inputs(mixed, tmp_path):
    model = ascend.build_reduced(mixed["fp32"], CUBE, [], tmp_path, {})
    fp32 = backends.reference().load_reduced(mixed["fp32"], {"threads": 1})
    for x in mixed["xs"]:
        got, exact = run(ascend, model, x), np.asarray(fp32(x), np.float64)
        want = reference(x, mixed["w"])
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5), np.abs(got - want).max()
        assert np.allclose(exact, reference(x, mixed["w"], rounded=False), rtol=1e-5, atol=1e-5)
        # the rounding shows: the proxy differs from fp32, 100x more than from the rounded reference
        assert np.abs(got - exact).max() > max(1e-4, 100 * np.abs(got - want).max())
    # the graph: each activation input of a cube node through one Cast pair, each weight rounded (the one the
    # ReduceSum reads too in a copy); nothing else changed
    g = onnx.load(model).graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    by_name = {n.name: n for n in g.node}
    casts = {n.input[0]: n for n in g.node if n.op_type == "Cast" and n.attribute[0].i == T.FLOAT16}
    assert sorted(casts) == ["act", "flat", "image"]
    for name in ("W_c", "B_c", "W_g", "C_g"):
        assert np.array_equal(inits[name], r16(mixed["w"][name])), name
    assert np.array_equal(inits["W_m"], mixed["w"]["W_m"]) and np.array_equal(inits["b_m"], mixed["w"]["b_m"])
    assert np.array_equal(inits["W_m" + cube.ROUNDED], r16(mixed["w"]["W_m"]))
    assert list(by_name["/head/MatMul"].input) == ["act" + cube.ROUNDED, "W_m" + cube.ROUNDED]
    assert list(by_name["/head/ReduceSum"].input) == ["W_m", "axes"] and list(by_name["/head/Add"].input) == ["mm", "b_m"]
    assert cube.is_proxy(onnx.load(model)) and not cube.is_proxy(onnx.load(mixed["fp32"]))


def test_keep_leaves_a_node_unrounded_and_keeping_every_candidate_is_fp32(mixed, tmp_path):
    graph, nodes = C.graph_candidates(ascend, mixed["fp32"], CUBE, tmp_path / "scratch", {})
    assert [(n["node"], n["op_type"]) for n in nodes] == [("/conv/Conv", "Conv"), ("/fc/Gemm", "Gemm"),
                                                          ("/head/MatMul", "MatMul")]
    model = ascend.build_reduced(graph, CUBE, ["/fc/Gemm"], tmp_path / "kept", {})
    g = onnx.load(model).graph
    gemm = next(n for n in g.node if n.name == "/fc/Gemm")
    assert list(gemm.input) == ["flat", "W_g", "C_g"]
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    assert np.array_equal(inits["W_g"], mixed["w"]["W_g"]) and np.array_equal(inits["W_c"], r16(mixed["w"]["W_c"]))
    for x in mixed["xs"]:
        got = run(ascend, model, x)
        assert np.allclose(got, reference(x, mixed["w"], keep=("gemm",)), rtol=1e-5, atol=1e-5)
    every = ascend.build_reduced(graph, CUBE, [n["node"] for n in nodes], tmp_path / "all", {})
    assert not [n for n in onnx.load(every).graph.node if n.op_type == "Cast"]
    fp32 = backends.reference().load_reduced(mixed["fp32"], {"threads": 1})
    for x in mixed["xs"]:
        assert np.array_equal(run(ascend, every, x), np.asarray(fp32(x), np.float64))


def wide_range_onnx(path, offset: float, seed: int = 0):
    """x (1x6x16) -> MatMul W1 -> Add `offset` (a common shift of every activation: the residual stream's wide
    range) -> LayerNorm (ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div) -> MatMul W2 -> y. Exact in fp32;
    stored in fp16 the shifted values lose their detail (offset 1000: spacing 0.5) or all of it (1e5, past
    65504: the fp16 converter clamps the shift to 65504, inf were it not)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array((rng.standard_normal((16, 16)) / 4).astype(np.float32), "W1"),
             numpy_helper.from_array(np.float32(offset).reshape(()), "offset"),
             numpy_helper.from_array(np.float32(2.0).reshape(()), "two"),
             numpy_helper.from_array(np.float32(1e-5).reshape(()), "eps"),
             numpy_helper.from_array((rng.standard_normal((16, 8)) / 4).astype(np.float32), "W2")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"], name="/mlp/MatMul"),
             helper.make_node("Add", ["h", "offset"], ["s"], name="/shift/Add"),
             helper.make_node("ReduceMean", ["s"], ["mean"], name="/ln/ReduceMean", axes=[-1]),
             helper.make_node("Sub", ["s", "mean"], ["c"], name="/ln/Sub"),
             helper.make_node("Pow", ["c", "two"], ["sq"], name="/ln/Pow"),
             helper.make_node("ReduceMean", ["sq"], ["var"], name="/ln/ReduceMean_1", axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="/ln/Add"),
             helper.make_node("Sqrt", ["ve"], ["sd"], name="/ln/Sqrt"),
             helper.make_node("Div", ["c", "sd"], ["n"], name="/ln/Div"),
             helper.make_node("MatMul", ["n", "W2"], ["y"], name="/head/MatMul")]
    graph = helper.make_graph(nodes, "wide", [helper.make_tensor_value_info("x", T.FLOAT, [1, 6, 16])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 6, 8])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return str(path)


@pytest.mark.parametrize("offset", [1e3, 1e5])
def test_on_wide_range_activations_the_proxy_stays_close_to_fp32_where_fp16_does_not(tmp_path, offset):
    """Vector ops in fp32 keep the shifted stream's detail through the LayerNorm (and its values past 65504);
    only the matrix products' inputs are rounded. The Ascend fp16 proxy stores every tensor in fp16."""
    fp32_onnx = wide_range_onnx(tmp_path / "fp32.onnx", offset)
    fp32 = backends.reference().load_reduced(fp32_onnx, {"threads": 1})
    cube_run = ascend.load_reduced(ascend.build_reduced(fp32_onnx, CUBE, [], tmp_path / "cube", {}), {"threads": 1})
    fp16_run = ascend.load_reduced(ascend.build_reduced(fp32_onnx, "fp16", [], tmp_path / "fp16", {}), {"threads": 1})
    rng = np.random.default_rng(1)
    for x in [rng.standard_normal((1, 6, 16)).astype(np.float32) for _ in range(3)]:
        exact = np.asarray(fp32(x), np.float64)
        got_cube, got_fp16 = np.asarray(cube_run(x), np.float64), np.asarray(fp16_run(x), np.float64)
        assert np.isfinite(got_cube).all() and not np.array_equal(got_cube, exact)
        cube_error = np.abs(got_cube - exact).max()
        assert cosine(got_cube, exact) > 0.9999 and cube_error < 0.05, cube_error
        fp16_error = np.abs(got_fp16 - exact).max() if np.isfinite(got_fp16).all() else np.inf
        assert cube_error < fp16_error / 10, (cube_error, fp16_error)
        assert not cosine(got_fp16, exact) > 0.999


def test_locate_and_repair_work_on_the_proxy(tmp_path):
    """test_kept_closure's graph, whose block-1 LayerNorm output passes 65504 on its way to a MatMul: the cube unit
    takes it in fp16 (inf), so the target is NaN; locate names that MatMul (measured, and the first jump agrees),
    repair keeps it alone (with its weight's Transpose) and passes. Keeping every candidate is test_kept_closure's."""
    from accuracy import locate as L
    from accuracy import repair as R
    from test_kept_closure import D, ln_cast_matmul_onnx, node, write_inputs

    fp32 = ln_cast_matmul_onnx(tmp_path / "fp32.onnx")
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 6, D)).astype(np.float32) for _ in range(3)]
    run = backends.reference().load_reduced(fp32, {"threads": 1})
    npy, ref = write_inputs(tmp_path / "data", xs, [run(x) for x in xs])
    _, summary = L.localise(ascend, fp32, CUBE, npy, ref, 0.99, {"threads": 1}, tmp_path / "l")
    assert summary["causes"]["target"]["nonfinite"] > 0
    top = summary["top_cause"]
    assert top["node"] == node(1, "mlp/MatMul") and top["first_jump"]["agrees"]
    record = R.repair(ascend, fp32, CUBE, npy, ref, 0.99, {"threads": 1}, summary, tmp_path / "r" / "model")
    assert record["passed"] and record["repaired"]
    assert record["kept"] == [node(1, "mlp/MatMul")] and record["closure"] == [node(1, "mlp/Transpose")]
