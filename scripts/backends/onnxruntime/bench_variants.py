"""Which offline model should the CPU target compile? Compiles the exported ONNX of an arch in each
variant with the workflow's own backend code (scripts/backends/onnxruntime/__init__.py) and times every
variant the workflow's way (scripts/timing/__init__.py: warm-up excluded, real npy inputs rotated), in one
process, on the same inputs, beside an fp32 matmul ceiling measured in the same run. Run from a
workflow directory (cwd) whose results/ holds the exported ONNX, the npy inputs and the torch_fp32
references of the arch, e.g. after `snakemake -c1 report --config model_arch=ViT-B-16`:

    .venv/bin/python scripts/backends/onnxruntime/bench_variants.py --arch ViT-B-16 --loop 20

Variants (--variants, comma-separated; default all):
  fp32-basic, fp32-extended, fp32-all   fp32 ONNX, ONNX Runtime graph optimisation level at compile time
  fp32-vit, fp32-clip                   fp32 ONNX through onnxruntime.transformers.optimizer
                                        (model_type vit / clip, the arch's heads and width), then EXTENDED
  fp16                                  the fp16 ONNX, EXTENDED
  int8-preprocess                       the previous dynamic int8 recipe: quant_pre_process, quantize_dynamic
  int8                                  the backend's dynamic int8 recipe (int8_dynamic), per-tensor
  int8-perchannel                       the same, per-channel weight scales
  int8-static, int8-static-attention,   the backend's static int8 (precision int8) with each of its
  int8-static-qlinear                   STATIC_RECIPES, calibrated on the arch's npy inputs

Prints one markdown row per variant: compile s, images/s, p50 ms, GFLOP/s, fraction of the ceiling,
min cosine vs torch_fp32 over the sample images, op counts of the compiled model (fused ops, and the
MatMuls left in fp32 vs those quantised), and the 1-minute load average at the start and end of the
variant, with the CPU the other processes used during its timed runs (in cores: above 1.5 the row is
marked, because this machine's 2 cores are shared).
"""
import argparse
import collections
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from pipeline import paths  # noqa: E402
from compare_runtimes import image_onnx  # noqa: E402 (bench/, on sys.path above)
from backends import onnxruntime as ort_backend  # noqa: E402
from benchmark import matmul_ceiling  # noqa: E402
from timing import OthersCpu, time_runs, wait_for_quiet  # noqa: E402

FUSED = ("Attention", "MultiHeadAttention", "LayerNormalization", "SkipLayerNormalization", "Gelu", "FastGelu",
         "BiasGelu", "QuickGelu")
MATMULS = ("MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
           "ConvInteger", "Conv")
VARIANTS = ("fp32-basic", "fp32-extended", "fp32-all", "fp32-vit", "fp32-clip", "fp16", "int8-preprocess", "int8",
            "int8-perchannel", "int8-static", "int8-static-attention", "int8-static-qlinear")
OTHERS_LIMIT = 1.5  # cores used by other processes above which a measurement is marked NOISY


def op_counts(model_path: str) -> dict:
    """Op types of interest in a saved model; 'nchwc' counts ops in ONNX Runtime's CPU-layout domain
    (what level ALL writes into the file), 'weight fp32 MatMul' those fp32 MatMul/Gemm whose B is a weight."""
    import onnx

    graph = onnx.load(model_path, load_external_data=False).graph
    counts = collections.Counter(n.op_type for n in graph.node)
    out = {k: counts[k] for k in FUSED + MATMULS if counts[k]}
    nchwc = sum(1 for n in graph.node if n.domain == "com.microsoft.nchwc")
    if nchwc:
        out["nchwc"] = nchwc
    inits = {i.name for i in graph.initializer}
    out["weight fp32 MatMul"] = sum(1 for n in graph.node if n.op_type in ("MatMul", "FusedMatMul", "Gemm")
                                    and len(n.input) > 1 and n.input[1] in inits)
    return out


def torch_reference(arch: str, stem: str) -> str:
    """The workflow's torch_fp32 features of one image."""
    return paths.reference(arch, "image", "torch_fp32", stem)


def cosines_vs_truth(sess, arch: str, stems: list[str]) -> dict:
    name = sess.get_inputs()[0].name
    out = {}
    for stem in stems:
        x = np.load(paths.npy(arch, stem))
        y = sess.run(None, {name: x})[0].ravel().astype(np.float64)
        t = np.load(torch_reference(arch, stem)).ravel().astype(np.float64)
        out[stem] = float(y @ t / np.linalg.norm(y) / np.linalg.norm(t))
    return out


