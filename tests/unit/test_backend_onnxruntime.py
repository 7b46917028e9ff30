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
    assert len(result["seconds"]) == 4 and result["throughput_fps_ci95"] is not None
    assert result["stopped_early"] is False, "no ci_width: every run of `loop`"


def test_benchmark_stops_early_once_the_interval_is_within_ci_width(tiny_onnx, tmp_path):
    model = backend.compile(tiny_onnx["fp32"], tmp_path / "m", 1, 16, OPTIONS)[0]
    result = backend.benchmark(model, tiny_onnx["npy"], 1, loop=50, warmup=1, options={**OPTIONS, "ci_width": 10.0})
    assert (result["loop"], result["loop_max"], result["stopped_early"]) == (10, 50, True)


INTEGER_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul", "ConvInteger", "MatMulIntegerToFloat",
               "QLinearMatMul", "QLinearConv", "QGemm"}


@pytest.mark.parametrize("precision", ["int8", "int8_dynamic"])
def test_int8_compile_quantises_and_stays_close(tiny_onnx, tmp_path, precision):
    files = backend.compile(tiny_onnx["fp32"], tmp_path / "int8", 1, 16,
                            {**OPTIONS, "precision": precision, "calibration": tiny_onnx["npy"]})
    ops = {n.op_type for n in onnx.load(files[0]).graph.node}
    assert ops & INTEGER_OPS, ops
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


