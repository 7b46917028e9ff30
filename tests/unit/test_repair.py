"""locate's measured causes and repair on small graphs built here with onnx.helper: residual blocks named as
cn_clip's image tower names them (`/visual/transformer/resblocks/resblocks.N/...`), one of which carries a
planted defect, deployed through the real backend plans (the fp16 converter and fp16 storage of the
Ascend proxy; ONNX Runtime's static int8 quantiser)."""
import json

import numpy as np
import pytest

import backends
from accuracy import causes as C
from accuracy import locate as L
from accuracy import repair as R
from pipeline.common import write_features

D, H = 16, 32


def block_name(b: int, part: str) -> str:
    return f"/visual/transformer/resblocks/resblocks.{b}/mlp/{part}"


def blocks_onnx(path, blocks=3, overflow=None, outliers=None, seed=0):
    """x (1x4xD) -> stem MatMul -> `blocks` residual blocks (gain Mul -> fc1 MatMul -> Add bias -> Relu -> fc2
    MatMul -> residual Add) -> head MatMul -> y. `overflow`: that block's fc1 and bias x 2**16 and fc2 / 2**16
    (exact in fp32, past fp16's range in between); `outliers`: that block's gain on channel 0 x 2**10 and
    fc1's row 0 / 2**10 (exact in fp32; one huge channel for per-tensor int8 activations)."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = {}, []

    def weight(name, shape, scale=1.0):
        inits[name] = (rng.standard_normal(shape) / np.sqrt(shape[0]) * scale).astype(np.float32)
        return name

    nodes.append(helper.make_node("MatMul", ["x", weight("w_stem", (D, D))], ["s0"], name="/visual/stem/MatMul"))
    prev = "s0"
    for b in range(blocks):
        s = 2.0 ** 16 if b == overflow else 1.0
        gain = np.ones(D, dtype=np.float32)
        w1 = weight(f"w1_{b}", (D, H), s)
        if b == outliers:
            gain[0] = 2.0 ** 10
            inits[w1][0] /= 2.0 ** 10
        inits[f"g_{b}"] = gain
        inits[f"b_{b}"] = (0.1 * rng.standard_normal(H) * s).astype(np.float32)
        w2 = weight(f"w2_{b}", (H, D), 1 / s)
        nodes += [helper.make_node("Mul", [prev, f"g_{b}"], [f"g{b}"], name=block_name(b, "gain")),
                  helper.make_node("MatMul", [f"g{b}", w1], [f"h{b}"], name=block_name(b, "fc1/MatMul")),
                  helper.make_node("Add", [f"h{b}", f"b_{b}"], [f"a{b}"], name=block_name(b, "fc1/Add")),
                  helper.make_node("Relu", [f"a{b}"], [f"r{b}"], name=block_name(b, "act")),
                  helper.make_node("MatMul", [f"r{b}", w2], [f"o{b}"], name=block_name(b, "fc2/MatMul")),
                  helper.make_node("Add", [prev, f"o{b}"], [f"s{b + 1}"], name=f"/visual/transformer/resblocks/"
                                                                             f"resblocks.{b}/Add")]
        prev = f"s{b + 1}"
    nodes.append(helper.make_node("MatMul", [prev, weight("w_head", (D, D))], ["y"], name="/visual/head/MatMul"))
    graph = helper.make_graph(nodes, "blocks", [helper.make_tensor_value_info("x", T.FLOAT, [1, 4, D])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 4, D])],
                              initializer=[numpy_helper.from_array(a, k) for k, a in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def run(path, xs):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [sess.run(None, {"x": x})[0] for x in xs]


def case(tmp_path, n=3, **defect):
    """fp32 graph, npy inputs, their fp32 features as the shard features file the workflow writes."""
    fp32 = blocks_onnx(tmp_path / "m.fp32.onnx", **defect)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 4, D)).astype(np.float32) for _ in range(n)]
    (tmp_path / "npy").mkdir()
    npy = []
    for i, x in enumerate(xs):
        np.save(tmp_path / "npy" / f"img{i}.npy", x)
        npy.append(str(tmp_path / "npy" / f"img{i}.npy"))
    write_features(tmp_path / "ref.npz", [f"img{i}" for i in range(n)], run(fp32, xs))
    return fp32, npy, [str(tmp_path / "ref.npz")]


OPTIONS = {"threads": 1}


@pytest.mark.parametrize("block", [0, 2])
def test_an_fp16_overflow_is_located_to_its_block_and_repaired_with_only_its_nodes(tmp_path, block):
    """The Ascend proxy (fp16 stored between nodes): the target gives inf/NaN; locate's worst unit is the
    planted block, its worst node fc1; repair keeps only nodes of that block, passes, and no single kept
    node can go (1-minimal, checked here by rebuilding without each one)."""
    plan = backends.get("ascend")
    fp32, npy, ref = case(tmp_path, overflow=block)
    rows, summary = L.localise(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, tmp_path / "scratch")
    causes = summary["causes"]
    assert causes["target"]["nonfinite"] > 0 and not causes["target"]["passed"]
    assert causes["units"][0]["unit"] == f"resblocks.{block}" and causes["units"][0]["error"] == 2.0
    assert all(u["error"] < 1e-3 for u in causes["units"][1:]), "no other unit loses accuracy alone"
    assert summary["top_cause"]["unit"] == f"resblocks.{block}"
    assert summary["first_jump"]["node"] == block_name(block, "fc1/MatMul"), "the second view agrees here"
    record = R.repair(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, summary, tmp_path / "repair" / "model")
    assert record["repaired"] and record["passed"] and record["after"]["cosine_min"] > 0.999
    assert record["kept"] and all(f"resblocks.{block}/" in n for n in record["kept"])
    assert record["kept_units"] == [f"resblocks.{block}"]
    phases = [s["phase"] for s in record["steps"]]
    assert phases[0] == "grow" and "shrink" in phases and record["grown_to"] > len(record["kept"])
    files, xs, refs = C.inputs_and_references(npy, ref)
    measure = C.Measure(plan, fp32, "fp16", xs, C.Judge(files, refs, 0.99), OPTIONS, tmp_path / "m")
    for node in record["kept"]:
        assert not measure([n for n in record["kept"] if n != node])["passed"], f"{node} could go: not 1-minimal"
    assert set(record["speed"]["latency_ms_p50"]) == {"repaired", "unrepaired", "fp32"}


def test_int8_activation_outliers_are_located_to_their_block_and_node_and_repaired(tmp_path):
    """ONNX Runtime's static int8: block 1's fc1 input has one channel 2**10 larger, so per-tensor uint8
    crushes the others. The first jump of the node-by-node view is the stem (every quantised node adds a
    little error from the first one on); the measured cause is block 1's fc1, and repair keeps only it."""
    plan = backends.get("onnxruntime")
    fp32, npy, ref = case(tmp_path, n=4, outliers=1)
    options = {**OPTIONS, "calibration": npy, "reduce_range": False}
    rows, summary = L.localise(plan, fp32, "int8", npy, ref, 0.99, options, tmp_path / "scratch")
    causes = summary["causes"]
    assert not causes["target"]["passed"]
    assert causes["units"][0]["unit"] == "resblocks.1"
    assert causes["nodes"][0]["node"] == block_name(1, "fc1/MatMul")
    record = R.repair(plan, fp32, "int8", npy, ref, 0.99, options, summary, tmp_path / "repair" / "model")
    assert record["repaired"] and record["kept"] == [block_name(1, "fc1/MatMul")]


