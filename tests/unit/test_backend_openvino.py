"""The OpenVINO backend on small models built here: a cn_clip-like transformer (patch-embedding Conv,
pre-LN block with nn.MultiheadAttention and a GELU MLP, projection) exported to fp32 ONNX with its weights
in an external data file, as the workflow exports it, and conftest's tiny_onnx."""
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytest.importorskip("openvino")
pytest.importorskip("nncf")

import openvino as ov  # noqa: E402

from backends import onnxruntime as ort_backend  # noqa: E402
import backends  # noqa: E402
from backends import openvino as backend  # noqa: E402

OPTIONS = {"threads": 1, "precision": "fp32"}
RES = 16


def cosine(a, b):
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """{"onnx": fp32 ONNX (external data), "npy": four 1x3x16x16 inputs, "nodes": ONNX node names by role}."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self, width=32, heads=2):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, width, 4, stride=4, bias=False)
            self.ln_1, self.ln_2, self.ln_post = (torch.nn.LayerNorm(width) for _ in range(3))
            self.attn = torch.nn.MultiheadAttention(width, heads)
            self.c_fc, self.c_proj = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)
            self.proj = torch.nn.Parameter(torch.randn(width, 16) / width ** 0.5)

        def forward(self, image):
            x = self.conv1(image).flatten(2).permute(2, 0, 1)  # tokens x batch x width, as cn_clip's
            y = self.ln_1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            x = x + self.c_proj(torch.nn.functional.gelu(self.c_fc(self.ln_2(x))))
            return self.ln_post(x[0]) @ self.proj

    torch.manual_seed(0)
    model = Block().eval()
    with torch.no_grad():  # trained-like affine parameters and biases (not LayerNorm's 1 and 0)
        for name, p in model.named_parameters():
            if name.endswith("bias") or name.startswith("ln"):
                p.add_(0.1 * torch.randn_like(p))
    folder = tmp_path_factory.mktemp("vit")
    plain = folder / "plain.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, RES, RES),), str(plain), input_names=["image"],
                      output_names=["unnorm_image_features"], dynamic_axes={"image": {0: "batch"},
                      "unnorm_image_features": {0: "batch"}}, opset_version=14, dynamo=False)
    path = folder / "vit.img.fp32.onnx"
    onnx.save(onnx.load(str(plain)), str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="vit.img.fp32.extra_file", size_threshold=0)
    rng = np.random.default_rng(0)
    npy = []
    for stem in ("a", "b", "c", "d"):
        np.save(folder / f"{stem}.npy", rng.standard_normal((1, 3, RES, RES)).astype(np.float32))
        npy.append(str(folder / f"{stem}.npy"))
    graph = onnx.load(str(path), load_external_data=False).graph
    names = [n.name for n in graph.node]

    def one(suffix):
        found = [n for n in names if n.endswith(suffix)]
        assert len(found) == 1, (suffix, found)
        return found[0]

    nodes = {"c_fc": one("/c_fc/MatMul"), "c_fc_bias": one("/c_fc/Add"), "ln_2_mean": one("/ln_2/ReduceMean"),
             "softmax": one("/attn/Softmax"), "out_proj": one("/attn/Gemm"), "conv": one("/conv1/Conv"),
             "proj": next(n.name for n in graph.node if "unnorm_image_features" in n.output),
             "shape": next(n.name for n in graph.node if n.op_type == "Shape")}
    return {"onnx": str(path), "npy": npy, "nodes": nodes}


def ort_reference(onnx_path, x):
    return ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def batch(files, bs):
    return np.concatenate([np.load(f) for f in files[:bs]])


@pytest.fixture(scope="module")
def int8_model(vit, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    return backend.compile(vit["onnx"], out, 1, RES, {**OPTIONS, "precision": "int8", "calibration": vit["npy"]})


# --- the plan the backend declares --------------------------------------------------------------

def test_declares_its_plan():
    """(The plan's members and signatures are every backend's: tests/unit/test_backends.py.)"""
    assert backend.NAME == "openvino" and backend.devices({}) == ["cpu"] and backend.ACCELERATOR is None
    assert backend.RUNS_ON_HOST_CPU is True and backend.DEFAULT_PRECISION == "fp32"
    assert backend.PRECISIONS == {"fp32": "fp32", "fp16": "fp32", "bf16": "fp32", "int8": "fp32"}
    assert backend.CALIBRATED == {"int8"} and backend.compile_command("x.onnx", "o", 1, RES, OPTIONS) is None
    assert set(backend.versions(OPTIONS)) == {"openvino", "nncf"}


def test_preflight_names_the_fix_when_openvino_cannot_be_imported(monkeypatch):
    backend.preflight({})  # importable here
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now raises ImportError
    with pytest.raises(backends.PreflightError, match=r"cannot import openvino.*bash envs/setup\.sh"):
        backend.preflight({})


# --- compile, infer, benchmark -----------------------------------------------------------------

@pytest.mark.parametrize("bs", [1, 2])
def test_fp32_compile_writes_an_ir_that_matches_onnx_runtime(vit, tmp_path, bs):
    files = backend.compile(vit["onnx"], tmp_path / "m", bs, RES, OPTIONS)
    assert [f.rsplit("/", 1)[1] for f in files] == ["model.xml", "model.bin", "model.json"]
    model = ov.Core().read_model(files[0])
    assert list(model.input(0).get_shape()) == [bs, 3, RES, RES]
    record = json.loads(Path(files[2]).read_text())
    # f32 set explicitly: on a CPU with bf16 the plugin's default would be bf16
    assert record["inference_precision"] == "f32" and record["hint_honoured"]
    assert set(record["runtime_precisions"]) == {"f32"}
    compiled, request = backend.load(files[0], OPTIONS)
    x = batch(vit["npy"], bs)
    request.infer({0: x})
    got, ref = request.get_output_tensor(0).data, ort_reference(vit["onnx"], x)
    assert got.shape == ref.shape == (bs, 16)
    assert all(cosine(g, r) >= 0.9999 for g, r in zip(got, ref))


def test_infer_writes_one_float32_output_per_input(tiny_onnx, tmp_path):
    model = backend.compile(tiny_onnx["fp32"], tmp_path / "m", 1, 16, OPTIONS)[0]
    backend.infer(model, tiny_onnx["npy"], tmp_path / "dst", OPTIONS)
    assert sorted(p.name for p in (tmp_path / "dst").iterdir()) == ["a_0.npy", "b_0.npy", "c_0.npy"]
    for npy in tiny_onnx["npy"]:
        got = np.load(tmp_path / "dst" / f"{npy.rsplit('/', 1)[1][:-4]}_0.npy")
        assert got.dtype == np.float32 and got.shape == (1, 16)
        assert cosine(got, ort_reference(tiny_onnx["fp32"], np.load(npy))) >= 0.9999


def test_benchmark_returns_the_onnxruntime_record_keys(tiny_onnx, tmp_path):
    ov_model = backend.compile(tiny_onnx["fp32"], tmp_path / "ov", 2, 16, OPTIONS)[0]
    ort_model = ort_backend.compile(tiny_onnx["fp32"], tmp_path / "ort", 2, 16, OPTIONS)[0]
    got = backend.benchmark(ov_model, tiny_onnx["npy"], 2, loop=3, warmup=1, options=OPTIONS)
    ref = ort_backend.benchmark(ort_model, tiny_onnx["npy"], 2, loop=3, warmup=1, options=OPTIONS)
    assert set(got) - {"inference_precision"} == set(ref)
    assert set(got["latency_ms"]) == set(ref["latency_ms"]) and set(got["load"]) == set(ref["load"])
    assert got["batch_size"] == 2 and got["loop"] == 3 and got["threads"] == 1 and got["throughput_fps"] > 0
    assert got["inference_precision"] == "f32"


def test_int8_needs_calibration(vit, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        backend.compile(vit["onnx"], tmp_path / "m", 1, RES, {**OPTIONS, "precision": "int8"})


def test_int8_quantises_and_stays_close_to_fp32(vit, int8_model):
    model = ov.Core().read_model(int8_model[0])
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    # the weight products are quantised (a FakeQuantize and int8 weights feed them)
    c_fc = [op.get_friendly_name() for op in model.get_ops() if op.get_friendly_name().endswith("/c_fc/MatMul")]
    assert backend.quantised_inputs(model, c_fc) == {c_fc[0]: [0, 1]}
    record = json.loads(Path(int8_model[2]).read_text())
    assert record["precision"] == "int8" and record["inference_precision_hint"] == "f32"
    assert "i8" in record["runtime_precisions"] or "u8" in record["runtime_precisions"]
    _, request = backend.load(int8_model[0], {**OPTIONS, "precision": "int8"})
    for f in vit["npy"]:
        request.infer({0: np.load(f)})
        assert cosine(request.get_output_tensor(0).data, ort_reference(vit["onnx"], np.load(f))) >= 0.99


@pytest.mark.parametrize("vnni, fix", [(True, "first_layer_only"), (False, "enable")])
def test_int8_fixes_the_16_bit_overflow_on_every_layer_of_a_cpu_without_vnni(monkeypatch, vnni, fix):
    """Without VNNI the CPU plugin's u8 x s8 kernels saturate in 16 bits (full-range int8 weights
    overflow them): NNCF's overflow fix (7-bit weights) goes on every layer, as NNCF advises there."""
    import nncf

    seen = {}
    monkeypatch.setattr(backend, "cpu_has_vnni", lambda: vnni)
    monkeypatch.setattr(nncf, "quantize", lambda model, dataset, **kw: seen.update(kw) or model)
    backend.quantize("model", [np.zeros((1, 3, 16, 16), np.float32)])
    assert seen["advanced_parameters"].overflow_fix.value == fix