@pytest.fixture
def tiny_vit_onnx(tmp_path):
    """A tiny pre-LN transformer block exported like cn_clip's vision tower: 3-D tokens, symbolic batch,
    no constant folding (weights reach MatMul through Transpose), nn.MultiheadAttention (out_proj as Gemm)."""
    import torch

    class Block(torch.nn.Module):
        def __init__(self, width=32, heads=4):
            super().__init__()
            self.ln_1, self.ln_2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
            self.attn = torch.nn.MultiheadAttention(width, heads)
            self.c_fc, self.c_proj = torch.nn.Linear(width, 4 * width), torch.nn.Linear(4 * width, width)

        def forward(self, image):  # image: batch x 8 x 32 (tokens x width), tokens first inside
            x = image.permute(1, 0, 2)
            y = self.ln_1(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            y = self.ln_2(x)
            x = x + self.c_proj(torch.nn.functional.gelu(self.c_fc(y)))
            return x.permute(1, 0, 2)[:, 0, :]

    torch.manual_seed(0)
    block = Block().eval()
    with torch.no_grad():  # trained-like biases (zero ones would be exported as one shared initialiser)
        for name, p in block.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    path = tmp_path / "vit.img.fp32.onnx"
    torch.onnx.export(block, (torch.randn(1, 8, 32),), str(path), input_names=["image"],
                      output_names=["unnorm_image_features"], dynamic_axes={"image": {0: "batch"}},
                      opset_version=14, do_constant_folding=False, dynamo=False)
    return str(path)


@pytest.mark.parametrize("recipe", ["matmul", "pre_process"])
def test_int8_quantises_every_weight_matmul_of_a_fixed_batch_transformer(tiny_vit_onnx, tmp_path, recipe):
    """Every weight product of a cn_clip-like block (in_proj, out_proj, c_fc, c_proj) must run in int8,
    none left as an fp32 MatMul/Gemm, and the result must stay close to the fp32 model."""
    files = backend.compile(tiny_vit_onnx, tmp_path / "int8", 1, 8,
                            {**OPTIONS, "precision": "int8_dynamic", "int8_recipe": recipe})
    graph = onnx.load(files[0]).graph
    weights = {i.name for i in graph.initializer}
    fp32_weight_products = [n.name for n in graph.node if n.op_type in ("MatMul", "FusedMatMul", "Gemm")
                            and n.input[1] in weights]
    assert not fp32_weight_products
    integer = [n for n in graph.node if n.op_type in ("DynamicQuantizeMatMul", "MatMulInteger", "MatMulIntegerToFloat")]
    assert len(integer) == 4
    x = np.random.default_rng(0).standard_normal((1, 8, 32)).astype(np.float32)
    got = backend.session(files[0], 1).run(None, {"image": x})[0].ravel()
    ref = ort.InferenceSession(tiny_vit_onnx, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0].ravel()
    assert got @ ref / np.linalg.norm(got) / np.linalg.norm(ref) > 0.99


@pytest.mark.parametrize("level", ["basic", "extended", "all"])
def test_compile_at_each_optimisation_level_keeps_the_result(tiny_onnx, tmp_path, level):
    files = backend.compile(tiny_onnx["fp32"], tmp_path / level, 1, 16, {**OPTIONS, "graph_optimization": level})
    got = backend.session(files[0], 1).run(None, {"image": np.load(tiny_onnx["npy"][0])})[0]
    np.testing.assert_allclose(got, reference(tiny_onnx["fp32"], tiny_onnx["npy"][0]), rtol=1e-4, atol=1e-4)


def test_int8_weights_have_per_channel_scales_by_default(tiny_vit_onnx, tmp_path):
    from onnx import numpy_helper

    files = backend.compile(tiny_vit_onnx, tmp_path / "int8", 1, 8, {**OPTIONS, "precision": "int8_dynamic"})
    graph = onnx.load(files[0]).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    scales = [inits[n.input[2]] for n in graph.node if n.op_type == "DynamicQuantizeMatMul"]
    assert scales and all(s.size > 1 for s in scales)  # one scale per output channel, not one per tensor


def test_static_int8_without_calibration_inputs_is_a_clear_error(tiny_onnx, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        backend.compile(tiny_onnx["fp32"], tmp_path / "int8", 1, 16, {**OPTIONS, "precision": "int8"})
    with pytest.raises(ValueError, match="unknown precision"):
        backend.compile(tiny_onnx["fp32"], tmp_path / "x", 1, 16, {**OPTIONS, "precision": "int4"})


@pytest.fixture
def vit_calibration(tmp_path):
    rng = np.random.default_rng(1)
    files = []
    for i in range(4):
        np.save(tmp_path / f"cal{i}.npy", rng.standard_normal((1, 8, 32)).astype(np.float32))
        files.append(str(tmp_path / f"cal{i}.npy"))
    return files


def products(graph):
    """(fp32 weight products, integer products, fp32 activation x activation products) of a compiled graph."""
    weights = {i.name for i in graph.initializer}
    fp32 = [n for n in graph.node if n.op_type in ("MatMul", "FusedMatMul", "Gemm")]
    integer = [n for n in graph.node if n.op_type in ("MatMulIntegerToFloat", "QLinearMatMul", "QGemm", "DynamicQuantizeMatMul")]
    return ([n for n in fp32 if n.input[1] in weights], integer, [n for n in fp32 if n.input[1] not in weights])


def cosine_vs_fp32(model, fp32_onnx, x):
    got = backend.session(model, 1).run(None, {"image": x})[0].ravel()
    ref = ort.InferenceSession(fp32_onnx, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0].ravel()
    return got @ ref / np.linalg.norm(got) / np.linalg.norm(ref)


@pytest.mark.parametrize("recipe,bs", [("weights", 1), ("weights", 2), ("attention", 1), ("qlinear", 1)])
def test_static_int8_runs_every_weight_product_in_int8(tiny_vit_onnx, vit_calibration, tmp_path, recipe, bs):
    """The static recipes, calibrated on real inputs: every weight product of a cn_clip-like block
    (in_proj, out_proj, c_fc, c_proj) in an integer kernel, none left in fp32 (a MatMul + bias that
    ONNX Runtime fuses into an fp32 Gemm before its QDQ fusions would be); the attention's two
    activation products in int8 only with the "attention" recipe; and the result close to fp32."""
    files = backend.compile(tiny_vit_onnx, tmp_path / "int8", bs, 8, {**OPTIONS, "precision": "int8",
                            "calibration": vit_calibration, "static_recipe": recipe})
    fp32_weights, integer, fp32_attention = products(onnx.load(files[0]).graph)
    assert not fp32_weights
    assert len(integer) == (6 if recipe == "attention" else 4)
    assert len(fp32_attention) == (0 if recipe == "attention" else 2)
    x = np.concatenate([np.load(f) for f in vit_calibration[:bs]])
    assert cosine_vs_fp32(files[0], tiny_vit_onnx, x) > 0.99


def test_static_int8_leaves_named_nodes_in_fp32(tiny_vit_onnx, vit_calibration, tmp_path):
    files = backend.compile(tiny_vit_onnx, tmp_path / "int8", 1, 8, {**OPTIONS, "precision": "int8",
                            "calibration": vit_calibration, "int8_exclude": ["c_proj"]})
    fp32_weights, integer, _ = products(onnx.load(files[0]).graph)
    assert len(integer) == 3 and len(fp32_weights) == 1


@pytest.mark.parametrize("precision", ["int8", "int8_dynamic"])
def test_int8_weights_are_7_bit_on_a_cpu_without_vnni(tiny_vit_onnx, vit_calibration, tmp_path, monkeypatch, precision):
    """Without VNNI, ONNX Runtime's u8 x s8 kernels add pairs of products in saturating 16-bit
    arithmetic: full-range int8 weights overflow it (ViT-B-16's cosine vs fp32 fell to 0.98 on such
    a CPU). The recipe follows the CPU unless told."""
    from onnx import numpy_helper

    def weight_range(options, name):
        files = backend.compile(tiny_vit_onnx, tmp_path / name, 1, 8, {**OPTIONS, "precision": precision,
                                "calibration": vit_calibration, **options})
        graph = onnx.load(files[0]).graph
        ints = [numpy_helper.to_array(i) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8]
        return max(int(np.abs(a).max()) for a in ints if a.size > 1)

    monkeypatch.setattr(backend, "cpu_has_vnni", lambda: False)
    assert weight_range({}, "auto_without_vnni") <= 64
    assert weight_range({"reduce_range": False}, "forced_full") == 127
    monkeypatch.setattr(backend, "cpu_has_vnni", lambda: True)
    assert weight_range({}, "auto_with_vnni") == 127


def test_one_session_factory_sets_threads_and_spinning():
    from onnx import TensorProto, helper

    spec = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [2, 2]) for x in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "m", spec[:2], spec[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]).SerializeToString()

    def spinning(sess):
        return sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(backend.session(model, 1, spinning=False)) == "0"
    assert spinning(backend.session(model, 1, spinning=True)) == "1"
    assert spinning(backend.session(model, 1)) == ("1" if backend.ALLOW_SPINNING else "0")
    assert backend.session(model, 2).get_session_options().intra_op_num_threads == 2


def test_a_model_protobuf_refuses_to_size_is_saved_with_its_weights_beside_it():
    """Past 2 GiB protobuf raises EncodeError from ByteSize itself (a locate step that kept half of ViT-H-14
    in fp32 died there): that model goes to external data, never to a crash."""
    from google.protobuf.message import EncodeError

    class Huge:
        def ByteSize(self):
            raise EncodeError("Failed to serialize proto")

    class Small:
        def ByteSize(self):
            return 1000

    assert backend.needs_external_data(Huge())
    assert not backend.needs_external_data(Small())
