"""repair and the overflow checkpoint: small graphs built here (test_locate's residual MLP), then one
slower test on cn_clip's real ViT-B-16 image tower (random weights, the smallest real arch)."""
from pathlib import Path

import numpy as np

from pipeline import paths
import pytest

from pipeline.common import read_features, write_features
from accuracy import locate as L
from accuracy import repair as R
from model.variants import DEFAULT_SCALE, image_blocks, make_overflow, variant_of, write_overflow_checkpoint
from test_locate import NAMES, inputs, mlp_onnx

OVERFLOW = [NAMES[k] for k in ("fc1", "bias", "act", "fc2")]


def reference(fp32, xs):
    return R.run_model(fp32, xs, input_name="x")


# --------------------------------------------------------------------------------------------
# the overflow checkpoint
# --------------------------------------------------------------------------------------------

def fake_state(layers=4, prefix="module."):
    import torch

    g = torch.Generator().manual_seed(0)
    sd = {}
    for b in range(layers):
        p = f"{prefix}visual.transformer.resblocks.{b}.mlp."
        sd[p + "c_fc.weight"] = (0.02 * torch.randn(16, 4, generator=g)).half()
        sd[p + "c_fc.bias"] = (0.02 * torch.randn(16, generator=g)).half()
        sd[p + "c_proj.weight"] = (0.02 * torch.randn(4, 16, generator=g)).half()
    sd[f"{prefix}bert.embeddings.weight"] = torch.randn(3, 4, generator=g).half()
    return sd


def test_make_overflow_scales_one_block_exactly_and_nothing_else():
    sd = fake_state()
    out = make_overflow(sd, "ViT-B-16")
    assert image_blocks(sd) == 4
    p = "module.visual.transformer.resblocks.2.mlp."  # default: the middle block
    assert (out[p + "c_fc.weight"].float() == sd[p + "c_fc.weight"].float() * DEFAULT_SCALE).all()  # exact
    assert (out[p + "c_fc.bias"].float() == sd[p + "c_fc.bias"].float() * DEFAULT_SCALE).all()
    assert out[p + "c_proj.weight"].abs().max() < sd[p + "c_proj.weight"].abs().max() / 1000
    changed = {k for k in sd if out[k] is not sd[k]}
    assert changed == {p + "c_fc.weight", p + "c_fc.bias", p + "c_proj.weight"}
    assert out[p + "c_fc.weight"].dtype == sd[p + "c_fc.weight"].dtype


def test_make_overflow_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="no image-tower transformer blocks"):
        make_overflow({"module.visual.layer1.0.conv1.weight": None}, "RN50")
    with pytest.raises(ValueError, match="blocks 0..3, not 7"):
        make_overflow(fake_state(), "ViT-B-16", block=7)
    with pytest.raises(ValueError, match="power of two"):
        make_overflow(fake_state(), "ViT-B-16", scale=1000.0)
    with pytest.raises(ValueError, match="does not fit"):
        make_overflow(fake_state(), "ViT-B-16", scale=2.0 ** 30)


def test_overflow_checkpoint_file_keeps_the_official_layout(tmp_path):
    import torch

    torch.save({"state_dict": fake_state(), "synthetic_seed": 0, "arch": "ViT-B-16"}, tmp_path / "s.pt")
    record = write_overflow_checkpoint(tmp_path / "s.pt", tmp_path / "o.pt", "ViT-B-16", block=1)
    saved = torch.load(tmp_path / "o.pt", weights_only=True)
    assert set(saved["state_dict"]) == set(fake_state()) and saved["synthetic_seed"] == 0
    assert variant_of(tmp_path / "o.pt") == record and record["block"] == 1 and variant_of(tmp_path / "s.pt") is None


# --------------------------------------------------------------------------------------------
# rebuilds, verify, the greedy loop (small graphs)
# --------------------------------------------------------------------------------------------

