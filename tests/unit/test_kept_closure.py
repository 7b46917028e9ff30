"""Issue 31: "kept in fp32" means fp32 all the way (graph.closure.kept_closure, taken by every mechanism),
locate says when one part at a time cannot tell, and repair blames nothing it did not measure.

The invariant, for every backend and reduced precision: keeping every candidate node in fp32 reproduces the
fp32 graph (cosine >= 0.99999 on every input, no inf/NaN), on cn_clip's own ViT-Toy-16 image tower and on a
graph built here whose LayerNorm output passes fp16's range on its way through a Cast to a MatMul (cn_clip's
LayerNorm casts its output back; its weights reach the MatMul through a Transpose). Before the closure, the
fp16 converter (and so the Ascend proxy) left that Cast and Transpose in fp16: every build was NaN."""
import json
from pathlib import Path

import numpy as np
import pytest

import backends
from accuracy import causes as C
from accuracy import locate as L
from accuracy import repair as R
from accuracy.measures import cosine
from graph.closure import kept_closure
from pipeline.common import write_features

MATCH = 0.99999
D, H = 16, 32
LN_SCALE = 2.0 ** 17  # gain on the LayerNorm's first channels: |y| > 0.5 leaves fp16's range


def node(b: int, part: str) -> str:
    return f"/visual/transformer/resblocks/resblocks.{b}/{part}"


