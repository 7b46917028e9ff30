"""The text tower: cn_clip's tokenisation, the exported text ONNX against cn_clip's encode_text, and
the zero-shot figures and gate (scripts/tokenize_labels.py, export_onnx.py, reference.py, zero_shot.py)."""
import subprocess
from pathlib import Path

import numpy as np
import pytest

from export_onnx import exporter_command, onnx_prefix
from tokenize_labels import prompts, write_tokens
from accuracy.measures import spearman
from accuracy.zero_shot import evaluate, probabilities

PATCHES = sorted((Path(__file__).resolve().parents[2] / "patches").glob("*.patch"))
ARCH = "ViT-Toy-16"  # the workflow's tiny architecture (config/model_configs/): cn_clip's model code, a few layers
LABELS = ["猫", "咖啡", "宇航员", "火箭", "摩托车", "星空"]


def test_tokens_are_cn_clips_own_tokenize(tmp_path):
    from cn_clip.clip import tokenize

    outs = [str(tmp_path / f"{label}.npy") for label in LABELS]
    write_tokens(LABELS, "一张{}的照片", outs, 52)
    expected = tokenize([f"一张{label}的照片" for label in LABELS], context_length=52).numpy()
    for i, out in enumerate(outs):
        ids = np.load(out)
        assert ids.dtype == np.int64 and ids.shape == (1, 52)
        np.testing.assert_array_equal(ids[0], expected[i])
    assert prompts(["a{b}"], "{x} {} {}") == ["{x} a{b} a{b}"]  # str.replace: other braces stay


def test_text_exporter_command_and_names():
    cmd = exporter_command("x.py", "fp32", "RN50", "c.pt", "results/RN50/onnx/rn50", 14, tower="text")
    assert "--convert-text" in cmd and "--convert-vision" not in cmd and cmd[-2:] == ["--pytorch-ckpt-path", "c.pt"]
    assert onnx_prefix("results/A/onnx/rn50.txt.fp16.onnx") == "results/A/onnx/rn50"
    with pytest.raises(ValueError):
        onnx_prefix("results/A/onnx/rn50.txt.int8.onnx")


def test_text_export_runs_in_onnx_runtime_and_matches_encode_text(tmp_path):
    """ViT-Toy-16's text tower (cn_clip's own BERT, 2 layers of 64), synthetic weights, through the patched
    exporter: the workflow's own architecture goes through its `--model-config` like cn_clip's."""
    from cn_clip.clip import tokenize

    from backends.onnxruntime import session
    from model.clip import load_model
    from patch_exporter import apply_patches, upstream_exporter
    from reference import torch_features
    from model.synthetic import make_synthetic

    exporter = tmp_path / "pytorch_to_onnx.py"
    apply_patches(upstream_exporter(), PATCHES, exporter)
    ckpt = tmp_path / "toy.pt"
    make_synthetic(ARCH, 0, ckpt)
    prefix = tmp_path / "onnx" / "toy"
    prefix.parent.mkdir()
    for stage in ("fp32", "fp16"):
        cmd = exporter_command(exporter, stage, ARCH, ckpt if stage == "fp32" else None, prefix, 14, tower="text")
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(p.name for p in prefix.parent.iterdir()) == [
        "toy.txt.fp16.onnx", "toy.txt.fp32.onnx", "toy.txt.fp32.onnx.extra_file"]
    tokens = tokenize(prompts(LABELS, "一张{}的照片"), context_length=52).numpy()
    expected = torch_features(load_model(ckpt, ARCH, text_tower=True), tokens, "text")
    for stage, bound in (("fp32", 0.9999), ("fp16", 0.999)):
        sess = session(f"{prefix}.txt.{stage}.onnx", 0, optimize=True, level="all")
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        assert (inp.name, inp.type, out.name) == ("text", "tensor(int64)", "unnorm_text_features")
        got = sess.run(None, {"text": tokens})[0]  # batch 6 through the symbolic batch axis
        cos = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
        assert got.shape == expected.shape and cos.min() >= bound, (stage, cos)


def _case(seed=0, n_images=4, dim=8):
    """Image features near one label each, so torch_fp32's top-1 is clear-cut."""
    rng = np.random.default_rng(seed)
    text = rng.standard_normal((len(LABELS), dim))
    image = text[[0, 2, 3, 5][:n_images]] + 0.3 * rng.standard_normal((n_images, dim))
    return image, text


def test_zero_shot_agrees_with_itself_and_fails_on_a_perturbed_stage():
    image, text = _case()
    stems = ["a", "b", "c", "d"]
    perturbed = image.copy()
    perturbed[1] = text[4]  # image b now looks like 摩托车, not 宇航员
    r = evaluate({"torch_fp32": image, "onnx_fp16": image * 1.5 + 1e-6, "offline": perturbed},
                 {"torch_fp32": text, "onnx_fp16": text, "offline": text}, stems, LABELS, 0.01)
    assert [r["predictions"][s]["label"] for s in stems] == ["猫", "宇航员", "火箭", "星空"]
    gates = {g["a"]: g for g in r["gates"]}
    assert gates["onnx_fp16"]["passed"] and r["stages"]["onnx_fp16"]["top1_agreement"] == 1.0
    assert r["stages"]["onnx_fp16"]["max_prob_change"] < 1e-6 and r["stages"]["onnx_fp16"]["spearman_min"] == 1.0
    off = r["stages"]["offline"]
    assert not gates["offline"]["passed"]
    assert off["top1_agreement"] == 0.75 and off["image_to_text_recall1_agreement"] == 0.75
    assert off["per_image"]["b"]["top1"] == "摩托车" and off["per_image"]["b"]["top1_reference"] == "宇航员"
    assert off["max_prob_change"] > 0.5 and off["spearman_min"] < 1.0
    assert off["text_to_image_recall1_agreement"] < 1.0