def test_kept_nodes_stay_fp32_between_each_other(tmp_path):
    """The converter alone puts an fp16 Cast on every edge, also between two blocked nodes; build_fp16 keeps
    those edges fp32, else the overflow is still there."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    fp32 = mlp_onnx(tmp_path / "m.onnx", scale=2.0 ** 16)
    xs = inputs(1)
    ref = reference(fp32, xs)
    plain = convert_float_to_float16(onnx.shape_inference.infer_shapes(onnx.load(str(fp32))), keep_io_types=True,
                                     disable_shape_infer=True, node_block_list=OVERFLOW)
    onnx.save(plain, str(tmp_path / "plain.onnx"))
    assert not R.verify(tmp_path / "plain.onnx", xs, ref, 0.99, "x", fp16_storage=True)["passed"]
    built = R.build_fp16(fp32, tmp_path / "kept.onnx", node_block_list=OVERFLOW)
    v = R.verify(built, xs, ref, 0.99, "x", fp16_storage=True)
    assert v["passed"] and v["nonfinite"] == 0 and v["cosine_min"] > 0.999
    kept = {n.name for n in onnx.load(str(built)).graph.node if n.name in OVERFLOW}
    assert kept == set(OVERFLOW)


def test_greedy_stops_at_the_first_passing_step(tmp_path):
    built = []

    def build(kept, out):
        built.append(list(kept))
        return out

    def check(model):
        kept = built[-1]
        ok = {"a", "b"} <= set(kept)
        return {"cosine_min": 0.999 if ok else 0.5, "nonfinite": 0, "passed": ok}

    before = {"cosine_min": 0.5, "nonfinite": 3, "passed": False}
    r = R.greedy([["a"], ["b"], ["c"]], build, check, tmp_path, before)
    assert r["passed"] and r["kept"] == ["a", "b"] and len(r["steps"]) == 2 and built == [["a"], ["a", "b"]]
    assert r["before"]["cosine_min"] == 0.5 and r["after"]["cosine_min"] == 0.999
    r = R.greedy([["a"]], build, check, tmp_path, {"cosine_min": 1.0, "nonfinite": 0, "passed": True})
    assert r["passed"] and r["kept"] == [] and r["steps"] == []
    r = R.greedy([["c"], ["d"]], build, check, tmp_path, before)
    assert not r["passed"] and r["kept"] == ["c", "d"]


def test_candidates_put_the_overflow_group_first_then_the_error_each_node_adds():
    rows = [{"node": "n0", "op_type": "MatMul", "increment": 0.01, "depth": 0},
            {"node": "n1", "op_type": "Add", "increment": 0.2, "depth": 1},
            {"node": "n2", "op_type": "Relu", "increment": 0.0, "depth": 2},
            {"node": "n3", "op_type": "MatMul", "increment": 0.05, "depth": 3}]
    summary = {"overflow_nodes": ["n2"], "op_types": [{"op_type": "Add", "increment_sum": 0.2},
                                                      {"op_type": "MatMul", "increment_sum": 0.06},
                                                      {"op_type": "Relu", "increment_sum": 0.0}]}
    assert R.candidate_steps(rows, summary) == [["n2"], ["n1"], ["n3"], ["n0"]]
    assert R.candidate_steps(rows, summary, precision="int8") == [["n1"], ["n3"], ["n0"]]
    assert R.candidate_steps(rows, summary, mode="op_types") == [["Relu"], ["Add"], ["MatMul"]]


def test_keep_dtype_file_has_atc_format(tmp_path):
    path = R.write_keep_dtype(tmp_path / "k.cfg", ["/visual/a/MatMul", "/visual/a/MatMul", "n2"], ["Relu"])
    assert path.read_text() == "/visual/a/MatMul\nn2\nOpType::Relu\n"


def test_repair_ascend_proxy_keeps_the_overflow_nodes_and_writes_keep_dtype(tmp_path):
    fp32 = mlp_onnx(tmp_path / "m.onnx", scale=2.0 ** 16)
    target = R.build_fp16(fp32, tmp_path / "target.onnx")
    xs = inputs(2)
    ref = reference(fp32, xs)
    rows, summary = L.locate(fp32, target, xs, input_name="x")
    r = R.repair(fp32, "ascend", rows, summary, xs, ref, 0.99, tmp_path / "work", target_onnx=target, input_name="x")
    assert not r["before"]["passed"] and r["before"]["nonfinite"] > 0
    assert r["passed"] and r["kept"] == OVERFLOW and len(r["steps"]) == 1 and r["after"]["cosine_min"] > 0.999
    assert (tmp_path / "work" / "keep_dtype.cfg").read_text().splitlines() == OVERFLOW
    # ONNX Runtime's CPU runs this fp16 graph's MatMul/Add/Relu in fp32: as deployed there, no repair
    r = R.repair(fp32, "fp16", rows, summary, xs, ref, 0.99, tmp_path / "w2", target_onnx=target, input_name="x")
    assert r["passed"] and r["steps"] == [] and r["kept"] == []


def test_int8_repair_excludes_nodes_from_quantisation(tmp_path):
    import onnx

    fp32 = mlp_onnx(tmp_path / "m.onnx")
    prepared = R.int8_prepared(fp32, tmp_path / "work")
    int8 = R.build_int8(prepared, tmp_path / "int8" / "model.onnx", nodes_to_exclude=[NAMES["fc1"]])
    ops = {n.name: n.op_type for n in onnx.load(str(int8)).graph.node}
    assert ops[NAMES["fc1"]] == "MatMul"  # left in fp32
    assert NAMES["fc2"] not in ops or ops[NAMES["fc2"]] != "MatMul"  # quantised (renamed/replaced)
    xs = inputs(2)
    ref = reference(fp32, xs)
    target = R.build_int8(prepared, tmp_path / "t" / "model.onnx")
    rows, summary = L.locate(prepared, target, xs, input_name="x")
    gate = 0.99999
    r = R.repair(fp32, "int8_dynamic", rows, summary, xs, ref, gate, tmp_path / "work", target_onnx=target,
                 input_name="x")
    assert not r["before"]["passed"] and r["passed"] and r["after"]["cosine_min"] >= gate
    assert set(r["kept"]) <= {NAMES["fc1"], NAMES["fc2"], NAMES["out"]} and r["kept"]
    assert [s["kept"] for s in r["steps"]] == list(range(1, len(r["steps"]) + 1))  # one node a step


def test_static_int8_repair_uses_the_backends_quantiser_with_exclusions(tmp_path):
    import onnx

    fp32 = mlp_onnx(tmp_path / "m.onnx")
    xs = inputs(4)
    calibration = []
    for i, x in enumerate(xs):
        np.save(tmp_path / f"c{i}.npy", x)
        calibration.append(tmp_path / f"c{i}.npy")
    kept = R.build_int8_static(fp32, tmp_path / "k" / "model.onnx", calibration, nodes_to_exclude=[NAMES["fc1"]])
    graph = onnx.load(str(kept), load_external_data=False).graph
    feeds = {n.output[0]: n.op_type for n in graph.node}
    fc1 = next(n for n in graph.node if n.name == NAMES["fc1"])
    fc2 = next(n for n in graph.node if n.name == NAMES["fc2"])
    assert all(feeds.get(x) != "DequantizeLinear" for x in fc1.input)  # left fp32
    assert any(feeds.get(x) == "DequantizeLinear" for x in fc2.input)  # quantised (QDQ)
    ref = reference(fp32, xs)
    prepared = R.int8_prepared(fp32, tmp_path / "work")
    target = R.build_int8_static(fp32, tmp_path / "t" / "model.onnx", calibration)
    rows, summary = L.locate(prepared, target, xs, input_name="x")
    r = R.repair(fp32, "int8", rows, summary, xs, ref, 0.99999, tmp_path / "work", target_onnx=target,
                 input_name="x", calibration=calibration)
    assert not r["before"]["passed"] and r["passed"] and r["kept"]


# --------------------------------------------------------------------------------------------
# cn_clip ViT-B-16 image tower (slow-ish: two exports)
# --------------------------------------------------------------------------------------------

def export_image_tower(model, path):
    """As cn_clip's exporter does (model(image, None), opset 14, no constant folding)."""
    import torch

    torch.onnx.export(model, (torch.zeros(1, 3, 224, 224), None), str(path), input_names=["image"],
                      output_names=["unnorm_image_features"], export_params=True, do_constant_folding=False,
                      opset_version=14, dynamo=False)
    return path


