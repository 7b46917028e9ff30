"""The CPU ceiling a benchmark reports is the better of two measurements, so load from another
process during one of them cannot make the offline model look closer to the limit than it is."""
from benchmark import best_ceiling


def test_ceiling_is_the_better_of_the_two_measurements_per_runtime():
    before = {"matmul_n": 4096, "threads": 2, "torch_gflops": 200.0, "onnxruntime_gflops": 350.0, "ceiling_gflops": 350.0}
    after = {"matmul_n": 4096, "threads": 2, "torch_gflops": 150.0, "onnxruntime_gflops": 420.0, "ceiling_gflops": 420.0}
    best = best_ceiling(before, after)
    assert (best["torch_gflops"], best["onnxruntime_gflops"], best["ceiling_gflops"]) == (200.0, 420.0, 420.0)
    assert best["matmul_n"] == 4096 and best["threads"] == 2