def test_an_ordinary_graph_passes_and_repair_keeps_nothing(tmp_path):
    plan = backends.get("ascend")
    fp32, npy, ref = case(tmp_path)
    rows, summary = L.localise(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, tmp_path / "scratch")
    assert summary["causes"]["target"]["passed"] and summary["first_jump"] is None
    record = R.repair(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, summary, tmp_path / "repair" / "model")
    assert record["passed"] and not record["repaired"] and record["kept"] == [] and record["steps"] == []
    assert (tmp_path / "repair" / "model" / "model.onnx").is_file(), "the target as built is the model"


def test_kept_nodes_compute_in_fp32_weights_and_outputs_included(tmp_path):
    """On each path repair verifies on: the fp16 graph (kept nodes read fp32 initializers and write fp32
    tensors, also between two kept nodes), fp16 storage between nodes (their outputs stay float32), the
    quantised graph (no DequantizeLinear feeds a kept node; its weight is the fp32 initializer) and ONNX
    Runtime's compiled (optimised) form of it (still a float MatMul)."""
    import onnx

    from backends.onnxruntime import graph_session
    from graph import tensor_types
    from graph.segments import SegmentRunner

    fp32, npy, ref = case(tmp_path, overflow=1)
    keep = [block_name(1, p) for p in ("fc1/MatMul", "fc1/Add", "act", "fc2/MatMul")]
    fp16 = backends.get("ascend").build_reduced(fp32, "fp16", keep, tmp_path / "fp16", OPTIONS)
    model = onnx.load(fp16)
    inits = {t.name: t.data_type for t in model.graph.initializer}
    types = tensor_types(model)
    outputs = []
    for node in (n for n in model.graph.node if n.name in keep):
        assert all(inits[x] == onnx.TensorProto.FLOAT for x in node.input if x in inits), node.name
        assert all(types[o] == onnx.TensorProto.FLOAT for o in node.output), node.name
        outputs += list(node.output)  # the converter renames an output it casts for an fp16 consumer
    assert len(outputs) == 4
    stored = next(iter(SegmentRunner(fp16, [outputs], graph_session, fp16_storage=True).run({"x": np.load(npy[0])})))
    assert set(stored) == set(outputs)
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in stored.values())
    assert max(np.abs(v).max() for v in stored.values()) > 65504, "values past fp16's range, held in fp32"
    options = {**OPTIONS, "calibration": npy, "reduce_range": False}
    kept_node = block_name(1, "fc1/MatMul")
    plan = backends.get("onnxruntime")
    graph = plan.reduced_graph(fp32, "int8", tmp_path / "scratch", options)
    int8 = plan.build_reduced(graph, "int8", [kept_node], tmp_path / "int8", options)
    q = onnx.load(int8)
    producer = {o: n for n in q.graph.node for o in n.output}
    (node,) = [n for n in q.graph.node if n.name == kept_node]
    assert not any(producer.get(x) is not None and producer[x].op_type == "DequantizeLinear" for x in node.input)
    assert any(n.name == block_name(2, "fc1/MatMul") and producer[n.input[1]].op_type == "DequantizeLinear"
               for n in q.graph.node), "the same MatMul in another block is quantised"
    # optimised as compile optimises a static int8 model
    plan.session(int8, 1, optimize=True, optimized_out=tmp_path / "compiled.onnx", level="extended",
                 disabled_optimizers=["MatMulAddFusion"])
    compiled = onnx.load(str(tmp_path / "compiled.onnx"), load_external_data=False)
    made = {o: n.op_type for n in compiled.graph.node for o in n.output}
    integer = {"MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
    assert made[node.output[0]] not in integer, "kept: a float product after ONNX Runtime's fusions"
    assert made["h2"] in integer, "the same product in block 2 runs on integers"


def test_shrink_returns_a_one_minimal_set():
    """ddmin on a known gate: passes iff both 3 and 7 are kept."""
    steps = []

    def check(keep):
        return {"passed": {3, 7} <= set(keep), "cosine_min": 1.0, "nonfinite": 0}

    kept, _, minimal = R.shrink(check, list(range(10)), {"passed": True}, steps)
    assert sorted(kept) == [3, 7] and minimal
    assert all(s["phase"] == "shrink" for s in steps)


def test_repair_stops_at_its_build_budget_and_says_so(tmp_path):
    plan = backends.get("ascend")
    fp32, npy, ref = case(tmp_path, overflow=1)
    record = R.repair(plan, fp32, "fp16", npy, ref, 0.99, OPTIONS, {}, tmp_path / "repair" / "model", max_builds=2)
    assert not record["passed"] and "repair_max_builds (2)" in record["reason"] and record["kept"] == []


def test_the_rule_writes_record_model_and_the_backends_kept_file(tmp_path):
    """scripts/repair.py's entry: repair.json, the model folder, and the kept nodes in the backend's form
    (ATC's --keep_dtype file for the Ascend plan)."""
    from types import SimpleNamespace

    import repair as repair_rule

    class Named(SimpleNamespace):
        def keys(self):
            return vars(self).keys()

        def get(self, key, default=None):
            return vars(self).get(key, default)

    fp32, npy, ref = case(tmp_path, overflow=2)
    rows, summary = L.localise(backends.get("ascend"), fp32, "fp16", npy, ref, 0.99, OPTIONS, tmp_path / "s")
    (tmp_path / "locate.json").write_text(json.dumps(summary))
    out = Named(json=str(tmp_path / "r" / "repair.json"), model=str(tmp_path / "r" / "model"),
                kept=str(tmp_path / "r" / "kept_fp32.txt"))
    (tmp_path / "similarity.json").write_text(json.dumps({"gates": []}))
    smk = SimpleNamespace(input=Named(model=fp32, npy=npy, calibration=npy, reference=ref, onnx_fp16=ref,
                                      similarity=str(tmp_path / "similarity.json"),
                                      locate=str(tmp_path / "locate.json")),
                          output=out, params=Named(gate=0.99, max_builds=200,
                                                   options={**OPTIONS, "device": "Ascend910B4", "tower": "image"}),
                          wildcards=Named(backend="ascend", precision="fp16"))
    repair_rule.main(smk)
    record = json.loads((tmp_path / "r" / "repair.json").read_text())
    assert record["repaired"] and (tmp_path / "r" / "model" / "model.onnx").is_file()
    assert (tmp_path / "r" / "kept_fp32.txt").read_text().splitlines() == record["kept"] + record["closure"]
    # and the ATC command that builds the repaired .om from it
    assert f"--keep_dtype={(tmp_path / 'r' / 'kept_fp32.txt').resolve()}" in record["kept_command"]
    assert "--soc_version=Ascend910B4" in record["kept_command"]