def test_vit_b16_overflow_variant_fails_is_located_to_its_block_and_repaired(tmp_path):
    import torch

    from model.clip import new_model
    from preprocess import preprocess_image
    from sample_images import sample_image_source

    torch.manual_seed(0)
    model = new_model("ViT-B-16")
    official = {f"module.{k}": v for k, v in model.state_dict().items()}  # checkpoint.make_synthetic's layout
    variant = make_overflow(official, "ViT-B-16", block=5)
    xs = [preprocess_image(sample_image_source("chelsea.png"), 224).astype(np.float32)]
    models = {}
    for name, sd in (("ordinary", official), ("overflow", variant)):
        model.load_state_dict({k.removeprefix("module."): v for k, v in sd.items()})
        m = model.float().eval()
        with torch.inference_mode():
            ref = [m.encode_image(torch.from_numpy(x)).numpy() for x in xs]
        fp32 = export_image_tower(m, tmp_path / f"{name}.fp32.onnx")
        models[name] = (fp32, R.build_fp16(fp32, tmp_path / f"{name}.fp16.onnx"), ref)
        model = model.half()  # back to the published dtype for the next state dict

    fp32, fp16, ref = models["overflow"]
    before = R.verify(fp16, xs, ref, 0.99, fp16_storage=True)
    assert not before["passed"] and before["nonfinite"] > 0  # fp16 storage (the Ascend proxy) fails the gate
    rows, summary = L.locate(fp32, fp16, xs, chunk=256)
    assert summary["first_jump"]["block"] == 5 and summary["first_jump"]["node"].endswith("resblocks.5/mlp/c_fc/MatMul")
    assert {r["block"] for r in summary["blocks"][:1]} == {5}
    assert all("resblocks.5/mlp/" in n for n in summary["overflow_nodes"])
    r = R.repair(fp32, "ascend", rows, summary, xs, ref, 0.99, tmp_path / "work", target_onnx=fp16, before=before)
    assert r["passed"] and r["after"]["cosine_min"] > 0.999 and len(r["kept"]) <= 8
    assert all("resblocks.5/mlp/" in n for n in r["kept"])

    fp32, fp16, ref = models["ordinary"]
    assert R.verify(fp16, xs, ref, 0.99, fp16_storage=True)["cosine_min"] > 0.9999  # needs no repair


