"""The family of hostile checkpoint variants (scripts/model/variants.py) on cn_clip's own model code
with the few-layer ViT-Toy-16 (4 image blocks, width 128): each variant, planted in block 1 and in block 2,
keeps the fp32 ONNX on ONNX Runtime equal to cn_clip's PyTorch fp32 model, fails its target precision at
the 0.99 gate, and is repaired by keeping only its block in fp32; the ordinary checkpoint passes both.

Targets as the workflow builds them: int8 = static QDQ int8 (repair.build_int8_static: the onnxruntime
backend's quantize_static_int8, uint8 activations per tensor calibrated MinMax on the same three inputs,
int8 weights per output channel, 7-bit (reduce_range) on a CPU without VNNI), run as the backend runs it; fp16 = the fp16 ONNX
(onnxruntime.transformers.float16, keep_io_types) run with fp16 storage between nodes (repair.run_model
fp16_storage: the proxy of fp16 hardware such as Ascend's). Inputs: chelsea.png, rocket.jpg,
astronaut.png at 64x64.

Measured on a CPU with AVX512-VNNI (synthetic seed 0, default factors; cosine per image against PyTorch fp32 of the same
checkpoint, in the order chelsea, rocket, astronaut; fp32: the largest 1 - cosine; "repaired": the target
rebuilt with every node of the block in fp32; "other": the precision the variant does not target, as
built, which it leaves alone):

| variant, block | fp32 ONNX 1 - cos | target as built | repaired | other |
|---|---|---|---|---|
| ordinary | 1.2e-13 | int8 0.99993 0.99994 0.99993; fp16 storage 0.999999 1.0 1.0 | - | - |
| fp16_overflow, 1 | 9.0e-14 | fp16 storage: all 192 features NaN | 1.0 1.0 1.0 | int8 0.99990 |
| fp16_overflow, 2 | 1.2e-13 | fp16 storage: all 192 features NaN | 1.0 1.0 1.0 | int8 0.99990 |
| int8_activation_outliers, 1 | 9.6e-14 | int8 0.9783 0.9661 0.9921 | 0.99992 0.99994 0.99992 | fp16 1.0 |
| int8_activation_outliers, 2 | 1.1e-13 | int8 0.9783 0.9705 0.9881 | 0.99991 0.99994 0.99992 | fp16 0.999999 |
| int8_weight_outliers, 1 | 9.2e-14 | int8 0.9672 0.9583 0.9879 | 0.99987 0.99995 0.99992 | fp16 0.999999 |
| int8_weight_outliers, 2 | 9.2e-14 | int8 0.9637 0.9587 0.9891 | 0.99989 0.99994 0.99993 | fp16 0.999999 |
| fp16_attention, 1 | 2.4e-11 | fp16 storage 0.9634 0.9849 0.9037 (finite) | 1.0 1.0 0.999998 | int8 0.99983 |
| fp16_attention, 2 | 1.1e-12 | fp16 storage 0.9274 0.9983 0.9752 (finite) | 0.999999 1.0 1.0 | int8 0.99989 |
| int8_activation_outliers site mlp, 2 | 7.7e-14 | int8 0.9887 0.9915 0.9824 | 0.99991 0.99994 0.99992 | fp16 0.999999 |
| int8_weight_outliers site mlp, 2 | 1.1e-13 | int8 0.9819 0.9913 0.9856 | 0.99989 0.99996 0.99991 | fp16 0.999999 |

The activation-outlier variants' PyTorch features differ from the ordinary checkpoint's by at most 1.8e-6
of their largest value (the divided weights' fp16 rounding); the other variants change the model.
About 40 s for the file on 2 shared cores (44 tests; every export, int8 build and fp16-storage run takes
a second or less; each case's checkpoint and export are shared by its three tests)."""
from pathlib import Path

import numpy as np
import pytest

from model import variants as V

