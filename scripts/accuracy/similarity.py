"""similarity: per-image cosine, max abs and relative error between every pair of stages, paired
by image name (never by listing order), the ranking each stage keeps against torch_fp32 (accuracy/ranking.py:
image-to-image, and image-to-label when text features are given), and the accuracy gates of both."""

import numpy as np

from accuracy.measures import cosine, stack
from pipeline.paths import STAGES
from pipeline.common import log

# (a, b, gate key): offline vs onnx_fp16 is the seed's number; torch_fp32 is the ground truth.
PAIRS = (
    ("offline", "onnx_fp16", "offline_vs_onnx_fp16"),
    ("offline", "torch_fp32", "vs_torch_fp32"),
    ("onnx_fp16", "torch_fp32", "vs_torch_fp32"),
    ("onnx_fp32", "torch_fp32", "vs_torch_fp32"),
)


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray], name_a: str, name_b: str) -> dict:
    """Per-item cosine, max abs and relative error of two stages' features ({item: row}), paired by item."""
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ValueError(f"{name_a} and {name_b} cover different images: only in {name_a}: {only_a}; "
                         f"only in {name_b}: {only_b}")
    if not a:
        raise ValueError(f"no outputs to compare for {name_a} vs {name_b}")
    per_image, max_abs, rel = {}, {}, {}
    for stem in sorted(a):
        x = np.asarray(a[stem], dtype=np.float64).ravel()
        y = np.asarray(b[stem], dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"'{stem}': {name_a} has {x.size} values, {name_b} has {y.size}")
        per_image[stem] = cosine(x, y)
        max_abs[stem] = float(np.abs(x - y).max())
        rel[stem] = float(np.linalg.norm(x - y) / max(np.linalg.norm(y), 1e-30))
    cos = np.array(list(per_image.values()))
    return {
        "a": name_a, "b": name_b,
        "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
        "max_abs_err": float(max(max_abs.values())),
        "rel_err_max": float(max(rel.values())),
        "per_image": per_image,
        "per_image_max_abs_err": max_abs,
        "per_image_rel_err": rel,
    }


def evaluate(outputs: dict[str, dict[str, np.ndarray]], thresholds: dict[str, float],
             text: dict[str, dict[str, np.ndarray]] | None = None, labels: list[str] | None = None) -> dict:
    """Cosine pairs and gates, then the ranking section and its gates (same gates list, kind "ranking"),
    from each stage's {item: features}. torch_fp32 and offline cover every item; onnx_fp32 and onnx_fp16
    may cover a sample of them (chain_images: first_shard): each pair and its ranking is judged on the items
    both its stages have, and says how many (`images`). `text` ({stage: {label: features}}) adds the
    image-to-label ranking."""
    from accuracy import ranking

    every = set(outputs["torch_fp32"])
    if set(outputs["offline"]) != every:
        compare(outputs["offline"], outputs["torch_fp32"], "offline", "torch_fp32")  # names what differs
    for stage in ("onnx_fp32", "onnx_fp16"):
        if not set(outputs[stage]) <= every or not outputs[stage]:
            raise ValueError(f"{stage} covers items torch_fp32 does not: {sorted(set(outputs[stage]) - every)}")
    pairs, gates = [], []
    for a, b, key in PAIRS:
        items = set(outputs[a]) & set(outputs[b])
        pair = compare(*({i: outputs[s][i] for i in items} for s in (a, b)), a, b)
        pair["images"] = len(items)
        pairs.append(pair)
        worst = min(pair["per_image"], key=pair["per_image"].get)
        gates.append({"a": a, "b": b, "threshold": float(thresholds[key]),
                      "passed": bool(pair["cosine_min"] >= thresholds[key]),
                      "worst_image": worst, "cosine_min": pair["cosine_min"], "images": len(items)})
        log.info("%s vs %s (%d images): cosine min %.6f mean %.6f, max abs err %.3g -> %s", a, b, len(items),
                 pair["cosine_min"], pair["cosine_mean"], pair["max_abs_err"],
                 "PASS" if gates[-1]["passed"] else "FAIL")
    ranked = {"reference": "torch_fp32", "images": sorted(every), "stages": {}, "gates": []}
    for stage in STAGES[1:]:  # each stage's ranking against torch_fp32, on its own items
        stems = sorted(outputs[stage])
        pair_text = {st: stack(text[st], labels) for st in ("torch_fp32", stage)} if text else None
        r = ranking.evaluate({st: stack(outputs[st], stems) for st in ("torch_fp32", stage)}, stems, thresholds,
                             text=pair_text, labels=labels)
        ranked["stages"].update(r["stages"])
        ranked["gates"] += r["gates"]
    return {"pairs": pairs, "gates": gates + ranked["gates"], "ranking": ranked}


def missed(record: dict) -> list[dict]:
    """The gates of a similarity record that failed (what makes the workflow locate the target)."""
    return [g for g in record.get("gates", []) if not g["passed"]]
