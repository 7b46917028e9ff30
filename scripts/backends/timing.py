"""One benchmark method for every runtime: warm-up excluded, `loop` timed runs over real inputs
rotated across runs, throughput and latency percentiles, and the load other processes put on the
machine meanwhile (a figure measured while others took a core is not this model's speed)."""

import os
import time
from typing import Callable, Sequence

import numpy as np

from pipeline.common import Progress


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
    """Warm up, then time `loop` calls of run(batch) with rotating real batches; `load` is the
    LoadRecord of the timed runs."""
    data = batches(inputs, batch_size)
    for i in range(warmup):
        run(data[i % len(data)])
    progress = Progress(f"{what} timed runs", loop)
    load = LoadRecord().start()
    seconds = []
    for i in range(loop):
        batch = data[i % len(data)]
        start = time.perf_counter()
        run(batch)
        seconds.append(time.perf_counter() - start)
        progress.step()
    return {"batch_size": batch_size, "loop": loop, "warmup": warmup, **latency_stats(seconds, batch_size),
            "load": load.stop()}


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
