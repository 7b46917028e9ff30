"""The one load step: report.json's data (model.Report) from the records the report rule's inputs
and params name: checkpoint.json per architecture, the ONNX files, and per target its compile
manifests, similarity, benchmark and zero-shot records. Gates and warnings are decided here, so
every view shows the same verdict."""

import csv
import os
import platform
import shlex
from collections import Counter
from importlib import metadata
from pathlib import Path

from pipeline.common import artifact, read_json
from timing import ratio_ci, within_noise

from .model import Model, Performance, Report, Target
from .reproduce import reproduce

SYNTHETIC_WARNING = ("Weights are SYNTHETIC (seeded random): features and similarities check the deployment "
                     "chain only; they carry no meaning about images.")
ZERO_SHOT_SYNTHETIC = ("Zero-shot with SYNTHETIC weights: only the agreement of every stage with PyTorch fp32 "
                       "is checked (same top-1 label, same ranking); the labels predicted mean nothing.")
UNDER_LOAD = "measured under load"

# what a benchmark record contributes to a performance row (the rest stays in the record); `seconds`
# (every timed run) lets a reader compute the interval of any ratio later (bench/compare.py, precision_speedups)
BENCHMARK_KEYS = ("batch_size", "loop", "loop_max", "stopped_early", "ci_width", "warmup", "threads", "throughput_fps",
                  "throughput_fps_ci95", "latency_ms", "latency_ms_ci95", "model_gflops_per_image", "achieved_gflops",
                  "ceiling_gflops", "fraction_of_ceiling", "speedup_vs_torch_fp32", "speedup_vs_torch_fp32_ci95",
                  "speedup_vs_torch_fp32_within_noise", "baseline_torch_fp32", "ceiling", "load", "measured_by", "method",
                  "notes", "seconds", "bootstrap", "dynamic_batch", "end_to_end", "devices")
TEXT_TWIN_KEYS = ("artifacts", "compiled", "accuracy", "similarity_record")
COORDINATES = ("arch", "tower", "backend", "device", "precision")


def _command(value) -> str | None:
    """A recorded command line (argument list or string) as one shell line; None when absent."""
    if not value:
        return None
    return shlex.join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def performance_entry(record_path: str) -> Performance:
    """A benchmark record's performance row. Every row has throughput_fps_ci95 and the speed-up's interval
    (None where the record has no per-run seconds: an older record, a device tool's summary without them);
    one recorded before the speed-up carried an interval gets it from both runs' seconds."""
    r = read_json(record_path)
    entry = {k: r[k] for k in BENCHMARK_KEYS if k in r}
    entry.setdefault("throughput_fps_ci95", None)
    if entry.get("speedup_vs_torch_fp32_ci95") is None:
        base = r.get("baseline_torch_fp32") or {}
        entry["speedup_vs_torch_fp32_ci95"] = ratio_ci(r.get("seconds"), r["batch_size"], base.get("seconds"),
                                                       base.get("batch_size", r["batch_size"]))
    entry["speedup_vs_torch_fp32_within_noise"] = within_noise(entry["speedup_vs_torch_fp32_ci95"])
    entry["record"] = str(record_path)
    command = _command(r.get("command"))
    if command:
        entry["command"] = command
    return entry


def _finite(value):
    """A cosine as JSON can hold it: NaN (an output of inf/NaN) becomes None."""
    return None if value is None or value != value else float(value)


