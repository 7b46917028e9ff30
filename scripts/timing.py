"""One benchmark method for every runtime: warm-up excluded, `loop` timed runs over real inputs
rotated across runs, throughput and latency percentiles."""

import time
from typing import Callable, Sequence

import numpy as np

from common import Progress


def batches(arrays: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Batches of `batch_size` built from the real inputs (each 1xCxHxW), rotated so consecutive
    batches differ; never zeros. One batch per input, so every image leads a batch once."""
    if not arrays:
        raise ValueError("no inputs to benchmark with")
    n = len(arrays)
    return [np.concatenate([arrays[(i + j) % n] for j in range(batch_size)]) for i in range(n)]


def latency_stats(seconds: Sequence[float], batch_size: int) -> dict:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "throughput_fps": float(batch_size * len(ms) / (ms.sum() / 1000.0)),
        "latency_ms": {
            "mean": float(ms.mean()),
            "p50": float(np.percentile(ms, 50)),
            "p90": float(np.percentile(ms, 90)),
            "p99": float(np.percentile(ms, 99)),
            "min": float(ms.min()),
            "max": float(ms.max()),
        },
    }


def time_runs(run: Callable[[np.ndarray], object], inputs: Sequence[np.ndarray], batch_size: int,
              loop: int, warmup: int, what: str) -> dict:
    """Warm up, then time `loop` calls of run(batch) with rotating real batches."""
    data = batches(inputs, batch_size)
    for i in range(warmup):
        run(data[i % len(data)])
    progress = Progress(f"{what} timed runs", loop)
    seconds = []
    for i in range(loop):
        batch = data[i % len(data)]
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
        progress.step()
    return {"batch_size": batch_size, "loop": loop, "warmup": warmup, **latency_stats(seconds, batch_size)}