def test_a_precision_the_ir_was_not_made_for_is_an_error(tiny_onnx, tmp_path):
    model = backend.compile(tiny_onnx["fp32"], tmp_path / "m", 1, 16, OPTIONS)[0]
    with pytest.raises(ValueError, match="made for precision fp32"):
        backend.infer(model, tiny_onnx["npy"], tmp_path / "dst", {**OPTIONS, "precision": "bf16"})


def test_fp16_and_bf16_record_what_the_plugin_computes_in(tiny_onnx, tmp_path, caplog):
    """The hint is recorded with the precision the plugin reads back; where they differ (f16 on a CPU
    without avx512_fp16 or AMX-FP16 runs bf16) a warning says so."""
    for precision, hint in (("fp16", "f16"), ("bf16", "bf16")):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="cnclip-deploy"):
            files = backend.compile(tiny_onnx["fp32"], tmp_path / precision, 1, 16, {**OPTIONS, "precision": precision})
        record = json.loads(Path(files[2]).read_text())
        compiled = ov.Core().compile_model(files[0], "CPU", {"INFERENCE_PRECISION_HINT": hint})
        plugin = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        assert record["inference_precision_hint"] == hint and record["inference_precision"] == plugin
        assert record["hint_honoured"] == (plugin == hint)
        assert ("does not honour" in caplog.text) == (plugin != hint)


