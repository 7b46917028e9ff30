import numpy as np
import pytest

from accuracy.similarity import PAIRS, compare, evaluate


def load(files):
    """{item: features} of per-item files, as similarity.compare takes them."""
    return {item: np.load(f) for item, f in files.items()}


def save(folder, name, values):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, np.asarray(values, dtype=np.float32).reshape(1, -1))
    return folder / name


def test_pairs_by_name_not_listing_order(tmp_path):
    a = {"x": save(tmp_path / "a", "x.npy", [1, 0]), "y": save(tmp_path / "a", "y.npy", [0, 1])}
    # b's items in the other order, values matching by name
    b = {"y": save(tmp_path / "b", "y_0.npy", [0, 2]), "x": save(tmp_path / "b", "x_0.npy", [3, 0])}
    result = compare(load(a), load(b), "ref", "offline")
    assert result["per_image"] == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}
    assert result["max_abs_err"] == pytest.approx(2.0)


def test_cosine_and_errors_values(tmp_path):
    a = {"x": save(tmp_path / "a", "x.npy", [1, 0])}
    b = {"x": save(tmp_path / "b", "x.npy", [1, 1])}
    result = compare(load(a), load(b), "a", "b")
    assert result["cosine_min"] == pytest.approx(1 / np.sqrt(2))
    assert result["max_abs_err"] == pytest.approx(1.0)
    assert result["rel_err_max"] == pytest.approx(1 / np.sqrt(2))


def test_missing_or_extra_image_is_an_error(tmp_path):
    a = {"x": save(tmp_path / "a", "x.npy", [1]), "y": save(tmp_path / "a", "y.npy", [1])}
    b = {"x": save(tmp_path / "b", "x.npy", [1]), "z": save(tmp_path / "b", "z.npy", [1])}
    with pytest.raises(ValueError, match=r"only in a: \['y'\].*only in b: \['z'\]"):
        compare(load(a), load(b), "a", "b")


def outputs(perturb_offline=0.0):
    rng = np.random.default_rng(0)
    truth = {s: rng.standard_normal(8) for s in ("p", "q")}
    out = {}
    for stage in ("torch_fp32", "onnx_fp32", "onnx_fp16", "offline"):
        noise = perturb_offline if stage == "offline" else 1e-6
        out[stage] = {s: v + noise * rng.standard_normal(8) for s, v in truth.items()}
    return out


def test_gates_pass_and_fail_with_thresholds():
    gates = {"offline_vs_onnx_fp16": 0.999, "vs_torch_fp32": 0.99}
    good = evaluate(outputs(), gates)
    assert [(p["a"], p["b"]) for p in good["pairs"]] == [(a, b) for a, b, _ in PAIRS]
    assert all(g["passed"] for g in good["gates"])
    bad = evaluate(outputs(perturb_offline=1.0), gates)
    failed = {(g["a"], g["b"]) for g in bad["gates"] if not g["passed"]}
    assert ("offline", "onnx_fp16") in failed and ("offline", "torch_fp32") in failed
    assert ("onnx_fp32", "torch_fp32") not in failed


def test_shard_feature_files_pair_by_item_across_shards(tmp_path):
    """similarity reads a stacked file per shard: items come back by name from any shard, in any order."""
    from pipeline.common import read_features, write_features

    write_features(tmp_path / "s1.npz", ["y", "x"], [np.array([[0, 2]], np.float16), np.array([[3, 0]], np.float16)])
    write_features(tmp_path / "s2.npz", ["甲"], [np.array([1.0, 1.0], np.float32)])
    b = read_features([tmp_path / "s1.npz", tmp_path / "s2.npz"])
    assert list(b) == ["y", "x", "甲"]
    a = {"x": np.array([1.0, 0]), "y": np.array([0, 1.0]), "甲": np.array([2.0, 2.0])}
    assert compare(a, b, "ref", "offline")["per_image"] == {"x": pytest.approx(1.0), "y": pytest.approx(1.0),
                                                            "甲": pytest.approx(1.0)}
    write_features(tmp_path / "s3.npz", ["x"], [np.array([1.0, 0])])
    with pytest.raises(ValueError, match="'x' is in another shard"):
        read_features([tmp_path / "s1.npz", tmp_path / "s3.npz"])


def test_the_middle_stages_of_the_chain_may_cover_a_sample_and_each_pair_says_how_many():
    """chain_images: first_shard: onnx_fp32 and onnx_fp16 cover 2 of 5 images; offline vs torch_fp32 is
    judged on all 5, the pairs with a middle stage (and the seed's offline vs onnx_fp16) on the 2, and each
    stage's ranking on its own images."""
    rng = np.random.default_rng(0)
    every = {f"img{i}": rng.standard_normal(8) for i in range(5)}
    sample = {k: every[k] for k in ("img0", "img3")}
    outputs = {"torch_fp32": every, "offline": dict(every), "onnx_fp32": dict(sample), "onnx_fp16": dict(sample)}
    r = evaluate(outputs, {"offline_vs_onnx_fp16": 0.999, "vs_torch_fp32": 0.99})
    images = {(p["a"], p["b"]): p["images"] for p in r["pairs"]}
    assert images == {("offline", "onnx_fp16"): 2, ("offline", "torch_fp32"): 5, ("onnx_fp16", "torch_fp32"): 2,
                      ("onnx_fp32", "torch_fp32"): 2}
    assert all(g["passed"] for g in r["gates"])
    assert r["ranking"]["stages"]["offline"]["image_to_image"]["n"] == 5
    assert r["ranking"]["stages"]["onnx_fp16"]["image_to_image"]["n"] == 2
    with pytest.raises(ValueError, match="onnx_fp16 covers items torch_fp32 does not"):
        evaluate({**outputs, "onnx_fp16": {**sample, "stranger": every["img0"]}},
                 {"offline_vs_onnx_fp16": 0.999, "vs_torch_fp32": 0.99})
