"""Should ONNX Runtime's intra-op threads spin (session.intra_op.allow_spinning)? Times the
workflow's compiled CPU model with spinning on and off, on an idle machine and beside a competing
busy process pinned to one core, in one process, the workflow's way (scripts/timing/__init__.py), and prints
one row per model and setting. The sessions come from the workflow's own factory
(scripts/backends/onnxruntime/__init__.py `session`); its ALLOW_SPINNING is the setting to choose.

Run from a workflow directory (missing inputs are made with the workflow's Snakemake first):

    .venv/bin/python scripts/backends/onnxruntime/bench_spinning.py --arch ViT-B-16 --loop 2 --warmup 1          # a quick check
    .venv/bin/python scripts/backends/onnxruntime/bench_spinning.py --arch ViT-H-14 --precisions fp32,int8 --loop 10

"idle" is only as idle as the machine: every cell says how much CPU other processes (the competing
process included) used during its timed runs; --quiet-wait waits for a quiet machine first.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))

from pipeline import paths  # noqa: E402
from backends import onnxruntime as ort_backend  # noqa: E402
from compare_runtimes import ensure_inputs, image_onnx  # noqa: E402
from timing import time_runs, wait_for_quiet  # noqa: E402

BUSY_LOOP = "while True: pass"


def start_competitor(cpu: int) -> subprocess.Popen:
    """A busy Python process pinned to one CPU: a neighbour that takes one core."""
    return subprocess.Popen([sys.executable, "-c", BUSY_LOOP], preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def stop_competitor(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def measure(model: str, inputs: list[np.ndarray], threads: int, spinning: bool, loop: int, warmup: int,
            what: str) -> dict:
    sess = ort_backend.session(model, threads, spinning=spinning)
    name = sess.get_inputs()[0].name
    return time_runs(lambda b: sess.run(None, {name: b}), inputs, 1, loop, warmup, what)


def measure_all(models: dict[str, str], inputs: list[np.ndarray], threads: int, loop: int, warmup: int,
                quiet_wait_s: float) -> list[dict]:
    """Every model x spinning on/off, idle then beside the competitor: {"model", "spinning", "idle", "busy"}."""
    cells = {}
    for condition in ("idle", "busy"):
        wait_for_quiet(quiet_wait_s)
        competitor = start_competitor(max(os.sched_getaffinity(0))) if condition == "busy" else None
        try:
            time.sleep(0.5 if competitor else 0)  # let it start before timing
            for label, model in models.items():
                for spinning in (True, False):
                    what = f"{label} spinning={'on' if spinning else 'off'} {condition}"
                    cells[(label, spinning, condition)] = measure(model, inputs, threads, spinning, loop, warmup, what)
        finally:
            if competitor:
                stop_competitor(competitor)
    return [{"model": label, "spinning": spinning, "idle": cells[(label, spinning, "idle")],
             "busy": cells[(label, spinning, "busy")]} for label in models for spinning in (True, False)]


def table(rows: list[dict]) -> str:
    lines = ["| model | spinning | no competitor: s/run (p50) | no competitor: others' CPU | one core taken: s/run (p50) | "
             "one core taken: others' CPU | taken / not |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        idle, busy = r["idle"]["latency_ms"]["p50"] / 1000, r["busy"]["latency_ms"]["p50"] / 1000
        lines.append(f"| {r['model']} | {'on' if r['spinning'] else 'off'} | {idle:.4f} | "
                     f"{r['idle']['load']['others_cpu_cores']:.2f} | {busy:.4f} | "
                     f"{r['busy']['load']['others_cpu_cores']:.2f} | {busy / idle:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="ViT-B-16", choices=paths.ARCHS)
    parser.add_argument("--precisions", default="fp32",
                        help=f"comma-separated, compiled with the workflow's compile: {', '.join(ort_backend.PRECISIONS)}")
    parser.add_argument("--model", action="append", default=[],
                        help="an already compiled model (batch 1) to time as well; may repeat")
    parser.add_argument("--loop", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="0 = the physical cores")
    parser.add_argument("--quiet-wait", type=float, default=0.0,
                        help="seconds to wait, before each condition, for others to use under 0.25 core")
    parser.add_argument("--scratch", default="results", help="folder for the compiled models (removed at the end)")
    args = parser.parse_args()
    threads = args.threads or paths.physical_cores()
    stems = ensure_inputs(args.arch, "synthetic", 0, threads)
    npy = [paths.npy(args.arch, s) for s in stems]
    inputs = [np.load(f) for f in npy]
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch, prefix=".spinning-") as scratch:
        models = {Path(m).parent.name + "/" + Path(m).name: m for m in args.model}
        for precision in filter(None, args.precisions.split(",")):
            options = {"threads": threads, "precision": precision, "calibration": npy}
            source = image_onnx(args.arch, "fp16" if precision == "fp16" else "fp32")
            models[f"{args.arch} {precision}"] = ort_backend.compile(source, Path(scratch) / precision, 1,
                                                                     inputs[0].shape[-1], options)[0]
        print(f"{args.arch}, {len(stems)} images, batch 1, {threads} threads, warm-up {args.warmup}, "
              f"median of {args.loop}; competitor: `python -c '{BUSY_LOOP}'` pinned to CPU "
              f"{max(os.sched_getaffinity(0))}", flush=True)
        rows = measure_all(models, inputs, threads, args.loop, args.warmup, args.quiet_wait)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
