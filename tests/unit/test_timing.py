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
