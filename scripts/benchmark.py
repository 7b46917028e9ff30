"""benchmark: the compiled model at one batch size, and the cn_clip PyTorch fp32 model measured
the same way in the same job (the baseline), on the real npy inputs."""

import numpy as np

import backends
from common import log, read_json, write_json
from timing import time_runs


def torch_baseline(checkpoint: str, arch: str, npy_files: list[str], batch_size: int, loop: int,
                   warmup: int, threads: int) -> dict:
    import torch

    from clip_model import load_model

    torch.set_num_threads(threads)
    model = load_model(checkpoint, arch)
    inputs = [np.load(f) for f in npy_files]

    def run(batch):
        with torch.inference_mode():
            return model.encode_image(torch.from_numpy(batch))

    return {**time_runs(run, inputs, batch_size, loop, warmup, f"torch_fp32 bs{batch_size}"), "threads": threads}


def run_benchmark(backend: str, manifest: str, checkpoint: str, arch: str, npy_files: list[str],
                  batch_size: int, loop: int, warmup: int, options: dict) -> dict:
    model = read_json(manifest)["model"]
    offline = backends.get(backend).benchmark(model, npy_files, batch_size, loop, warmup, options)
    log.info("%s bs%d: %.2f images/s, p50 %.1f ms", backend, batch_size, offline["throughput_fps"],
             offline["latency_ms"]["p50"])
    baseline = torch_baseline(checkpoint, arch, npy_files, batch_size, loop, warmup, options["threads"])
    log.info("torch_fp32 bs%d: %.2f images/s, p50 %.1f ms", batch_size, baseline["throughput_fps"],
             baseline["latency_ms"]["p50"])
    return {**offline, "model": model, "baseline_torch_fp32": baseline}


def main(smk) -> None:
    result = run_benchmark(smk.wildcards.backend, smk.input.manifest, smk.input.ckpt, smk.wildcards.arch,
                           list(smk.input.npy), int(smk.wildcards.bs), int(smk.params.loop),
                           int(smk.params.warmup), dict(smk.params.options))
    write_json(smk.output[0], result)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
