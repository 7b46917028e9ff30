"""The CPU target beside its peer, in one invocation: PyTorch eager fp32 (cn_clip's model), ONNX
Runtime fp32 / int8 (static, the workflow's `int8`) / int8_dynamic (each the workflow's own
compile), OpenVINO fp32 and OpenVINO int8 (NNCF post-training quantisation calibrated on the same
inputs). Each runtime runs in its own subprocess, in turn, on the same npy inputs, timed the
workflow's way (scripts/timing.py: warm-up excluded, then --loop runs over the inputs rotated);
s/image is the median run at batch 1. The host's two fp32 matmul ceilings (torch and ONNX
Runtime, 4096^3, scripts/benchmark.py matmul_ceiling) are measured in their own subprocesses at the
start and at the end, and every row says how much CPU other processes used during its timed runs.

Run from a workflow directory whose results/ holds the arch's fp32 ONNX and npy inputs (missing
ones are made with the workflow's Snakemake first):

    .venv/bin/python bench/compare_runtimes.py --arch ViT-B-16 --loop 2 --warmup 1    # a quick check
    .venv/bin/python bench/compare_runtimes.py --arch ViT-H-14 --loop 10 --warmup 2   # the real table

OpenVINO and NNCF are an optional extra (envs/bench-openvino.txt, not the workflow's environment):
--install-openvino installs them into this Python first; without them the OpenVINO rows say so.
"""
import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from pipeline import paths  # noqa: E402
from backends import onnxruntime as ort_backend  # noqa: E402
from backends.timing import LoadRecord, time_runs, wait_for_quiet  # noqa: E402

EXTRA = REPO / "envs" / "bench-openvino.txt"
INSTALL = f"{sys.executable} -m pip install -r {EXTRA} -c {REPO / 'envs' / 'requirements.txt'}"
# runtime -> what its row is called
RUNTIMES = {
    "torch": "PyTorch eager fp32 (cn_clip model, inference_mode)",
    "ort-fp32": "ONNX Runtime fp32 (the workflow's compiled model)",
    "ort-int8": "ONNX Runtime int8 static QDQ (the workflow's int8)",
    "ort-int8_dynamic": "ONNX Runtime int8 dynamic (the workflow's int8_dynamic)",
    "ov-fp32": "OpenVINO fp32 (the exported fp32 ONNX)",
    "ov-int8": "OpenVINO int8 (NNCF post-training, same calibration inputs)",
}
OPENVINO = ("ov-fp32", "ov-int8")


def image_onnx(arch: str, precision: str = "fp32") -> str:
    """The arch's exported image-tower ONNX (scripts/paths.py)."""
    return paths.onnx(arch, "image", precision)


# --- the workers: one runtime each, in its own process ----------------------------------------------

def torch_runner(spec: dict):
    import torch

    from model.clip import load_model

    torch.set_num_threads(spec["threads"])
    model = load_model(spec["checkpoint"], spec["arch"])

    def run(batch):
        with torch.inference_mode():
            return model.encode_image(torch.from_numpy(batch)).float().numpy()

    return run, {"torch": torch.__version__}


def ort_runner(spec: dict, precision: str, recipe: str | None):
    import onnxruntime

    options = {"threads": spec["threads"], "precision": precision, "calibration": spec["npy"],
               "reduce_range": spec.get("reduce_range")}
    if recipe:
        options["static_recipe"] = recipe
    files = ort_backend.compile(spec["onnx_fp32"], Path(spec["scratch"]) / "model", 1, spec["resolution"], options)
    sess = ort_backend.session(files[0], spec["threads"])
    name = sess.get_inputs()[0].name
    return (lambda batch: sess.run(None, {name: batch})[0]), {
        "onnxruntime": onnxruntime.__version__, "model_bytes": sum(Path(f).stat().st_size for f in files),
        "reduce_range": ort_backend.use_reduce_range(options) if precision.startswith("int8") else None,
        "static_recipe": options.get("static_recipe", ort_backend.DEFAULT_STATIC_RECIPE) if precision == "int8" else None}


