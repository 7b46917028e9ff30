"""The measures every accuracy check shares, so each is said once: the one cosine (float64), row
normalisation, Spearman rank correlation, the tie rule of top-1 agreement, and stacking a stage's
features in a fixed order. similarity, ranking and zero_shot build on these; locate and repair on them."""

import numpy as np


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two tensors, flattened, in float64: every gate, locate and repair judge with this one
    (0.0 when either is all zeros; NaN when either holds NaN or inf)."""
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"cannot compare {x.size} values with {y.size}")
    denom = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / denom) if denom > 0 else 0.0


def normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of a with the same row of b (1.0 where a row is constant)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1.0), 1.0)


# reference cosines this close are one score: below what a deployed model's rounding can resolve (fp16
# features move cosines by 1e-5 and more), far below a real margin between two neighbours. In a
# 1,000-image run (docs/performance.md) an image's two nearest, crops nearly alike, were 2.8e-8 apart
# and fp16 picked the second; the median margin between first and second nearest was 1.4e-4.
TIE = 1e-6


def agreement(ref_scores: np.ndarray, top: np.ndarray, top_ref: np.ndarray) -> np.ndarray:
    """Per row: whether the deployed pick `top` is the reference's pick `top_ref`, or one the reference
    scores as high within TIE (a set may hold one image twice, or two nearly alike, and which one
    argmax returns then turns on the last bits)."""
    rows = np.arange(len(ref_scores))
    return ref_scores[rows, top] >= ref_scores[rows, top_ref] - TIE


def stack(rows: dict[str, np.ndarray], stems: list[str]) -> np.ndarray:
    """(n x d) float64 rows of one stage's features, in `stems` order."""
    return np.stack([np.asarray(rows[s], dtype=np.float64).ravel() for s in stems])
