import numpy as np
import pytest

from timing import batches, latency_stats, time_runs


def test_batches_rotate_real_inputs():
    inputs = [np.full((1, 2), i, dtype=np.float32) for i in range(3)]
    out = batches(inputs, 2)
    assert [b[:, 0].tolist() for b in out] == [[0, 1], [1, 2], [2, 0]]
    assert all(b.shape == (2, 2) for b in out)


def test_no_inputs_is_an_error():
    with pytest.raises(ValueError):
        batches([], 1)


def test_latency_stats():
    stats = latency_stats([0.010, 0.020, 0.030, 0.040], batch_size=2)
    assert stats["throughput_fps"] == pytest.approx(8 / 0.1)
    assert stats["latency_ms"]["mean"] == pytest.approx(25.0)
    assert stats["latency_ms"]["p50"] == pytest.approx(25.0)
    assert stats["latency_ms"]["p99"] == pytest.approx(39.7)


def test_time_runs_warms_up_then_times_loop_runs_on_the_inputs():
    seen = []
    inputs = [np.full((1, 1), i + 1.0, dtype=np.float32) for i in range(2)]
    result = time_runs(lambda b: seen.append(float(b.sum())), inputs, 1, loop=5, warmup=2, what="t")
    assert len(seen) == 7 and 0.0 not in seen
    assert result["loop"] == 5 and result["warmup"] == 2 and result["batch_size"] == 1
    assert set(result["latency_ms"]) >= {"mean", "p50", "p90", "p99"}


def test_timed_runs_carry_the_load_record_the_report_reads():
    result = time_runs(lambda b: None, [np.zeros((1, 1), np.float32)], 1, loop=2, warmup=0, what="t")
    load = result["load"]
    assert set(load) == {"others_cpu_cores", "loadavg_before", "loadavg_after", "under_load"}
    assert load["others_cpu_cores"] >= 0 and len(load["loadavg_before"]) == len(load["loadavg_after"]) == 3
    assert load["under_load"] == (load["others_cpu_cores"] > 0.25)


STAT = """cpu  900 0 100 5000 50 0 0 30 0 0
cpu0 100 0 50 2000 10 0 0 0 0 0
cpu1 800 0 50 3000 40 0 0 30 0 0
intr 12345
"""


def test_busy_time_counts_only_our_cpus_and_every_state_but_idle_and_iowait():
    from timing import busy_seconds

    assert busy_seconds(STAT, {1}, 100) == pytest.approx((800 + 50 + 30) / 100)  # steal is someone else's use
    assert busy_seconds(STAT, {0, 1}, 100) == pytest.approx((900 + 100 + 30) / 100)
    assert busy_seconds(STAT, {7}, 100) == pytest.approx((900 + 100 + 30) / 100)  # no per-CPU line: the total


def test_others_cpu_is_the_machine_busy_time_minus_our_own(monkeypatch):
    import timing

    clock = iter([0.0, 2.0])
    busy, own = iter([100.0, 105.0]), iter([10.0, 11.0])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(timing, "_busy_seconds", lambda: next(busy))
    monkeypatch.setattr(timing, "_own_seconds", lambda: next(own))
    # 5 busy seconds on our CPUs in 2 s, 1 of them ours: the others used 2 cores
    assert timing.OthersCpu().start().stop() == pytest.approx(2.0)


def test_a_busy_neighbour_shows_up_as_others_cpu():
    import subprocess
    import sys
    import time

    from timing import OthersCpu

    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        probe = OthersCpu().start()
        time.sleep(1.0)
        assert probe.stop() > 0.5  # at least most of the core it takes (more if others are busy too)
    finally:
        neighbour.terminate()
        neighbour.wait()


def test_quiet_wait_is_off_by_default_and_bounded(monkeypatch):
    import timing

    assert timing.wait_for_quiet(0) == {"waited_s": 0.0, "others_cpu_cores": None, "quiet": None}

    class Busy:
        def start(self):
            return self

        def stop(self):
            return 1.0

    monkeypatch.setattr(timing, "OthersCpu", Busy)
    out = timing.wait_for_quiet(0.05, probe_s=0.01)
    assert out["quiet"] is False and out["others_cpu_cores"] == 1.0 and 0.05 <= out["waited_s"] < 5


def test_several_timed_parts_give_the_worst_load_and_the_outer_load_averages():
    from timing import worst_load

    a = {"others_cpu_cores": 0.1, "loadavg_before": [1, 1, 1], "loadavg_after": [2, 2, 2], "under_load": False}
    b = {"others_cpu_cores": 0.4, "loadavg_before": [3, 3, 3], "loadavg_after": [4, 4, 4], "under_load": True}
    assert worst_load(a, b) == {"others_cpu_cores": 0.4, "loadavg_before": [1, 1, 1], "loadavg_after": [4, 4, 4],
                                "under_load": True}
    assert worst_load(a)["under_load"] is False


# ---- 95 % intervals (issue 26 item 3) -------------------------------------------------------------

def _seconds(n=100, seed=1):
    """Per-iteration seconds of a plausible benchmark: about 50 ms with a few slow runs."""
    rng = np.random.default_rng(seed)
    return (0.05 + rng.gamma(2.0, 0.002, n)).tolist()


