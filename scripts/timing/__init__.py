"""One benchmark method for every runtime: warm-up excluded, `loop` timed runs over real inputs
rotated across runs, throughput and latency percentiles each with a 95 % interval (a bootstrap over
the timed runs), and the load other processes put on the machine meanwhile (a figure measured while
others took a core is not this model's speed). A run may stop before `loop` once its throughput
interval is narrow enough (ci_width)."""

import os
import time
from typing import Callable, Sequence

import numpy as np

from pipeline.common import Progress, log

# The intervals: a percentile bootstrap over the timed runs, seeded so that the same runs always give the
# same interval. 1,000 resamples put the 2.5 % and 97.5 % bounds on 25 resamples each: steady to about a
# percent of the interval's width, at a few milliseconds for a 100-run record.
CI_LEVEL = 0.95
CI_RESAMPLES = 1000
CI_SEED = 0
CI_MIN_LOOP = 10  # timed runs before a benchmark may stop early: fewer give an interval too rough to trust
PERCENTILES = {"p50": 50, "p90": 90, "p99": 99}
LATENCY_CI_KEYS = ("mean", *PERCENTILES)
_CHUNK_VALUES = 2_000_000  # resampled run times held in memory at once (16 MB)
BOOTSTRAP = {"method": "percentile bootstrap over the timed iterations", "resamples": CI_RESAMPLES, "seed": CI_SEED,
             "level": CI_LEVEL}