# --------------------------------------------------------------------------------------------
# the rule's function: locate's files in, record + model (+ keep_dtype) out
# --------------------------------------------------------------------------------------------

def rule_inputs(tmp_path, scale):
    """What the repair rule gets for a small model: locate's csv/json, npy inputs and torch_fp32-like
    references (a shard features file per item, as the workflow writes them), the fp32 model and the
    fp16 target."""

    fp32 = mlp_onnx(tmp_path / "m.fp32.onnx", scale=scale)
    target = R.build_fp16(fp32, tmp_path / "m.fp16.onnx")
    xs = inputs(2)
    stems = ["b img", "a"]  # names with a space, not in sorted order
    npy, refs = [], []
    for i, (stem, x, y) in enumerate(zip(stems, xs, reference(fp32, xs))):
        (tmp_path / "npy").mkdir(exist_ok=True)
        np.save(tmp_path / "npy" / f"{stem}.npy", x)
        ref = tmp_path / paths.reference_features("A", "image", "torch_fp32", f"shard{i + 1}of2")
        write_features(ref, [stem], [y])
        npy.append(str(tmp_path / "npy" / f"{stem}.npy"))
        refs.append(str(ref))
    rows, summary = L.locate(fp32, target, xs, input_name="x")
    L.write_outputs(rows, summary, tmp_path / "l.csv", tmp_path / "l.png", tmp_path / "l.json")
    return {"fp32": str(fp32), "data": None, "csv_path": str(tmp_path / "l.csv"),
            "locate_json": str(tmp_path / "l.json"), "npy": npy, "reference": list(reversed(refs)),
            "target": str(target)}


