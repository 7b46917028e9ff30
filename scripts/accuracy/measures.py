"""The measures every accuracy check shares, so each is said once: the one cosine (float64), row
normalisation, the one tie rule of the ranking gates (tolerance, tied), the tie-aware Spearman rank
correlation and top-1 agreement built on it, and stacking a stage's features in a fixed order. similarity,
ranking and zero_shot build on these; locate and repair on them."""

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


# The one tie rule of every ranking gate: two reference similarities closer than half the spacing of fp16
# numbers at their size are one score. A feature computed in fp16 (the seed's deployment) cannot order them:
# rounding the similarity itself to fp16 already moves it by up to that much, 2**-12 = 2.4e-4 near 1. Below
# TIE_FLOOR (similarities near 0) the floor holds: 1e-6, far under any real margin between two neighbours.
# Measured: on synthetic ViT-B-16 weights the six label prompts' similarities to one another lie within
# 0.981..0.989 and two of them 3.3e-5 apart; fp16 swapped those two and a tie-blind Spearman read 0.9 (issue 31).
TIE_FLOOR = 1e-6


def tolerance(similarity) -> np.ndarray:
    """The tie tolerance at a similarity's size: half an fp16 ulp of |s| (np.spacing), at least TIE_FLOOR."""
    s = np.abs(np.asarray(similarity, dtype=np.float64))
    ulp = np.spacing(np.minimum(s, 65504.0).astype(np.float16)).astype(np.float64)
    return np.maximum(ulp / 2, TIE_FLOOR)


def tied(a, b) -> np.ndarray:
    """Whether two reference similarities are one score under the tie rule (tolerance of the larger)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.abs(a - b) <= tolerance(np.maximum(np.abs(a), np.abs(b)))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def _resolve_ties(ref: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Ranks (0..n-1) of one row of reference scores with its ties resolved as `got` orders them: the row
    sorted by `ref`, then two neighbours swapped while they are tied (tied()) and `got` has them the other
    way round. An item only ever passes items tied with itself, so ties never chain into a long run."""
    order = list(np.argsort(ref, kind="stable"))
    close = tied(ref[order[:-1]], ref[order[1:]])
    if not (close & (got[order[:-1]] > got[order[1:]])).any():
        ranks = np.empty(len(ref))
        ranks[order] = np.arange(len(ref))
        return ranks
    changed = True
    while changed:
        changed = False
        for k in range(len(order) - 1):
            x, y = order[k], order[k + 1]
            if got[x] > got[y] and tied(ref[x], ref[y]):
                order[k], order[k + 1] = y, x
                changed = True
    ranks = np.empty(len(ref))
    ranks[order] = np.arange(len(ref))
    return ranks


def spearman(reference: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each row of `got` with the same row of `reference` (1.0 where a row is
    constant), tie-aware: reference scores that are one score under the tie rule (tied()) are ranked in the
    order `got` puts them, so a swap of two near-tied items costs nothing and any other reordering counts
    in full."""
    reference, got = np.atleast_2d(np.asarray(reference, dtype=np.float64)), np.atleast_2d(np.asarray(got, dtype=np.float64))
    rb = _ranks(got)
    ra = np.stack([_resolve_ties(r, g) for r, g in zip(reference, got)]) + 1.0
    ra, rb = ra - ra.mean(axis=1, keepdims=True), rb - rb.mean(axis=1, keepdims=True)
    denom = np.sqrt((ra ** 2).sum(axis=1) * (rb ** 2).sum(axis=1))
    return np.where(denom > 0, (ra * rb).sum(axis=1) / np.where(denom > 0, denom, 1.0), 1.0)


def agreement(ref_scores: np.ndarray, top: np.ndarray, top_ref: np.ndarray) -> np.ndarray:
    """Per row: whether the deployed pick `top` is the reference's pick `top_ref`, or one the reference
    scores as high under the tie rule (a set may hold one image twice, or two nearly alike, and which one
    argmax returns then turns on the last bits)."""
    rows = np.arange(len(ref_scores))
    best = ref_scores[rows, top_ref]
    return ref_scores[rows, top] >= best - tolerance(best)


def stack(rows: dict[str, np.ndarray], stems: list[str]) -> np.ndarray:
    """(n x d) float64 rows of one stage's features, in `stems` order."""
    return np.stack([np.asarray(rows[s], dtype=np.float64).ravel() for s in stems])
