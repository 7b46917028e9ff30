import numpy as np
import pytest

from backends.timing import batches, latency_stats, time_runs


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
    from backends.timing import busy_seconds

    assert busy_seconds(STAT, {1}, 100) == pytest.approx((800 + 50 + 30) / 100)  # steal is someone else's use
    assert busy_seconds(STAT, {0, 1}, 100) == pytest.approx((900 + 100 + 30) / 100)
    assert busy_seconds(STAT, {7}, 100) == pytest.approx((900 + 100 + 30) / 100)  # no per-CPU line: the total


def test_others_cpu_is_the_machine_busy_time_minus_our_own(monkeypatch):
    from backends import timing

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

    from backends.timing import OthersCpu

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
    from backends import timing

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
    from backends.timing import worst_load

    a = {"others_cpu_cores": 0.1, "loadavg_before": [1, 1, 1], "loadavg_after": [2, 2, 2], "under_load": False}
    b = {"others_cpu_cores": 0.4, "loadavg_before": [3, 3, 3], "loadavg_after": [4, 4, 4], "under_load": True}
    assert worst_load(a, b) == {"others_cpu_cores": 0.4, "loadavg_before": [1, 1, 1], "loadavg_after": [4, 4, 4],
                                "under_load": True}
    assert worst_load(a)["under_load"] is False
