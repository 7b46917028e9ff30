"""The CPU targets side by side, in one invocation: PyTorch eager fp32 (cn_clip's model) and every precision of
every backend whose plan runs on this host's CPU (RUNS_ON_HOST_CPU), each compiled, timed and run by its plan's
own compile, benchmark and infer (scripts/backends/), so no target is re-implemented here. Each runs in its
own subprocess, in turn, on the same npy inputs, timed the workflow's way (scripts/timing/__init__.py:
warm-up excluded, then --loop runs over the inputs rotated); s/image is the median run at batch 1. The
host's two fp32 matmul ceilings (torch and the reference runtime, 4096^3, scripts/benchmark.py
matmul_ceiling) are measured in their own subprocesses at the start and at the end, and every row says how
much CPU other processes used during its timed runs.

Run from a workflow directory whose results/ holds the arch's ONNX and npy inputs (missing ones are made
with the workflow's Snakemake first):

    .venv/bin/python bench/compare_runtimes.py --arch ViT-B-16 --loop 2 --warmup 1    # a quick check
    .venv/bin/python bench/compare_runtimes.py --arch ViT-H-14 --loop 10 --warmup 2   # the real table

--runtimes picks rows (`torch`, `<backend>-<precision>`); --option KEY=VALUE passes a compile option to every
plan (one a plan does not know, it ignores), e.g. --option static_recipe=attention.
"""
import argparse
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

import backends  # noqa: E402
from backends.base import cpu_has_vnni  # noqa: E402
from pipeline import paths  # noqa: E402
from timing import LoadRecord, wait_for_quiet  # noqa: E402


def cpu_plans() -> list:
    """The plans whose targets run on this host's CPU."""
    return [backends.get(n) for n in backends.names() if backends.get(n).RUNS_ON_HOST_CPU]


def runtimes() -> dict[str, str]:
    """{row name: label}: PyTorch, then every precision of every CPU plan."""
    out = {"torch": "PyTorch eager fp32 (cn_clip model, inference_mode)"}
    for plan in cpu_plans():
        for precision in plan.PRECISIONS:
            out[f"{plan.NAME}-{precision}"] = f"{plan.LABEL} {precision} (the workflow's compiled target)"
    return out


def image_onnx(arch: str, dtype: str = "fp32") -> str:
    """The arch's exported image-tower ONNX (scripts/pipeline/paths.py)."""
    return paths.onnx(arch, "image", dtype)


# --- the workers: one runtime each, in its own process ----------------------------------------------

def torch_worker(spec: dict) -> dict:
    import torch

    from model.clip import load_model
    from timing import time_runs

    torch.set_num_threads(spec["threads"])
    model = load_model(spec["checkpoint"], spec["arch"])

    def run(batch):
        with torch.inference_mode():
            return model.encode_image(torch.from_numpy(batch)).float().numpy()

    inputs = [np.load(f) for f in spec["npy"]]
    quiet = wait_for_quiet(spec["quiet_wait_s"])
    result = time_runs(run, inputs, 1, spec["loop"], spec["warmup"], "torch")
    features = Path(spec["features"])
    features.mkdir(parents=True, exist_ok=True)
    for npy, x in zip(spec["npy"], inputs):
        np.save(features / f"{Path(npy).stem}_0.npy", np.asarray(run(x), dtype=np.float32))
    return {**result, "quiet_wait": quiet, "torch": torch.__version__}


def plan_worker(spec: dict) -> dict:
    """One CPU target: the plan compiles it (untimed), benchmarks it and writes its features of every input."""
    name, _, precision = spec["runtime"].partition("-")
    plan = backends.get(name)
    options = {**plan.options({}, precision), **spec["options"], "threads": spec["threads"], "precision": precision,
               "device": "cpu", "tower": "image", "calibration": spec["npy"]}
    start = time.perf_counter()
    files = plan.compile(spec[f"onnx_{plan.PRECISIONS[precision]}"], Path(spec["scratch"]) / "model", 1,
                         spec["resolution"], options)
    prepare_s = time.perf_counter() - start
    quiet = wait_for_quiet(spec["quiet_wait_s"])
    result = plan.benchmark(files[0], spec["npy"], 1, spec["loop"], spec["warmup"], options)
    plan.infer(files[0], spec["npy"], spec["features"], options)
    return {**result, "prepare_s": prepare_s, "quiet_wait": quiet, "versions": plan.versions(options),
            "model_bytes": sum(Path(f).stat().st_size for f in files)}