ARCH = "ViT-Toy-16"
RESOLUTION = 64
IMAGES = ("chelsea.png", "rocket.jpg", "astronaut.png")
GATE = 0.99
FP32_GATE = 0.9999
BLOCKS = (1, 2)
LABELS = ("猫", "火箭", "宇航员")  # the text tower's inputs: cn_clip's prompts of three labels
# (kind, block, parameters): every variant in two blocks, the int8 variants and the LayerNorm overflow at their
# other site once, and the attention-values overflow in both layers of the text tower (cn_clip's BERT)
CASES = [(kind, block, {}) for kind in V.VARIANTS for block in BLOCKS] + \
        [(kind, 2, {"site": "mlp"}) for kind in ("int8_activation_outliers", "int8_weight_outliers", "fp16_ln_overflow")] + \
        [("fp16_value_overflow", layer, {"tower": "text"}) for layer in (0, 1)]


def variant_of(path) -> dict | None:
    """A checkpoint's variant record (write_variant_checkpoint), None for an ordinary one."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(V.VARIANT_KEY)


def case_id(case):
    kind, block, kw = case
    return "-".join([kind, f"block{block}"] + [f"{k}={v}" for k, v in kw.items()])


def tower_of(case) -> str:
    return case[2].get("tower", "image")


def unit_of(case) -> str:
    """The unit locate names for the case's block: a ViT's `resblocks.N`, BERT's `layer.N`."""
    return f"{'layer' if tower_of(case) == 'text' else 'resblocks'}.{case[1]}"


def precision_of(kind: str) -> str:
    return kind.split("_")[0]  # int8_... or fp16_...


# --------------------------------------------------------------------------------------------
# shared builds: the ordinary checkpoint and inputs once, each case's checkpoint and fp32 export once
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    from preprocess import preprocess_image
    from sample_images import sample_image_source
    from model.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("variants")
    make_synthetic(ARCH, 0, root / "ordinary.pt")
    from cn_clip.clip import tokenize

    xs = [preprocess_image(sample_image_source(name), RESOLUTION).astype(np.float32) for name in IMAGES]
    calibration = []
    for name, x in zip(IMAGES, xs):
        calibration.append(root / f"{Path(name).stem}.npy")
        np.save(calibration[-1], x)
    tokens = [tokenize([f"一张{label}的照片"], context_length=52).numpy() for label in LABELS]
    (root / "text").mkdir()
    text = []
    for i, t in enumerate(tokens):
        text.append(root / "text" / f"label{i}.npy")
        np.save(text[-1], t)
    return {"root": root, "ordinary": root / "ordinary.pt", "xs": xs, "calibration": calibration,
            "inputs": {"image": (xs, calibration), "text": (tokens, text)}}


def export_image_tower(model, path: Path) -> Path:
    """As the workflow's exporter does: encode_image traced (TorchScript exporter), opset 14, no constant
    folding, input `image`, output `unnorm_image_features`."""
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, image):
            return self.clip.encode_image(image)

    torch.onnx.export(ImageTower(model), (torch.zeros(1, 3, RESOLUTION, RESOLUTION),), str(path),
                      input_names=["image"], output_names=["unnorm_image_features"], export_params=True,
                      do_constant_folding=False, opset_version=14, dynamo=False)
    return path


def export_text_tower(model, path: Path) -> Path:
    """As the workflow's exporter does: encode_text traced (TorchScript exporter), opset 14, constant
    folding, input `text` (1x52 int64 token ids), output `unnorm_text_features`."""
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, text):
            return self.clip.encode_text(text)

    torch.onnx.export(TextTower(model), (torch.zeros(1, 52, dtype=torch.long),), str(path),
                      input_names=["text"], output_names=["unnorm_text_features"], export_params=True,
                      do_constant_folding=True, opset_version=14, dynamo=False)
    return path