# --- ONNX node names in OpenVINO and NNCF ---------------------------------------------------------

def test_onnx_node_names_map_to_openvino_ops(vit):
    model = backend.convert(vit["onnx"], 1)
    n = vit["nodes"]
    where = backend.ov_names(vit["onnx"], model, list(n.values()) + ["no/such/node"])
    ops = {op.get_friendly_name(): op.get_type_name() for op in model.get_ops()}
    assert where["ops"][n["c_fc"]] == [n["c_fc"]] and where["rule"][n["c_fc"]] == "exact"
    assert ops[n["c_fc"]] == "MatMul"
    # a Gemm with bias is split: the product is <name>/WithoutBiases, the bias Add keeps <name>
    assert where["ops"][n["out_proj"]] == [n["out_proj"], n["out_proj"] + "/WithoutBiases"]
    assert [ops[o] for o in where["ops"][n["out_proj"]]] == ["Add", "MatMul"]
    assert where["rule"][n["ln_2_mean"]] == "fused" and ops[where["ops"][n["ln_2_mean"]][0]] == "MVN"
    assert where["rule"][n["proj"]] == "tensor" and where["ops"][n["proj"]] == ["unnorm_image_features"]
    assert where["rule"][n["softmax"]] == "fused"
    assert where["folded"] == [n["shape"]] and where["unknown"] == ["no/such/node"]


