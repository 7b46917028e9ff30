"""report: results/report.{json,md,html} from the provenance, similarity, compile and benchmark
records of every target, with the figures (scripts/plots.py) and CSV tables in results/report/.
Keys of report.json: ../CONTRACT.md. report.html is one self-contained page: the verdict per gate,
the synthetic-weights warning, the precision chain and throughput first; then the details."""

import csv
import html
import os
import platform
import shlex
from importlib import metadata
from pathlib import Path

import backends
from common import artifact, log, read_json, write_json

SYNTHETIC_WARNING = ("Weights are SYNTHETIC (seeded random): features and similarities check the deployment "
                     "chain only; they carry no meaning about images.")


ZERO_SHOT_SYNTHETIC = ("Zero-shot with SYNTHETIC weights: only the agreement of every stage with PyTorch fp32 "
                       "is checked (same top-1 label, same ranking); the labels predicted mean nothing.")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(backend_names: list[str], ais_bench_python: str = "python3") -> dict:
    """Versions of the packages and of each backend's tools (ais_bench probed in the Python that runs it)."""
    from paths import physical_cores

    versions = {}
    for package in ("torch", "torchvision", "onnx", "onnxruntime", "cn-clip", "snakemake", "numpy", "pillow",
                    "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    tools = {}
    for name in backend_names:
        module = backends.get(name)
        tools.update(module.versions(ais_bench_python) if name == "ascend" else module.versions())
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "physical_cores": physical_cores(), "logical_cores": os.cpu_count(),
            "versions": versions, "backend_tools": tools}


BENCHMARK_KEYS = ("batch_size", "loop", "warmup", "threads", "throughput_fps", "latency_ms", "model_gflops_per_image",
                  "achieved_gflops", "ceiling_gflops", "fraction_of_ceiling", "speedup_vs_torch_fp32",
                  "baseline_torch_fp32", "measured_by", "method", "notes")


def _command(value) -> str | None:
    """A recorded command line (argument list or string) as one shell line; None when absent."""
    if not value:
        return None
    return shlex.join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def text_entry(text: dict | None) -> dict | None:
    """The text tower of a target ({"manifests", "similarity"} files), or None when it is not deployed."""
    if not text:
        return None
    compiled = [read_json(m) for m in text["manifests"]]
    return {"artifacts": [a for c in compiled for a in c["artifacts"]],
            "compiled": [{"batch_size": c.get("batch_size"), "source": c.get("source"), "model": c.get("model"),
                          "manifest": str(m), "command": _command(c.get("command"))}
                         for m, c in zip(text["manifests"], compiled)],
            "accuracy": read_json(text["similarity"]), "similarity_record": str(text["similarity"])}


def target_entry(backend: str, device: str, manifests: list[str], similarity: str, benchmarks: list[str],
                 arch: str | None = None, text: dict | None = None, zero_shot: str | None = None) -> dict:
    compiled = [read_json(m) for m in manifests]
    perf = []
    for b in benchmarks:
        r = read_json(b)
        entry = {k: r[k] for k in BENCHMARK_KEYS if k in r}
        entry["record"] = str(b)
        command = _command(r.get("command") or (r.get("ais_bench") or {}).get("command"))
        if command:
            entry["command"] = command
        perf.append(entry)
    return {
        **({"arch": arch} if arch else {}),
        "backend": backend, "device": device,
        "artifacts": [a for c in compiled for a in c["artifacts"]],
        "compile_options": compiled[0]["options"] if compiled else {},
        # per batch size: where the compiled model came from and the tool command line, when recorded
        "compiled": [{"batch_size": c.get("batch_size"), "source": c.get("source"), "model": c.get("model"),
                      "manifest": str(m), "command": _command(c.get("command") or c.get("atc_command"))}
                     for m, c in zip(manifests, compiled)],
        "accuracy": read_json(similarity),
        "similarity_record": str(similarity),
        "performance": sorted(perf, key=lambda p: p["batch_size"]),
        **({"text": text_entry(text)} if text else {}),
        **({"zero_shot": {**read_json(zero_shot), "record": str(zero_shot)}} if zero_shot else {}),
    }


def target_gates(t: dict) -> list[dict]:
    """Every gate of one target: the image tower's cosine gates (accuracy.gates), the text tower's
    (tower "text"), and the zero-shot gates (kind "zero_shot")."""
    gates = [{**g, "tower": "image"} for g in t["accuracy"]["gates"]]
    if t.get("text"):
        gates += [{**g, "tower": "text"} for g in t["text"]["accuracy"]["gates"]]
    if t.get("zero_shot"):
        gates += [{**g, "kind": "zero_shot"} for g in t["zero_shot"]["gates"]]
    return gates


def failed_gates(report: dict) -> list[str]:
    """One line per missed gate of every target (what fails the run after the report is written)."""
    out = []
    for t in report["targets"]:
        name = t.get("name") or f"{t['backend']}/{t['device']}"
        for g in target_gates(t):
            if g["passed"]:
                continue
            if g.get("kind") == "zero_shot":
                out.append(f"{name}: zero-shot {g['a']} vs {g['b']}: top-1 agreement {g['top1_agreement']:.0%} "
                           f"(needs 100%), largest probability change {g['max_prob_change']:.3g} "
                           f"(bound {g['threshold']})")
            else:
                out.append(f"{name}: {g.get('tower', 'image')} tower {g['a']} vs {g['b']} below {g['threshold']}")
    return out


# --------------------------------------------------------------------------------------------
# The commands that rebuild each artifact
# --------------------------------------------------------------------------------------------

SNAKEMAKE = ".venv/bin/snakemake"
ASCEND_ONLY = ("soc_version", "soc_versions", "atc", "ais_bench_python", "npu_device")


def _yaml_flow(value) -> str:
    """A config value as `--config KEY=VALUE` accepts it (YAML flow style for lists and mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_flow(v) for v in value) + "]"
    return str(value)


def config_args(config: dict) -> list[str]:
    """`--config` pairs that pin every setting of this run that matters for its backend: empty values
    (meaning the default) and the other backend's keys are left out."""
    backends = config.get("backends") or [config.get("backend", "onnxruntime")]
    args = []
    for key, value in config.items():
        if "ascend" not in backends and key in ASCEND_ONLY:
            continue
        if "onnxruntime" not in backends and key == "precision":
            continue
        if (key == "model_arch" and config.get("model_archs")) or (key == "backend" and config.get("backends")):
            continue
        if key == "seed" and config.get("checkpoint") != "synthetic":
            continue
        if key == "soc_version" and config.get("soc_versions"):
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v not in ("", None)}
        if value in ("", None) or value == [] or value == {}:
            continue
        args.append(f"{key}={_yaml_flow(value)}")
    return args


def snakemake_command(targets: list[str], config: dict) -> str:
    return shlex.join([SNAKEMAKE, "-c1", *targets, "--config", *config_args(config)])