def deployed(checkpoint: Path, xs: list[np.ndarray], out_dir: Path, tower: str = "image",
             files: list | None = None) -> dict:
    """cn_clip's PyTorch fp32 features of `checkpoint` and its fp32 ONNX, of one tower, with its inputs
    (`xs`, and the npy `files` holding them)."""
    import torch

    from model.clip import load_model

    model = load_model(checkpoint, ARCH, text_tower=tower == "text")
    encode = model.encode_text if tower == "text" else model.encode_image
    with torch.inference_mode():
        reference = [encode(torch.from_numpy(x)).numpy() for x in xs]
    out_dir.mkdir(parents=True, exist_ok=True)
    export = export_text_tower if tower == "text" else export_image_tower
    return {"reference": reference, "fp32": export(model, out_dir / "fp32.onnx"), "dir": out_dir, "xs": xs,
            "npy": files, "tower": tower}


@pytest.fixture(scope="module")
def ordinary(toy):
    return deployed(toy["ordinary"], toy["xs"], toy["root"] / "ordinary", files=toy["calibration"])


@pytest.fixture(scope="module")
def variants(toy):
    """case -> the variant's checkpoint record and deployed(); each built on first use."""
    built = {}

    def get(case):
        key = case_id(case)
        if key not in built:
            kind, block, kw = case
            out = toy["root"] / key
            record = V.write_variant_checkpoint(toy["ordinary"], out / "model.pt", ARCH, kind, block, **kw)
            xs, files = toy["inputs"][tower_of(case)]
            built[key] = {**deployed(out / "model.pt", xs, out, tower_of(case), files), "record": record}
        return built[key]
    return get


def block_nodes(fp32_onnx: Path, unit: str) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(fp32_onnx), load_external_data=False).graph.node if f"{unit}/" in n.name]


def in_unit(fp32_onnx: Path, unit: str, names: list[str]) -> list[str]:
    """The names that are not of `unit`: a node of it by name, or one whose outputs only nodes of it read (the
    exporter's Identity of a shared initializer, carrying that unit's weight)."""
    import onnx

    graph = onnx.load(str(fp32_onnx), load_external_data=False).graph
    readers: dict[str, list[str]] = {}
    for n in graph.node:
        for x in n.input:
            readers.setdefault(x, []).append(n.name)
    outputs = {n.name: list(n.output) for n in graph.node}
    return [m for m in names if f"{unit}/" not in m and not all(
        f"{unit}/" in r for o in outputs[m] for r in readers.get(o, ["-"]))]


def plan_of(precision: str, backend: str | None = None):
    """The plan a precision's target is built by here: int8 ONNX Runtime's static quantiser, fp16 the Ascend
    proxy (fp16 stored between nodes), unless `backend` says otherwise."""
    import backends

    return backends.get(backend or ("onnxruntime" if precision == "int8" else "ascend"))


def target(toy, built: dict, precision: str, keep: list[str], name: str, gate: float = GATE,
           backend: str | None = None) -> dict:
    """The target of `precision` built from the fp32 ONNX by its plan with the nodes `keep` left in fp32,
    measured as locate and repair measure it (gate 0.99)."""
    from accuracy.causes import Judge, Measure

    plan = plan_of(precision, backend)
    options = {"threads": 1, "calibration": built["npy"]}  # reduce_range: the backend's choice for this CPU
    graph = plan.reduced_graph(built["fp32"], precision, built["dir"] / name, options)
    judge = Judge([Path(f).stem for f in built["npy"]], built["reference"], gate)
    return Measure(plan, graph, precision, built["xs"], judge, options, built["dir"] / name)(keep)


def fp32_cosines(built: dict) -> list[float]:
    """The fp32 ONNX on ONNX Runtime against cn_clip's PyTorch fp32 features, per input."""
    import backends
    from accuracy.measures import cosine

    run = backends.reference().load_reduced(built["fp32"], {"threads": 1})
    return [cosine(run(x), r) for x, r in zip(built["xs"], built["reference"], strict=True)]