def openvino_runner(spec: dict, int8: bool):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(spec["onnx_fp32"])
    model.reshape({model.input(0).get_any_name(): [1, 3, spec["resolution"], spec["resolution"]]})
    info = {"openvino": ov.__version__}
    config = {"INFERENCE_NUM_THREADS": spec["threads"], "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
    if int8:
        import nncf

        inputs = [np.load(f) for f in spec["npy"]]
        model = nncf.quantize(model, nncf.Dataset(inputs), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(inputs))
        info["nncf"] = nncf.__version__
    else:
        config["INFERENCE_PRECISION_HINT"] = "f32"  # not bf16 on a CPU that has it: this row is fp32
    compiled = core.compile_model(model, "CPU", config)
    precision = compiled.get_property("INFERENCE_PRECISION_HINT")
    info["inference_precision"] = precision.to_string() if hasattr(precision, "to_string") else str(precision)
    request = compiled.create_infer_request()

    def run(batch):
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    return run, info


def runner(spec: dict):
    runtime, _, recipe = spec["runtime"].partition(":")
    if runtime == "torch":
        return torch_runner(spec)
    if runtime.startswith("ort-"):
        return ort_runner(spec, runtime[len("ort-"):], recipe or None)
    return openvino_runner(spec, int8=runtime == "ov-int8")


def ceiling_worker(spec: dict) -> dict:
    from benchmark import matmul_ceiling

    load = LoadRecord().start()
    return {**matmul_ceiling(spec["threads"]), "load": load.stop()}


def worker(spec: dict) -> dict:
    """Prepare one runtime (compile, quantise: untimed), wait for a quiet machine if asked, time it,
    then write its features of every input for the cosines."""
    if spec["runtime"] == "ceiling":
        return ceiling_worker(spec)
    start = time.perf_counter()
    run, info = runner(spec)
    prepare_s = time.perf_counter() - start
    inputs = [np.load(f) for f in spec["npy"]]
    quiet = wait_for_quiet(spec["quiet_wait_s"])
    result = time_runs(run, inputs, 1, spec["loop"], spec["warmup"], spec["runtime"])
    features = Path(spec["features"])
    features.mkdir(parents=True, exist_ok=True)
    for npy, x in zip(spec["npy"], inputs):
        np.save(features / Path(npy).name, np.asarray(run(x), dtype=np.float32))
    return {**result, "s_per_image": result["latency_ms"]["p50"] / 1000.0, "prepare_s": prepare_s,
            "quiet_wait": quiet, **info}


# --- the parent: inputs, the subprocesses in turn, the table -------------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def min_cosine(features: Path, reference: Path, stems: list[str]) -> float:
    return min(cosine(np.load(features / f"{s}.npy"), np.load(reference / f"{s}.npy")) for s in stems)


def ensure_inputs(arch: str, checkpoint: str, seed: int, cores: int) -> list[str]:
    """The arch's npy inputs (every results/{arch}/npy/*.npy, else the sample images'), made with the
    workflow's Snakemake, with the fp32 ONNX and the checkpoint, when missing."""
    stems = sorted(p.stem for p in Path(f"results/{arch}/npy").glob("*.npy")) or sorted(paths.SAMPLE_IMAGES)
    wanted = [image_onnx(arch), paths.checkpoint_path(checkpoint, arch, seed)] + [paths.npy(arch, s) for s in stems]
    missing = [f for f in wanted if not Path(f).exists()]
    if missing:
        print(f"making {len(missing)} missing inputs with the workflow: {', '.join(missing[:3])}...", flush=True)
        subprocess.run([str(Path(sys.executable).with_name("snakemake")), f"-c{cores}", "--config", f"model_arch={arch}",
                        f"checkpoint={checkpoint}", f"seed={seed}", "--", *missing], check=False)
        still = [f for f in missing if not Path(f).exists()]
        if still:
            raise SystemExit(f"could not make {', '.join(still)}: run the workflow for {arch} first")
    return stems


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform

        return platform.processor() or platform.machine()


def openvino_missing() -> str | None:
    absent = [m for m in ("openvino", "nncf") if importlib.util.find_spec(m) is None]
    return f"{' and '.join(absent)} not installed: {INSTALL}" if absent else None


def run_worker(spec: dict, scratch: Path) -> dict:
    """One runtime in its own Python process; its record, or {"error": ...}."""
    spec_file, out_file = scratch / f"{spec['name']}.spec.json", scratch / f"{spec['name']}.out.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, "--worker", str(spec_file), "--out", str(out_file)])
    if done.returncode != 0 or not out_file.exists():
        return {"error": f"exited {done.returncode} (its output is above)"}
    return json.loads(out_file.read_text())


def notes(row: dict) -> str:
    """What else decides a row's figure: the static recipe, 7-bit int8 weights (the default on a CPU without
    VNNI), OpenVINO's inference precision."""
    out = []
    if row.get("static_recipe"):
        out.append(f"recipe {row['static_recipe']}")
    if row.get("reduce_range"):
        out.append("7-bit int8 weights")
    if row.get("inference_precision"):
        out.append(f"inference precision {row['inference_precision']}")
    return ", ".join(out)


def table(rows: list[dict], n_images: int) -> str:
    torch_row = next((r for r in rows if r["runtime"] == "torch" and "error" not in r), None)
    lines = [f"| runtime | s/image | vs PyTorch | min cosine vs PyTorch fp32 ({n_images} images) | "
             "others' CPU (cores) | load avg 1-min before / after | notes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['error']} | | | | | |")
            continue
        speedup = f"{torch_row['s_per_image'] / r['s_per_image']:.2f}x" if torch_row else "n/a"
        cos = "reference" if r["runtime"] == "torch" else (
            f"{r['min_cosine']:.6f}" if r.get("min_cosine") is not None else "n/a")
        load = r["load"]
        mark = " under load" if load["under_load"] else ""
        lines.append(f"| {r['label']} | {r['s_per_image']:.3f} | {speedup} | {cos} | "
                     f"{load['others_cpu_cores']:.2f}{mark} | {load['loadavg_before'][0]:.2f} / "
                     f"{load['loadavg_after'][0]:.2f} | {notes(r)} |")
    return "\n".join(lines)


def ceiling_line(start: dict, end: dict) -> str:
    def one(c):
        if "error" in c:
            return c["error"]
        return (f"torch {c['torch_gflops']:.0f}, ONNX Runtime {c['onnxruntime_gflops']:.0f} GFLOP/s "
                f"(others' CPU {c['load']['others_cpu_cores']:.2f} cores)")

    return f"fp32 4096^3 matmul ceilings, {start.get('threads', '?')} threads: at the start {one(start)}; at the end {one(end)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-H-14", choices=paths.ARCHS)
    parser.add_argument("--checkpoint", default="synthetic", help="as the workflow's config key (default synthetic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loop", type=int, default=10, help="timed runs per runtime (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (default 2)")
    parser.add_argument("--threads", type=int, default=0, help="threads of every runtime; 0 = the physical cores")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="comma-separated, in this order (default all): " + ", ".join(RUNTIMES)
                        + "; ort-int8:RECIPE picks a static recipe (STATIC_RECIPES in scripts/backends/onnxruntime.py)")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="seconds each runtime waits, before its timed runs, for others to use under 0.25 core")
    parser.add_argument("--reduce-range", choices=("auto", "on", "off"), default="auto",
                        help="ONNX Runtime int8 weights in 7 bits: auto = unless the CPU has VNNI (the workflow's choice)")
    parser.add_argument("--install-openvino", action="store_true", help=f"first run: {INSTALL}")
    parser.add_argument("--scratch", default="results", help="folder for compiled models (removed at the end)")
    parser.add_argument("--json", default=None, help="also write every figure to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from pipeline.common import setup_logging

        setup_logging()
        Path(args.out).write_text(json.dumps(worker(json.loads(Path(args.worker).read_text()))))
        return

    threads = args.threads or paths.physical_cores()
    runtimes = args.runtimes.split(",")
    for r in runtimes:
        if r.partition(":")[0] not in RUNTIMES:
            raise SystemExit(f"unknown runtime {r!r}; known: {', '.join(RUNTIMES)}")
    if args.install_openvino and openvino_missing():
        subprocess.run(INSTALL.split(), check=True)
    stems = ensure_inputs(args.arch, args.checkpoint, args.seed, threads)
    npy = [str(Path(paths.npy(args.arch, s)).resolve()) for s in stems]
    resolution = int(np.load(npy[0]).shape[-1])
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix=".compare_runtimes-") as tmp:
        scratch = Path(tmp)
        base = {"arch": args.arch, "threads": threads, "npy": npy, "resolution": resolution,
                "onnx_fp32": str(Path(image_onnx(args.arch)).resolve()), "loop": args.loop,
                "warmup": args.warmup, "quiet_wait_s": args.quiet_wait,
                "reduce_range": {"auto": None, "on": True, "off": False}[args.reduce_range],
                "checkpoint": str(Path(paths.checkpoint_path(args.checkpoint, args.arch, args.seed)).resolve())}
        print(f"{args.arch}, {len(stems)} images ({', '.join(stems)}), batch 1, {threads} threads, "
              f"warm-up {args.warmup}, median of {args.loop}; each runtime in its own process, in turn; "
              f"CPU {cpu_name()}, {'with' if ort_backend.cpu_has_vnni() else 'without'} VNNI", flush=True)
        ceiling_start = run_worker({**base, "name": "ceiling_start", "runtime": "ceiling"}, scratch)
        rows = []
        for r in runtimes:
            name = r.replace(":", "-")
            row = {"runtime": r, "label": RUNTIMES[r.partition(":")[0]] + (f", recipe {r.partition(':')[2]}"
                                                                            if ":" in r else "")}
            absent = openvino_missing() if r in OPENVINO else None
            if absent:
                rows.append({**row, "error": absent})
                continue
            workdir = scratch / name
            workdir.mkdir()
            spec = {**base, "name": name, "runtime": r, "scratch": str(workdir), "features": str(scratch / "features" / name)}
            print(f"-- {row['label']}", flush=True)
            rows.append({**row, **run_worker(spec, scratch)})
            shutil.rmtree(workdir, ignore_errors=True)  # compiled models: gigabytes for ViT-H-14
        ceiling_end = run_worker({**base, "name": "ceiling_end", "runtime": "ceiling"}, scratch)
        reference = scratch / "features" / "torch"
        for row in rows:
            if "error" not in row and row["runtime"] != "torch" and reference.is_dir():
                row["min_cosine"] = min_cosine(scratch / "features" / row["runtime"].replace(":", "-"), reference, stems)
    print()
    print(ceiling_line(ceiling_start, ceiling_end))
    print()
    print(table(rows, len(stems)))
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": args.arch, "threads": threads, "images": stems,
                                               "loop": args.loop, "warmup": args.warmup,
                                               "ceiling_start": ceiling_start, "ceiling_end": ceiling_end,
                                               "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
