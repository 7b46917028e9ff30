"""ranking: does the deployed model keep the order PyTorch fp32 puts things in?

A per-image cosine of 0.99 says little when every feature sits in a narrow cone: fp16 GELU in ncnn
(Tencent/ncnn #6978) made different images give nearly the same feature, each still close to its own
reference, and retrieval broke. So, per stage against the reference (torch_fp32):

- image-to-image: the cosine-similarity matrix of the stage's features against the reference's; per
  image (row, the image itself left out) the Spearman rank correlation of its similarities to all other
  images, and whether its nearest other image is the same (top-1 agreement);
- image-to-label (when text features exist): per image the Spearman correlation of its label
  similarities and whether the top label is the same (the zero-shot rule gates probabilities too).

Both are tie-aware (measures.tied): reference similarities closer than fp16's resolution at their size (2.4e-4
near 1) are one score, so a swap of two such neighbours, which rounding alone can cause, fails no gate, while
any other reordering counts in full.

Gates: Spearman min over images >= `ranking_min_spearman`, top-1 agreement >= `ranking_min_top1_agreement`.
With fewer than three images a row has at most one other image, so the image-to-image ranking cannot
fail; the result says so (`informative: false`). With n images one swap of two neighbours that are not tied
gives Spearman 1 - 12/((n-1)((n-1)^2-1)): 0.9 for six images, so the default 0.95 asks for the same order
there, up to ties. For the text tower's similarity.json the items are the label prompts (label-to-label
ranking)."""

import numpy as np

from accuracy.measures import agreement, normalise, spearman
from pipeline.common import log

# defaults of the config keys gates.ranking_min_spearman / gates.ranking_min_top1_agreement
DEFAULT_GATES = {"ranking_min_spearman": 0.95, "ranking_min_top1_agreement": 1.0}


def cosine_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """Cosine similarity of every row of a with every row of b (b defaults to a)."""
    na = normalise(a)
    return na @ (na if b is None else normalise(b)).T


def _off_diagonal(m: np.ndarray) -> np.ndarray:
    """(n x n) -> (n x n-1): each row without its diagonal element."""
    n = len(m)
    return m[~np.eye(n, dtype=bool)].reshape(n, n - 1)


def _row_agreement(ref: np.ndarray, got: np.ndarray, names: list[str]) -> dict:
    """Per row: Spearman of got's scores against ref's, and whether the best column agrees."""
    rho = spearman(ref, got)
    top_ref, top = ref.argmax(axis=1), got.argmax(axis=1)
    agree = agreement(ref, top, top_ref)
    return {"spearman_min": float(rho.min()), "spearman_mean": float(rho.mean()),
            "top1_agreement": float(agree.mean()),
            "per_item": {n: {"spearman": float(rho[i]), "top1_agrees": bool(agree[i])} for i, n in enumerate(names)},
            "_top_ref": top_ref, "_top": top}


def image_to_image(reference: np.ndarray, deployed: np.ndarray, stems: list[str]) -> dict:
    """Ranking of every image's neighbours (by cosine) under `deployed` features vs `reference`.
    Rows of both are the images in `stems` order."""
    if reference.shape[0] != deployed.shape[0] or reference.shape[0] != len(stems):
        raise ValueError(f"{len(stems)} images but {reference.shape[0]} reference and {deployed.shape[0]} "
                         f"deployed feature rows")
    s_ref, s = cosine_matrix(reference), cosine_matrix(deployed)
    out = {"n": len(stems), "informative": len(stems) >= 3,
           "max_similarity_change": float(np.abs(s - s_ref).max()) if len(stems) else 0.0,
           # mean cosine between different images: near 1 means the features collapsed to one direction
           "mean_pairwise_cosine": float(_off_diagonal(s).mean()) if len(stems) > 1 else None,
           "mean_pairwise_cosine_reference": float(_off_diagonal(s_ref).mean()) if len(stems) > 1 else None}
    if len(stems) < 2:
        return {**out, "spearman_min": 1.0, "spearman_mean": 1.0, "top1_agreement": 1.0, "per_item": {}}
    others = [[t for t in stems if t != s_] for s_ in stems]
    r = _row_agreement(_off_diagonal(s_ref), _off_diagonal(s), stems)
    for i, stem in enumerate(stems):
        r["per_item"][stem].update(nearest=others[i][r["_top"][i]], nearest_reference=others[i][r["_top_ref"][i]])
    return {**out, **{k: v for k, v in r.items() if not k.startswith("_")}}


def image_to_label(ref_image: np.ndarray, ref_text: np.ndarray, image: np.ndarray, text: np.ndarray,
                   stems: list[str], labels: list[str]) -> dict:
    """Ranking of the labels for every image (cosine of image and label features) vs the reference."""
    s_ref, s = cosine_matrix(ref_image, ref_text), cosine_matrix(image, text)
    r = _row_agreement(s_ref, s, stems)
    for i, stem in enumerate(stems):
        r["per_item"][stem].update(top1=labels[r["_top"][i]], top1_reference=labels[r["_top_ref"][i]])
    return {"n": len(stems), "labels": list(labels), "informative": len(labels) >= 2,
            **{k: v for k, v in r.items() if not k.startswith("_")}}


def gates_of(result: dict, a: str, b: str, measure: str, thresholds: dict) -> list[dict]:
    """The two ranking gates (Spearman min, top-1 agreement) of one comparison, in similarity's gate form."""
    min_rho = float(thresholds.get("ranking_min_spearman", DEFAULT_GATES["ranking_min_spearman"]))
    min_top1 = float(thresholds.get("ranking_min_top1_agreement", DEFAULT_GATES["ranking_min_top1_agreement"]))
    worst = min(result["per_item"], key=lambda k: result["per_item"][k]["spearman"]) if result["per_item"] else None
    return [
        {"a": a, "b": b, "kind": "ranking", "measure": f"{measure}_spearman_min", "threshold": min_rho,
         "value": result["spearman_min"], "passed": bool(result["spearman_min"] >= min_rho), "worst_image": worst},
        {"a": a, "b": b, "kind": "ranking", "measure": f"{measure}_top1_agreement", "threshold": min_top1,
         "value": result["top1_agreement"], "passed": bool(result["top1_agreement"] >= min_top1),
         "worst_image": worst},
    ]


def evaluate(image: dict[str, np.ndarray], stems: list[str], thresholds: dict, reference: str = "torch_fp32",
             text: dict[str, np.ndarray] | None = None, labels: list[str] | None = None) -> dict:
    """`image` (and `text`): {stage: (n x d) features, rows in `stems` (`labels`) order}. Ranking of every
    stage but the reference against it, and its gates."""
    out = {"reference": reference, "images": list(stems), "stages": {}, "gates": []}
    for stage in image:
        if stage == reference:
            continue
        entry = {"image_to_image": image_to_image(image[reference], image[stage], stems)}
        out["gates"] += gates_of(entry["image_to_image"], stage, reference, "image_to_image", thresholds)
        if text is not None and stage in text:
            entry["image_to_label"] = image_to_label(image[reference], text[reference], image[stage], text[stage],
                                                     stems, labels)
            out["gates"] += gates_of(entry["image_to_label"], stage, reference, "image_to_label", thresholds)
        out["stages"][stage] = entry
        i2i = entry["image_to_image"]
        log.info("ranking %s vs %s: image-to-image spearman min %.4f, top-1 agreement %.0f%%, mean pairwise "
                 "cosine %s (reference %s)", stage, reference, i2i["spearman_min"], 100 * i2i["top1_agreement"],
                 i2i["mean_pairwise_cosine"], i2i["mean_pairwise_cosine_reference"])
    return out