# --------------------------------------------------------------------------------------------
# each variant: fp32 accurate, its target precision fails, its block alone repairs it
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_fp32_deployment_of_the_variant_stays_accurate(toy, variants, case):
    built = variants(case)
    cos = fp32_cosines(built)
    assert min(cos) >= FP32_GATE, cos
    assert built["record"]["kind"] == case[0] and built["record"]["block"] == case[1]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_variant_fails_its_target_precision(toy, variants, case):
    built = variants(case)
    v = target(toy, built, precision_of(case[0]), [], "target")
    assert not v["passed"], v["per_input"]
    if case[0] == "fp16_attention":  # rounding, not overflow: finite features that point elsewhere
        assert v["nonfinite"] == 0 and v["cosine_min"] < GATE
    if case[0].endswith("overflow"):
        assert v["nonfinite"] > 0


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_keeping_only_the_variants_block_in_fp32_repairs_it(toy, variants, case):
    built = variants(case)
    kept = block_nodes(built["fp32"], unit_of(case))
    assert kept and all(f"{unit_of(case)}/" in n for n in kept)
    v = target(toy, built, precision_of(case[0]), kept, "repaired")
    assert v["passed"] and v["cosine_min"] > 0.999, v["per_input"]


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_the_ordinary_checkpoint_passes_both_targets(toy, ordinary, precision):
    """So what fails above is the planted defect, not the tiny model or the tools."""
    assert min(fp32_cosines(ordinary)) >= FP32_GATE
    v = target(toy, ordinary, precision, [], precision)
    assert v["passed"] and v["nonfinite"] == 0 and v["cosine_min"] > 0.999, v["per_input"]


def test_activation_outliers_are_compensated_exactly_in_fp32(toy, ordinary, variants):
    """(s y)(w / s) = y w: the variant's PyTorch fp32 features are the ordinary ones, up to the divided
    weights that fall below fp16's normal range in the checkpoint (measured: 1.8e-6 of the largest)."""
    for case in CASES:
        if case[0] == "int8_activation_outliers":
            for a, b in zip(variants(case)["reference"], ordinary["reference"]):
                assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()


