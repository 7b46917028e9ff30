"""The report's CSV tables for Snakemake's own report: accuracy, performance and artifacts, one row
per pair, benchmark and file, with raw numbers (the views round them)."""

import csv
from pathlib import Path

from .model import Report
from .rows import cosine_gates, measured, models


def accuracy_rows(r: Report) -> list[dict]:
    out = []
    for t in r["targets"]:
        gates = cosine_gates(t)
        for p in t["accuracy"]["pairs"]:
            g = gates.get((p["a"], p["b"]))
            out.append({"target": t["name"], "tower": t.get("tower"), "precision": t.get("precision"),
                        "a": p["a"], "b": p["b"], "cosine_min": p["cosine_min"], "cosine_mean": p["cosine_mean"],
                        "one_minus_cosine_min": 1.0 - p["cosine_min"], "max_abs_err": p["max_abs_err"],
                        "rel_err_max": p.get("rel_err_max"), "gate_threshold": g["threshold"] if g else None,
                        "gate": ("PASS" if g["passed"] else "FAIL") if g else None})
    return out


def performance_rows(r: Report) -> list[dict]:
    import backends

    runtime = backends.reference()
    out = []
    for t in r["targets"]:
        for label, row, ratio, p in measured(t):
            lat, lat_ci = row.get("latency_ms") or {}, row.get("latency_ms_ci95") or {}
            ceiling = p.get("ceiling") or {}
            offline = label == "offline"
            out.append({"target": t["name"], "model": label, "batch_size": row.get("batch_size"),
                        "loop": row.get("loop"), "loop_max": row.get("loop_max"),
                        "stopped_early": row.get("stopped_early"), "threads": row.get("threads"),
                        "throughput_fps": row.get("throughput_fps"),
                        **_bounds("throughput_fps_ci95", row.get("throughput_fps_ci95")),
                        "speedup_vs_torch_fp32": ratio,
                        **_bounds("speedup_vs_torch_fp32_ci95", p.get("speedup_vs_torch_fp32_ci95") if offline else None),
                        "speedup_vs_torch_fp32_within_noise": p.get("speedup_vs_torch_fp32_within_noise") if offline
                        else None,
                        "speedup_vs_fp32": p.get("speedup_vs_fp32") if offline else None,
                        **_bounds("speedup_vs_fp32_ci95", p.get("speedup_vs_fp32_ci95") if offline else None),
                        "speedup_vs_fp32_within_noise": p.get("speedup_vs_fp32_within_noise") if offline else None,
                        "torch_matmul_gflops": ceiling.get("torch_gflops"),
                        f"{runtime.NAME}_matmul_gflops": ceiling.get(f"{runtime.NAME}_gflops"),
                        "under_load": (p.get("load") or {}).get("under_load"),
                        **{f"latency_{k}_ms": lat.get(k) for k in ("mean", "p50", "p90", "p99")},
                        **{c: v for k in ("mean", "p50", "p90", "p99")
                           for c, v in _bounds(f"latency_{k}_ms_ci95", lat_ci.get(k)).items()}})
    return out


def _bounds(name: str, ci) -> dict:
    """An interval as two columns, {name}_lo and {name}_hi (empty without one)."""
    lo, hi = ci if ci else (None, None)
    return {f"{name}_lo": lo, f"{name}_hi": hi}


def artifact_rows(r: Report) -> list[dict]:
    out = [{"kind": "checkpoint", "path": m.get("checkpoint_path"), "batch_size": None,
            "bytes": m.get("checkpoint_bytes"), "sha256": m["checkpoint_sha256"]} for m in models(r)]
    out += [{"kind": "onnx", "path": a["path"], "batch_size": None, "bytes": a["bytes"], "sha256": a["sha256"]}
            for a in r["onnx"]]
    out += [{"kind": f"offline {t['name']}", "path": a["path"], "batch_size": a.get("batch_size"),
             "bytes": a["bytes"], "sha256": a["sha256"]} for t in r["targets"] for a in t["artifacts"]]
    return out


TABLES = {"accuracy": accuracy_rows, "performance": performance_rows, "artifacts": artifact_rows}


def write_tables(r: Report, paths: dict) -> None:
    """Each table of TABLES as CSV ({name: path}; names missing are skipped)."""
    for name, make in TABLES.items():
        if not paths.get(name):
            continue
        rows = make(r)
        Path(paths[name]).parent.mkdir(parents=True, exist_ok=True)
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["empty"])
            writer.writeheader()
            writer.writerows(rows)
