"""A benchmark job's record: the offline model's and the baseline's timed runs, the load others put on
the machine meanwhile, and the host's matmul ceiling, measured once at the configured size."""


def _load(others):
    return {"others_cpu_cores": others, "loadavg_before": [1.0, 1.0, 1.0], "loadavg_after": [2.0, 2.0, 2.0],
            "under_load": others > 0.25}


def test_record_says_how_busy_the_machine_was_during_the_timed_runs(monkeypatch, tmp_path):
    """The report marks a result "measured under load" from `load`: the worse of the offline model's
    and the baseline's timed runs; the ceiling keeps both runtimes' figures."""
    import types

    import benchmark

    ceiling = {"matmul_n": 4096, "threads": 2, "torch_gflops": 200.0, "onnxruntime_gflops": 150.0, "ceiling_gflops": 200.0}
    stats = {"throughput_fps": 10.0, "latency_ms": {"mean": 100.0, "p50": 100.0, "p90": 100.0, "p99": 100.0}}
    fake = types.SimpleNamespace(RUNS_ON_HOST_CPU=True, benchmark=lambda *a: {**stats, "batch_size": 1, "load": _load(0.1)})
    monkeypatch.setattr(benchmark.backends, "get", lambda name: fake)
    sizes = []
    monkeypatch.setattr(benchmark, "matmul_ceiling", lambda threads, n: sizes.append(n) or dict(ceiling))
    monkeypatch.setattr(benchmark, "torch_baseline", lambda *a: {**stats, "throughput_fps": 5.0, "load": _load(0.9)})
    monkeypatch.setattr(benchmark, "model_gflops", lambda arch: 1.0)
    waits = []
    monkeypatch.setattr(benchmark, "wait_for_quiet", lambda s: waits.append(s) or {"waited_s": 0.0, "quiet": None,
                                                                                   "others_cpu_cores": None})
    (tmp_path / "m.json").write_text('{"model": "m.onnx"}')
    out = benchmark.run_benchmark("fake", str(tmp_path / "m.json"), "ckpt", "ViT-B-16", ["a.npy"], 1, 4, 1,
                                  {"threads": 2}, quiet_wait_s=30, ceiling_n=512)
    assert waits == [30]
    assert sizes == [512], "the ceiling is measured once, at the configured size"
    assert set(out["load"]) == {"others_cpu_cores", "loadavg_before", "loadavg_after", "under_load"}
    assert out["load"]["others_cpu_cores"] == 0.9 and out["load"]["under_load"] is True
    assert out["offline_load"]["others_cpu_cores"] == 0.1
    assert out["ceiling"]["torch_gflops"] == 200.0 and out["ceiling"]["onnxruntime_gflops"] == 150.0
    assert out["speedup_vs_torch_fp32"] == 2.0


def rule_entry(monkeypatch, benchmark):
    """({keyword arguments run_benchmark got}, a stand-in `snakemake` object of the benchmark rule, whose
    params lack quiet_wait_s and ci_width, as an older rule's did)."""
    import types

    seen = {}
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *a, **k: seen.update(k) or {})
    monkeypatch.setattr(benchmark, "write_json", lambda *a: None)
    smk = types.SimpleNamespace(
        wildcards=types.SimpleNamespace(backend="onnxruntime", arch="ViT-B-16", bs="1"),
        input=types.SimpleNamespace(manifest="m.json", ckpt="c.pt", npy=["a.npy"]),
        params=types.SimpleNamespace(loop=3, warmup=1, options={"threads": 1}, baseline_loop=2, ceiling_n=512),
        output=["out.json"])
    return seen, smk


def test_a_rule_without_the_quiet_wait_param_does_not_wait(monkeypatch):
    import benchmark

    seen, smk = rule_entry(monkeypatch, benchmark)
    benchmark.main(smk)
    assert seen["quiet_wait_s"] == 0
    assert seen["ceiling_n"] == 512, "the rule's ceiling_matmul_size reaches the benchmark"
    smk.params.quiet_wait_s = 12
    benchmark.main(smk)
    assert seen["quiet_wait_s"] == 12