def test_the_rule_repairs_an_ascend_target_and_writes_record_model_and_keep_dtype(tmp_path):
    import json

    files = rule_inputs(tmp_path, 2.0 ** 16)
    out = tmp_path / "target" / "repair"
    r = R.run(**files, precision="ascend", gate=0.99, out_json=str(out / "repair.json"),
              out_model=str(out / "model.onnx"), keep_dtype=str(out / "keep_dtype.cfg"), speed_runs=2)
    record = json.loads((out / "repair.json").read_text())
    assert record == json.loads(json.dumps(r))
    assert not record["before"]["passed"] and record["passed"] and record["repaired"]
    assert record["kept"] == OVERFLOW and record["mode"] == "nodes"
    assert (out / "keep_dtype.cfg").read_text().splitlines() == OVERFLOW
    assert record["speed"]["before_ms"]["median"] > 0 and record["speed"]["after_ms"]["runs"] == 2
    assert record["model"] == str(out / "model.onnx") and record["locate"]["csv"] == files["csv_path"]
    # the model written is the repaired one: finite and over the gate with fp16 storage
    xs = [np.load(f) for f in sorted(files["npy"])]
    refs = list(read_features(sorted(files["reference"], reverse=True)).values())  # the npy's order
    check = R.verify(out / "model.onnx", xs, refs, 0.99, input_name="x", fp16_storage=True)
    assert check["passed"] and check["nonfinite"] == 0
    assert not (out / "steps").exists()  # the step models are scratch


def test_the_rule_on_a_target_that_passes_keeps_the_model_as_it_is(tmp_path):
    files = rule_inputs(tmp_path, 1.0)
    out = tmp_path / "repair"
    r = R.run(**files, precision="ascend", gate=0.99, out_json=str(out / "repair.json"),
              out_model=str(out / "model.onnx"), keep_dtype=str(out / "keep_dtype.cfg"))
    assert r["passed"] and not r["repaired"] and r["steps"] == [] and r["kept"] == [] and "speed" not in r
    assert (out / "model.onnx").read_bytes() == (tmp_path / "m.fp16.onnx").read_bytes()
    assert (out / "keep_dtype.cfg").read_text() == ""


def test_the_rule_refuses_an_fp32_target_and_inputs_without_a_reference(tmp_path):
    files = rule_inputs(tmp_path, 1.0)
    with pytest.raises(ValueError, match="fp32 target"):
        R.run(**files, precision="fp32", gate=0.99, out_json=str(tmp_path / "r.json"),
              out_model=str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError, match="no torch_fp32 reference"):
        R.run(**{**files, "reference": files["reference"][:1]}, precision="fp16", gate=0.99,
              out_json=str(tmp_path / "r.json"), out_model=str(tmp_path / "m.onnx"))


def test_greedy_cleanup_keeps_only_the_last_steps_model(tmp_path):
    def build(kept, out):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(",".join(kept))
        return out

    def check(model):
        n = len(model.read_text().split(","))
        return {"cosine_min": n / 10, "nonfinite": 0, "passed": n >= 3, "model": str(model)}

    before = {"cosine_min": 0.0, "nonfinite": 0, "passed": False, "model": "x"}
    r = R.greedy([["a"], ["b"], ["c"], ["d"]], build, check, tmp_path, before, cleanup=True)
    assert r["passed"] and r["kept"] == ["a", "b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step3"]


