"""zero_shot: does the deployed pair of towers still classify and retrieve like PyTorch?

From the image features of every sample image and the text features of every label prompt, per stage
(torch_fp32 is the reference; onnx_fp16 and offline are compared with it), as cn_clip scores them:
features L2-normalised, logits = logit_scale x cosine with cn_clip's trained logit scale 100 (exp of
ln 100, its clamp), softmax over the labels. Per stage against torch_fp32:

- top-1 agreement: share of images whose best label is the same (image -> text recall@1 agreement:
  the same argmax, so the same figure);
- the largest change of any image-label probability;
- Spearman rank correlation of each image's label ranking (min and mean over images);
- text -> image recall@1 agreement: share of labels whose best image (over the sample set) is the same.

Gate per stage: top-1 agreement 100% and the largest probability change <= the configured bound."""


import numpy as np

from accuracy.measures import agreement, normalise, spearman, stack
from pipeline.common import log

LOGIT_SCALE = 100.0  # cn_clip: logit_scale.exp() clamped at 100, which trained checkpoints reach


def probabilities(image: np.ndarray, text: np.ndarray, scale: float = LOGIT_SCALE) -> np.ndarray:
    """(images x labels) softmax over labels of scale x cosine."""
    logits = scale * normalise(image) @ normalise(text).T
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def compare(ref_img: np.ndarray, ref_txt: np.ndarray, img: np.ndarray, txt: np.ndarray, stems: list[str],
            labels: list[str]) -> dict:
    """Zero-shot and retrieval figures of one stage against the reference stage."""
    p_ref, p = probabilities(ref_img, ref_txt), probabilities(img, txt)
    top_ref, top = p_ref.argmax(axis=1), p.argmax(axis=1)
    sim_ref = normalise(ref_img) @ normalise(ref_txt).T
    sim = normalise(img) @ normalise(txt).T
    t2i_ref, t2i = sim_ref.argmax(axis=0), sim.argmax(axis=0)
    rho = spearman(sim_ref, sim)
    change = np.abs(p - p_ref)
    i2t = agreement(sim_ref, top, top_ref)  # probabilities keep each row's order of the cosines
    return {
        "top1_agreement": float(i2t.mean()),
        "image_to_text_recall1_agreement": float(i2t.mean()),
        "text_to_image_recall1_agreement": float(agreement(sim_ref.T, t2i, t2i_ref).mean()),
        "max_prob_change": float(change.max()),
        "spearman_min": float(rho.min()),
        "spearman_mean": float(rho.mean()),
        "per_image": {s: {"top1": labels[top[i]], "top1_reference": labels[top_ref[i]],
                          "prob": float(p[i, top[i]]), "max_prob_change": float(change[i].max()),
                          "spearman": float(rho[i])} for i, s in enumerate(stems)},
        "per_label_top_image": {lab: {"image": stems[t2i[j]], "reference": stems[t2i_ref[j]]}
                                for j, lab in enumerate(labels)},
    }


def evaluate(image: dict[str, np.ndarray], text: dict[str, np.ndarray], stems: list[str], labels: list[str],
             max_prob_change: float, reference: str = "torch_fp32") -> dict:
    """`image`/`text`: {stage: (n x d) features, rows in `stems`/`labels` order}. Figures and gates of
    every stage but the reference against it, and the reference's own predictions."""
    if len(stems) == 0 or len(labels) == 0:
        raise ValueError("zero-shot needs at least one image and one label")
    p_ref = probabilities(image[reference], text[reference])
    out = {"reference": reference, "labels": list(labels), "images": list(stems), "logit_scale": LOGIT_SCALE,
           "predictions": {s: {"label": labels[int(p_ref[i].argmax())], "prob": float(p_ref[i].max())}
                           for i, s in enumerate(stems)},
           "stages": {}, "gates": []}
    for stage in image:
        if stage == reference:
            continue
        r = compare(image[reference], text[reference], image[stage], text[stage], stems, labels)
        out["stages"][stage] = r
        passed = r["top1_agreement"] == 1.0 and r["max_prob_change"] <= max_prob_change
        out["gates"].append({"a": stage, "b": reference, "top1_agreement": r["top1_agreement"],
                             "max_prob_change": r["max_prob_change"], "threshold": float(max_prob_change),
                             "passed": bool(passed)})
        log.info("zero-shot %s vs %s: top-1 agreement %.0f%%, max prob change %.3g, spearman min %.4f, "
                 "t2i agreement %.0f%% -> %s", stage, reference, 100 * r["top1_agreement"], r["max_prob_change"],
                 r["spearman_min"], 100 * r["text_to_image_recall1_agreement"], "PASS" if passed else "FAIL")
    return out


def evaluate_stages(image: dict[str, dict], text: dict[str, dict], max_prob_change: float,
                    reference: str = "torch_fp32") -> dict:
    """evaluate() from each stage's {item: features} of both towers: every stage on the images it covers
    (onnx_fp16 may cover a sample: chain_images), the reference's predictions on every image."""
    labels = list(text[reference])
    for stage, rows in text.items():
        if list(rows) != labels:
            raise ValueError(f"stage {stage} covers other labels than {reference}")
    stems = sorted(image[reference])
    text_rows = {st: stack(text[st], labels) for st in text}
    out = evaluate({reference: stack(image[reference], stems)}, {reference: text_rows[reference]}, stems, labels,
                   max_prob_change, reference)
    for stage in image:
        if stage == reference:
            continue
        own = sorted(image[stage])
        if not set(own) <= set(stems):
            raise ValueError(f"stage {stage} covers images {reference} does not: {sorted(set(own) - set(stems))}")
        r = evaluate({reference: stack(image[reference], own), stage: stack(image[stage], own)},
                     {reference: text_rows[reference], stage: text_rows[stage]}, own, labels, max_prob_change,
                     reference)
        out["stages"][stage] = {**r["stages"][stage], "images": len(own)}
        out["gates"] += [{**g, "images": len(own)} for g in r["gates"]]
    return out
