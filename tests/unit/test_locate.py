"""locate on small graphs built here with onnx.helper: a residual MLP block like cn_clip's, whose hidden
layer can be scaled past fp16's range (2**16: every hidden value above 1 in size overflows)."""
import json

import numpy as np
import pytest

import locate as locate_rule  # the rule script (scripts/locate.py)
from accuracy import locate as L
from accuracy import node_view as V
from backends.onnxruntime import graph_session
from graph.segments import SegmentRunner
from backends import ascend
from backends.onnxruntime import build_fp16

D, H = 8, 32
NAMES = {"fc1": "blk.0/mlp/fc1", "bias": "blk.0/mlp/bias", "act": "blk.0/mlp/act", "fc2": "blk.0/mlp/fc2",
         "res": "blk.0/res", "out": "head/out"}


def mlp_onnx(path, scale=1.0, seed=0):
    """x (1x4xD) -> MatMul W1*scale -> Add b*scale -> Relu -> MatMul W2/scale -> Add x -> MatMul Wo -> y.
    Exact in fp32 for any power-of-two scale: relu(s z) / s = relu(z). No value_info, as torch writes."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((D, H)) / np.sqrt(D) * scale).astype(np.float32)
    b = (0.1 * rng.standard_normal(H) * scale).astype(np.float32)
    w2 = (rng.standard_normal((H, D)) / np.sqrt(H) / scale).astype(np.float32)
    wo = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32)
    n = NAMES
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h1"], name=n["fc1"]),
             helper.make_node("Add", ["h1", "b"], ["h2"], name=n["bias"]),
             helper.make_node("Relu", ["h2"], ["h3"], name=n["act"]),
             helper.make_node("MatMul", ["h3", "w2"], ["h4"], name=n["fc2"]),
             helper.make_node("Add", ["x", "h4"], ["r"], name=n["res"]),
             helper.make_node("MatMul", ["r", "wo"], ["y"], name=n["out"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", T.FLOAT, [1, 4, D])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, D])],
                              initializer=[numpy_helper.from_array(a, k) for k, a in
                                           (("w1", w1), ("b", b), ("w2", w2), ("wo", wo))])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def inputs(n=2, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 4, D)).astype(np.float32) for _ in range(n)]


def run_all(path, names, x):
    """Plain ONNX Runtime, every name marked as a graph output (Polygraphy's mark all)."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(path))
    for name in names:
        m.graph.output.append(onnx.ValueInfoProto(name=name))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in m.graph.output], sess.run(None, {"x": x})))


@pytest.fixture
def overflow(tmp_path):
    fp32 = mlp_onnx(tmp_path / "m.fp32.onnx", scale=2.0 ** 16)
    return fp32, build_fp16(fp32, tmp_path / "m.fp16.onnx")


@pytest.fixture
def ordinary(tmp_path):
    fp32 = mlp_onnx(tmp_path / "o.fp32.onnx")
    return fp32, build_fp16(fp32, tmp_path / "o.fp16.onnx")


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_segments_give_the_same_tensors_as_one_run_with_every_output_marked(tmp_path, chunk):
    fp32 = mlp_onnx(tmp_path / "m.onnx")
    names = ["h1", "h2", "h3", "h4", "r", "y"]
    groups = [names[i:i + chunk] for i in range(0, len(names), chunk)]
    runner = SegmentRunner(fp32, groups, graph_session)
    for x in inputs():
        got = {}
        for values in runner.run({"x": x}):
            got.update(values)
        want = run_all(fp32, names, x)
        assert set(got) == set(names)
        for name in names:  # r = x + h4 needs x held across segments
            np.testing.assert_array_equal(got[name], want[name])
    if chunk == 1:
        assert len(runner.segments) == len(names)


def test_fp16_storage_shows_the_overflow_that_onnx_runtime_cpu_computes_away(overflow):
    fp32, fp16 = overflow
    x = inputs(1)[0]
    plain = run_all(fp16, [], x)["y"]  # ONNX Runtime's CPU runs MatMul/Add/Relu in fp32 between Casts
    assert np.isfinite(plain).all()
    stored = next(iter(SegmentRunner(fp16, [["y"]], graph_session, fp16_storage=True).run({"x": x})))["y"]
    assert not np.isfinite(stored).all()