def reproduce(report: dict) -> dict:
    """{"report": the command that rebuilds everything, "steps": [{"what", "artifacts", "command",
    "tool_command"}]}: one step per artifact group, from a fresh clone (add `--forcerun RULE` to
    redo one that exists)."""
    config = report.get("config") or {}
    steps = []
    onnx = [a["path"] for a in report.get("onnx", []) if not a["path"].endswith(".extra_file")]
    if onnx:
        steps.append({"what": "fp32 and fp16 ONNX (rules export_onnx, fp16_onnx)", "artifacts": onnx,
                      "command": snakemake_command(onnx, config)})
    for t in report["targets"]:
        name = target_name(t)
        for c in t.get("compiled", []):
            steps.append({"what": f"{name}: compiled model, batch {c['batch_size']} (rule compile)",
                          "artifacts": [c["manifest"]], "command": snakemake_command([c["manifest"]], config),
                          "tool_command": c.get("command")})
        if t.get("similarity_record"):
            steps.append({"what": f"{name}: outputs and accuracy (rules infer, similarity)",
                          "artifacts": [t["similarity_record"]],
                          "command": snakemake_command([t["similarity_record"]], config)})
        for p in t["performance"]:
            if p.get("record"):
                steps.append({"what": f"{name}: benchmark, batch {p['batch_size']} (rule benchmark)",
                              "artifacts": [p["record"]], "command": snakemake_command([p["record"]], config),
                              "tool_command": p.get("command")})
    return {"report": snakemake_command(["report"], config), "steps": steps}


def skipped_warning(skipped: dict) -> str:
    return (f"{len(skipped)} input file(s) skipped (skip_bad_images: true), not in any figure here: "
            + "; ".join(f"{path}: {why}" for path, why in sorted(skipped.items())))


def workflow_costs(costs: dict[str, list[str]]) -> dict:
    """Per rule, from Snakemake's `benchmark:` records ({rule: [tsv files]}): jobs, summed and longest
    wall time, and the largest peak RSS of any of its jobs (the figure `resources: mem_mb` must cover)."""
    import csv

    rows = []
    for rule, files in costs.items():
        seconds, rss = [], []
        for f in files:
            with open(f, newline="") as handle:
                records = list(csv.DictReader(handle, delimiter="\t"))
            if not records:
                continue
            last = records[-1]
            seconds.append(float(last["s"]))
            try:
                rss.append(float(last["max_rss"]))
            except (KeyError, ValueError):
                pass  # "NA" when the job was too short to be sampled
        if seconds:
            rows.append({"rule": rule, "jobs": len(seconds), "wall_s": sum(seconds), "longest_s": max(seconds),
                         "peak_rss_mb": max(rss) if rss else None})
    return {"rules": rows, "wall_s": sum(r["wall_s"] for r in rows),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in rows if r["peak_rss_mb"] is not None), default=None),
            "measured_by": "Snakemake's benchmark: directive (psutil), last run of each job"}


def model_entry(checkpoint_info: str) -> dict:
    ckpt = read_json(checkpoint_info)
    return {"arch": ckpt["arch"], "checkpoint": ckpt["checkpoint"], "checkpoint_path": ckpt["path"],
            "checkpoint_sha256": ckpt["checkpoint_sha256"], "checkpoint_bytes": ckpt["bytes"],
            "synthetic": ckpt["synthetic"]}


def build_report(checkpoint_info: str | list[str], onnx_files: list[str], targets: list[dict], config: dict,
                 skipped: dict | None = None, costs: dict | None = None) -> dict:
    """`checkpoint_info`: one checkpoint.json per architecture (a matrix run has several: `model` is the
    first, `models` all of them, and each target's name starts with its arch); `skipped`: {path: why} of
    the input files left out by skip_bad_images; `costs`: {rule: [benchmark tsv files]} (workflow_costs)."""
    infos = [checkpoint_info] if isinstance(checkpoint_info, (str, os.PathLike)) else list(checkpoint_info)
    models = [model_entry(f) for f in infos]
    if len(models) > 1:
        for t in targets:
            t["name"] = f"{t.get('arch')} {t['backend']}/{t['device']}"
    skipped = dict(skipped or {})
    baseline = []
    for t in targets:
        for p in t["performance"]:
            b = p.get("baseline_torch_fp32")
            if not b:
                continue
            baseline.append({"batch_size": b["batch_size"], "loop": b.get("loop"), "threads": b.get("threads"),
                             "throughput_fps": b["throughput_fps"], "latency_ms": b["latency_ms"],
                             "measured_with": target_name(t)})
    gates = [g for t in targets for g in target_gates(t)]
    passed = all(g["passed"] for g in gates)
    report = {
        "verdict": "PASS" if passed else "FAIL",
        "gates_passed": sum(bool(g["passed"]) for g in gates),
        "gates_total": len(gates),
        "model": models[0],
        "models": models,
        "warnings": ([SYNTHETIC_WARNING] if any(m["synthetic"] for m in models) else [])
        + ([ZERO_SHOT_SYNTHETIC] if any(m["synthetic"] for m in models) and any(t.get("zero_shot") for t in targets)
           else [])
        + ([skipped_warning(skipped)] if skipped else []),
        "inputs": {"skipped": [{"path": path, "reason": why} for path, why in sorted(skipped.items())]},
        "onnx": [artifact(f) for f in onnx_files],
        "targets": targets,
        "baseline": {"torch_fp32": baseline},
        "config": config,
        "workflow": workflow_costs(costs or {}),
        "environment": environment(sorted({t["backend"] for t in targets}), config.get("ais_bench_python", "python3")),
    }
    report["reproduce"] = reproduce(report)
    return report


# --------------------------------------------------------------------------------------------
# Facts shared by the markdown and the HTML
# --------------------------------------------------------------------------------------------

CHAIN = ("torch_fp32", "onnx_fp32", "onnx_fp16", "offline")
STAGE_DESCRIPTION = {"torch_fp32": "cn_clip PyTorch model, fp32 (ground truth)",
                     "onnx_fp32": "fp32 ONNX on ONNX Runtime",
                     "onnx_fp16": "fp16 ONNX on ONNX Runtime (the seed's online reference)",
                     "offline": "the compiled model on the target"}