# --------------------------------------------------------------------------------------------
# the state dicts: only the block's tensors change, in place nothing, out-of-range blocks refused
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def official(toy):
    import torch

    return torch.load(toy["ordinary"], map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("kind", list(V.VARIANTS))
def test_each_variant_changes_only_its_blocks_tensors(official, kind):
    import torch

    before = {k: v.clone() for k, v in official.items()}
    for block in (None, 0, 3):
        out = V.VARIANTS[kind](official, ARCH, block)
        prefix = f"module.visual.transformer.resblocks.{2 if block is None else block}."  # default: the middle
        changed = {k for k in official if out[k] is not official[k]}
        assert changed and all(k.startswith(prefix) for k in changed), changed
        assert set(out) == set(official)
        assert all(out[k].dtype == official[k].dtype and out[k].shape == official[k].shape for k in changed)
        assert any(not torch.equal(out[k], official[k]) for k in changed)
    assert all(torch.equal(official[k], before[k]) for k in official)  # the source is never modified


@pytest.mark.parametrize("kind", list(V.VARIANTS))
def test_each_variant_refuses_a_block_out_of_range(official, kind):
    for block in (4, -1):
        with pytest.raises(ValueError, match=f"blocks 0..3, not {block}"):
            V.VARIANTS[kind](official, ARCH, block)
    with pytest.raises(ValueError, match="no image-tower transformer blocks"):
        V.VARIANTS[kind]({"module.visual.layer1.0.conv1.weight": None}, "RN50")


def test_the_variants_tensors_are_as_documented(official):
    p = "module.visual.transformer.resblocks.1."
    a = V.make_activation_outliers(official, ARCH, 1)
    channels = V.outlier_channels(128, V.ACTIVATION_CHANNELS)
    assert channels == [0, 32, 64, 96]
    s = V.ACTIVATION_SCALE
    assert (a[p + "ln_1.weight"][channels].float() == official[p + "ln_1.weight"][channels].float() * s).all()
    assert (a[p + "ln_1.weight"][1:32].float() == official[p + "ln_1.weight"][1:32].float()).all()
    cols = a[p + "attn.in_proj_weight"][:, channels].float()
    assert (cols - official[p + "attn.in_proj_weight"][:, channels].float() / s).abs().max() < 2 ** -24  # subnormal

    w = V.make_weight_outliers(official, ARCH, 1)
    assert w[p + "ln_1.weight"][0] == 0 and w[p + "ln_1.bias"][0] == 0
    assert w[p + "attn.in_proj_weight"][:, 0].abs().eq(V.WEIGHT_OUTLIER).all()
    assert (w[p + "attn.in_proj_weight"][:, 1:] == official[p + "attn.in_proj_weight"][:, 1:]).all()
    m = V.make_weight_outliers(official, ARCH, 1, site="mlp")
    assert m[p + "mlp.c_fc.weight"][:, 0].abs().eq(V.WEIGHT_OUTLIER).all() and m[p + "ln_2.weight"][0] == 0

    t = V.make_attention(official, ARCH, 1)
    w, b = t[p + "attn.in_proj_weight"].float(), t[p + "attn.in_proj_bias"].float()
    const = [63, 127, 128 + 63, 128 + 127]  # 2 heads of 64: the last query and key dimension of each
    assert (w[const] == 0).all() and (b[const] == V.ATTENTION_BIAS).all()
    assert (w[:63] == official[p + "attn.in_proj_weight"][:63].float() * V.ATTENTION_SCALE).all()
    assert (w[256:] == official[p + "attn.in_proj_weight"][256:].float()).all()  # values untouched


def test_variants_refuse_factors_that_are_not_exact(official):
    with pytest.raises(ValueError, match="power of two"):
        V.make_activation_outliers(official, ARCH, scale=100.0)
    with pytest.raises(ValueError, match="power of two"):
        V.make_weight_outliers(official, ARCH, outlier=3.0)
    with pytest.raises(ValueError, match="power of two"):
        V.make_attention(official, ARCH, bias=300.0)
    with pytest.raises(ValueError, match="does not fit"):
        V.make_weight_outliers(official, ARCH, outlier=2.0 ** 17)
    with pytest.raises(ValueError, match="site must be one of"):
        V.make_activation_outliers(official, ARCH, site="ln_post")
    with pytest.raises(ValueError, match="channels must be"):
        V.make_activation_outliers(official, ARCH, channels=0)


def test_the_variant_checkpoint_file_keeps_the_layout_and_records_the_variant(toy, tmp_path):
    import torch

    record = V.write_variant_checkpoint(toy["ordinary"], tmp_path / "v.pt", ARCH, "fp16_attention", block=1, scale=2.0)
    assert record == {"kind": "fp16_attention", "block": 1, "bias": V.ATTENTION_BIAS, "scale": 2.0,
                      "source": str(toy["ordinary"])}
    saved = torch.load(tmp_path / "v.pt", weights_only=True)
    ordinary = torch.load(toy["ordinary"], weights_only=True)
    assert set(saved["state_dict"]) == set(ordinary["state_dict"]) and saved["synthetic_seed"] == 0
    assert all(k.startswith("module.") for k in saved["state_dict"])
    assert variant_of(tmp_path / "v.pt") == record and variant_of(toy["ordinary"]) is None
    # the default block is the middle one, recorded
    assert V.write_variant_checkpoint(toy["ordinary"], tmp_path / "w.pt", ARCH, "int8_weight_outliers")["block"] == 2
    assert V.write_variant_checkpoint(toy["ordinary"], tmp_path / "o.pt", ARCH, "fp16_overflow") == {
        "kind": "fp16_overflow", "block": 2, "scale": V.DEFAULT_SCALE, "source": str(toy["ordinary"])}
    with pytest.raises(ValueError, match="unknown variant"):
        V.write_variant_checkpoint(toy["ordinary"], tmp_path / "x.pt", ARCH, "int4_everything")
    with pytest.raises(ValueError, match="takes outlier, channel, site, not scale"):
        V.write_variant_checkpoint(toy["ordinary"], tmp_path / "x.pt", ARCH, "int8_weight_outliers", scale=2.0)
    assert not (tmp_path / "x.pt").exists()


# make_overflow on a small state dict (no model needed)

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
    out = V.make_overflow(sd, "ViT-B-16")
    assert V.image_blocks(sd) == 4
    p = "module.visual.transformer.resblocks.2.mlp."  # default: the middle block
    assert (out[p + "c_fc.weight"].float() == sd[p + "c_fc.weight"].float() * V.DEFAULT_SCALE).all()  # exact
    assert (out[p + "c_fc.bias"].float() == sd[p + "c_fc.bias"].float() * V.DEFAULT_SCALE).all()
    assert out[p + "c_proj.weight"].abs().max() < sd[p + "c_proj.weight"].abs().max() / 1000
    changed = {k for k in sd if out[k] is not sd[k]}
    assert changed == {p + "c_fc.weight", p + "c_fc.bias", p + "c_proj.weight"}
    assert out[p + "c_fc.weight"].dtype == sd[p + "c_fc.weight"].dtype


def test_make_overflow_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="no image-tower transformer blocks"):
        V.make_overflow({"module.visual.layer1.0.conv1.weight": None}, "RN50")
    with pytest.raises(ValueError, match="blocks 0..3, not 7"):
        V.make_overflow(fake_state(), "ViT-B-16", block=7)
    with pytest.raises(ValueError, match="power of two"):
        V.make_overflow(fake_state(), "ViT-B-16", scale=1000.0)
    with pytest.raises(ValueError, match="does not fit"):
        V.make_overflow(fake_state(), "ViT-B-16", scale=2.0 ** 30)