def locate_entry(path: str) -> dict:
    """What the report shows of locate.json: the measured causes (the worst units and nodes, each alone at
    the target's precision), and the node-by-node view: the first jump, the op types and blocks that carry
    the error, the overflow nodes, and where the CSV and the chart are (beside the json)."""
    s = read_json(path)
    folder = Path(path).parent
    overflow = list(s.get("overflow_nodes") or [])
    causes = s.get("causes") or {}
    return {"record": str(path), "csv": (folder / "locate.csv").as_posix(), "chart": (folder / "locate.png").as_posix(),
            "top_cause": s.get("top_cause"),
            "causes": {"units": list(causes.get("units") or [])[:5],
                       "complement": list(causes["complement"])[:5] if causes.get("complement") else None,
                       "decided": causes.get("decided"), "why": causes.get("why"), "method": causes.get("method"),
                       "nodes": list(causes.get("nodes") or [])[:5], "tied_nodes": list(causes.get("tied_nodes") or []),
                       "builds": causes.get("builds"), "inputs": causes.get("inputs"), "target": causes.get("target")},
            "tensors_compared": s.get("tensors_compared"), "inputs": s.get("inputs"),
            "fp16_storage": s.get("fp16_storage"), "source": s.get("source"), "first_jump": s.get("first_jump"),
            "first_nonfinite": s.get("first_nonfinite"), "op_types": list(s.get("op_types") or [])[:5],
            "blocks": list(s.get("blocks") or [])[:3], "overflow_nodes": overflow, "overflow": bool(overflow),
            "final": s.get("final")}


def _verified(v: dict | None) -> dict | None:
    if not v:
        return None
    return {"cosine_min": _finite(v.get("cosine_min")), "nonfinite": v.get("nonfinite"), "passed": v.get("passed"),
            "gate": v.get("gate"), "fp16_storage": v.get("fp16_storage")}


def repair_entry(path: str) -> dict:
    """What the report shows of repair.json: before and after against torch_fp32, what was kept in fp32
    (the nodes and their blocks), the steps both ways, the repaired model and its speed."""
    r = read_json(path)
    steps = r.get("steps") or []
    entry = {"record": str(path), "precision": r.get("precision"), "gate": r.get("gate"),
             "passed": bool(r.get("passed")), "repaired": bool(r.get("repaired")),
             "before": _verified(r.get("before")), "after": _verified(r.get("after")),
             "kept": list(r.get("kept") or []), "closure": list(r.get("closure") or []),
             "kept_units": list(r.get("kept_units") or []), "not_acted_on": list(r.get("not_acted_on") or []),
             "all_fp32": r.get("all_fp32"), "kept_command": r.get("kept_command"),
             "grown": sum(s["phase"] == "grow" for s in steps), "shrunk": sum(s["phase"] == "shrink" for s in steps),
             "grown_to": r.get("grown_to"), "builds": r.get("builds"), "reason": r.get("reason"),
             "model": r.get("model"), "kept_file": r.get("kept_file")}
    if r.get("speed"):
        entry["speed"] = r["speed"]
    return entry


def _shown(path, located) -> bool:
    return bool(path) and Path(path).is_file() and (located is None or str(path) in located)


def target_entry(spec: dict, located: set[str] | None = None) -> Target:
    """One target from its spec: {"arch", "tower", "backend", "device", "precision", "dir", "manifests"
    (one compile manifest per batch size), "similarity", "benchmarks" (per batch size, may be empty),
    "zero_shot" (path or None), and optionally "locate" and "repair" (their json, read when present)}."""
    manifests = list(spec["manifests"])
    compiled = [read_json(m) for m in manifests]
    entry: Target = {k: spec[k] for k in COORDINATES}
    entry.update({
        "dir": str(spec["dir"]),
        "artifacts": [a for c in compiled for a in c["artifacts"]],
        "compile_options": compiled[0]["options"] if compiled else {},
        # per batch size: where the compiled model came from and the tool command line, when recorded
        "compiled": [{"batch_size": c.get("batch_size"), "source": c.get("source"), "model": c.get("model"),
                      "dynamic_batch": c.get("dynamic_batch"), "input": c.get("input"),
                      "manifest": str(m), "command": _command(c.get("command") or c.get("atc_command"))}
                     for m, c in zip(manifests, compiled)],
        "accuracy": read_json(spec["similarity"]),
        "similarity_record": str(spec["similarity"]),
        "performance": sorted((performance_entry(b) for b in spec.get("benchmarks") or []),
                              key=lambda p: (bool(p.get("dynamic_batch")), p["batch_size"])),
    })
    if spec.get("zero_shot"):
        entry["zero_shot"] = {**read_json(spec["zero_shot"]), "record": str(spec["zero_shot"])}
    # locate and repair: those of this run (the report rule's `located` input), not a record left by an
    # earlier run or an on-demand one; located None: any present. A locate record of a target that met
    # its gates ("located": false) is not shown.
    if _shown(spec.get("locate"), located) and read_json(spec["locate"]).get("located", True):
        entry["locate"] = locate_entry(spec["locate"])
    if _shown(spec.get("repair"), located):
        entry["repair"] = repair_entry(spec["repair"])
    return entry