def ceiling_worker(spec: dict) -> dict:
    from benchmark import matmul_ceiling

    load = LoadRecord().start()
    return {**matmul_ceiling(spec["threads"]), "load": load.stop()}


def worker(spec: dict) -> dict:
    if spec["runtime"] == "ceiling":
        return ceiling_worker(spec)
    out = torch_worker(spec) if spec["runtime"] == "torch" else plan_worker(spec)
    return {**out, "s_per_image": out["latency_ms"]["p50"] / 1000.0}


# --- the parent: inputs, the subprocesses in turn, the table -------------------------------------------

def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def min_cosine(features: Path, reference: Path, stems: list[str]) -> float:
    """Worst cosine of a row's features (<stem>_0.npy, the workflow's infer layout) against PyTorch's."""
    return min(cosine(np.load(features / f"{s}_0.npy"), np.load(reference / f"{s}_0.npy")) for s in stems)


def ensure_inputs(arch: str, checkpoint: str, seed: int, cores: int) -> list[str]:
    """The arch's npy inputs (every results/{arch}/npy/*.npy, else the sample images'), made with the
    workflow's Snakemake, with the fp32 and fp16 ONNX and the checkpoint, when missing."""
    stems = sorted(p.stem for p in Path(f"results/{arch}/npy").glob("*.npy")) or sorted(paths.SAMPLE_IMAGES)
    wanted = [image_onnx(arch, d) for d in paths.DTYPES] + [paths.checkpoint_path(checkpoint, arch, seed)] + \
        [paths.npy(arch, s) for s in stems]
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


def run_worker(spec: dict, scratch: Path) -> dict:
    """One runtime in its own Python process; its record, or {"error": ...}."""
    spec_file, out_file = scratch / f"{spec['name']}.spec.json", scratch / f"{spec['name']}.out.json"
    spec_file.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, __file__, "--worker", str(spec_file), "--out", str(out_file)])
    if done.returncode != 0 or not out_file.exists():
        return {"error": f"exited {done.returncode} (its output is above)"}
    return json.loads(out_file.read_text())


def notes(row: dict) -> str:
    """What else decides a row's figure, as its plan recorded it (its tools' versions)."""
    return ", ".join(f"{k} {v}" for k, v in (row.get("versions") or {}).items())


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
        runtime = backends.reference()
        return (f"torch {c['torch_gflops']:.0f}, {runtime.LABEL} {c[f'{runtime.NAME}_gflops']:.0f} GFLOP/s "
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
    parser.add_argument("--runtimes", default=None,
                        help="comma-separated, in this order (default all): " + ", ".join(runtimes()))
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a compile option for every plan (JSON value, else a string), e.g. static_recipe=attention")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="seconds each runtime waits, before its timed runs, for others to use under 0.25 core")
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
    known = runtimes()
    chosen = args.runtimes.split(",") if args.runtimes else list(known)
    for r in chosen:
        if r not in known:
            raise SystemExit(f"unknown runtime {r!r}; known: {', '.join(known)}")
    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    stems = ensure_inputs(args.arch, args.checkpoint, args.seed, threads)
    npy = [str(Path(paths.npy(args.arch, s)).resolve()) for s in stems]
    resolution = int(np.load(npy[0]).shape[-1])
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix=".compare_runtimes-") as tmp:
        scratch = Path(tmp)
        base = {"arch": args.arch, "threads": threads, "npy": npy, "resolution": resolution, "options": options,
                **{f"onnx_{d}": str(Path(image_onnx(args.arch, d)).resolve()) for d in paths.DTYPES},
                "loop": args.loop, "warmup": args.warmup, "quiet_wait_s": args.quiet_wait,
                "checkpoint": str(Path(paths.checkpoint_path(args.checkpoint, args.arch, args.seed)).resolve())}
        print(f"{args.arch}, {len(stems)} images ({', '.join(stems)}), batch 1, {threads} threads, "
              f"warm-up {args.warmup}, median of {args.loop}; each runtime in its own process, in turn; "
              f"CPU {cpu_name()}, {'with' if cpu_has_vnni() else 'without'} VNNI", flush=True)
        ceiling_start = run_worker({**base, "name": "ceiling_start", "runtime": "ceiling"}, scratch)
        rows = []
        for r in chosen:
            name = r
            row = {"runtime": r, "label": known[r]}
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
                row["min_cosine"] = min_cosine(scratch / "features" / row["runtime"], reference, stems)
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