def test_fp16_storage_keeps_each_weight_in_the_segment_of_the_node_that_reads_it(tmp_path):
    """cn_clip's export puts weights behind Transposes (weight-only nodes, no input upstream). Each goes into
    the segment of the node that reads it, not into one first segment holding every weight of the model: that
    segment's bytes change with every kept set, so each locate or repair build cached one more copy of the
    whole model (docs/accuracy.md: ViT-B-16's fp16 locate, before and after)."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {f"w{i}": (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32) for i in range(3)}
    # the weight-only nodes first, as the exporter writes its Constants and weight Identities
    nodes, h = [helper.make_node("Transpose", [f"w{i}"], [f"wt{i}"], name=f"blk.{i}/wt", perm=[1, 0])
                for i in range(3)], "x"
    for i in range(3):
        nodes.append(helper.make_node("MatMul", [h, f"wt{i}"], [f"h{i}"], name=f"blk.{i}/mm"))
        h = f"h{i}"
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", T.FLOAT, [1, 4, D])],
                              [helper.make_tensor_value_info(h, T.FLOAT, [1, 4, D])],
                              initializer=[numpy_helper.from_array(a, k) for k, a in weights.items()])
    path = tmp_path / "t.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    runner = SegmentRunner(path, [[h]], graph_session, fp16_storage=True)
    read = [{x for i in idx for x in runner.nodes[i].input if x in runner.inits} for idx, _, _ in runner.segments]
    assert sorted(map(sorted, filter(None, read))) == [["w0"], ["w1"], ["w2"]]
    x = inputs(1)[0]
    np.testing.assert_allclose(next(iter(runner.run({"x": x})))[h], run_all(path, [], x)[h], rtol=1e-6)


def test_locate_names_the_first_overflowing_node_and_the_nodes_around_it(overflow):
    fp32, fp16 = overflow
    rows, summary = V.compare_graphs(fp32, fp16, inputs(), input_name="x", chunk=2)
    assert [r["tensor"] for r in rows] == ["h1", "h2", "h3", "h4", "r", "y"]  # fp32 names only, in order
    jump = summary["first_jump"]
    assert jump["node"] == NAMES["fc1"] and jump["op_type"] == "MatMul" and jump["nonfinite_new"] > 0
    assert summary["first_nonfinite"]["node"] == NAMES["fc1"]
    assert summary["overflow_nodes"] == [NAMES[k] for k in ("fc1", "bias", "act", "fc2")]
    assert summary["op_types"][0]["op_type"] == "MatMul" and summary["op_types"][0]["share"] > 0.9
    assert rows[-1]["nonfinite_new"] > 0 and rows[-1]["increment"] == 0  # carried, not added, by the head


def test_an_ordinary_model_has_no_jump(ordinary):
    fp32, fp16 = ordinary
    rows, summary = V.compare_graphs(fp32, fp16, inputs(), input_name="x")
    assert summary["first_jump"] is None and summary["overflow_nodes"] == []
    assert all(r["cosine_min"] > 0.999 and r["nonfinite_new"] == 0 for r in rows)
    assert summary["final"]["tensor"] == "y"


def test_tensors_the_target_adds_are_not_rows_and_renamed_io_still_matches(ordinary):
    import onnx

    fp32, fp16 = ordinary
    target = onnx.load(str(fp16))
    added = {o for n in target.graph.node for o in n.output} - {"h1", "h2", "h3", "h4", "r", "y"}
    assert added  # the converter's Casts for fp32 input/output
    rows, _ = V.compare_graphs(fp32, fp16, inputs(1), input_name="x")
    assert not added & {r["tensor"] for r in rows}
    assert rows[-1]["tensor"] == "y"  # graph output: the target's Cast back to fp32 keeps the name


def test_first_jump_uses_the_running_median_the_floor_and_atol():
    def rows(errors, abs_err=1.0):
        return [{"depth": i, "node": f"n{i}", "op_type": "Op", "tensor": f"t{i}", "block": None, "error": e,
                 "one_minus_cosine": e, "nonfinite_new": 0, "max_abs_err": abs_err} for i, e in enumerate(errors)]

    assert V.first_jump(rows([1e-7, 2e-7, 1e-7, 5e-3, 1e-2]))["depth"] == 3
    assert V.first_jump(rows([1e-9, 1e-9, 5e-5])) is None  # 10x the median, but under the floor
    assert V.first_jump(rows([5e-5, 6e-5, 8e-5, 1.1e-4, 1.5e-4, 2e-4])) is None  # a slow climb: no single jump
    assert V.first_jump(rows([2e-3, 2e-3]))["depth"] == 0  # over the floor with nothing before it
    # a near-zero tensor (a LayerNorm's mean): 1 - cosine 0.9 from a 2e-5 difference counts as no error
    assert V.error_of({"cosine": 0.1, "max_abs_err": 2e-5, "nonfinite_new": 0}) == 0.0
    assert V.error_of({"cosine": 0.1, "max_abs_err": 2e-2, "nonfinite_new": 0}) == pytest.approx(0.9)
    assert V.error_of({"cosine": 0.99, "max_abs_err": 1e-6, "nonfinite_new": 3}) == 1.0


def test_tensor_stats_values():
    r = np.array([1.0, 0.0, 0.0], np.float32)
    s = V.tensor_stats(r, np.array([1.0, 1.0, 0.0], np.float16))
    assert s["cosine"] == pytest.approx(1 / np.sqrt(2)) and s["max_abs_err"] == 1.0 and s["rel_err"] == 1.0
    s = V.tensor_stats(np.array([1.0, 2.0], np.float32), np.array([np.inf, 2.0], np.float16))
    assert s["nonfinite_new"] == 1 and np.isfinite(s["cosine"])
    tiny = np.float32(1e-5) * np.arange(1, 1001, dtype=np.float32)
    assert 1 - V.tensor_stats(tiny, tiny * np.float32(1 + 1e-4))["cosine"] == pytest.approx(0.0, abs=1e-9)


def test_int8_rows_match_the_quantised_graph_by_name(tmp_path):
    from backends.onnxruntime import build_int8, int8_prepared

    fp32 = mlp_onnx(tmp_path / "m.onnx")
    prepared = int8_prepared(fp32, tmp_path / "work")
    int8 = build_int8(prepared, tmp_path / "int8" / "model.onnx")
    rows, summary = V.compare_graphs(prepared, int8, inputs(), input_name="x")
    by_tensor = {r["tensor"]: r for r in rows}
    assert {"h1", "h4", "y"} <= set(by_tensor)  # quantised MatMuls keep their output names
    assert by_tensor["h1"]["error"] > 0 and by_tensor["h1"]["cosine_min"] > 0.9  # 8-wide rows: int8 is coarse
    assert summary["op_types"][0]["op_type"] == "MatMul"


def fabricate_dump(out_dir, fp16, nodes, x):
    """What `ais_bench --dump 1 --dump_npy 1 --output OUT` leaves: OUT/dump/{ts}_npy/{device}/{model}/{model_id}/
    {data_index}/{op_type}.{op_name}.{task}.{stream}.{ts}.output.{i}.{shape}.npy, op names with . and / as _."""
    folder = out_dir / "dump" / "20260101120000_npy" / "0" / "model" / "1" / "0"
    folder.mkdir(parents=True)
    names = [n.output[0] for n in nodes]
    values = {}
    for v in SegmentRunner(fp16, [[t] for t in names], graph_session, fp16_storage=True).run({"x": x}):
        values.update(v)
    for task, n in enumerate(nodes):
        a = values[n.output[0]]
        stem = f"{n.op_type}.{ascend.dumps.dump_op_name(n.name)}.{task}.2.1767268800000000"
        np.save(folder / f"{stem}.output.0.{'x'.join(map(str, a.shape))}.npy", a)
        np.save(folder / f"{stem}.input.0.{'x'.join(map(str, a.shape))}.npy", a)
    np.save(folder / "notadump.npy", np.zeros(1))
    return out_dir


def test_ais_bench_dump_is_read_and_located_like_the_onnx_target(overflow, tmp_path):
    import onnx

    fp32, fp16 = overflow
    nodes = list(onnx.load(str(fp32)).graph.node)
    x = inputs(1)[0]
    out = fabricate_dump(tmp_path / "ais_out", fp16, nodes, x)
    dump = ascend.dumps.read_ais_bench_dump(out)
    assert set(dump) == {ascend.dumps.dump_op_name(n.name) for n in nodes}
    assert dump["blk_0_mlp_fc1"]["op_type"] == "MatMul" and 0 in dump["blk_0_mlp_fc1"]["outputs"]
    where = ascend.dumps.DumpTarget(dump, onnx.load(str(fp32)), []).where
    rows, summary = V.compare_tensors(fp32, {t: np.load(f) for t, f in where.items()}, x, input_name="x")
    assert [r["tensor"] for r in rows] == ["h1", "h2", "h3", "h4", "r", "y"]
    assert summary["first_jump"]["node"] == NAMES["fc1"]
    with pytest.raises(FileNotFoundError, match="dump_npy"):
        ascend.dumps.read_ais_bench_dump(tmp_path / "empty")


def test_outputs_csv_chart_json_round_trip(overflow, tmp_path):
    fp32, fp16 = overflow
    rows, summary = V.compare_graphs(fp32, fp16, inputs(1), input_name="x")
    L.write_outputs(rows, summary, tmp_path / "l.csv", tmp_path / "l.png", tmp_path / "l.json")
    import csv

    with open(tmp_path / "l.csv", newline="", encoding="utf-8") as f:
        back = list(csv.DictReader(f))
    assert [(r["node"], r["op_type"], int(r["depth"])) for r in back] == \
        [(r["node"], r["op_type"], r["depth"]) for r in rows]
    assert int(back[0]["nonfinite_new"]) == rows[0]["nonfinite_new"] > 0
    assert (tmp_path / "l.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "l.json").read_text())
    assert saved["first_jump"]["node"] == NAMES["fc1"] and saved["memory"]["approach"] == "segments"


def test_a_target_that_met_its_gates_gets_a_record_and_no_localisation(tmp_path):
    """The locate job of a target whose similarity.json shows every gate met writes a record saying so (and
    the empty CSV and a chart) without loading any model; a missed gate makes it locate."""
    import json
    from types import SimpleNamespace

    class Named(SimpleNamespace):
        def keys(self):
            return vars(self).keys()

        def get(self, key, default=None):
            return vars(self).get(key, default)

    def similarity(passed):
        path = tmp_path / "similarity.json"
        path.write_text(json.dumps({"gates": [{"a": "offline", "b": "torch_fp32", "passed": passed}]}))
        return path

    out = Named(csv=str(tmp_path / "l.csv"), chart=str(tmp_path / "l.png"), json=str(tmp_path / "l.json"))
    smk = SimpleNamespace(input=Named(model=str(tmp_path / "missing.onnx"), npy=[], similarity=str(similarity(True))),
                          output=out, params=Named(always=False),
                          wildcards=Named(backend="onnxruntime", precision="fp16"))
    locate_rule.main(smk)
    record = json.loads((tmp_path / "l.json").read_text())
    assert record["located"] is False and "locate: all" in record["reason"] and record["first_jump"] is None
    assert (tmp_path / "l.csv").read_text().startswith("depth,") and (tmp_path / "l.png").stat().st_size > 0
    assert L.gates_met(similarity(False)) is None
    smk.params = Named(always=True, max_inputs=4, gate=0.99, options={})  # locate: all: the job locates (here: no model to read)
    similarity(True)
    with pytest.raises(Exception):
        locate_rule.main(smk)