def ln_cast_matmul_onnx(path, blocks=3, overflow=1, seed=0):
    """x (1x6xD) -> stem MatMul -> `blocks` blocks: LayerNorm (ReduceMean, Sub, Pow, ReduceMean, Add eps,
    Sqrt, Div, Mul gain, Add bias; eps a Constant node) -> Cast to float -> MatMul with Transpose(W) -> Add b
    -> Relu -> residual Add -> head MatMul -> Reshape -> y. In block `overflow` the gain of channels 0..3 is
    x LN_SCALE and W's matching input columns / LN_SCALE: exact in fp32, past 65504 after the LayerNorm."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = {}, []

    def add(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [f"{name}_out"], name=name, **attrs))
        return f"{name}_out"

    inits["w_stem"] = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32)
    prev = add("MatMul", ["x", "w_stem"], "/visual/stem/MatMul")
    for b in range(blocks):
        gain = (1 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        w = (rng.standard_normal((H, D)) / np.sqrt(D)).astype(np.float32)  # (out, in): torch's Linear layout
        if b == overflow:
            gain[:4] *= LN_SCALE
            w[:, :4] /= LN_SCALE
        inits.update({f"g{b}": gain, f"beta{b}": (0.1 * rng.standard_normal(D)).astype(np.float32),
                      f"w{b}": w, f"b{b}": (0.1 * rng.standard_normal(H)).astype(np.float32),
                      f"w2_{b}": (rng.standard_normal((H, D)) / np.sqrt(H)).astype(np.float32)})
        ln = lambda part: node(b, f"ln_1/{part}")  # noqa: E731
        mean = add("ReduceMean", [prev], ln("ReduceMean"), axes=[-1])
        centred = add("Sub", [prev, mean], ln("Sub"))
        two = add("Constant", [], ln("Constant"), value=numpy_helper.from_array(np.array(2.0, np.float32)))
        var = add("ReduceMean", [add("Pow", [centred, two], ln("Pow"))], ln("ReduceMean_1"), axes=[-1])
        eps = add("Constant", [], ln("Constant_1"), value=numpy_helper.from_array(np.array(1e-5, np.float32)))
        normed = add("Div", [centred, add("Sqrt", [add("Add", [var, eps], ln("Add"))], ln("Sqrt"))], ln("Div"))
        y = add("Add", [add("Mul", [normed, f"g{b}"], ln("Mul")), f"beta{b}"], ln("Add_1"))
        y = add("Cast", [y], ln("Cast_1"), to=T.FLOAT)
        wt = add("Transpose", [f"w{b}"], node(b, "mlp/Transpose"), perm=[1, 0])
        h = add("Relu", [add("Add", [add("MatMul", [y, wt], node(b, "mlp/MatMul")), f"b{b}"], node(b, "mlp/Add"))],
                node(b, "mlp/Relu"))
        prev = add("Add", [prev, add("MatMul", [h, f"w2_{b}"], node(b, "mlp/MatMul_1"))], node(b, "Add"))
    inits["w_head"] = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32)
    inits["shape"] = np.array([1, 6 * D], np.int64)
    out = add("MatMul", [prev, "w_head"], "/visual/head/MatMul")
    nodes.append(helper.make_node("Reshape", [out, "shape"], ["y"], name="/visual/head/Reshape"))
    graph = helper.make_graph(nodes, "ln_cast_matmul", [helper.make_tensor_value_info("x", T.FLOAT, [1, 6, D])],
                              [helper.make_tensor_value_info("y", T.FLOAT, [1, 6 * D])],
                              initializer=[numpy_helper.from_array(a, k) for k, a in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    return str(path)


def write_inputs(folder: Path, xs: list[np.ndarray], reference: list[np.ndarray]) -> tuple[list[str], list[str]]:
    """npy files of `xs` and one features file of `reference` (as the workflow's rules hand them over)."""
    folder.mkdir(parents=True, exist_ok=True)
    npy = []
    for i, x in enumerate(xs):
        np.save(folder / f"in{i}.npy", x)
        npy.append(str(folder / f"in{i}.npy"))
    write_features(folder / "ref.npz", [f"in{i}" for i in range(len(xs))], reference)
    return npy, [str(folder / "ref.npz")]


@pytest.fixture(scope="module")
def overflow_graph(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ln")
    fp32 = ln_cast_matmul_onnx(folder / "fp32.onnx")
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((1, 6, D)).astype(np.float32) for _ in range(3)]
    run = backends.reference().load_reduced(fp32, {"threads": 1})
    npy, ref = write_inputs(folder / "data", xs, [run(x) for x in xs])
    return {"fp32": fp32, "xs": xs, "npy": npy, "ref": ref, "dir": folder}


@pytest.fixture(scope="module")
def toy_graph(tmp_path_factory):
    """cn_clip's ViT-Toy-16 image tower, synthetic weights, exported as the workflow exports it."""
    from model.clip import load_model
    from preprocess import preprocess_image
    from sample_images import sample_image_source
    from model.synthetic import make_synthetic
    from test_synthetic_variants import ARCH, IMAGES, RESOLUTION, export_image_tower

    folder = tmp_path_factory.mktemp("toy")
    make_synthetic(ARCH, 0, folder / "toy.pt")
    fp32 = export_image_tower(load_model(folder / "toy.pt", ARCH), folder / "fp32.onnx")
    xs = [preprocess_image(sample_image_source(n), RESOLUTION).astype(np.float32) for n in IMAGES]
    run = backends.reference().load_reduced(fp32, {"threads": 1})
    npy, ref = write_inputs(folder / "data", xs, [run(x) for x in xs])
    return {"fp32": str(fp32), "xs": xs, "npy": npy, "ref": ref, "dir": folder}


# --------------------------------------------------------------------------------------------
# the closure itself
# --------------------------------------------------------------------------------------------

def test_the_closure_takes_the_cast_between_kept_nodes_and_the_weights_transpose(overflow_graph):
    keep = [node(1, "ln_1/Mul"), node(1, "ln_1/Add_1"), node(1, "mlp/MatMul")]
    closure = kept_closure(overflow_graph["fp32"], keep)
    assert closure == [node(1, "ln_1/Cast_1"), node(1, "mlp/Transpose")]
    # a Cast that leads only to nodes that are not kept is not taken; the head's Reshape to the output is
    assert kept_closure(overflow_graph["fp32"], [node(1, "ln_1/Add_1")]) == []
    assert kept_closure(overflow_graph["fp32"], ["/visual/head/MatMul"]) == ["/visual/head/Reshape"]
    # a Constant carried into a kept node is taken (its value would be converted to fp16 too)
    assert node(1, "ln_1/Constant_1") in kept_closure(overflow_graph["fp32"], [node(1, "ln_1/Add")])


def test_every_mechanism_keeps_the_closed_set_in_fp32(overflow_graph, tmp_path):
    """The fp16 converter blocks the closure too: the kept LayerNorm's Cast stays fp32, the Transpose keeps
    its weight fp32, and no fp32 -> fp16 -> fp32 round trip is left on a kept node's input."""
    import onnx

    from graph import tensor_types

    keep = [node(1, "ln_1/Mul"), node(1, "ln_1/Add_1"), node(1, "mlp/MatMul")]
    model = onnx.load(backends.get("ascend").build_reduced(overflow_graph["fp32"], "fp16", keep, tmp_path, {}))
    types = tensor_types(model)
    by_name = {n.name: n for n in model.graph.node}
    for name in keep + [node(1, "ln_1/Cast_1"), node(1, "mlp/Transpose")]:
        assert all(types[o] == onnx.TensorProto.FLOAT for o in by_name[name].output), name
    producer = {o: n for n in model.graph.node for o in n.output}
    for name in keep:
        for x in by_name[name].input:
            p = producer.get(x)
            assert not (p is not None and p.op_type == "Cast" and producer.get(p.input[0]) is not None
                        and producer[p.input[0]].op_type == "Cast"), f"{name} reads a round trip"


# --------------------------------------------------------------------------------------------
# the invariant: every node kept = the fp32 graph, every backend and reduced precision
# --------------------------------------------------------------------------------------------

PLANS = [(name, precision) for name in backends.names() for precision in sorted(backends.get(name).REDUCED)]


@pytest.mark.parametrize("which", ["toy_graph", "overflow_graph"])
@pytest.mark.parametrize("backend,precision", PLANS)
def test_keeping_every_node_reproduces_the_fp32_graph(request, tmp_path, backend, precision, which):
    g = request.getfixturevalue(which)
    plan = backends.get(backend)
    options = {"threads": 1, "calibration": g["npy"]}
    graph, nodes = C.graph_candidates(plan, g["fp32"], precision, tmp_path / "scratch", options)
    assert nodes
    model = plan.build_reduced(graph, precision, [n["node"] for n in nodes], tmp_path / "all", options)
    run = plan.load_reduced(model, options)
    fp32 = backends.reference().load_reduced(g["fp32"], {"threads": 1})
    for x in g["xs"]:
        got = np.asarray(run(x))
        assert np.isfinite(got).all(), f"{backend} {precision}: inf/NaN with every node kept"
        assert cosine(got, fp32(x)) >= MATCH, (backend, precision, cosine(got, fp32(x)))


def test_the_overflow_graph_fails_as_built_and_is_repaired_in_its_block(overflow_graph, tmp_path):
    """So the invariant above is not vacuous: at fp16 with nothing kept the proxy gives inf/NaN; locate names
    block 1 and repair keeps only its nodes, its closure in that block too, and passes."""
    g = overflow_graph
    plan = backends.get("ascend")
    rows, summary = L.localise(plan, g["fp32"], "fp16", g["npy"], g["ref"], 0.99, {"threads": 1}, tmp_path / "l")
    assert summary["causes"]["target"]["nonfinite"] > 0
    assert summary["top_cause"]["unit"] == "resblocks.1" and summary["causes"]["decided"]
    record = R.repair(plan, g["fp32"], "fp16", g["npy"], g["ref"], 0.99, {"threads": 1}, summary,
                      tmp_path / "r" / "model")
    assert record["passed"] and record["repaired"]
    assert all("resblocks.1/" in n for n in record["kept"] + record["closure"]), record
    assert node(1, "ln_1/Cast_1") in record["closure"]


# --------------------------------------------------------------------------------------------
# locate: when one part at a time cannot tell, it says so and measures the complement
# --------------------------------------------------------------------------------------------

class Stub:
    """A Measure whose builds pass or fail (NaN) by `passes(reduced nodes, reduced units)`; each reduced unit
    adds `noise` to 1 - cosine."""

    def __init__(self, nodes, passes, gate=0.99, noise=1e-6):
        self.nodes, self.passes, self.gate, self.noise = nodes, passes, gate, noise
        self.builds, self.inputs = 0, [None]

    def __call__(self, keep, folder=None, keep_outputs=False):
        self.builds += 1
        reduced = {n["node"] for n in self.nodes if n["node"] not in set(keep)}
        units = {n["unit"] for n in self.nodes if n["node"] in reduced}
        if not self.passes(reduced, units):
            return {"cosine_min": float("nan"), "nonfinite": 10, "passed": False, "kept": len(keep)}
        c = 1 - self.noise * len(units)
        return {"cosine_min": c, "nonfinite": 0, "passed": c >= self.gate, "kept": len(keep)}


def units(*names, per=2):
    return [{"node": f"{u}/n{i}", "op_type": "MatMul", "unit": u} for u in names for i in range(per)]


def test_every_unit_failing_alone_is_said_and_the_complement_names_the_cause():
    nodes = units("stem", "resblocks.0", "resblocks.1", "head")
    # as the issue met it: any one unit reduced alone fails (there, the mechanism left the kept units' Casts in
    # fp16); everything but resblocks.1 reduced passes
    causes = C.measure_causes(Stub(nodes, lambda nodes, units: len(units) != 1 and "resblocks.1" not in units),
                              nodes)
    assert all(u["error"] == 2.0 for u in causes["units"])
    assert causes["method"] == "complement" and causes["decided"] and causes["cause"] == "resblocks.1"
    assert "every unit alone at the target's precision misses the gate (4 of 4" in causes["why"]
    assert "resblocks.1 kept alone in fp32 restores the gate" in causes["why"]
    assert causes["order"][0] == "resblocks.1"
    # the cause's nodes: each reduced alone with the rest of the unit in fp32: both break it, tied
    assert sorted(causes["tied_nodes"]) == ["resblocks.1/n0", "resblocks.1/n1"]
    assert causes["builds"] == 1 + 4 + 4 + 2
    top = L.top_cause(causes, {"node": "/x/resblocks.1/y"})
    assert top["unit"] == "resblocks.1" and top["node"] is None and top["first_jump"]["agrees"]


def test_a_tie_names_no_cause():
    """Two units each needed: alone, each fails; kept alone in fp32, neither restores anything: no cause."""
    nodes = units("resblocks.0", "resblocks.1", "resblocks.2")
    causes = C.measure_causes(Stub(nodes, lambda nodes, units: not units), nodes)
    assert not causes["decided"] and causes["cause"] is None and causes["nodes"] == []
    assert "no unit kept alone in fp32 lowers the error" in causes["why"]
    assert L.top_cause(causes, None) is None
    ranked = [{"unit": "a", "error": 0.05, "passed": False, "nonfinite": 0},
              {"unit": "b", "error": 0.048, "passed": False, "nonfinite": 0},
              {"unit": "c", "error": 1e-6, "passed": True, "nonfinite": 0}]
    decided, why = C.judge_alone(ranked)
    assert not decided and "the top two are tied (a 0.05, b 0.048" in why
    ranked[1]["error"] = 0.01
    assert C.judge_alone(ranked)[0]


# --------------------------------------------------------------------------------------------
# repair: the all-fp32 candidate is measured before anything is blamed
# --------------------------------------------------------------------------------------------

class Unclosed:
    """The Ascend plan as it kept nodes before the closure: the fp16 converter blocking the named nodes only
    (their Casts and Transposes left in fp16, the converter's round trips left in place)."""

    def __init__(self, monkeypatch):
        self.plan, self.monkeypatch = backends.get("ascend"), monkeypatch

    def __getattr__(self, name):
        return getattr(self.plan, name)

    def build_reduced(self, source, precision, keep, out_dir, options):
        import graph.closure  # binds `graph`: the ONNX to build is `source`
        import backends.onnxruntime

        with self.monkeypatch.context() as m:
            m.setattr(graph.closure, "closed", lambda model, keep: list(keep))
            m.setattr(backends.onnxruntime, "_fold_round_trips", lambda model: 0)
            return self.plan.build_reduced(source, precision, keep, out_dir, options)


def test_repair_names_where_a_mechanism_cannot_express_fp32(overflow_graph, tmp_path, monkeypatch):
    g = overflow_graph
    record = R.repair(Unclosed(monkeypatch), g["fp32"], "fp16", g["npy"], g["ref"], 0.99, {"threads": 1}, {},
                      tmp_path / "r" / "model")
    assert not record["passed"] and not record["repaired"]
    verdict = record["all_fp32"]
    assert not verdict["matches"] and verdict["candidate"]["nonfinite"] > 0
    assert "cannot express fp32 there" in record["reason"] and "fp32 model itself" not in record["reason"]
    # the kept LayerNorm's output, stored in fp16 on its way through the Cast that was not kept
    assert verdict["first_difference"]["tensor"] == f"{node(1, 'ln_1/Add_1')}_out", verdict["first_difference"]
    assert verdict["first_difference"]["tensor"] in record["reason"]


def test_repair_says_the_model_itself_misses_only_when_measured(overflow_graph, tmp_path):
    """References that the fp32 graph does not meet: every unit kept still fails, the all-fp32 candidate
    matches the fp32 graph, and the reason gives both figures."""
    g = overflow_graph
    npy, ref = write_inputs(tmp_path / "data", g["xs"], [-np.ones((1, 6 * D), np.float32)] * len(g["xs"]))
    record = R.repair(backends.get("ascend"), g["fp32"], "fp16", npy, ref, 0.99, {"threads": 1}, {},
                      tmp_path / "r" / "model")
    verdict = record["all_fp32"]
    assert not record["passed"] and verdict["matches"]
    assert verdict["candidate_vs_fp32_graph"]["cosine_min"] >= R.MATCH
    assert "matches the fp32 graph" in record["reason"] and "the fp32 model itself misses it" in record["reason"]
    assert f"{verdict['fp32_graph']['cosine_min_vs_torch_fp32']:.6f}" in record["reason"]


def test_repair_does_not_pass_while_a_gate_it_cannot_measure_is_missed(overflow_graph, tmp_path):
    """A missed image-to-label ranking gate (repair sees no text features) while the cosine passes: nothing
    to act on, said with the gate's recorded value, and `passed` stays false."""
    g = overflow_graph
    npy, ref = write_inputs(tmp_path / "data", g["xs"], [np.asarray(
        backends.reference().load_reduced(g["fp32"], {"threads": 1})(x)) for x in g["xs"]])
    similarity = {"gates": [{"a": "offline", "b": "torch_fp32", "kind": "ranking", "threshold": 0.95, "passed": False,
                             "measure": "image_to_label_spearman_min", "value": 0.9}]}
    record = R.repair(backends.get("onnxruntime"), g["fp32"], "fp16", npy, ref, 0.99, {"threads": 1}, {},
                      tmp_path / "r" / "model", similarity=similarity)
    assert record["before"]["passed"] and not record["passed"] and not record["repaired"]
    (gate,) = record["not_acted_on"]
    assert gate["measure"] == "image_to_label_spearman_min"
    assert "image_to_label_spearman_min = 0.9 (threshold 0.95" in record["reason"]


def test_repair_acts_on_a_missed_ranking_gate_it_can_measure(toy_graph, tmp_path):
    """A missed image-to-image ranking gate is judged again on every candidate: the record carries its value
    before (here already met by the fp16 build of a graph without the defect)."""
    g = toy_graph
    run = backends.reference().load_reduced(g["fp32"], {"threads": 1})
    npy, ref = write_inputs(tmp_path / "data", g["xs"], [np.asarray(run(x)) for x in g["xs"]])
    similarity = {"gates": [{"a": "offline", "b": "torch_fp32", "kind": "ranking", "threshold": 0.95, "passed": False,
                             "measure": "image_to_image_spearman_min", "value": 0.9}]}
    record = R.repair(backends.get("onnxruntime"), g["fp32"], "fp16", npy, ref, 0.99, {"threads": 1}, {},
                      tmp_path / "r" / "model", similarity=similarity)
    (gate,) = record["before"]["gates"]
    assert gate["measure"] == "image_to_image_spearman_min" and gate["passed"] and record["passed"]
    assert record["not_acted_on"] == []
    json.dumps(record, default=str)


def test_a_gate_against_a_reference_that_itself_fails_is_not_chased():
    """The seed's offline vs onnx_fp16 gate when onnx_fp16 itself misses torch_fp32 (ONNX Runtime's fp16 run
    of the values-overflow variant is NaN too): no kept set of the target can meet it; repair says so from
    the recorded figures instead of growing until every unit is kept and blaming the model."""
    similarity = {"gates": [
        {"a": "offline", "b": "onnx_fp16", "threshold": 0.999, "passed": False, "cosine_min": float("nan")},
        {"a": "offline", "b": "torch_fp32", "threshold": 0.99, "passed": False, "cosine_min": float("nan")},
        {"a": "onnx_fp16", "b": "torch_fp32", "threshold": 0.99, "passed": False, "cosine_min": float("nan")}]}
    gates = R.TargetGates(similarity, {"torch_fp32": {}, "onnx_fp16": {}}, 0.99)
    assert gates.checks == []
    (g,) = gates.not_acted_on
    assert g["b"] == "onnx_fp16" and "onnx_fp16 itself misses vs_torch_fp32 (cosine min nan" in g["why"]