def chain(tmp_path, files, precision="ascend", last=3, located=True):
    """Steps 0..last as the rules run them, one call (one job) each; returns each step's record and the
    inode of its model."""
    import json

    if not located:  # locate's record of a target that met its gates
        (tmp_path / "l.json").write_text(json.dumps({"located": False}))
    out = []
    for n in range(last + 1):
        j, m = tmp_path / "steps" / f"step{n}.json", tmp_path / "steps" / f"step{n}" / "model.onnx"
        prev = out[-1][1:] if out else (None, None)
        R.run_step(n, files["fp32"], files["csv_path"], files["locate_json"], files["npy"], files["reference"],
                   precision, 0.99, str(j), str(m), *(str(f) if f else None for f in prev),
                   target=files["target"])
        out.append((json.loads(j.read_text()), j, m))
    return [(r, m.stat().st_ino) for r, _, m in out]


def test_each_repair_step_is_its_own_job_and_steps_after_the_pass_only_pass_it_on(tmp_path):
    files = rule_inputs(tmp_path, 2.0 ** 16)
    steps = chain(tmp_path, files)
    (r0, _), (r1, ino1), (r2, ino2), (r3, ino3) = steps
    assert not r0["before"]["passed"] and not r0["done"] and r0["steps"] == []
    assert r1["passed"] and r1["done"] and r1["kept"] == OVERFLOW and [s["step"] for s in r1["steps"]] == [1]
    assert r2 == r1 and r3 == r1 and ino1 == ino2 == ino3  # the model is linked on, not rebuilt
    # the final rule: the last step's model and record, the speed before and after, ATC's file
    out = tmp_path / "repair"
    rec = R.finish(str(tmp_path / "steps" / "step3.json"),
                   str(tmp_path / "steps" / "step3" / "model.onnx"), files["npy"], str(out / "repair.json"),
                   str(out / "model.onnx"), str(out / "keep_dtype.cfg"), speed_runs=1)
    assert rec["repaired"] and "done" not in rec and rec["speed"]["after_ms"]["runs"] == 1
    assert (out / "model.onnx").stat().st_ino == ino3 and (out / "keep_dtype.cfg").read_text().split() == OVERFLOW


def test_a_target_locate_did_not_locate_is_verified_once_and_not_repaired(tmp_path):
    files = rule_inputs(tmp_path, 1.0)
    steps = chain(tmp_path, files, precision="fp16", last=2, located=False)
    assert all(r["done"] and r["passed"] and r["steps"] == [] for r, _ in steps)
    assert steps[0][0]["locate"]["located"] is False
    # the model as deployed (the fp16 ONNX), copied into step 0 and linked on through the chain: never a
    # link to the fp16 ONNX itself, whose time Snakemake would change when it sets the steps' times
    fp16 = tmp_path / "m.fp16.onnx"
    assert steps[0][1] == steps[2][1] != fp16.stat().st_ino
    assert (tmp_path / "steps" / "step2" / "model.onnx").read_bytes() == fp16.read_bytes()


def test_a_step_past_the_last_candidate_ends_the_chain_without_a_pass(tmp_path):
    files = rule_inputs(tmp_path, 2.0 ** 16)
    import json

    rows = L.read_csv(files["csv_path"])
    summary = json.loads(Path(files["locate_json"]).read_text())
    summary["overflow_nodes"] = []
    Path(files["locate_json"]).write_text(json.dumps(summary))
    # keep only one candidate that does not help
    L.write_csv([dict(r, increment=0.0) for r in rows], files["csv_path"])
    steps = chain(tmp_path, files, last=2)
    assert not steps[-1][0]["passed"] and steps[-1][0]["done"] and steps[-1][0]["steps"] == []
