"""Which offline model should the CPU target compile? Compiles the exported ONNX of an arch in each
variant with the workflow's own backend code and times it the workflow's way, beside a fresh fp32
matmul ceiling. Run after the default workflow has exported the models:

    .venv/bin/python bench/ort_variants.py --arch ViT-H-14 --loop 10

Prints one row per variant: images/s, p50 ms, GFLOP/s, fraction of the ceiling, fused op counts,
cosine vs torch_fp32 on the workflow's sample images (from results/{arch}/reference/torch_fp32/).
"""
import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import paths  # noqa: E402
from backends import onnxruntime as ort_backend  # noqa: E402
from benchmark import matmul_ceiling  # noqa: E402
from timing import time_runs  # noqa: E402

FUSED = ("Attention", "MultiHeadAttention", "LayerNormalization", "SkipLayerNormalization", "Gelu", "FastGelu",
         "BiasGelu", "MatMulNBits", "DynamicQuantizeMatMul", "MatMulInteger", "FusedMatMul", "QAttention")


def op_counts(model_path: str) -> dict:
    import onnx

    counts = collections.Counter(n.op_type for n in onnx.load(model_path, load_external_data=False).graph.node)
    return {k: v for k, v in counts.items() if k in FUSED}


def cosine_vs_truth(sess, arch: str, stems: list[str]) -> float:
    name = sess.get_inputs()[0].name
    worst = 1.0
    for stem in stems:
        x = np.load(paths.npy(arch, stem))
        y = sess.run(None, {name: x})[0].ravel().astype(np.float64)
        t = np.load(paths.reference(arch, "torch_fp32", stem)).ravel().astype(np.float64)
        worst = min(worst, float(y @ t / np.linalg.norm(y) / np.linalg.norm(t)))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-H-14")
    parser.add_argument("--loop", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default="fp32,fp16,int8")
    parser.add_argument("--gflops", type=float, default=None, help="model GFLOPs per image (default: count)")
    args = parser.parse_args()
    threads = paths.physical_cores()
    stems = sorted(p.stem for p in Path(f"results/{args.arch}/npy").glob("*.npy"))
    inputs = [np.load(paths.npy(args.arch, s)) for s in stems]
    gflops = args.gflops
    if gflops is None:
        from benchmark import model_gflops
        from clip_model import load_model

        gflops = model_gflops(load_model(paths.checkpoint_path("synthetic", args.arch, 0), args.arch),
                              inputs[0].shape[-1])
    ceiling = matmul_ceiling(threads)["ceiling_gflops"]
    print(f"{args.arch}: {gflops:.1f} GFLOPs/image, ceiling {ceiling:.0f} GFLOP/s, {threads} threads, "
          f"{len(stems)} images, loop {args.loop}", flush=True)
    print("| variant | compile s | images/s | p50 ms | GFLOP/s | of ceiling | min cosine vs torch_fp32 | fused ops |")
    print("|---|---|---|---|---|---|---|---|")
    for variant in args.variants.split(","):
        source = paths.onnx_fp16(args.arch) if variant == "fp16" else paths.onnx_fp32(args.arch)
        with tempfile.TemporaryDirectory(dir="results") as scratch:
            start = time.perf_counter()
            files = ort_backend.compile(source, Path(scratch) / "m", 1, inputs[0].shape[-1],
                                        {"threads": threads, "precision": variant})
            compile_s = time.perf_counter() - start
            sess = ort_backend.session(files[0], threads)
            run = lambda b: sess.run(None, {"image": b})  # noqa: E731
            r = time_runs(run, inputs, 1, args.loop, args.warmup, variant)
            achieved = gflops * r["throughput_fps"]
            print(f"| {variant} | {compile_s:.0f} | {r['throughput_fps']:.3f} | {r['latency_ms']['p50']:.0f} | "
                  f"{achieved:.0f} | {achieved / ceiling:.0%} | {cosine_vs_truth(sess, args.arch, stems):.6f} | "
                  f"{op_counts(files[0])} |", flush=True)
            del sess


if __name__ == "__main__":
    main()
