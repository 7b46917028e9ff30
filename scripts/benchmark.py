"""benchmark: the compiled model at one batch size, and the cn_clip PyTorch fp32 model measured
the same way in the same job (the baseline), on the real npy inputs, beside this machine's fp32
matmul ceilings and the load other processes put on it meanwhile (`load`)."""

import numpy as np

import backends
from pipeline.common import log, model_input_files, read_json, write_json
from timing import LoadRecord, ratio_ci, time_runs, wait_for_quiet, within_noise, worst_load


def model_gflops(arch: str) -> float:
    """GFLOPs of one image through the image tower of `arch`, counted by torch's FlopCounterMode on
    cn_clip's own model (matmuls, convolutions, attention; elementwise ops are not counted). Counted
    on the meta device: no weights and no compute, and the attention's products are counted (on the
    CPU torch runs attention in a fused kernel that the counter has no formula for)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from model.clip import model_info, new_model

    model = new_model(arch, meta=True).float().eval()
    _, resolution = model_info(arch)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.encode_image(torch.zeros(1, 3, resolution, resolution, device="meta"))
    return counter.get_total_flops() / 1e9


def _best_seconds(run, repeats: int) -> float:
    import time

    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_ceiling(threads: int, n: int = 4096, repeats: int = 5) -> dict:
    """This machine's fp32 ceiling, measured now: the best GFLOP/s of an n x n fp32 matmul in torch and on
    the reference runtime (backends.reference(): its key is `<its NAME>_gflops`); the ceiling is the faster."""
    import torch
    from onnx import TensorProto, helper

    runtime = backends.reference()

    flops = 2 * n**3
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch_gflops = flops / _best_seconds(lambda: torch.mm(a, b), repeats) / 1e9
    spec = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    sess = runtime.graph_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
                                 .SerializeToString(), threads, "all")
    feeds = {"a": a.numpy(), "b": b.numpy()}
    runtime_gflops = flops / _best_seconds(lambda: sess.run(["c"], feeds), repeats) / 1e9
    return {"matmul_n": n, "threads": threads, "torch_gflops": torch_gflops, f"{runtime.NAME}_gflops": runtime_gflops,
            "ceiling_gflops": max(torch_gflops, runtime_gflops)}


def efficiency(result: dict, gflops: float, ceiling: float) -> dict:
    achieved = gflops * result["throughput_fps"]
    return {"achieved_gflops": achieved, "fraction_of_ceiling": achieved / ceiling}


def torch_baseline(checkpoint: str, arch: str, npy_files: list[str], batch_size: int, loop: int,
                   warmup: int, threads: int, ci_width: float = 0.0) -> dict:
    import torch

    from model.clip import load_model

    torch.set_num_threads(threads)
    model = load_model(checkpoint, arch)
    inputs = [np.load(f) for f in npy_files]

    def run(batch):
        with torch.inference_mode():
            return model.encode_image(torch.from_numpy(batch))

    return {**time_runs(run, inputs, batch_size, loop, warmup, f"torch_fp32 bs{batch_size}", ci_width=ci_width),
            "threads": threads}


def run_benchmark(backend: str, manifest: str, checkpoint: str, arch: str, npy_files: list[str],
                  batch_size: int, loop: int, warmup: int, options: dict, baseline_loop: int | None = None,
                  quiet_wait_s: float = 0.0, ceiling_n: int = 4096, ci_width: float = 0.0) -> dict:
    """The record of one benchmark job. `load`: the CPU other processes used during the timed runs
    (the worse of the offline model's and the baseline's), the load average before the first and
    after the last; quiet_wait_s > 0 first waits up to that long for the others to fall under a
    quarter of a core (`quiet_wait` says how it went). The ceiling: a ceiling_n^3 fp32 matmul (config
    `ceiling_matmul_size`), measured once, before the timed runs. ci_width > 0: the offline model's runs
    (options["ci_width"]: a backend whose tool times its own runs ignores it) and the baseline's stop
    early once their throughput interval is that narrow (timing.time_runs). speedup_vs_torch_fp32_ci95: the 95 % interval of the speed-up,
    bootstrapped from both runs' per-run seconds (None when a side recorded none)."""
    compiled = read_json(manifest)
    model = compiled["model"]
    if compiled.get("dynamic_batch"):  # a dynamic-batch model: its gears
        options = {**options, "dynamic_batch": compiled["dynamic_batch"]}
    quiet = wait_for_quiet(quiet_wait_s)
    if quiet["quiet"] is False:
        log.warning("no quiet machine within %.0f s: others use %.2f cores; measuring anyway", quiet_wait_s,
                    quiet["others_cpu_cores"])
    measured = {**matmul_ceiling(options["threads"], ceiling_n), "measured": "once, before the timed runs"}
    around = LoadRecord().start()  # for a backend whose benchmark records no load of its own
    offline = backends.get(backend).benchmark(model, npy_files, batch_size, loop, warmup,
                                              {**options, "ci_width": ci_width})
    offline_load = offline.pop("load", None) or around.stop()
    log.info("%s bs%d: %.2f images/s, p50 %.1f ms; others' CPU %.2f cores", backend, batch_size,
             offline["throughput_fps"], offline["latency_ms"]["p50"], offline_load["others_cpu_cores"])
    baseline_loop = min(loop, baseline_loop or loop)
    baseline = torch_baseline(checkpoint, arch, npy_files, batch_size, baseline_loop, warmup, options["threads"],
                              ci_width)
    log.info("torch_fp32 bs%d: %.2f images/s, p50 %.1f ms; others' CPU %.2f cores", batch_size,
             baseline["throughput_fps"], baseline["latency_ms"]["p50"], baseline["load"]["others_cpu_cores"])
    gflops = model_gflops(arch)
    ceiling = measured["ceiling_gflops"]
    runtime = backends.reference()
    log.info("fp32 ceiling (%dx%d matmul, %d threads): torch %.0f, %s %.0f GFLOP/s; model %.1f GFLOPs per image",
             ceiling_n, ceiling_n, options["threads"], measured["torch_gflops"], runtime.LABEL,
             measured[f"{runtime.NAME}_gflops"], gflops)
    load = worst_load(offline_load, baseline["load"])
    if load["under_load"]:
        log.warning("measured under load: other processes used up to %.2f cores during the timed runs",
                    load["others_cpu_cores"])
    # the ceiling is this host's CPU: a fraction of it only means something for a CPU backend
    on_cpu = backends.get(backend).RUNS_ON_HOST_CPU
    speedup_ci = ratio_ci(offline.get("seconds"), batch_size, baseline.get("seconds"), batch_size)
    return {**offline, **(efficiency(offline, gflops, ceiling) if on_cpu else {}), "model": model,
            "model_gflops_per_image": gflops, "ceiling_gflops": ceiling, "ceiling": measured,
            "load": load, "offline_load": offline_load, "quiet_wait": quiet,
            "speedup_vs_torch_fp32": offline["throughput_fps"] / baseline["throughput_fps"],
            "speedup_vs_torch_fp32_ci95": speedup_ci, "speedup_vs_torch_fp32_within_noise": within_noise(speedup_ci),
            "baseline_torch_fp32": {**baseline, **efficiency(baseline, gflops, ceiling)}}


def param(smk, name: str, default):
    """A rule param that older rules may not pass."""
    try:
        return getattr(smk.params, name)
    except AttributeError:
        return default


def main(smk) -> None:
    result = run_benchmark(smk.wildcards.backend, smk.input.manifest, smk.input.ckpt, smk.wildcards.arch,
                           model_input_files(smk.input.npy), int(smk.wildcards.bs), int(smk.params.loop),
                           int(smk.params.warmup), dict(smk.params.options), int(smk.params.baseline_loop),
                           quiet_wait_s=float(param(smk, "quiet_wait_s", 0) or 0),
                           ceiling_n=int(smk.params.ceiling_n), ci_width=float(param(smk, "ci_width", 0) or 0))
    write_json(smk.output[0], result)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
