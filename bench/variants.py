"""Every hostile checkpoint variant (scripts/model/variants.py) deployed by the real workflow, each in the
blocks asked for: the target misses its gate, locate names a cause, repair keeps a set of nodes; printed as
the Markdown table docs/accuracy.md holds (block planted against block located, the nodes kept, the speed
kept, and what locate and repair cost in wall time and peak memory, from Snakemake's benchmark records).

The int8 variants go through the reference plan (precisions [int8]); the fp16 variants through the plan of
a device that computes fp16 (an ACCELERATOR and fp16 among its REDUCED precisions), run through the test
stand-ins storing fp16 between nodes like the device (tests/conftest.py standin_env): this host has none, and
a CPU runtime computes most fp16 nodes in fp32. A kind may carry its
parameters after a colon (`fp16_ln_overflow:site=mlp`, `fp16_value_overflow:tower=text`: the text tower is
then deployed too, and its target is the one measured).

    .venv/bin/python bench/variants.py [--arch ViT-Toy-16] [--blocks 1,2] [--kinds fp16_overflow,...]
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import backends  # noqa: E402
from model.variants import VARIANTS, write_variant_checkpoint  # noqa: E402
from pipeline import paths as P  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from conftest import standin_env  # noqa: E402  (the stand-ins of the device's tools: tests only)


def fp16_device_plan():
    """The plan of a device that computes in fp16 (an accelerator, fp16 among its reduced precisions)."""
    (plan,) = [backends.get(n) for n in backends.names()
               if backends.get(n).ACCELERATOR and "fp16" in backends.get(n).REDUCED]
    return plan

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
FILES = ("Snakefile", "config", "rules", "scripts", "patches", "profiles", "envs", "report")


def workflow_copy(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / name)
    return dest


def snakemake(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SNAKEMAKE, "-c2", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def cost(root: Path, path: str) -> dict:
    """wall s and peak RSS (MB) of one job, from its Snakemake benchmark record."""
    tsv = root / path
    if not tsv.is_file():
        return {}
    row = next(csv.DictReader(tsv.open(), delimiter="\t"))
    return {"wall_s": float(row["s"]), "max_rss_mb": float(row["max_rss"])}


def parse_kind(spec: str) -> tuple[str, dict]:
    """`kind[:key=value[;key=value]]` -> (kind, parameters), numbers as numbers."""
    kind, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        params[key] = float(value) if value.replace(".", "", 1).isdigit() else value
    return kind, params


def run_variant(root: Path, arch: str, spec: str, block: int, ordinary: Path) -> dict:
    kind, params = parse_kind(spec)
    tower = params.get("tower", "image")
    tag = spec.replace(":", ".").replace(";", ".").replace("=", "-")
    variant = root / "resources" / "checkpoints" / "variants" / f"{arch}.{tag}.{block}.pt"
    record = write_variant_checkpoint(ordinary, variant, arch, kind, block, **params)
    fp16 = kind.startswith("fp16")
    config = {"model_arch": arch, "checkpoint": str(variant), "repair": "true", "loop": "10",
              "towers": "[image,text]" if tower == "text" else "[image]"}
    env = {}
    if fp16:
        config.update(backend=fp16_device_plan().NAME)
        env = {**standin_env(root / "standins.jsonl"), "STANDIN_AIS_BENCH_FP16_STORAGE": "1"}
    else:
        config.update(backend=backends.reference().NAME, precisions="[int8]")
    start = time.perf_counter()
    done = snakemake(root, "report", "--config", *[f"{k}={v}" for k, v in config.items()], env=env)
    wall = time.perf_counter() - start
    if not (root / "results" / "report.json").is_file():
        print(f"{spec} block {block}: the workflow wrote no report (exit {done.returncode}); its stderr ends:\n"
              f"{done.stderr[-4000:]}", file=sys.stderr)
        return {"kind": spec, "block": block, "returncode": done.returncode, "run_s": wall, "failed": True}
    report = json.loads((root / "results" / "report.json").read_text())
    (t,) = [t for t in report["targets"] if t["tower"] == tower]
    target = P.Target(arch, tower, t["backend"], t["device"], t["precision"])
    loc, rep = t.get("locate") or {}, t.get("repair") or {}
    causes = loc.get("causes") or {}
    top = loc.get("top_cause") or {}
    speed = (json.loads((root / target.repair("json")).read_text()).get("speed") or {}) if rep else {}
    gate = next(g for g in t["accuracy"]["gates"] if g["a"] == "offline" and g["b"] == "torch_fp32")
    return {"kind": spec, "block": block, "unit": f"{'layer' if tower == 'text' else 'resblocks'}.{block}",
            "record": record, "returncode": done.returncode, "run_s": wall,
            "target": f"{t['backend']} {t['precision']}", "cosine_before": gate["cosine_min"],
            "located": top.get("unit"), "method": top.get("method"), "why": causes.get("why"),
            "first_jump": (loc.get("first_jump") or {}).get("node"),
            "kept": rep.get("kept") or [], "closure": rep.get("closure") or [], "kept_units": rep.get("kept_units") or [],
            "passed": rep.get("passed"), "reason": rep.get("reason"),
            "after": (rep.get("after") or {}).get("cosine_min"), "builds": rep.get("builds"),
            "locate_builds": causes.get("builds"),
            "vs_unrepaired": speed.get("repaired_vs_unrepaired"), "vs_fp32": speed.get("repaired_vs_fp32"),
            "locate": cost(root, target.cost("locate")), "repair": cost(root, target.cost("repair"))}


def table(rows: list[dict]) -> str:
    head = ("| variant | target | block planted | cosine as built | cause located (how) | first jump (2nd view) | "
            "nodes kept (units) + closure | after repair | repaired / unrepaired latency | repaired / fp32 | "
            "locate: builds, s, peak MB | repair: builds, s, peak MB |")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if r.get("failed"):
            out.append(f"| {r['kind']} | | {r['block']} | workflow failed (exit {r['returncode']}) |" + " |" * 9)
            continue
        kept = f"{len(r['kept'])} ({', '.join(r['kept_units']) or 'none'}) + {len(r['closure'])}"
        jump = (r["first_jump"] or "none").rsplit("/visual/", 1)[-1].rsplit("/bert/", 1)[-1]
        common = (f"| {r['kind']} | {r['target']} | {r['unit']} | {r['cosine_before']:.5f} | "
                  f"{r['located']} ({r['method']}) | {jump} | {kept} | ")
        if r["after"] is not None and r["vs_unrepaired"] is not None:
            still = "" if r["passed"] else " (the target still misses a gate repair cannot act on)"
            out.append(common + f"{r['after']:.6f}{still} | {r['vs_unrepaired']:.2f} | {r['vs_fp32']:.2f} | "
                       f"{r['locate_builds']}, {r['locate'].get('wall_s', 0):.0f}, {r['locate'].get('max_rss_mb', 0):.0f} | "
                       f"{r['builds']}, {r['repair'].get('wall_s', 0):.0f}, {r['repair'].get('max_rss_mb', 0):.0f} |")
        else:
            out.append(common + f"not repaired: {r['reason']} | | | | |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="ViT-Toy-16")
    parser.add_argument("--blocks", default="1,2")
    parser.add_argument("--kinds", default=",".join(VARIANTS))
    parser.add_argument("--json", help="also write every row as JSON to this file")
    parser.add_argument("--workdir", type=Path, help="run the workflow copy here and keep it (logs, models, "
                        "a second run reuses them); default: a temporary directory removed at the end")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="variants-") as scratch:
        root = workflow_copy(args.workdir or Path(scratch))
        ordinary = root / P.checkpoint_path("synthetic", args.arch, 0)
        done = snakemake(root, str(ordinary.relative_to(root)), "--config", f"model_arch={args.arch}")
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        for kind in args.kinds.split(","):
            for block in map(int, args.blocks.split(",")):
                rows.append(run_variant(root, args.arch, kind, block, ordinary))
                if rows[-1].get("failed"):
                    continue
                print(f"{kind} block {block}: located {rows[-1]['located']}, kept {rows[-1]['kept']} "
                      f"({rows[-1]['run_s']:.0f} s)", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