def name_targets(targets: list[Target]) -> None:
    """Each target's `name`: backend/device, led by the arch when the report has several, followed by
    the precision when a (arch, tower, backend, device) has several, and "text" for the text tower."""
    several_archs = len({t["arch"] for t in targets}) > 1
    per_point = Counter((t["arch"], t["tower"], t["backend"], t["device"]) for t in targets)
    for t in targets:
        parts = [t["arch"]] if several_archs else []
        parts.append(f"{t['backend']}/{t['device']}")
        if per_point[(t["arch"], t["tower"], t["backend"], t["device"])] > 1:
            parts.append(t["precision"])
        if t["tower"] == "text":
            parts.append("text")
        t["name"] = " ".join(parts)


def load_targets(specs: list[dict], located: set[str] | None = None) -> list[Target]:
    """Every target of the report rule's `params.targets` (a flat list, one spec per (arch, tower,
    backend, device, precision); see target_entry), in that order. Each image target also carries its
    text twin's figures under `text` (the layout readers of report.json had before the tower was a
    coordinate). This is the one place that knows the shape of the params."""
    targets = [target_entry(spec, located) for spec in specs]
    twins = {tuple(t[k] for k in COORDINATES if k != "tower"): t for t in targets if t["tower"] == "text"}
    for t in targets:
        twin = twins.get(tuple(t[k] for k in COORDINATES if k != "tower"))
        if t["tower"] == "image" and twin:
            t["text"] = {k: twin[k] for k in TEXT_TWIN_KEYS}
    name_targets(targets)
    precision_speedups(targets)
    return targets


def precision_speedups(targets: list[Target]) -> None:
    """Each performance row of a target that is not fp32 gains its speed-up over the fp32 target of the same
    arch, tower, backend and device at the same batch size: `speedup_vs_fp32` (throughput ratio),
    `speedup_vs_fp32_ci95` (bootstrapped from both runs' seconds; None without them),
    `speedup_vs_fp32_within_noise` (the interval contains 1.0) and `speedup_vs_fp32_of` (that target's name)."""
    fp32 = {tuple(t[k] for k in COORDINATES if k != "precision"): t for t in targets if t.get("precision") == "fp32"}
    for t in targets:
        ref = fp32.get(tuple(t[k] for k in COORDINATES if k != "precision"))
        if ref is None or ref is t:
            continue
        ref_rows = {(q["batch_size"], bool(q.get("dynamic_batch"))): q for q in ref["performance"]}
        for p in t["performance"]:
            q = ref_rows.get((p["batch_size"], bool(p.get("dynamic_batch"))))
            if not q or not p.get("throughput_fps") or not q.get("throughput_fps"):
                continue
            ci = ratio_ci(p.get("seconds"), p["batch_size"], q.get("seconds"), q["batch_size"])
            p.update(speedup_vs_fp32=p["throughput_fps"] / q["throughput_fps"], speedup_vs_fp32_ci95=ci,
                     speedup_vs_fp32_within_noise=within_noise(ci), speedup_vs_fp32_of=ref.get("name"))