def test_overflow_checkpoint_file_keeps_the_official_layout(tmp_path):
    import torch

    torch.save({"state_dict": fake_state(), "synthetic_seed": 0, "arch": "ViT-B-16"}, tmp_path / "s.pt")
    record = V.write_variant_checkpoint(tmp_path / "s.pt", tmp_path / "o.pt", "ViT-B-16", "fp16_overflow", block=1)
    saved = torch.load(tmp_path / "o.pt", weights_only=True)
    assert set(saved["state_dict"]) == set(fake_state()) and saved["synthetic_seed"] == 0
    assert variant_of(tmp_path / "o.pt") == record and record["block"] == 1 and variant_of(tmp_path / "s.pt") is None


# --------------------------------------------------------------------------------------------
# locate and repair on each variant (issue 25): the measured top cause is the planted block, repair keeps
# only nodes of that block and passes; the ordinary checkpoint needs no repair
# --------------------------------------------------------------------------------------------

def localise_and_repair(toy, built: dict, precision: str, name: str, backend: str | None = None
                        ) -> tuple[dict, dict]:
    """locate's summary and repair's record of the target of `precision` (plan_of), as the rules run them:
    the inputs' npy files and their torch_fp32 features file."""
    from accuracy import locate as L
    from accuracy import repair as R
    from pipeline.common import write_features

    plan = plan_of(precision, backend)
    npy = [str(f) for f in built["npy"]]
    ref = built["dir"] / f"{name}.reference.npz"
    write_features(ref, [Path(f).stem for f in npy], built["reference"])
    options = {"threads": 1, "calibration": npy}  # reduce_range: the backend's choice for this CPU
    _, summary = L.localise(plan, built["fp32"], precision, npy, [str(ref)], GATE, options, built["dir"] / f"{name}-l")
    record = R.repair(plan, built["fp32"], precision, npy, [str(ref)], GATE, options, summary,
                      built["dir"] / f"{name}-r" / "model")
    return summary, record