def _num(value, fmt: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def _fmt_lat(lat: dict) -> str:
    return " | ".join(_num(lat.get(k), ".1f") for k in ("mean", "p50", "p90", "p99"))


def _size(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _drift(cosine: float | None) -> str:
    """1 - cosine, the distance from a perfect match, readable where 0.99999999 is not."""
    if cosine is None:
        return "n/a"
    d = 1.0 - cosine
    return "0" if d <= 0 else f"{d:.1e}"


def _models(r: dict) -> list[dict]:
    return r.get("models") or [r["model"]]


def _archs(r: dict) -> str:
    return ", ".join(m["arch"] for m in _models(r))


def target_name(t: dict) -> str:
    return t.get("name") or f"{t['backend']}/{t['device']}"


def target_passed(t: dict) -> bool:
    return all(g["passed"] for g in target_gates(t))


def gate_rows(r: dict) -> list[dict]:
    """Every cosine gate of every target (image, then text tower), flattened."""
    return [{"target": target_name(t) + (" text" if g["tower"] == "text" else ""), **g}
            for t in r["targets"] for g in target_gates(t) if g.get("kind") != "zero_shot"]


def zero_shot_rows(r: dict) -> list[dict]:
    """Per target and stage: the zero-shot and retrieval agreement with torch_fp32 and its gate."""
    rows = []
    for t in r["targets"]:
        z = t.get("zero_shot")
        if not z:
            continue
        gates = {g["a"]: g for g in z["gates"]}
        for stage, m in z["stages"].items():
            g = gates.get(stage, {})
            rows.append({"target": target_name(t), "stage": stage, "reference": z["reference"],
                         "top1_agreement": m["top1_agreement"], "max_prob_change": m["max_prob_change"],
                         "spearman_min": m["spearman_min"],
                         "i2t": m["image_to_text_recall1_agreement"], "t2i": m["text_to_image_recall1_agreement"],
                         "threshold": g.get("threshold"), "passed": g.get("passed")})
    return rows


ZERO_SHOT_HEAD = ["target", "stage vs torch_fp32", "top-1 agreement", "largest prob change", "bound",
                  "Spearman min", "image→text R@1 agreement", "text→image R@1 agreement", "result"]


def _zero_shot_cells(z: dict) -> list[str]:
    return [z["target"], z["stage"], f"{z['top1_agreement']:.0%}", f"{z['max_prob_change']:.2e}",
            _num(z["threshold"], "g"), f"{z['spearman_min']:.4f}", f"{z['i2t']:.0%}", f"{z['t2i']:.0%}",
            "PASS" if z["passed"] else "FAIL"]


def predictions(r: dict) -> list[dict]:
    """With real weights: the label torch_fp32 predicts for each image, and the deployed (offline) one."""
    if any(m["synthetic"] for m in _models(r)):
        return []
    rows = []
    for t in r["targets"]:
        z = t.get("zero_shot")
        if not z:
            continue
        offline = (z["stages"].get("offline") or {}).get("per_image", {})
        for stem, p in z["predictions"].items():
            rows.append({"target": target_name(t), "image": stem, "label": p["label"], "prob": p["prob"],
                         "offline": (offline.get(stem) or {}).get("top1")})
    return rows


def chain_rows(t: dict) -> list[dict]:
    """The precision chain torch_fp32 -> onnx_fp32 -> onnx_fp16 -> offline: per stage the worst cosine
    against torch_fp32 and against the stage before it (where that pair was measured)."""
    pairs = {(p["a"], p["b"]): p for p in t["accuracy"]["pairs"]}
    rows = [{"stage": "torch_fp32", "vs_torch": 1.0, "vs_previous": None, "max_abs_err": 0.0}]
    for prev, stage in zip(CHAIN, CHAIN[1:]):
        to_torch = pairs.get((stage, "torch_fp32"))
        step = pairs.get((stage, prev)) or pairs.get((prev, stage))
        if stage == "onnx_fp32":
            step = to_torch
        rows.append({"stage": stage, "previous": prev,
                     "vs_torch": to_torch["cosine_min"] if to_torch else None,
                     "vs_previous": step["cosine_min"] if step else None,
                     "max_abs_err": to_torch["max_abs_err"] if to_torch else None})
    return rows


def speed_rows(t: dict) -> list[dict]:
    from plots import speedup_vs_torch

    rows = []
    for p in t["performance"]:
        b = p.get("baseline_torch_fp32") or {}
        rows.append({"batch_size": p["batch_size"], "offline_fps": p.get("throughput_fps"),
                     "torch_fps": b.get("throughput_fps"), "speedup": speedup_vs_torch(p),
                     "offline_p50": (p.get("latency_ms") or {}).get("p50"),
                     "torch_p50": (b.get("latency_ms") or {}).get("p50")})
    return rows


def verdict_line(r: dict) -> str:
    n_targets = len(r["targets"])
    passed = r.get("gates_passed", sum(bool(g["passed"]) for g in gate_rows(r)))
    total = r.get("gates_total", len(gate_rows(r)))
    names = ", ".join(target_name(t) for t in r["targets"])
    return f"{passed} of {total} accuracy gates met on {n_targets} target{'s' * (n_targets != 1)} ({names})"


def _source_note(t: dict) -> str:
    sources = sorted({Path(c["source"]).name for c in t.get("compiled", []) if c.get("source")})
    precision = (t.get("compile_options") or {}).get("precision")
    note = f"compiled from {', '.join(sources)}" if sources else ""
    if precision:
        note += f" (precision {precision})"
    return note.strip()


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

def render_markdown(r: dict, plots: dict | None = None, base: str | os.PathLike = ".") -> str:
    """The report as markdown tables. `plots` ({name: path}) are linked relative to `base` (the
    folder the markdown is written to)."""
    m = r["model"]
    lines = [f"# Chinese-CLIP deployment report: {_archs(r)}", "", f"**Verdict: {r['verdict']}**", "",
             verdict_line(r), ""]
    lines += [f"> WARNING: {w}" for w in r["warnings"]] + ([""] if r["warnings"] else [])
    skipped = (r.get("inputs") or {}).get("skipped") or []
    if skipped:
        lines += ["## Skipped input files", "", "| file | why |", "|---|---|"]
        lines += [f"| `{s['path']}` | {s['reason']} |" for s in skipped] + [""]
    lines += ["## Verdicts", "", "| target | a | b | threshold | cosine min | 1 − cosine | worst image | result |",
              "|---|---|---|---|---|---|---|---|"]
    for g in gate_rows(r):
        lines.append(f"| {g['target']} | {g['a']} | {g['b']} | {g['threshold']} | {_num(g.get('cosine_min'), '.8f')} | "
                     f"{_drift(g.get('cosine_min'))} | {g.get('worst_image', 'n/a')} | "
                     f"{'PASS' if g['passed'] else '**FAIL**'} |")
    zs = zero_shot_rows(r)
    if zs:
        lines += ["", "## Zero-shot and retrieval (both towers)", "",
                  f"Labels: {', '.join(next(t['zero_shot']['labels'] for t in r['targets'] if t.get('zero_shot')))}; "
                  "softmax over the labels of 100 x cosine, every stage against torch_fp32. "
                  + ("Synthetic weights: only agreement is checked, not meaning." if not predictions(r) else ""), "",
                  "| " + " | ".join(ZERO_SHOT_HEAD) + " |", "|---" * len(ZERO_SHOT_HEAD) + "|"]
        for z in zs:
            cells = _zero_shot_cells(z)
            cells[-1] = cells[-1] if z["passed"] else "**FAIL**"
            lines.append("| " + " | ".join(cells) + " |")
        preds = predictions(r)
        if preds:
            lines += ["", "| target | image | predicted label (torch_fp32) | probability | offline |",
                      "|---|---|---|---|---|"]
            lines += [f"| {p['target']} | {p['image']} | {p['label']} | {p['prob']:.3f} | {p['offline']} |"
                      for p in preds]
    lines += ["", "## At a glance", "",
              "| target | batch | offline images/s | torch_fp32 images/s | speed-up | offline p50 ms | "
              "torch_fp32 p50 ms |",
              "|---|---|---|---|---|---|---|"]
    for t in r["targets"]:
        for s in speed_rows(t):
            lines.append(f"| {target_name(t)} | {s['batch_size']} | {_num(s['offline_fps'], '.2f')} | "
                         f"{_num(s['torch_fps'], '.2f')} | {_num(s['speedup'], '.2f', 'x')} | "
                         f"{_num(s['offline_p50'], '.1f')} | {_num(s['torch_p50'], '.1f')} |")
    if plots:
        lines.append("")
        for name, title in (("accuracy_chain", "Precision chain"), ("throughput", "Throughput"),
                            ("per_image", "Per image"), ("latency", "Latency")):
            if plots.get(name):
                lines.append(f"![{title}]({Path(os.path.relpath(plots[name], base)).as_posix()})")
    lines += ["", "## Model", "", "| arch | checkpoint | sha256 | synthetic |", "|---|---|---|---|"]
    lines += [f"| {m['arch']} | {m['checkpoint']} (`{m['checkpoint_path']}`) | `{m['checkpoint_sha256']}` | "
              f"{'yes' if m['synthetic'] else 'no'} |" for m in _models(r)] + [""]
    for t in r["targets"]:
        name = target_name(t)
        lines += [f"## Target {name}", ""]
        if _source_note(t):
            lines += [f"The offline model: {_source_note(t)}.", ""]
        lines += ["### Precision chain", "",
                  "Worst image at each stage: torch_fp32 -> onnx_fp32 -> onnx_fp16 -> offline.", "",
                  "| stage | cosine min vs torch_fp32 | 1 − cosine | cosine min vs previous stage | "
                  "max abs err vs torch_fp32 |", "|---|---|---|---|---|"]
        for c in chain_rows(t):
            prev = (f"{_num(c['vs_previous'], '.8f')} (1 − cos {_drift(c['vs_previous'])}, vs {c['previous']})"
                    if c.get("previous") and
                    c["vs_previous"] is not None else ("not measured" if c.get("previous") else "reference"))
            lines.append(f"| {c['stage']} | {_num(c['vs_torch'], '.8f')} | {_drift(c['vs_torch'])} | {prev} | "
                         f"{_num(c['max_abs_err'], '.3g')} |")
        lines += ["", "### Accuracy", "", "| a | b | cosine min | cosine mean | max abs err | max rel err |",
                  "|---|---|---|---|---|---|"]
        for p in t["accuracy"]["pairs"]:
            lines.append(f"| {p['a']} | {p['b']} | {p['cosine_min']:.8f} | {p['cosine_mean']:.8f} | "
                         f"{p['max_abs_err']:.3g} | {_num(p.get('rel_err_max'), '.3g')} |")
        pairs = t["accuracy"]["pairs"]
        stems = sorted(pairs[0]["per_image"]) if pairs else []
        lines += ["", "Per image cosine:", "", "| image | " + " | ".join(f"{p['a']} vs {p['b']}" for p in pairs) + " |",
                  "|---|" + "---|" * len(pairs)]
        for s in stems:
            lines.append(f"| {s} | " + " | ".join(_num(p["per_image"].get(s), ".8f") for p in pairs) + " |")
        lines += ["", "### Performance", "",
                  "| model | batch | loop | threads | images/s | vs torch | mean ms | p50 ms | p90 ms | p99 ms | "
                  "GFLOP/s | of ceiling |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p, s in zip(t["performance"], speed_rows(t)):
            b = p.get("baseline_torch_fp32")
            for label, row, ratio in (("offline", p, s["speedup"]), ("torch_fp32", b, 1.0)):
                if not row:
                    continue
                lines.append(f"| {label} | {row['batch_size']} | {row.get('loop', 'n/a')} | "
                             f"{'n/a' if row.get('threads') is None else row['threads']} | "
                             f"{_num(row.get('throughput_fps'), '.2f')} | {_num(ratio, '.2f', 'x')} | "
                             f"{_fmt_lat(row.get('latency_ms') or {})} | {_num(row.get('achieved_gflops'), '.0f')} | "
                             f"{_num(row.get('fraction_of_ceiling'), '.0%')} |")
        p0 = t["performance"][0] if t["performance"] else {}
        if p0.get("ceiling_gflops") is not None and p0.get("model_gflops_per_image") is not None:
            lines += ["", f"Model: {p0['model_gflops_per_image']:.1f} GFLOPs per image (torch FlopCounterMode); "
                          f"ceiling: {p0['ceiling_gflops']:.0f} GFLOP/s (the faster of torch and ONNX Runtime on a "
                          f"4096x4096 fp32 matmul, measured in the same job)."]
        for p in t["performance"]:
            lines += [f"- batch {p['batch_size']}: {note}" for note in p.get("notes") or []]
        lines += ["", "### Artifacts", "", "| path | batch | size | bytes | sha256 |", "|---|---|---|---|---|"]
        for a in t["artifacts"]:
            lines.append(f"| `{a['path']}` | {a.get('batch_size', 'n/a')} | {_size(a['bytes'])} | {a['bytes']} | "
                         f"`{a['sha256']}` |")
        lines.append("")
    lines += ["## ONNX models", "", "| path | size | bytes | sha256 |", "|---|---|---|---|"]
    lines += [f"| `{a['path']}` | {_size(a['bytes'])} | {a['bytes']} | `{a['sha256']}` |" for a in r["onnx"]]
    rep = r.get("reproduce") or reproduce(r)
    lines += ["", "## Reproduce", "", "From a fresh clone (add `--forcerun RULE` to redo an artifact that exists):",
              "", "```sh", "# everything in this report", rep["report"]]
    for step in rep["steps"]:
        lines += ["", f"# {step['what']}", step["command"]]
        if step.get("tool_command"):
            lines += ["# the tool command line it ran:", step["tool_command"]]
    lines += ["```"]
    lines += _cost_markdown(r)
    env = r["environment"]
    lines += ["", "## Environment", "", f"- CPU: {env['cpu']} ({env['physical_cores']} physical cores)",
              f"- Python {env['python']} on {env['platform']}"]
    lines += [f"- {k}: {v}" for k, v in {**env["versions"], **env["backend_tools"]}.items()]
    if r.get("config"):
        lines += ["", "## Configuration", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | `{_yaml_flow(v)}` |" for k, v in r["config"].items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# HTML: one self-contained page (inline CSS, figures as base64 PNG, no script, no fetch)
# --------------------------------------------------------------------------------------------

CSS = """
:root{--pass:#1a7f37;--pass-bg:#dafbe1;--fail:#cf222e;--fail-bg:#ffebe9;--warn-bg:#fff8c5;--warn:#9a6700;
--muted:#57606a;--border:#d0d7de;--soft:#f6f8fa;--ink:#1f2328;--link:#0969da}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);background:#fff;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Noto Sans","Liberation Sans",sans-serif}
main{max-width:1340px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:24px;margin:0}
h2{font-size:19px;margin:30px 0 10px;padding-bottom:5px;border-bottom:1px solid var(--border)}
h3{font-size:15.5px;margin:18px 0 8px}
a{color:var(--link);text-decoration:none}
.top{display:flex;justify-content:space-between;align-items:center;gap:20px;padding:14px 0 12px}
.sub{color:var(--muted);margin-top:4px}
.verdict{border-radius:10px;padding:10px 22px;text-align:center;color:#fff;min-width:230px}
.verdict .word{font-size:32px;font-weight:800;letter-spacing:.04em;line-height:1.1}
.verdict .what{font-size:13px;opacity:.95}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}
.banner{border-radius:8px;padding:10px 14px;margin:6px 0 14px;font-weight:600}
.banner.warn{background:var(--warn-bg);border:1px solid #d4a72c;border-left:7px solid #bf8700;color:#4d2d00}
.banner.fail{background:var(--fail-bg);border:1px solid #ff8182;border-left:7px solid var(--fail);color:#82071e}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
.card{border:1px solid var(--border);border-radius:10px;padding:12px 16px;background:#fff}
.card h3{margin:0 0 8px;display:flex;gap:10px;align-items:center}
.card.fail{border-color:#ff8182;box-shadow:0 0 0 2px var(--fail-bg)}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:700;color:#fff}
.badge.pass{background:var(--pass)}.badge.fail{background:var(--fail)}.badge.warn{background:#bf8700}
.badge.muted{background:var(--muted)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0 8px}
th,td{border-bottom:1px solid var(--border);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.fail td{background:var(--fail-bg)}
.mono,code,pre{font-family:ui-monospace,SFMono-Regular,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.hash{font-size:11.5px;overflow-wrap:anywhere}
.speed{margin-top:8px;padding:8px 10px;background:var(--soft);border-radius:8px}
.speed b{font-size:15px}
.figs{display:grid;grid-template-columns:1fr 1fr;gap:14px;margin-top:14px}
figure{margin:0;border:1px solid var(--border);border-radius:10px;padding:8px;background:#fff}
figure img{width:100%;height:auto;display:block}
figcaption{color:var(--muted);font-size:12.5px;margin-top:4px}
figure.wide{max-width:980px}figure.medium{max-width:760px}
nav{position:sticky;top:0;background:#fffffff0;border-bottom:1px solid var(--border);padding:7px 0;
margin-top:18px;z-index:1}
nav a{margin-right:18px;font-weight:600}
pre{background:var(--soft);border:1px solid var(--border);border-radius:8px;padding:10px 12px;white-space:pre-wrap;
overflow-wrap:anywhere;margin:4px 0 10px}
.note{color:var(--muted);font-size:12.5px}
details summary{cursor:pointer;color:var(--link);margin:6px 0}
@media (max-width:900px){.figs{grid-template-columns:1fr}.top{flex-direction:column;align-items:flex-start}}
"""

FIGURE_TEXT = {
    "accuracy_chain": ("Precision chain", "1 − cosine against the PyTorch fp32 model at each stage, log scale: each "
                       "stage's added drift is the step from the point before. Bold: worst image; thin: every image; "
                       "red band: below the gate (FAIL)."),
    "throughput": ("Throughput", "Images per second per batch size, the offline model beside the PyTorch fp32 "
                   "model measured in the same job; the speed-up is written over the offline bar."),
    "per_image": ("Accuracy per image", "1 − cosine of every image for every pair of stages, worst image at the top; "
                  "red lines: the gates."),
    "latency": ("Latency", "Milliseconds per batch: mean (hatched), p50, p90, p99."),
}


def _e(value) -> str:
    return html.escape("n/a" if value is None else str(value))


def _badge(passed: bool) -> str:
    return '<span class="badge pass">PASS</span>' if passed else '<span class="badge fail">FAIL</span>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset(), row_class=None) -> str:
    """Cells are HTML already (escape before). `numeric`: column indexes aligned right."""
    th = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(head))
    body = []
    for k, row in enumerate(rows):
        cls = f' class="{row_class[k]}"' if row_class and row_class[k] else ""
        body.append(f"<tr{cls}>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                             for i, c in enumerate(row)) + "</tr>")
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(images: dict, name: str, width: str = "") -> str:
    title, caption = FIGURE_TEXT[name]
    data = images.get(name)
    if not data:
        return f'<figure><p class="note">{html.escape(title)}: no figure was written.</p></figure>'
    cls = f' class="{width}"' if width else ""
    return (f'<figure{cls} id="fig-{name}"><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption><b>{html.escape(title)}.</b> {html.escape(caption)}</figcaption></figure>")


def _embed(plots: dict | None) -> dict:
    """{name: base64 of the PNG} for the plots that exist."""
    import base64

    out = {}
    for name, path in (plots or {}).items():
        if path and Path(path).is_file():
            out[name] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return out


def _image_count(r: dict) -> int:
    return max((len(p["per_image"]) for t in r["targets"] for p in t["accuracy"]["pairs"]), default=0)


def _run_summary(r: dict) -> str:
    c = r.get("config") or {}
    backends = c.get("backends") or ([c["backend"]] if c.get("backend") else [])
    parts = [("backend " if len(backends) == 1 else "backends ") + ", ".join(backends) if backends else None,
             f"precision {c['precision']}" if c.get("precision") and "onnxruntime" in backends else None,
             "batch sizes " + ", ".join(str(b) for b in c["batch_sizes"]) if c.get("batch_sizes") else None,
             f"loop {c['loop']}" + (f" (+{c['warmup']} warm-up)" if c.get("warmup") is not None else "")
             if c.get("loop") is not None else None,
             f"threads {c['threads'] or 'all physical cores'}" if "threads" in c else None]
    return " · ".join(p for p in parts if p) or "n/a"


def _onnx_summary(r: dict) -> str:
    sizes = {}
    for a in r.get("onnx", []):
        kind = "fp16" if ".fp16." in a["path"] else "fp32"
        sizes[kind] = sizes.get(kind, 0) + a["bytes"]
    return ", ".join(f"{k} {_size(v)}" for k, v in sizes.items()) or "n/a"


def _host_summary(r: dict) -> str:
    env = r.get("environment") or {}
    versions = {**env.get("versions", {}), **env.get("backend_tools", {})}
    tools = " · ".join(f"{k} {versions[k]}" for k in ("torch", "onnxruntime", "atc", "ais_bench") if versions.get(k))
    return f"{env.get('cpu', 'n/a')} ({env.get('physical_cores', '?')} cores) · Python {env.get('python', '?')}" + \
        (f" · {tools}" if tools else "")


def _summary_cards(r: dict) -> str:
    m = r["model"]
    ckpt_badge = '<span class="badge warn">SYNTHETIC</span>' if m["synthetic"] else \
        '<span class="badge pass">real weights</span>'
    cards = [
        '<div class="card"><h3>Model</h3><dl class="kv">'
        f"<dt>architecture</dt><dd><b>{_e(_archs(r))}</b></dd>"
        f"<dt>checkpoint</dt><dd>{_e(m['checkpoint'])} {ckpt_badge}</dd>"
        f"<dt>file</dt><dd class=\"mono\">{_e(m.get('checkpoint_path'))} ({_size(m.get('checkpoint_bytes'))})</dd>"
        f"<dt>sha256</dt><dd class=\"mono hash\">{_e(m['checkpoint_sha256'])}</dd>"
        f"<dt>run</dt><dd>{_e(_run_summary(r))}</dd>"
        f"<dt>images</dt><dd>{_image_count(r)} (every stage: torch_fp32 → onnx_fp32 → onnx_fp16 → offline)</dd>"
        f"<dt>ONNX</dt><dd>{_e(_onnx_summary(r))}</dd>"
        f"<dt>host</dt><dd>{_e(_host_summary(r))}</dd>"
        "</dl></div>"]
    for t in r["targets"]:
        ok = target_passed(t)
        rows, classes = [], []
        for g in t["accuracy"]["gates"]:
            rows.append([f"{_e(g['a'])} vs {_e(g['b'])}", f"≥ {_e(g['threshold'])}",
                         f"<span class=\"mono\">{_num(g.get('cosine_min'), '.8f')}</span>",
                         _e(_drift(g.get("cosine_min"))), _e(g.get("worst_image")), _badge(g["passed"])])
            classes.append("" if g["passed"] else "fail")
        gates = _table(["gate (cosine)", "needs", "worst cosine", "1 − cos", "worst image", "result"], rows,
                       numeric={2, 3}, row_class=classes)
        speed = []
        for s in speed_rows(t):
            speed.append(f"batch {s['batch_size']}: <b>{_num(s['offline_fps'], '.3g')} images/s</b> vs PyTorch fp32 "
                         f"{_num(s['torch_fps'], '.3g')} images/s → <b>{_num(s['speedup'], '.2f', '×')}</b>; "
                         f"p50 {_num(s['offline_p50'], '.1f')} ms (PyTorch {_num(s['torch_p50'], '.1f')} ms)")
        speed_html = ('<div class="speed">' + "<br>".join(speed) + "</div>") if speed else \
            '<div class="speed note">no benchmark records</div>'
        source = f'<div class="note">{_e(_source_note(t))}</div>' if _source_note(t) else ""
        cards.append(f'<div class="card{"" if ok else " fail"}"><h3>Target {_e(target_name(t))} {_badge(ok)}</h3>'
                     f"{gates}{speed_html}{source}</div>")
    return '<div class="grid">' + "".join(cards) + "</div>"


def _accuracy_section(r: dict, images: dict) -> str:
    out = ['<h2 id="accuracy">Accuracy</h2>']
    for t in r["targets"]:
        out.append(f"<h3>{_e(target_name(t))}: precision chain (worst image)</h3>")
        rows = []
        for c in chain_rows(t):
            if not c.get("previous"):
                prev = "reference"
            elif c["vs_previous"] is None:
                prev = '<span class="note">not measured</span>'
            else:
                prev = f"{c['vs_previous']:.8f} ({_e(_drift(c['vs_previous']))}) vs {_e(c['previous'])}"
            rows.append([f"<b>{_e(c['stage'])}</b>", _e(STAGE_DESCRIPTION[c["stage"]]), _num(c["vs_torch"], ".8f"),
                         _e(_drift(c["vs_torch"])), prev, _num(c["max_abs_err"], ".3g")])
        out.append(_table(["stage", "what", "cosine min vs torch_fp32", "1 − cos", "vs previous stage",
                           "max abs err vs torch_fp32"], rows, numeric={2, 3, 5}))
        out.append(f"<h3>{_e(target_name(t))}: every pair of stages</h3>")
        rows = [[_e(p["a"]), _e(p["b"]), f"{p['cosine_min']:.8f}", f"{p['cosine_mean']:.8f}",
                 _e(_drift(p["cosine_min"])),
                 f"{p['max_abs_err']:.3g}", _num(p.get("rel_err_max"), ".3g")] for p in t["accuracy"]["pairs"]]
        out.append(_table(["a", "b", "cosine min", "cosine mean", "1 − cos min", "max abs err", "max rel err"], rows,
                          numeric={2, 3, 4, 5, 6}))
        pairs = t["accuracy"]["pairs"]
        stems = sorted(pairs[0]["per_image"]) if pairs else []
        rows = [[_e(s)] + [_num(p["per_image"].get(s), ".8f") for p in pairs] for s in stems]
        out.append(f"<details><summary>Cosine per image ({len(stems)} images)</summary>"
                   + _table(["image"] + [f"{_e(p['a'])} vs {_e(p['b'])}" for p in pairs], rows,
                            numeric=set(range(1, len(pairs) + 1))) + "</details>")
    out.append(_figure(images, "per_image", "wide"))
    return "".join(out)


def _zero_shot_section(r: dict) -> str:
    zs = zero_shot_rows(r)
    if not zs:
        return ""
    out = ['<h2 id="zero-shot">Zero-shot and retrieval (both towers)</h2>',
           '<div class="note">Softmax over the labels of 100 × cosine, every stage against torch_fp32. '
           + ("Synthetic weights: only agreement is checked, not meaning." if not predictions(r) else "") + "</div>"]
    rows = [[_e(c) for c in _zero_shot_cells(z)[:-1]] + [_badge(z["passed"])] for z in zs]
    out.append(_table(ZERO_SHOT_HEAD, rows, numeric={2, 3, 4, 5, 6, 7},
                      row_class=["" if z["passed"] else "fail" for z in zs]))
    preds = predictions(r)
    if preds:
        out.append(_table(["target", "image", "predicted label (torch_fp32)", "probability", "offline"],
                          [[_e(p["target"]), _e(p["image"]), f"<b>{_e(p['label'])}</b>", f"{p['prob']:.3f}",
                            _e(p["offline"])] for p in preds], numeric={3}))
    return "".join(out)


def _performance_section(r: dict, images: dict) -> str:
    out = ['<h2 id="performance">Performance</h2>']
    for t in r["targets"]:
        out.append(f"<h3>{_e(target_name(t))}</h3>")
        rows = []
        for p, s in zip(t["performance"], speed_rows(t)):
            for label, row, ratio in (("offline", p, s["speedup"]), ("torch_fp32", p.get("baseline_torch_fp32"), 1.0)):
                if not row:
                    continue
                lat = row.get("latency_ms") or {}
                rows.append([f"<b>{label}</b>", _e(row.get("batch_size")), _e(row.get("loop")), _e(row.get("warmup")),
                             _e(row.get("threads")), _num(row.get("throughput_fps"), ".3f"), _num(ratio, ".2f", "×")]
                            + [_num(lat.get(k), ".1f") for k in ("mean", "p50", "p90", "p99", "min", "max")]
                            + [_num(row.get("achieved_gflops"), ".0f"), _num(row.get("fraction_of_ceiling"), ".0%")])
        if rows:
            out.append(_table(["model", "batch", "loop", "warmup", "threads", "images/s", "vs torch", "mean ms",
                               "p50 ms", "p90 ms", "p99 ms", "min ms", "max ms", "GFLOP/s", "of ceiling"], rows,
                              numeric=set(range(1, 15))))
        else:
            out.append('<p class="note">No benchmark records.</p>')
        p0 = t["performance"][0] if t["performance"] else {}
        if p0.get("ceiling_gflops") is not None and p0.get("model_gflops_per_image") is not None:
            out.append(f'<p class="note">Model: {p0["model_gflops_per_image"]:.1f} GFLOPs per image (torch '
                       f'FlopCounterMode); ceiling {p0["ceiling_gflops"]:.0f} GFLOP/s: the faster of torch and ONNX '
                       f"Runtime on a 4096×4096 fp32 matmul, measured in the same job.</p>")
        for p in t["performance"]:
            if p.get("method"):
                out.append(f'<p class="note">batch {_e(p["batch_size"])}: {_e(p["method"])}</p>')
            for note in p.get("notes") or []:
                out.append(f'<p class="note">batch {_e(p["batch_size"])}: {_e(note)}</p>')
    out.append(_figure(images, "latency", "medium"))
    return "".join(out)


def _artifacts_section(r: dict) -> str:
    rows = [["checkpoint", f"<span class=\"mono\">{_e(m.get('checkpoint_path'))}</span>", "",
             _size(m.get("checkpoint_bytes")), f"<span class=\"mono hash\">{_e(m['checkpoint_sha256'])}</span>"]
            for m in _models(r)]
    rows += [["ONNX", f"<span class=\"mono\">{_e(a['path'])}</span>", "", _size(a["bytes"]),
              f"<span class=\"mono hash\">{_e(a['sha256'])}</span>"] for a in r["onnx"]]
    for t in r["targets"]:
        rows += [[f"offline {_e(target_name(t))}", f"<span class=\"mono\">{_e(a['path'])}</span>",
                  _e(a.get("batch_size")), _size(a["bytes"]), f"<span class=\"mono hash\">{_e(a['sha256'])}</span>"]
                 for a in t["artifacts"]]
    return ('<h2 id="artifacts">Artifacts</h2>'
            + _table(["kind", "path", "batch", "size", "sha256"], rows, numeric={2, 3}))


def _reproduce_section(r: dict) -> str:
    rep = r.get("reproduce") or reproduce(r)
    out = ['<h2 id="reproduce">Reproduce</h2>',
           '<p class="note">From a fresh clone, in the repository root (add <code>--forcerun RULE</code> to redo an '
           "artifact that exists). Each line pins this run's configuration.</p>",
           f"<h3>Everything in this report</h3><pre>{_e(rep['report'])}</pre>"]
    for step in rep["steps"]:
        out.append(f"<h3>{_e(step['what'])}</h3><pre>{_e(step['command'])}</pre>")
        if step.get("tool_command"):
            out.append(f'<p class="note">The tool command line it ran:</p><pre>{_e(step["tool_command"])}</pre>')
    return "".join(out)


def _cost_rows(r: dict) -> list[list[str]]:
    return [[row["rule"], str(row["jobs"]), _num(row["wall_s"], ".1f"), _num(row["longest_s"], ".1f"),
             _num(row["peak_rss_mb"], ",.0f")] for row in (r.get("workflow") or {}).get("rules", [])]


COST_HEAD = ["rule", "jobs", "wall s (all jobs)", "longest job s", "peak RSS MB"]
COST_NOTE = ("Each job's wall time and peak resident memory as Snakemake's benchmark: directive recorded them "
             "(benchmarks/); one job at a time with -c1, so the run's peak is the largest job's.")


def _cost_markdown(r: dict) -> list[str]:
    rows = _cost_rows(r)
    if not rows:
        return []
    return (["", "## Workflow cost", "", COST_NOTE, "", "| " + " | ".join(COST_HEAD) + " |",
             "|---|---|---|---|---|"] + ["| " + " | ".join(row) + " |" for row in rows])


def _cost_section(r: dict) -> str:
    rows = _cost_rows(r)
    if not rows:
        return ""
    return ('<h2 id="cost">Workflow cost</h2>' + f'<p class="note">{_e(COST_NOTE)}</p>'
            + _table(COST_HEAD, [[_e(c) for c in row] for row in rows], numeric={1, 2, 3, 4}))


def _environment_section(r: dict) -> str:
    env = r["environment"]
    cores = f"{env.get('physical_cores')} physical, {env.get('logical_cores')} logical cores"
    rows = [["CPU", _e(f"{env.get('cpu')} ({cores})")],
            ["Python", _e(env.get("python"))], ["platform", _e(env.get("platform"))]]
    rows += [[_e(k), f'<span class="mono">{_e(v)}</span>'] for k, v in env.get("versions", {}).items()]
    rows += [[_e(k) + ' <span class="note">(backend tool)</span>', f'<span class="mono">{_e(v)}</span>']
             for k, v in env.get("backend_tools", {}).items()]
    out = ['<h2 id="environment">Environment and tool versions</h2>', _table(["what", "version"], rows)]
    if r.get("config"):
        out.append('<h2 id="configuration">Configuration</h2>')
        out.append(_table(["key", "value"], [[_e(k), f'<span class="mono">{_e(_yaml_flow(v))}</span>']
                                             for k, v in r["config"].items()]))
    return "".join(out)


def render_html(r: dict, plots: dict | None = None) -> str:
    """One self-contained page: the verdict, model, checkpoint warning and gates first, then the precision
    chain and throughput figures, then the details. `plots`: {name: PNG path}, embedded as base64."""
    images = _embed(plots)
    m = r["model"]
    ok = r["verdict"] == "PASS"
    title = f"Chinese-CLIP deployment report: {_archs(r)}"
    names = ", ".join(target_name(t) for t in r["targets"])
    head = (f'<div class="top"><div><h1>{_e(title)}</h1><div class="sub">checkpoint <b>{_e(m["checkpoint"])}</b>'
            f"{' (synthetic weights)' if m['synthetic'] else ''} · target{'s' * (len(r['targets']) != 1)} "
            f"<b>{_e(names)}</b></div></div>"
            f'<div class="verdict {"pass" if ok else "fail"}" id="verdict"><div class="word">{_e(r["verdict"])}</div>'
            f'<div class="what">{_e(verdict_line(r).split(" on ")[0])}</div></div></div>')
    banners = "".join(f'<div class="banner warn" id="warning">⚠ WARNING: {_e(w)}</div>' for w in r["warnings"])
    failed = [g for g in gate_rows(r) if not g["passed"]]
    if failed:
        banners += ('<div class="banner fail">FAIL: ' + "; ".join(
            f"{_e(g['target'])}: {_e(g['a'])} vs {_e(g['b'])} cosine {_num(g.get('cosine_min'), '.6f')} below "
            f"{_e(g['threshold'])} (worst image {_e(g.get('worst_image'))})" for g in failed) + "</div>")
    failed_zs = [z for z in zero_shot_rows(r) if not z["passed"]]
    if failed_zs:
        banners += ('<div class="banner fail">FAIL (zero-shot): ' + "; ".join(
            f"{_e(z['target'])}: {_e(z['stage'])} top-1 agreement {z['top1_agreement']:.0%}, largest probability "
            f"change {z['max_prob_change']:.3g} (bound {_e(z['threshold'])})" for z in failed_zs) + "</div>")
    figures = f'<div class="figs">{_figure(images, "accuracy_chain")}{_figure(images, "throughput")}</div>'
    nav = ('<nav><a href="#accuracy">Accuracy</a><a href="#performance">Performance</a>'
           '<a href="#artifacts">Artifacts</a><a href="#cost">Cost</a><a href="#reproduce">Reproduce</a>'
           '<a href="#environment">Environment</a><a href="#configuration">Configuration</a></nav>')
    body = (head + banners + _summary_cards(r) + figures + nav + _accuracy_section(r, images) + _zero_shot_section(r)
            + _performance_section(r, images) + _artifacts_section(r) + _cost_section(r) + _reproduce_section(r)
            + _environment_section(r))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><main>{body}</main></body></html>\n")


# --------------------------------------------------------------------------------------------
# Tables for Snakemake's own report (CSV), and writing everything
# --------------------------------------------------------------------------------------------

def table_rows(r: dict) -> dict[str, list[dict]]:
    accuracy = [{"target": target_name(t), "a": p["a"], "b": p["b"], "cosine_min": p["cosine_min"],
                 "cosine_mean": p["cosine_mean"], "one_minus_cosine_min": 1.0 - p["cosine_min"],
                 "max_abs_err": p["max_abs_err"], "rel_err_max": p.get("rel_err_max"),
                 "gate_threshold": next((g["threshold"] for g in t["accuracy"]["gates"]
                                         if (g["a"], g["b"]) == (p["a"], p["b"])), None),
                 "gate": next(("PASS" if g["passed"] else "FAIL" for g in t["accuracy"]["gates"]
                               if (g["a"], g["b"]) == (p["a"], p["b"])), None)}
                for t in r["targets"] for p in t["accuracy"]["pairs"]]
    performance = []
    for t in r["targets"]:
        for p in t["performance"]:
            for label, row in (("offline", p), ("torch_fp32", p.get("baseline_torch_fp32"))):
                if row:
                    lat = row.get("latency_ms") or {}
                    performance.append({"target": target_name(t), "model": label, "batch_size": row.get("batch_size"),
                                        "loop": row.get("loop"), "threads": row.get("threads"),
                                        "throughput_fps": row.get("throughput_fps"),
                                        **{f"latency_{k}_ms": lat.get(k) for k in ("mean", "p50", "p90", "p99")}})
    artifacts = [{"kind": "checkpoint", "path": m.get("checkpoint_path"), "batch_size": None,
                  "bytes": m.get("checkpoint_bytes"), "sha256": m["checkpoint_sha256"]} for m in _models(r)]
    artifacts += [{"kind": "onnx", "path": a["path"], "batch_size": None, "bytes": a["bytes"], "sha256": a["sha256"]}
                  for a in r["onnx"]]
    artifacts += [{"kind": f"offline {target_name(t)}", "path": a["path"], "batch_size": a.get("batch_size"),
                   "bytes": a["bytes"], "sha256": a["sha256"]} for t in r["targets"] for a in t["artifacts"]]
    return {"accuracy": accuracy, "performance": performance, "artifacts": artifacts}


def write_tables(r: dict, paths: dict) -> None:
    """accuracy, performance and artifacts as CSV files ({name: path}; names missing are skipped)."""
    for name, rows in table_rows(r).items():
        if not paths.get(name):
            continue
        Path(paths[name]).parent.mkdir(parents=True, exist_ok=True)
        fields = list(rows[0]) if rows else ["empty"]
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)


def write_report(report: dict, out_json: str, out_md: str, out_html: str, plots: dict | None = None,
                 tables: dict | None = None) -> None:
    """report.json, the plots ({name: path}, see plots.PLOTS), the CSV tables, report.md and report.html."""
    import plots as figures

    write_json(out_json, report)
    written = figures.write_plots(report, plots or {})
    write_tables(report, tables or {})
    markdown = render_markdown(report, written, Path(out_md).parent)
    Path(out_md).write_text(markdown, encoding="utf-8")
    Path(out_html).write_text(render_html(report, written), encoding="utf-8")
    log.info("report: %s and %s (verdict %s)", out_md, out_html, report["verdict"])


def main(smk) -> None:
    targets = [target_entry(t["backend"], t["device"], t["manifests"], t["similarity"], t["benchmarks"], t["arch"],
                            t.get("text"), t.get("zero_shot"))
               for t in smk.params.targets]
    report = build_report(list(smk.input.checkpoint), list(smk.input.onnx), targets, dict(smk.params.config),
                          dict(smk.params.skipped), {rule: list(files) for rule, files in smk.params.costs.items()})
    out = smk.output
    write_report(report, out.json, out.md, out.html,
                 plots={name: getattr(out, name) for name in ("accuracy_chain", "throughput", "per_image", "latency")},
                 tables={name: getattr(out, f"{name}_csv") for name in ("accuracy", "performance", "artifacts")})


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