def target_gates(t: Target) -> list[dict]:
    """Every gate of one target: its own cosine gates (with its tower) and, for an image target with
    a text twin, the zero-shot gates (kind "zero_shot"). The `text` copy is its twin's, not counted."""
    gates = [{**g, "tower": t.get("tower", "image")} for g in t["accuracy"]["gates"]]
    if t.get("zero_shot"):
        gates += [{**g, "kind": "zero_shot"} for g in t["zero_shot"]["gates"]]
    return gates


def failed_gates(report: Report) -> list[str]:
    """One line per missed gate of every target (what fails the run after the report is written); with
    `precisions: auto`, one line per architecture, tower and device that has no deployment."""
    if (report.get("config") or {}).get("precisions") == "auto":
        return [f"{u['arch']} {u['tower']} on {u['device']}: {u['reason']}" for u in report.get("undeployed", [])]
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
                what = f" {g['measure']} {g.get('value')}" if g.get("kind") == "ranking" else ""
                out.append(f"{name}: {g['tower']} tower {g['a']} vs {g['b']}{what} below {g['threshold']}")
    return out


def under_load(p: Performance) -> bool:
    return bool((p.get("load") or {}).get("under_load"))


def load_warning(targets: list[Target]) -> str | None:
    loaded = [(t, p) for t in targets for p in t["performance"] if under_load(p)]
    if not loaded:
        return None
    which = "; ".join(f"{t['name']} batch {p['batch_size']} (other processes used "
                      f"{p['load'].get('others_cpu_cores', float('nan')):.2f} CPU cores)" for t, p in loaded)
    return (f"{len(loaded)} benchmark(s) {UNDER_LOAD}: {which}. Their throughput, latency and speed-ups are "
            "lower than on a quiet machine; rerun the benchmark jobs when the machine is idle.")


def skipped_warning(skipped: dict) -> str:
    return (f"{len(skipped)} input file(s) skipped (skip_bad_images: true), not in any figure here: "
            + "; ".join(f"{path}: {why}" for path, why in sorted(skipped.items())))


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(backend_names: list[str], config: dict) -> dict:
    """Versions of the packages, of the reference runtime, and of each backend's tools (each plan says
    which, and how it finds them: a device's tools are probed as its jobs run them)."""
    import backends
    from pipeline.config_check import with_defaults
    from pipeline.paths import physical_cores

    config = with_defaults(config)
    versions = {}
    for package in ("torch", "torchvision", "onnx", "cn-clip", "snakemake", "numpy", "pillow", "matplotlib",
                    "jinja2"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions.update(backends.reference().versions({}))  # the runtime of the onnx_* reference stages
    tools = {}
    for name in backend_names:
        plan = backends.get(name)
        tools.update(plan.versions(plan.options(config, plan.DEFAULT_PRECISION)))
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "physical_cores": physical_cores(), "logical_cores": os.cpu_count(),
            "versions": versions, "backend_tools": tools}


def workflow_costs(costs: dict[str, list[str]]) -> dict:
    """Per rule, from Snakemake's `benchmark:` records ({rule: [tsv files]}): jobs, summed and longest
    wall time, and the largest peak RSS of any of its jobs (the figure `resources: mem_mb` must cover).
    The report reads them by path, not as inputs (rules/report.smk COSTS): a record deleted since its job
    ran is counted in `missing`."""
    rows = []
    for rule, files in costs.items():
        seconds, rss, missing = [], [], 0
        for f in files:
            try:
                with open(f, newline="") as handle:
                    records = list(csv.DictReader(handle, delimiter="\t"))
            except FileNotFoundError:
                missing += 1
                continue
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
                         "peak_rss_mb": max(rss) if rss else None, "missing": missing})
    return {"rules": rows, "wall_s": sum(r["wall_s"] for r in rows),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in rows if r["peak_rss_mb"] is not None), default=None),
            "measured_by": "Snakemake's benchmark: directive (psutil), last run of each job"}