def test_every_speed_figure_comes_with_a_95_percent_interval_around_it():
    seconds = _seconds()
    stats = latency_stats(seconds, batch_size=2)
    lo, hi = stats["throughput_fps_ci95"]
    assert lo < stats["throughput_fps"] < hi and hi - lo < 0.1 * stats["throughput_fps"]
    assert set(stats["latency_ms_ci95"]) == {"mean", "p50", "p90", "p99"}
    for key, (lo, hi) in stats["latency_ms_ci95"].items():
        assert lo <= stats["latency_ms"][key] <= hi, key
    assert stats["bootstrap"] == {"method": "percentile bootstrap over the timed iterations", "resamples": 1000,
                                  "seed": 0, "level": 0.95}


def test_the_intervals_are_deterministic_and_cheap():
    import time

    from timing import bootstrap_ci

    seconds = _seconds()
    start = time.perf_counter()
    first = bootstrap_ci(seconds, 1)
    cost = time.perf_counter() - start
    assert first == bootstrap_ci(seconds, 1), "seeded: the same runs give the same interval"
    assert cost < 0.5, f"a 100-iteration record's intervals took {cost * 1000:.0f} ms"


def test_a_wider_spread_gives_a_wider_interval_and_one_run_gives_none():
    from timing import bootstrap_ci

    steady = [0.05 + 0.0001 * (i % 3) for i in range(50)]
    noisy = [0.05 + 0.01 * (i % 3) for i in range(50)]

    def width(s):
        lo, hi = bootstrap_ci(s, 1)["throughput_fps_ci95"]
        return hi - lo

    assert width(noisy) > 10 * width(steady)
    none = bootstrap_ci([0.05], 1)
    assert none["throughput_fps_ci95"] is None and none["latency_ms_ci95"] == dict.fromkeys(("mean", "p50", "p90",
                                                                                               "p99"))


def test_the_ratio_of_two_runs_has_an_interval_that_contains_one_when_they_are_the_same_speed():
    from timing import ratio_ci, within_noise

    a, b = _seconds(seed=1), _seconds(seed=2)
    same = ratio_ci(a, 1, b, 1)
    assert same[0] < 1.0 < same[1] and within_noise(same)
    faster = ratio_ci([s / 2 for s in a], 1, b, 1)  # twice as fast
    assert 1.8 < faster[0] < 2.0 < faster[1] < 2.2 and not within_noise(faster)
    batch = ratio_ci(a, 4, b, 1)  # four images per run in the same time
    assert batch[0] > 3.5
    assert ratio_ci(None, 1, b, 1) is None and ratio_ci([0.1], 1, b, 1) is None and within_noise(None) is None


def test_a_record_keeps_its_per_iteration_seconds_and_says_how_many_ran():
    result = time_runs(lambda b: None, [np.zeros((1, 1), np.float32)], 1, loop=12, warmup=0, what="t")
    assert len(result["seconds"]) == result["loop"] == result["loop_max"] == 12
    assert result["stopped_early"] is False and result["ci_width"] == 0
    assert result["throughput_fps_ci95"] is not None and set(result["latency_ms_ci95"]) == {"mean", "p50", "p90", "p99"}


def _clock(monkeypatch, durations):
    """time.perf_counter advancing by the next of `durations` at each timed run."""
    import itertools

    import timing

    now, steps = [0.0], itertools.cycle(durations)
    calls = []

    def run(batch):
        calls.append(1)
        now[0] += next(steps)

    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    return run, calls


def test_a_cpu_benchmark_stops_once_its_throughput_interval_is_narrow_enough(monkeypatch):
    run, calls = _clock(monkeypatch, [0.100, 0.101, 0.099, 0.100])  # steady: 1 % spread
    result = time_runs(run, [np.zeros((1, 1), np.float32)], 1, loop=500, warmup=0, what="t", ci_width=0.05)
    assert result["stopped_early"] is True and result["loop_max"] == 500 and result["ci_width"] == 0.05
    assert result["loop"] == len(result["seconds"]) == len(calls) == 10, "stops at the minimum of 10"
    lo, hi = result["throughput_fps_ci95"]
    assert (hi - lo) / result["throughput_fps"] <= 0.05


def test_a_noisy_benchmark_runs_until_its_interval_is_narrow_or_loop_is_reached(monkeypatch):
    noisy = [0.05, 0.15, 0.08, 0.30, 0.06]
    run, calls = _clock(monkeypatch, noisy)
    narrow = time_runs(run, [np.zeros((1, 1), np.float32)], 1, loop=100, warmup=0, what="t", ci_width=0.02)
    assert narrow["stopped_early"] is False and narrow["loop"] == len(narrow["seconds"]) == 100
    run, calls = _clock(monkeypatch, noisy)
    wide = time_runs(run, [np.zeros((1, 1), np.float32)], 1, loop=1000, warmup=0, what="t", ci_width=0.3)
    assert wide["stopped_early"] is True and 10 < wide["loop"] < 1000
    lo, hi = wide["throughput_fps_ci95"]
    assert (hi - lo) / wide["throughput_fps"] <= 0.3


def test_a_loop_under_the_minimum_is_timed_in_full():
    result = time_runs(lambda b: None, [np.zeros((1, 1), np.float32)], 1, loop=3, warmup=0, what="t", ci_width=0.5)
    assert result["loop"] == 3 and result["stopped_early"] is False
