"""report: results/report.{json,md,html} from the provenance, similarity, compile and benchmark
records of every target. Keys of report.json: ../CONTRACT.md."""

import html
import platform
from importlib import metadata
from pathlib import Path

import backends
from common import artifact, log, read_json, write_json

SYNTHETIC_WARNING = ("Weights are SYNTHETIC (seeded random): features and similarities check the deployment "
                     "chain only; they carry no meaning about images.")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(backend_names: list[str]) -> dict:
    import os

    from paths import physical_cores

    versions = {}
    for package in ("torch", "torchvision", "onnx", "onnxruntime", "cn-clip", "snakemake", "numpy", "pillow"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    tools = {}
    for name in backend_names:
        tools.update(backends.get(name).versions())
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "physical_cores": physical_cores(), "logical_cores": os.cpu_count(),
            "versions": versions, "backend_tools": tools}


def target_entry(backend: str, device: str, manifests: list[str], similarity: str, benchmarks: list[str]) -> dict:
    compiled = [read_json(m) for m in manifests]
    perf = []
    for b in benchmarks:
        r = read_json(b)
        keys = ("batch_size", "loop", "warmup", "threads", "throughput_fps", "latency_ms", "model_gflops_per_image",
                "achieved_gflops", "ceiling_gflops", "fraction_of_ceiling", "speedup_vs_torch_fp32",
                "baseline_torch_fp32")
        perf.append({k: r[k] for k in keys if k in r})
    return {
        "backend": backend, "device": device,
        "artifacts": [a for c in compiled for a in c["artifacts"]],
        "compile_options": compiled[0]["options"] if compiled else {},
        "accuracy": read_json(similarity),
        "performance": sorted(perf, key=lambda p: p["batch_size"]),
    }


def build_report(checkpoint_info: str, onnx_files: list[str], targets: list[dict], config: dict) -> dict:
    ckpt = read_json(checkpoint_info)
    baseline = []
    for t in targets:
        for p in t["performance"]:
            b = p["baseline_torch_fp32"]
            baseline.append({"batch_size": b["batch_size"], "loop": b["loop"], "threads": b["threads"],
                             "throughput_fps": b["throughput_fps"], "latency_ms": b["latency_ms"],
                             "measured_with": f"{t['backend']}/{t['device']}"})
    passed = all(g["passed"] for t in targets for g in t["accuracy"]["gates"])
    return {
        "verdict": "PASS" if passed else "FAIL",
        "model": {"arch": ckpt["arch"], "checkpoint": ckpt["checkpoint"], "checkpoint_path": ckpt["path"],
                  "checkpoint_sha256": ckpt["checkpoint_sha256"], "checkpoint_bytes": ckpt["bytes"],
                  "synthetic": ckpt["synthetic"]},
        "warnings": [SYNTHETIC_WARNING] if ckpt["synthetic"] else [],
        "onnx": [artifact(f) for f in onnx_files],
        "targets": targets,
        "baseline": {"torch_fp32": baseline},
        "config": config,
        "environment": environment(sorted({t["backend"] for t in targets})),
    }