def test_nncf_takes_openvino_names_not_onnx_ones(vit):
    import nncf

    model = backend.convert(vit["onnx"], 1)
    n = vit["nodes"]
    with pytest.raises(nncf.ValidationError, match="not found in the NNCFGraph"):
        nncf.quantize(model, nncf.Dataset([np.load(vit["npy"][0])]), model_type=nncf.ModelType.TRANSFORMER,
                      subset_size=1, ignored_scope=nncf.IgnoredScope(names=[n["ln_2_mean"], n["proj"]]))


# --- build_reduced, load_reduced, write_kept ------------------------------------------------------

def test_int8_reduced_leaves_the_kept_node_unquantised(vit, int8_model, tmp_path):
    n = vit["nodes"]
    options = {"threads": 1, "calibration": vit["npy"]}
    plain = backend.build_reduced(vit["onnx"], "int8", [], tmp_path / "plain", options)
    kept = backend.build_reduced(vit["onnx"], "int8", [n["c_fc"]], tmp_path / "kept", options)
    assert backend.quantised_inputs(ov.Core().read_model(plain), [n["c_fc"]]) == {n["c_fc"]: [0, 1]}
    reduced = ov.Core().read_model(kept)
    assert backend.quantised_inputs(reduced, [n["c_fc"]]) == {}
    by_name = {op.get_friendly_name(): op for op in reduced.get_ops()}
    assert all(v.get_node().get_type_name() != "FakeQuantize" for v in by_name[n["c_fc"]].input_values())
    assert backend.quantised_inputs(reduced, [n["c_fc"].replace("c_fc", "c_proj")])  # its neighbour still int8
    assert (tmp_path / "kept" / "kept.txt").read_text() == n["c_fc"] + "\n"
    # keep=[] is the target compile makes: load_reduced agrees with infer of the compiled int8 model
    inputs = [np.load(f) for f in vit["npy"]]
    backend.infer(int8_model[0], vit["npy"], tmp_path / "dst", {**OPTIONS, "precision": "int8"})
    for f, got in zip(vit["npy"], [backend.load_reduced(plain, OPTIONS)(x) for x in inputs]):
        np.testing.assert_array_equal(got, np.load(tmp_path / "dst" / f"{f.rsplit('/', 1)[1][:-4]}_0.npy"))


def runtime_precision(model_xml, name, hint):
    compiled = ov.Core().compile_model(model_xml, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 1})
    return {op.get_rt_info()["runtimePrecision"].astype(str) for op in compiled.get_runtime_model().get_ops()
            if name in op.get_rt_info()["originalLayersNames"].astype(str).split(",")}