def arch_shape(arch: str) -> tuple[int, int]:
    """(heads, width) of the arch's vision tower, as cn_clip computes them."""
    import importlib.resources

    cfg = json.loads((importlib.resources.files("cn_clip.clip") / "model_configs" / f"{arch}.json").read_text())
    return cfg["vision_width"] // cfg.get("vision_head_width", 64), cfg["vision_width"]


def transformer_optimized(src: str, out: Path, model_type: str, arch: str) -> tuple[str, dict]:
    """The fixed-batch fp32 ONNX through onnxruntime.transformers.optimizer; returns (path, fused stats)."""
    from onnxruntime.transformers.optimizer import optimize_model

    fixed = out.with_name("fixed_for_optimizer.onnx")
    ort_backend.fix_batch(src, fixed, 1)
    heads, width = arch_shape(arch)
    model = optimize_model(str(fixed), model_type=model_type, num_heads=heads, hidden_size=width, opt_level=1)
    stats = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    model.save_model_to_file(str(out), use_external_data_format=True)
    return str(out), stats


def gflops_per_image(arch: str, given: float | None) -> tuple[float, str]:
    if given:
        return given, "--gflops"
    for bench in sorted(Path(f"results/{arch}").glob("*/*/benchmark_bs*.json")):
        value = json.loads(bench.read_text()).get("model_gflops_per_image")
        if value:
            return float(value), str(bench)
    from benchmark import model_gflops

    return model_gflops(arch), "counted now"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-H-14")
    parser.add_argument("--loop", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--gflops", type=float, default=None,
                        help="model GFLOPs per image (default: from the workflow's benchmark json, else counted)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    parser.add_argument("--scratch", default="results", help="folder for the compiled variants (removed after each)")
    parser.add_argument("--max-others", type=float, default=0.5,
                        help="redo a variant's timed runs when other processes used more cores than this (default 0.5)")
    parser.add_argument("--tries", type=int, default=3, help="timed-run attempts per variant; the quietest is kept")
    parser.add_argument("--quiet-wait", type=float, default=60.0,
                        help="seconds to wait, before each attempt, for other processes to fall under --max-others")
    args = parser.parse_args()
    threads = paths.physical_cores()
    stems = sorted(p.stem for p in Path(f"results/{args.arch}/npy").glob("*.npy"))
    inputs = [np.load(paths.npy(args.arch, s)) for s in stems]
    gflops, gflops_from = gflops_per_image(args.arch, args.gflops)
    wait_for_quiet(args.quiet_wait, args.max_others)
    ceiling0 = matmul_ceiling(threads)
    print(f"{args.arch}: {gflops:.1f} GFLOPs/image ({gflops_from}); fp32 ceiling at start {ceiling0['ceiling_gflops']:.0f}"
          f" GFLOP/s (torch {ceiling0['torch_gflops']:.0f}, ONNX Runtime {ceiling0['onnxruntime_gflops']:.0f}); "
          f"{threads} threads, {len(stems)} images ({', '.join(stems)}), warm-up {args.warmup}, loop {args.loop}",
          flush=True)
    rows = []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        load_start = os.getloadavg()[0]
        options = {"threads": threads, "precision": "fp32"}
        source = image_onnx(args.arch)
        with tempfile.TemporaryDirectory(dir=args.scratch, prefix=".ort_variants-") as scratch:
            start = time.perf_counter()
            optimizer_stats = None
            if variant.startswith("fp32-") and variant.split("-")[1] in ort_backend.LEVELS:
                options["graph_optimization"] = variant.split("-")[1]
            elif variant in ("fp32-vit", "fp32-clip"):
                source, optimizer_stats = transformer_optimized(source, Path(scratch) / "transformer.onnx",
                                                                variant.split("-")[1], args.arch)
            elif variant == "fp16":
                source, options["precision"] = image_onnx(args.arch, "fp16"), "fp16"
            elif variant.startswith("int8-static"):
                options.update(precision="int8", calibration=[paths.npy(args.arch, s) for s in stems],
                               static_recipe=variant[len("int8-static-"):] or ort_backend.DEFAULT_STATIC_RECIPE)
            else:
                options.update(precision="int8_dynamic", per_channel=variant == "int8-perchannel",  # explicit either way
                               int8_recipe="pre_process" if variant == "int8-preprocess" else "matmul")
            files = ort_backend.compile(source, Path(scratch) / "m", 1, inputs[0].shape[-1], options)
            compile_s = time.perf_counter() - start
            ops = op_counts(files[0])
            sess = ort_backend.session(files[0], threads)
            name = sess.get_inputs()[0].name
            attempts = []
            for _ in range(args.tries):
                wait_for_quiet(args.quiet_wait, args.max_others)
                others = OthersCpu().start()
                r = time_runs(lambda b: sess.run(None, {name: b}), inputs, 1, args.loop, args.warmup, variant)
                attempts.append((others.stop(), r))
                if attempts[-1][0] <= args.max_others:
                    break
            others_cores, r = min(attempts, key=lambda a: a[0])
            cos = cosines_vs_truth(sess, args.arch, stems)
            sess = None  # free the model before the next variant
            gc.collect()
        load_end = os.getloadavg()[0]
        achieved = gflops * r["throughput_fps"]
        row = {"variant": variant, "compile_s": compile_s, "images_per_s": r["throughput_fps"],
               "p50_ms": r["latency_ms"]["p50"], "latency_ms": r["latency_ms"], "gflops": achieved,
               "min_cosine_vs_torch_fp32": min(cos.values()),
               "cosine_vs_torch_fp32": cos, "ops": ops, "transformer_optimizer_fused": optimizer_stats,
               "loadavg_1min_start": load_start, "loadavg_1min_end": load_end, "others_cores": others_cores,
               "noisy": others_cores > OTHERS_LIMIT,
               "attempts": [{"others_cores": o, "images_per_s": a["throughput_fps"]} for o, a in attempts]}
        rows.append(row)
        print(f"{variant}: {r['throughput_fps']:.3f} images/s, p50 {r['latency_ms']['p50']:.1f} ms, min cosine "
              f"{row['min_cosine_vs_torch_fp32']:.6f}, others' CPU {others_cores:.2f} cores", flush=True)
    wait_for_quiet(args.quiet_wait, args.max_others)
    ceiling1 = matmul_ceiling(threads)
    ceiling = max(ceiling0["ceiling_gflops"], ceiling1["ceiling_gflops"])
    print(f"fp32 ceiling at end {ceiling1['ceiling_gflops']:.0f} GFLOP/s (torch {ceiling1['torch_gflops']:.0f}, "
          f"ONNX Runtime {ceiling1['onnxruntime_gflops']:.0f}); 'of ceiling' below uses the better of start and end: "
          f"{ceiling:.0f} GFLOP/s\n", flush=True)
    print("| variant | compile s | images/s | p50 ms | min ms | GFLOP/s | of ceiling | min cosine vs torch_fp32 | "
          "ops in compiled model | load 1-min start/end | others' CPU (cores) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        row["fraction_of_ceiling"] = row["gflops"] / ceiling
        ops_text = ", ".join(f"{k} {v}" for k, v in row["ops"].items())
        if row["transformer_optimizer_fused"] is not None:
            ops_text += "; optimizer fused: " + (", ".join(f"{k} {v}" for k, v in row["transformer_optimizer_fused"].items())
                                                 or "nothing")
        tries = len(row["attempts"])
        print(f"| {row['variant']} | {row['compile_s']:.0f} | {row['images_per_s']:.3f} | {row['p50_ms']:.1f} | "
              f"{row['latency_ms']['min']:.1f} | "
              f"{row['gflops']:.0f} | {row['fraction_of_ceiling']:.0%} | {row['min_cosine_vs_torch_fp32']:.6f} | "
              f"{ops_text} | {row['loadavg_1min_start']:.2f} / {row['loadavg_1min_end']:.2f} | "
              f"{row['others_cores']:.2f}{' NOISY' if row['noisy'] else ''}{f' (try {tries})' if tries > 1 else ''} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "gflops_per_image": gflops, "gflops_from": gflops_from,
                                               "threads": threads, "images": stems, "loop": args.loop,
                                               "warmup": args.warmup, "ceiling_start": ceiling0,
                                               "ceiling_end": ceiling1, "ceiling_gflops": ceiling,
                                               "variants": rows}, indent=1))


if __name__ == "__main__":
    main()
