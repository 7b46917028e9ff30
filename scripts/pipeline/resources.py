"""`resources:` of every job (threads are the rules'): memory and a scheduler time limit from the
measured peak RSS and wall time of each step (Snakemake's own benchmark: records of a default
ViT-H-14 run and of the test suite's ViT-B-16 run; docs/performance.md says when, where and how).
Other architectures are interpolated by the size of their image tower between the two."""

import math

# step: (peak RSS in MB, wall time in s) of the largest job of that step
MEASURED = {
    "ViT-H-14": {"checkpoint": (4343, 14), "export": (6226, 30), "fp16": (6729, 24), "reference": (4673, 9),
                 "compile": (5613, 18), "infer": (2554, 8), "benchmark": (4415, 155)},
    "ViT-B-16": {"checkpoint": (1399, 5), "export": (2555, 15), "fp16": (1439, 6), "reference": (1799, 7),
                 "compile": (1374, 5), "infer": (427, 2), "benchmark": (918, 38)},
}
_SIZE = {"ViT-Toy-16": 0.0, "RN50": 0.0, "ViT-B-16": 0.0, "ViT-L-14": 0.45, "ViT-L-14-336": 0.5, "ViT-H-14": 1.0}
HEADROOM = 1.25  # mem_mb = measured peak x this, so a job is not killed by a scheduler at its own peak

# Jobs that read images, JSON or a checkpoint's header only (preprocess, similarity, report, ...):
# Snakemake's own default memory floor, one thread, a 10-minute limit; a download gets an hour.
LIGHT = {"mem_mb": 1000, "runtime": 10}


def _measured(arch: str, step: str) -> tuple[float, float]:
    if arch in MEASURED:
        return MEASURED[arch][step]
    w = _SIZE.get(arch, 1.0)
    (b_mb, b_s), (h_mb, h_s) = MEASURED["ViT-B-16"][step], MEASURED["ViT-H-14"][step]
    return b_mb + w * (h_mb - b_mb), b_s + w * (h_s - b_s)


def mem_mb(arch: str, step: str) -> int:
    """`resources: mem_mb` of a job: its measured peak RSS with headroom, rounded up to 100 MB."""
    return int(math.ceil(_measured(arch, step)[0] * HEADROOM / 100.0) * 100)


def runtime_min(arch: str, step: str, scale: float = 1.0) -> int:
    """`resources: runtime` (minutes) of a job: 3x its measured wall time (x `scale`, e.g. the ratio of
    this run's benchmark loop to the measured one), at least 10 minutes: a scheduler limit, not an estimate."""
    return max(10, int(math.ceil(3 * _measured(arch, step)[1] * scale / 60.0)))