def bf16_host():
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.skipif(not bf16_host(), reason="this CPU has no bf16: the plugin runs the bf16 hint in f32")
def test_bf16_reduced_keeps_the_node_in_fp32(vit, tmp_path):
    n = vit["nodes"]
    plain = backend.build_reduced(vit["onnx"], "bf16", [], tmp_path / "plain", OPTIONS)
    kept = backend.build_reduced(vit["onnx"], "bf16", [n["c_fc"], n["ln_2_mean"]], tmp_path / "kept", OPTIONS)
    model = ov.Core().read_model(kept)
    marked = {op.get_friendly_name() for op in model.get_ops() if backend.KEEP_RT_KEY in op.get_rt_info()}
    mvn = n["ln_2_mean"].replace("ReduceMean", "Div")  # the LayerNorm, fused into MVN
    assert marked == {n["c_fc"], mvn}
    assert [r.get_node().get_friendly_name() for r in model.outputs[1:]] == [backend.FUSION_BARRIER + n["c_fc"]]
    # the plugin runs them in f32 (the plain model: bf16), and the result changes
    assert runtime_precision(kept, n["c_fc"], "bf16") == {"f32"} == runtime_precision(kept, mvn, "bf16")
    assert "bf16" in runtime_precision(plain, n["c_fc"].replace("MatMul", "Add"), "bf16")
    inputs = [np.load(f) for f in vit["npy"]]
    a, b = [backend.load_reduced(plain, OPTIONS)(x) for x in inputs], [backend.load_reduced(kept, OPTIONS)(x) for x in inputs]
    assert not all(np.array_equal(x, y) for x, y in zip(a, b))
    # keep=[] is the target compile makes: load_reduced agrees with infer
    compiled = backend.compile(vit["onnx"], tmp_path / "target", 1, RES, {**OPTIONS, "precision": "bf16"})[0]
    backend.infer(compiled, vit["npy"], tmp_path / "dst", {**OPTIONS, "precision": "bf16"})
    for f, got in zip(vit["npy"], a):
        np.testing.assert_array_equal(got, np.load(tmp_path / "dst" / f"{f.rsplit('/', 1)[1][:-4]}_0.npy"))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_attention_cannot_be_kept_under_a_reduced_hint_and_says_so(vit, tmp_path, precision, caplog):
    """The plugin runs attention at the hint whatever its marks: the softmax stays reduced, the log and the
    model's record say so, and the other kept nodes are kept."""
    with caplog.at_level(logging.WARNING):
        backend.build_reduced(vit["onnx"], precision, [vit["nodes"]["softmax"]], tmp_path / "m", OPTIONS)
    assert "cannot keep in fp32" in caplog.text and "attention" in caplog.text
    record = json.loads((tmp_path / "m" / "model.json").read_text())
    assert record["not_kept"] == [vit["nodes"]["softmax"]]


def test_unknown_nodes_are_an_error(vit, tmp_path):
    with pytest.raises(ValueError, match="not nodes of"):
        backend.build_reduced(vit["onnx"], "bf16", ["no/such/node"], tmp_path / "m", OPTIONS)


def test_write_kept_lists_each_name_once(tmp_path):
    path = backend.write_kept(tmp_path / "k" / "kept.txt", ["/a/MatMul", "/b/Add", "/a/MatMul"])
    assert path.read_text() == "/a/MatMul\n/b/Add\n"


def test_text_tower_token_ids_compile_and_infer(tmp_path):
    """The text tower's input: int64 token ids, 1x52 per file."""
    import torch

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.fc = torch.nn.Embedding(100, 16), torch.nn.Linear(16, 8)

        def forward(self, text):
            return self.fc(self.embed(text).mean(1))

    torch.manual_seed(0)
    path = tmp_path / "tiny.txt.fp32.onnx"
    torch.onnx.export(Text().eval(), (torch.zeros(1, 52, dtype=torch.long),), str(path), input_names=["text"],
                      output_names=["unnorm_text_features"], dynamic_axes={"text": {0: "batch"}}, opset_version=14,
                      dynamo=False)
    rng = np.random.default_rng(0)
    npy = []
    for stem in ("t1", "t2"):
        np.save(tmp_path / f"{stem}.npy", rng.integers(0, 100, (1, 52)).astype(np.int64))
        npy.append(str(tmp_path / f"{stem}.npy"))
    model = backend.compile(path, tmp_path / "m", 1, 0, OPTIONS)[0]
    backend.infer(model, npy, tmp_path / "dst", OPTIONS)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for f in npy:
        got = np.load(tmp_path / "dst" / f"{f.rsplit('/', 1)[1][:-4]}_0.npy")
        assert got.dtype == np.float32 and cosine(got, sess.run(None, {"text": np.load(f)})[0]) >= 0.9999