def model_entry(checkpoint_info: str) -> Model:
    ckpt = read_json(checkpoint_info)
    return {"arch": ckpt["arch"], "checkpoint": ckpt["checkpoint"], "checkpoint_path": ckpt["path"],
            "checkpoint_sha256": ckpt["checkpoint_sha256"], "checkpoint_bytes": ckpt["bytes"],
            "synthetic": ckpt["synthetic"]}


def baseline(targets: list[Target]) -> list[dict]:
    """The PyTorch fp32 baseline measured in each benchmark job, with the target and tower it ran beside."""
    out = []
    for t in targets:
        for p in t["performance"]:
            b = p.get("baseline_torch_fp32")
            if b:
                out.append({"batch_size": b["batch_size"], "loop": b.get("loop"), "threads": b.get("threads"),
                            "throughput_fps": b["throughput_fps"], "throughput_fps_ci95": b.get("throughput_fps_ci95"),
                            "latency_ms": b["latency_ms"], "latency_ms_ci95": b.get("latency_ms_ci95"),
                            "tower": t["tower"], "measured_with": t["name"]})
    return out


def build_report(checkpoint_info: list[str], onnx_files: list[str], targets: list[Target], config: dict,
                 skipped: dict | None = None, costs: dict | None = None) -> Report:
    """`checkpoint_info`: one checkpoint.json per architecture (`model` is the first, `models` all);
    `targets`: load_targets' entries; `skipped`: {path: why} of the input files left out by
    skip_bad_images; `costs`: {rule: [benchmark tsv files]} (workflow_costs)."""
    models = [model_entry(f) for f in checkpoint_info]
    skipped = dict(skipped or {})
    gates = [g for t in targets for g in target_gates(t)]
    synthetic = any(m["synthetic"] for m in models)
    warnings = ([SYNTHETIC_WARNING] if synthetic else []) \
        + ([ZERO_SHOT_SYNTHETIC] if synthetic and any(t.get("zero_shot") for t in targets) else []) \
        + ([skipped_warning(skipped)] if skipped else []) \
        + ([load_warning(targets)] if load_warning(targets) else [])
    from .deploy import choose

    deployments, undeployed = choose(targets, target_gates)
    # `precisions: auto` asks the run to choose: it passes when every architecture, tower and device has a
    # deployment (a candidate that misses its gates is measured, shown, and not chosen)
    chooses = config.get("precisions") == "auto"
    passed = not undeployed if chooses else all(g["passed"] for g in gates)
    report: Report = {
        "verdict": "PASS" if passed else "FAIL",
        "gates_passed": sum(bool(g["passed"]) for g in gates),
        "gates_total": len(gates),
        "model": models[0],
        "models": models,
        "warnings": warnings,
        "inputs": {"skipped": [{"path": path, "reason": why} for path, why in sorted(skipped.items())]},
        "onnx": [artifact(f) for f in onnx_files],
        "targets": targets,
        "deployments": deployments,
        "undeployed": undeployed,
        "baseline": {"torch_fp32": baseline(targets)},
        "config": config,
        "workflow": workflow_costs(costs or {}),
        "environment": environment(sorted({t["backend"] for t in targets}), config),
    }
    report["reproduce"] = reproduce(report)
    return report


def located(inputs) -> set[str] | None:
    """The locate and repair records the report rule was given (its `located` input), or None when the
    inputs have no such entry (then any record present is shown)."""
    names = inputs.keys() if hasattr(inputs, "keys") else vars(inputs)
    return {str(f) for f in inputs.located} if "located" in names else None


def load(inputs, params) -> Report:
    """The report from the report rule's inputs (checkpoint, onnx) and params (targets, config,
    skipped, costs): any objects with those attributes (Snakemake's, or a SimpleNamespace)."""
    return build_report(list(inputs.checkpoint), list(inputs.onnx), load_targets(list(params.targets), located(inputs)),
                        dict(params.config), dict(params.skipped),
                        {rule: list(files) for rule, files in dict(params.costs).items()})