def _num(value, fmt: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def _fmt_lat(lat: dict) -> str:
    return " | ".join(_num(lat.get(k), ".1f") for k in ("mean", "p50", "p90", "p99"))


def render_markdown(r: dict) -> str:
    m = r["model"]
    lines = [f"# Chinese-CLIP deployment report: {m['arch']}", "", f"**Verdict: {r['verdict']}**", ""]
    lines += [f"> WARNING: {w}" for w in r["warnings"]] + ([""] if r["warnings"] else [])
    lines += ["## Model", "", "| arch | checkpoint | sha256 | synthetic |", "|---|---|---|---|",
              f"| {m['arch']} | {m['checkpoint']} (`{m['checkpoint_path']}`) | `{m['checkpoint_sha256']}` | "
              f"{'yes' if m['synthetic'] else 'no'} |", ""]
    for t in r["targets"]:
        name = f"{t['backend']}/{t['device']}"
        lines += [f"## Target {name}", "", "### Gates", "", "| a | b | threshold | cosine min | worst image | result |",
                  "|---|---|---|---|---|---|"]
        for g in t["accuracy"]["gates"]:
            lines.append(f"| {g['a']} | {g['b']} | {g['threshold']} | {g['cosine_min']:.8f} | {g['worst_image']} | "
                         f"{'PASS' if g['passed'] else '**FAIL**'} |")
        lines += ["", "### Accuracy", "", "| a | b | cosine min | cosine mean | max abs err | max rel err |",
                  "|---|---|---|---|---|---|"]
        for p in t["accuracy"]["pairs"]:
            lines.append(f"| {p['a']} | {p['b']} | {p['cosine_min']:.8f} | {p['cosine_mean']:.8f} | "
                         f"{p['max_abs_err']:.3g} | {p['rel_err_max']:.3g} |")
        stems = sorted(t["accuracy"]["pairs"][0]["per_image"])
        pairs = t["accuracy"]["pairs"]
        lines += ["", "Per image cosine:", "", "| image | " + " | ".join(f"{p['a']} vs {p['b']}" for p in pairs) + " |",
                  "|---|" + "---|" * len(pairs)]
        for s in stems:
            lines.append(f"| {s} | " + " | ".join(f"{p['per_image'][s]:.8f}" for p in pairs) + " |")
        lines += ["", "### Performance", "",
                  "| model | batch | loop | threads | images/s | vs torch | mean ms | p50 ms | p90 ms | p99 ms | "
                  "GFLOP/s | of ceiling |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in t["performance"]:
            b = p["baseline_torch_fp32"]
            for name, row, ratio in (("offline", p, p.get("speedup_vs_torch_fp32")), ("torch_fp32", b, 1.0)):
                lines.append(f"| {name} | {row['batch_size']} | {row['loop']} | {row['threads']} | "
                             f"{row['throughput_fps']:.2f} | {_num(ratio, '.2f', 'x')} | {_fmt_lat(row['latency_ms'])} | "
                             f"{_num(row.get('achieved_gflops'), '.0f')} | {_num(row.get('fraction_of_ceiling'), '.0%')} |")
        if t["performance"] and "ceiling_gflops" in t["performance"][0]:
            p = t["performance"][0]
            lines += ["", f"Model: {p['model_gflops_per_image']:.1f} GFLOPs per image (torch FlopCounterMode); "
                          f"ceiling: {p['ceiling_gflops']:.0f} GFLOP/s (the faster of torch and ONNX Runtime on a "
                          f"4096x4096 fp32 matmul, measured in the same job)."]
        lines += ["", "### Artifacts", "", "| path | batch | MB | sha256 |", "|---|---|---|---|"]
        for a in t["artifacts"]:
            lines.append(f"| `{a['path']}` | {a['batch_size']} | {a['bytes'] / 1e6:.1f} | `{a['sha256']}` |")
        lines.append("")
    lines += ["## ONNX models", "", "| path | MB | sha256 |", "|---|---|---|"]
    lines += [f"| `{a['path']}` | {a['bytes'] / 1e6:.1f} | `{a['sha256']}` |" for a in r["onnx"]]
    env = r["environment"]
    lines += ["", "## Environment", "", f"- CPU: {env['cpu']} ({env['physical_cores']} physical cores)",
              f"- Python {env['python']} on {env['platform']}"]
    lines += [f"- {k}: {v}" for k, v in {**env["versions"], **env["backend_tools"]}.items()]
    return "\n".join(lines) + "\n"


def render_html(r: dict, markdown: str) -> str:
    """Plain, self-contained HTML: the verdict on top, then the markdown tables as HTML tables."""
    out, table = [], []

    def flush():
        if table:
            rows = [row for row in table if not set(row.replace("|", "").strip()) <= {"-"}]
            cells = [[html.escape(c.strip().strip("`*")) for c in row.strip().strip("|").split("|")] for row in rows]
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in cells[0]) + "</tr>"
                       + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[1:])
                       + "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        text = html.escape(line.lstrip("#> -").strip().strip("*"))
        if line.startswith("# "):
            out.append(f"<h1>{text}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{text}</h2>")
        elif line.startswith("### "):
            out.append(f"<h3>{text}</h3>")
        elif line.startswith("**Verdict"):
            cls = "pass" if r["verdict"] == "PASS" else "fail"
            out.append(f'<p class="verdict {cls}">{text}</p>')
        elif line.startswith("> "):
            out.append(f'<p class="warning">{text}</p>')
        elif line.startswith("- "):
            out.append(f"<li>{text}</li>")
        elif text:
            out.append(f"<p>{text}</p>")
    flush()
    style = ("body{font-family:sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #bbb;padding:.2em .5em;font-size:90%}th{background:#eee}"
             ".verdict{font-size:150%;font-weight:bold;padding:.3em}.pass{background:#cfc}.fail{background:#fcc}"
             ".warning{background:#ffd;border:2px solid #e90;padding:.5em;font-weight:bold}")
    title = html.escape(f"Chinese-CLIP deployment report: {r['model']['arch']}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style>"
            f"</head><body>{''.join(out)}</body></html>\n")


def write_report(report: dict, out_json: str, out_md: str, out_html: str) -> None:
    write_json(out_json, report)
    markdown = render_markdown(report)
    Path(out_md).write_text(markdown, encoding="utf-8")
    Path(out_html).write_text(render_html(report, markdown), encoding="utf-8")
    log.info("report: %s (verdict %s)", out_md, report["verdict"])


def main(smk) -> None:
    targets = [target_entry(t["backend"], t["device"], t["manifests"], t["similarity"], t["benchmarks"])
               for t in smk.params.targets]
    report = build_report(smk.input.checkpoint, list(smk.input.onnx), targets, dict(smk.params.config))
    write_report(report, smk.output.json, smk.output.md, smk.output.html)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