def assert_located_and_repaired_in_its_unit(built: dict, case, summary: dict, record: dict) -> None:
    """locate names the planted unit (decided, not from a tie), repair passes keeping only nodes of it, its
    closure included."""
    unit = unit_of(case)
    assert not summary["causes"]["target"]["passed"]
    assert summary["causes"]["decided"] and summary["top_cause"]["unit"] == unit, summary["causes"]["why"]
    assert record["repaired"] and record["passed"] and record["after"]["cosine_min"] >= GATE, record.get("reason")
    assert record["kept"] and in_unit(built["fp32"], unit, record["kept"] + record["closure"]) == []


@pytest.fixture(scope="module")
def located(toy, variants):
    """(case, backend) -> localise_and_repair of the case's target, each run once."""
    done = {}

    def get(case, backend=None):
        key = (case_id(case), backend)
        if key not in done:
            done[key] = localise_and_repair(toy, variants(case), precision_of(case[0]), f"repair-{backend}", backend)
        return done[key]
    return get


@pytest.mark.parametrize("case", [c for c in CASES if c[2].get("site") is None], ids=case_id)  # two blocks each
def test_locate_names_the_planted_block_and_repair_keeps_only_its_nodes(variants, located, case):
    summary, record = located(case)
    assert_located_and_repaired_in_its_unit(variants(case), case, summary, record)


OVERFLOWS = [c for c in CASES if c[0] in ("fp16_ln_overflow", "fp16_value_overflow")]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("case", OVERFLOWS, ids=case_id)
def test_every_fp16_target_that_overflows_is_located_and_repaired(toy, variants, located, case, backend):
    """The fp16 targets of the CPU backends: where one loses the gate (ONNX Runtime stores the attention's
    values in fp16 between its Reshape and Transpose nodes), locate and repair work through its own
    mechanism; where it computes those nodes wider (ONNX Runtime's fp32 kernels for LayerNorm's arithmetic,
    OpenVINO's CPU plugin running f16 as f32 or bf16), it passes as built and nothing is kept."""
    built = variants(case)
    if target(toy, built, "fp16", [], f"as-built-{backend}", backend=backend)["passed"]:
        return  # nothing to locate: the gate is met as built
    summary, record = located(case, backend)
    assert_located_and_repaired_in_its_unit(built, case, summary, record)


@pytest.mark.parametrize("case", [c for c in OVERFLOWS if c[1] == 1], ids=case_id)
def test_the_kept_file_is_what_atc_takes(variants, located, case, tmp_path):
    """The Ascend plan's kept_fp32.txt (the kept nodes and their closure) through the stand-in atc, which reads
    --keep_dtype as GraphEngine does: every line must name an operator of the fp32 ONNX, or ATC fails
    (E10042); the command is the plan's kept_command."""
    import os
    import subprocess

    from conftest import standin_env

    built = variants(case)
    plan = plan_of("fp16")
    _, record = located(case)
    kept = tmp_path / "kept_fp32.txt"
    plan.write_kept(kept, record["kept"] + record["closure"])
    lines = kept.read_text(encoding="utf-8").splitlines()
    assert lines == list(dict.fromkeys(lines)) and all(lines)
    cmd = plan.kept_command(built["fp32"], kept, tmp_path / "om", {"device": "Ascend910B4", "tower": tower_of(case)})
    assert "--precision_mode=force_fp16" in cmd and f"--keep_dtype={kept.resolve()}" in cmd
    env = {**os.environ, **standin_env(tmp_path / "calls.jsonl")}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0 and "ATC run success" in done.stdout, done.stdout[-2000:]
    kept.write_text("\n".join(lines + ["/visual/no_such_node"]) + "\n", encoding="utf-8")
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode != 0 and "E10042" in done.stdout and "/visual/no_such_node" in done.stdout


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_the_ordinary_checkpoint_gets_no_repair(toy, ordinary, precision):
    summary, record = localise_and_repair(toy, ordinary, precision, f"ordinary-{precision}")
    assert summary["causes"]["target"]["passed"] and summary["top_cause"] is None or \
        summary["causes"]["units"][0]["error"] < 1e-3
    assert record["passed"] and not record["repaired"] and record["kept"] == [] and record["steps"] == []