def test_zero_shot_probability_bound_fails_without_a_top1_flip():
    image, text = _case()
    nudged = image + 0.02 * np.random.default_rng(1).standard_normal(image.shape)
    r = evaluate({"torch_fp32": image, "offline": nudged}, {"torch_fp32": text, "offline": text},
                 list("abcd"), LABELS, 1e-9)
    (g,) = r["gates"]
    assert g["top1_agreement"] == 1.0 and g["max_prob_change"] > 1e-9 and not g["passed"]


def test_zero_shot_counts_a_label_top_image_among_two_copies_as_agreeing():
    """An image in the set twice is a label's best image twice over: picking the other copy is not a
    changed retrieval; a label whose best image really changes still is."""
    from accuracy.zero_shot import compare

    rng = np.random.default_rng(4)
    img = rng.standard_normal((4, 8)).astype(np.float32)
    img[3] = img[2]  # c and d: the same image
    txt = np.vstack([img[2] + np.float32(0.1) * img[0], rng.standard_normal((1, 8)).astype(np.float32)])
    dep = img.copy()
    dep[2] -= np.float32(1e-5) * img[0]  # label 0's cosine to d now a hair above its cosine to c
    dep[3] += np.float32(1e-5) * img[0]
    r = compare(img, txt, dep, txt, list("abcd"), ["x", "y"])
    assert r["per_label_top_image"]["x"] == {"image": "d", "reference": "c"}
    assert r["text_to_image_recall1_agreement"] == 1.0 and r["top1_agreement"] == 1.0
    swapped = img[[1, 0, 2, 3]]
    assert compare(img, txt, swapped, txt, list("abcd"), ["x", "y"])["top1_agreement"] < 1.0


def test_probabilities_and_spearman():
    p = probabilities(np.eye(3), np.eye(3))
    assert np.allclose(p.sum(1), 1) and np.allclose(np.diag(p), np.e ** 100 / (np.e ** 100 + 2))
    assert np.allclose(spearman(np.array([[1, 2, 3.0]]), np.array([[10, 20, 30.0]])), 1.0)
    assert np.allclose(spearman(np.array([[1, 2, 3.0]]), np.array([[3, 2, 1.0]])), -1.0)


def test_report_carries_text_gates_zero_shot_and_real_weight_predictions(tmp_path):
    from pipeline.common import write_json
    from reporting import build_report, failed_gates, load_targets
    from test_report import CONFIG, write_all, write_checkpoint, write_target

    image, text = _case()
    perturbed = image.copy()
    perturbed[1] = text[4]
    z = evaluate({"torch_fp32": image, "onnx_fp16": image, "offline": perturbed},
                 {"torch_fp32": text, "onnx_fp16": text, "offline": text}, list("abcd"), LABELS, 0.01)
    write_json(tmp_path / "zero_shot.json", z)
    specs = [{**write_target(tmp_path / "cpu", "cpu", offline_cos=0.99999), "zero_shot": str(tmp_path / "zero_shot.json")},
             {**write_target(tmp_path / "text", "cpu", offline_cos=0.99999, tower="text"), "benchmarks": []}]
    targets = load_targets(specs)
    r = build_report([write_checkpoint(tmp_path, synthetic=False)], [], targets, {**CONFIG, "checkpoint": "/w/c.pt"})
    assert r["verdict"] == "FAIL" and r["gates_total"] == 2 * 4 + 2 and r["gates_passed"] == 2 * 4 + 1
    assert r["targets"][0]["accuracy"]["gates"] == targets[0]["accuracy"]["gates"]  # the contract's image gates as they were
    (line,) = failed_gates(r)
    assert "zero-shot offline vs torch_fp32: top-1 agreement 75%" in line
    html, md = write_all(r, tmp_path)
    assert "| onnxruntime/cpu text | offline | onnx_fp16 |" in md
    assert "## Zero-shot and retrieval" in md and "| onnxruntime/cpu | b | 宇航员 |" in md
    assert "FAIL (zero-shot)" in html and "predicted label (torch_fp32)" in html and "only agreement" not in md


def test_zero_shot_judges_each_stage_on_the_images_it_covers():
    """onnx_fp16 on a sample (chain_images: first_shard), offline and torch_fp32 on every image: each stage's
    figures and gate on its own images (`images`), the predictions on every image."""
    from accuracy.zero_shot import evaluate_stages

    rng = np.random.default_rng(0)
    img = {f"i{k}": rng.standard_normal(8) for k in range(4)}
    txt = {f"l{k}": rng.standard_normal(8) for k in range(3)}
    image = {"torch_fp32": img, "offline": dict(img), "onnx_fp16": {k: img[k] for k in ("i0", "i2")}}
    text = {stage: dict(txt) for stage in image}
    r = evaluate_stages(image, text, 0.01)
    assert len(r["predictions"]) == 4 and r["stages"]["onnx_fp16"]["images"] == 2
    assert r["stages"]["offline"]["images"] == 4 and all(g["passed"] for g in r["gates"])
    assert sorted(r["stages"]["onnx_fp16"]["per_image"]) == ["i0", "i2"]