def batches(arrays: Sequence[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Batches of `batch_size` built from the real inputs (each 1xCxHxW), rotated so consecutive
    batches differ; never zeros. One batch per input, so every image leads a batch once."""
    if not arrays:
        raise ValueError("no inputs to benchmark with")
    n = len(arrays)
    return [np.concatenate([arrays[(i + j) % n] for j in range(batch_size)]) for i in range(n)]


def _resamples(ms: np.ndarray, rng: np.random.Generator, resamples: int):
    """The bootstrap resamples of the run times `ms`, a chunk of rows at a time (each row: len(ms) runs
    drawn with replacement): bounded memory at any loop, the same draws for the same seed."""
    n = len(ms)
    rows = max(1, _CHUNK_VALUES // n)
    for start in range(0, resamples, rows):
        yield ms[rng.integers(0, n, size=(min(rows, resamples - start), n))]


def _bounds(values: np.ndarray) -> list[float]:
    tail = (1.0 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return [float(lo), float(hi)]


def _usable(seconds) -> np.ndarray | None:
    """The run times as an array, or None when they cannot carry an interval (absent, under two runs)."""
    if seconds is None:
        return None
    s = np.asarray(seconds, dtype=np.float64)
    return s if s.ndim == 1 and len(s) >= 2 and np.all(np.isfinite(s)) and np.all(s > 0) else None


def _throughputs(s: np.ndarray, batch_size: int, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """The throughput of every resample (images per second)."""
    return np.concatenate([batch_size * len(s) / chunk.sum(axis=1) for chunk in _resamples(s, rng, resamples)])


def throughput_ci(seconds: Sequence[float] | None, batch_size: int, resamples: int = CI_RESAMPLES,
                  seed: int = CI_SEED) -> list[float] | None:
    """The 95 % interval of the throughput batch_size * n / sum(seconds), or None under two runs. The
    same draws as bootstrap_ci's, so the interval a benchmark stops on is the one it records."""
    s = _usable(seconds)
    if s is None:
        return None
    return _bounds(_throughputs(s, batch_size, np.random.default_rng(seed), resamples))


def bootstrap_ci(seconds: Sequence[float] | None, batch_size: int, resamples: int = CI_RESAMPLES,
                 seed: int = CI_SEED) -> dict:
    """95 % intervals of a benchmark's figures from its per-run seconds: {"throughput_fps_ci95": [lo, hi],
    "latency_ms_ci95": {mean, p50, p90, p99: [lo, hi]}, "bootstrap": how}. Each resample draws len(seconds)
    runs with replacement (numpy, seeded: deterministic); the bounds are the 2.5th and 97.5th percentiles
    of the resampled figure. Under two runs (or none recorded) every interval is None."""
    s = _usable(seconds)
    how = {**BOOTSTRAP, "resamples": resamples, "seed": seed}
    if s is None:
        return {"throughput_fps_ci95": None, "latency_ms_ci95": dict.fromkeys(LATENCY_CI_KEYS), "bootstrap": how}
    ms = s * 1000.0
    fps, means, pct = [], [], []
    for chunk in _resamples(ms, np.random.default_rng(seed), resamples):
        sums = chunk.sum(axis=1)
        fps.append(batch_size * len(ms) * 1000.0 / sums)
        means.append(sums / len(ms))
        pct.append(np.percentile(chunk, list(PERCENTILES.values()), axis=1))
    pct = np.concatenate(pct, axis=1)
    latency = {"mean": _bounds(np.concatenate(means))}
    latency.update({k: _bounds(pct[i]) for i, k in enumerate(PERCENTILES)})
    return {"throughput_fps_ci95": _bounds(np.concatenate(fps)), "latency_ms_ci95": latency, "bootstrap": how}


def ratio_ci(seconds_a: Sequence[float] | None, batch_a: int, seconds_b: Sequence[float] | None, batch_b: int,
             resamples: int = CI_RESAMPLES, seed: int = CI_SEED) -> list[float] | None:
    """The 95 % interval of throughput(a) / throughput(b) (a speed-up) for two independent runs: each
    side resampled on its own (two seeded streams), the ratio taken resample by resample. None when a
    side has under two runs recorded."""
    a, b = _usable(seconds_a), _usable(seconds_b)
    if a is None or b is None:
        return None
    rng_a, rng_b = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    return _bounds(_throughputs(a, batch_a, rng_a, resamples) / _throughputs(b, batch_b, rng_b, resamples))


def within_noise(interval: Sequence[float] | None, value: float = 1.0) -> bool | None:
    """Whether a ratio's interval contains `value` (1.0: no speed-up told apart from noise); None
    without an interval."""
    if interval is None:
        return None
    return bool(interval[0] <= value <= interval[1])


def relative_width(interval: Sequence[float] | None, value: float) -> float | None:
    """(hi - lo) / value, the width ci_width bounds; None without an interval."""
    return None if interval is None or not value else (interval[1] - interval[0]) / value


def latency_stats(seconds: Sequence[float], batch_size: int) -> dict:
    """Throughput, latency percentiles, and their 95 % intervals (bootstrap_ci)."""
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
        **bootstrap_ci(seconds, batch_size),
    }


def narrow_enough(seconds: Sequence[float], batch_size: int, ci_width: float) -> bool:
    """Whether the throughput interval's relative width (hi - lo) / throughput is within ci_width."""
    interval = throughput_ci(seconds, batch_size)
    width = relative_width(interval, batch_size * len(seconds) / sum(seconds))
    return width is not None and width <= ci_width


def time_runs(run: Callable[[np.ndarray], object], inputs: Sequence[np.ndarray], batch_size: int,
              loop: int, warmup: int, what: str, ci_width: float = 0.0, min_loop: int = CI_MIN_LOOP) -> dict:
    """Warm up, then time up to `loop` calls of run(batch) with rotating real batches; `load` is the
    LoadRecord of the timed runs. ci_width > 0: stop early, after at least min_loop runs, once the
    throughput interval's relative width is within ci_width (checked after the min_loop-th run, then
    every tenth more runs, outside the timed part). The record: `loop` the runs timed, `loop_max` the
    bound, `stopped_early`, `seconds` (each run's), the figures and their 95 % intervals."""
    data = batches(inputs, batch_size)
    for i in range(warmup):
        run(data[i % len(data)])
    progress = Progress(f"{what} timed runs", loop)
    load = LoadRecord().start()
    seconds: list[float] = []
    stopped = False
    check = max(1, min_loop)
    for i in range(loop):
        batch = data[i % len(data)]
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
        progress.step()
        n = len(seconds)
        if ci_width > 0 and n >= check and n < loop:
            if narrow_enough(seconds, batch_size, ci_width):
                stopped = True
                break
            check = n + max(1, n // 10)
    load_record = load.stop()
    if stopped:
        log.info("%s: throughput interval within %.1f %% after %d of %d runs: stopped", what, 100 * ci_width,
                 len(seconds), loop)
    return {"batch_size": batch_size, "loop": len(seconds), "loop_max": loop, "warmup": warmup,
            "ci_width": ci_width, "stopped_early": stopped, **latency_stats(seconds, batch_size),
            "seconds": seconds, "load": load_record}


# --- the load other processes put on this machine (issue 16) ---------------------------------------

UNDER_LOAD_CORES = 0.25  # others' CPU above which a measurement is marked "measured under load"


def busy_seconds(stat: str, cpus: set[int], hz: int) -> float:
    """Busy CPU seconds since boot of the CPUs `cpus`, from the text of /proc/stat: every state but
    idle and iowait (steal counts as busy: time another guest took). The all-CPU line when no
    per-CPU line names one of `cpus`."""
    lines = [line.split() for line in stat.splitlines() if line.startswith("cpu")]
    mine = [f for f in lines[1:] if f[0][3:].isdigit() and int(f[0][3:]) in cpus] or lines[:1]
    busy = 0
    for f in mine:
        v = [int(x) for x in f[1:9]]
        busy += sum(v) - v[3] - v[4]
    return busy / hz


def _busy_seconds() -> float:
    """Busy seconds of the CPUs this process may run on."""
    with open("/proc/stat") as f:
        return busy_seconds(f.read(), os.sched_getaffinity(0), os.sysconf("SC_CLK_TCK"))


def _own_seconds() -> float:
    """CPU seconds of this process and its waited-for children (os.times)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class OthersCpu:
    """CPU (in cores) that processes other than this one used between start() and stop():
    /proc/stat's busy time of our CPUs minus this process's own CPU time, over the wall time."""

    def start(self) -> "OthersCpu":
        self.t0, self.busy0, self.own0 = time.perf_counter(), _busy_seconds(), _own_seconds()
        return self

    def stop(self) -> float:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        return max(0.0, ((_busy_seconds() - self.busy0) - (_own_seconds() - self.own0)) / wall)


def wait_for_quiet(timeout_s: float, limit: float = UNDER_LOAD_CORES, probe_s: float = 1.0) -> dict:
    """Wait, at most timeout_s seconds, until other processes use under `limit` cores over one
    probe. timeout_s <= 0: no wait at all. Returns {"waited_s", "others_cpu_cores" (the last probe,
    None without a wait), "quiet" (the last probe was under the limit)}."""
    if timeout_s <= 0:
        return {"waited_s": 0.0, "others_cpu_cores": None, "quiet": None}
    start = time.perf_counter()
    while True:
        probe = OthersCpu().start()
        time.sleep(probe_s)
        used = probe.stop()
        waited = time.perf_counter() - start
        if used < limit or waited >= timeout_s:
            return {"waited_s": waited, "others_cpu_cores": used, "quiet": used < limit}


class LoadRecord:
    """The `load` record of a measurement: the load average before and after, and the CPU other
    processes used during the timed part (between start() and stop()):
    {"others_cpu_cores", "loadavg_before", "loadavg_after", "under_load"}."""

    def start(self) -> "LoadRecord":
        self.before = list(os.getloadavg())
        self.others = OthersCpu().start()
        return self

    def stop(self) -> dict:
        others = self.others.stop()
        return {"others_cpu_cores": others, "loadavg_before": self.before, "loadavg_after": list(os.getloadavg()),
                "under_load": others > UNDER_LOAD_CORES}


def worst_load(*records: dict) -> dict:
    """One record for several timed parts run in turn: the most others' CPU of any part, the load
    average before the first and after the last."""
    others = max(r["others_cpu_cores"] for r in records)
    return {"others_cpu_cores": others, "loadavg_before": records[0]["loadavg_before"],
            "loadavg_after": records[-1]["loadavg_after"], "under_load": others > UNDER_LOAD_CORES}