def test_the_speedup_carries_an_interval_from_both_runs_and_ci_width_reaches_both(monkeypatch, tmp_path):
    """speedup_vs_torch_fp32_ci95: the ratio of the two throughputs bootstrapped from each run's seconds;
    ci_width reaches the backend (in its options) and the PyTorch baseline alike."""
    import types

    import benchmark

    seen = {}
    fast = [0.050 + 0.001 * (i % 5) for i in range(40)]
    slow = [0.100 + 0.002 * (i % 5) for i in range(20)]

    def offline(model, npy, bs, loop, warmup, options):
        seen["options"] = options
        return {"batch_size": bs, "throughput_fps": bs * len(fast) / sum(fast), "seconds": fast,
                "latency_ms": {"p50": 52.0}, "load": _load(0.0)}

    def baseline(*args):
        seen["baseline_args"] = args
        return {"batch_size": 1, "throughput_fps": len(slow) / sum(slow), "seconds": slow, "latency_ms": {"p50": 104.0},
                "load": _load(0.0)}

    ceiling = {"matmul_n": 512, "threads": 2, "torch_gflops": 1.0, "onnxruntime_gflops": 1.0, "ceiling_gflops": 1.0}
    monkeypatch.setattr(benchmark.backends, "get", lambda name: types.SimpleNamespace(RUNS_ON_HOST_CPU=True,
                                                                                      benchmark=offline))
    monkeypatch.setattr(benchmark, "matmul_ceiling", lambda threads, n: dict(ceiling))
    monkeypatch.setattr(benchmark, "torch_baseline", baseline)
    monkeypatch.setattr(benchmark, "model_gflops", lambda arch: 1.0)
    (tmp_path / "m.json").write_text('{"model": "m.onnx"}')
    out = benchmark.run_benchmark("fake", str(tmp_path / "m.json"), "ckpt", "ViT-B-16", ["a.npy"], 1, 40, 1,
                                  {"threads": 2}, baseline_loop=20, ci_width=0.05)
    assert seen["options"] == {"threads": 2, "ci_width": 0.05}
    assert seen["baseline_args"][4] == 20 and seen["baseline_args"][-1] == 0.05
    lo, hi = out["speedup_vs_torch_fp32_ci95"]
    assert lo < out["speedup_vs_torch_fp32"] < hi and 1.9 < lo and hi < 2.1
    assert out["speedup_vs_torch_fp32_within_noise"] is False


def test_a_speedup_without_per_run_times_has_no_interval_and_says_so(monkeypatch, tmp_path):
    import types

    import benchmark

    stats = {"batch_size": 1, "throughput_fps": 10.0, "latency_ms": {"p50": 100.0}, "load": _load(0.0)}
    ceiling = {"matmul_n": 512, "threads": 2, "torch_gflops": 1.0, "onnxruntime_gflops": 1.0, "ceiling_gflops": 1.0}
    monkeypatch.setattr(benchmark.backends, "get", lambda name: types.SimpleNamespace(
        RUNS_ON_HOST_CPU=False, benchmark=lambda *a: dict(stats)))
    monkeypatch.setattr(benchmark, "matmul_ceiling", lambda threads, n: dict(ceiling))
    monkeypatch.setattr(benchmark, "torch_baseline", lambda *a: {**stats, "seconds": [0.2] * 5,
                                                                 "throughput_fps": 5.0})
    monkeypatch.setattr(benchmark, "model_gflops", lambda arch: 1.0)
    (tmp_path / "m.json").write_text('{"model": "m.om"}')
    out = benchmark.run_benchmark("fake", str(tmp_path / "m.json"), "ckpt", "ViT-B-16", ["a.npy"], 1, 5, 1,
                                  {"threads": 2})
    assert out["speedup_vs_torch_fp32"] == 2.0
    assert out["speedup_vs_torch_fp32_ci95"] is None and out["speedup_vs_torch_fp32_within_noise"] is None


def test_the_rule_passes_ci_width_and_an_older_rule_means_no_early_stop(monkeypatch):
    import benchmark

    seen, smk = rule_entry(monkeypatch, benchmark)
    benchmark.main(smk)
    assert seen["ci_width"] == 0
    smk.params.ci_width = 0.05
    benchmark.main(smk)
    assert seen["ci_width"] == 0.05
