"""One table of what the last run cost and achieved, from results/report.json: per rule the jobs,
wall time and peak RSS (Snakemake's benchmark: records of exactly the jobs the report stands on),
and per target and batch size the throughput, latency, ratio to the PyTorch baseline measured in
the same job, the achieved GFLOP/s beside the host's two fp32 matmul rates (torch, the reference runtime)
measured in that job, the fraction of the fp32 ceiling, and whether the job ran under load.

    .venv/bin/python bench/summary.py [results/report.json]     # after .venv/bin/snakemake -c1 report
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import backends  # noqa: E402


def _f(value, fmt: str, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{suffix}"


def summary(r: dict) -> str:
    lines = ["| rule | jobs | wall s (all jobs) | longest job s | peak RSS MB |", "|---|---|---|---|---|"]
    cost = r.get("workflow") or {}
    for row in cost.get("rules", []):
        lines.append(f"| {row['rule']} | {row['jobs']} | {row['wall_s']:.1f} | {row['longest_s']:.1f} | "
                     f"{_f(row['peak_rss_mb'], ',.0f')} |")
    lines.append(f"| all | | {_f(cost.get('wall_s'), '.1f')} | | {_f(cost.get('peak_rss_mb'), ',.0f')} |")
    archs = ", ".join(m["arch"] for m in r.get("models") or [r["model"]])
    runtime = backends.reference()
    lines += ["", f"{archs} ({'synthetic' if r['model']['synthetic'] else 'real'} weights), verdict {r['verdict']}",
              "| target | batch | images/s | p50 ms | p99 ms | torch_fp32 images/s | vs torch_fp32 | "
              f"GFLOP/s (matmul torch / {runtime.SHORT}) | of ceiling |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in r["targets"]:
        for p in t["performance"]:
            base = p.get("baseline_torch_fp32") or {}
            ceiling = p.get("ceiling") or {}
            matmul = (f" (matmul {_f(ceiling.get('torch_gflops'), '.0f')} / "
                      f"{_f(ceiling.get(f'{runtime.NAME}_gflops'), '.0f')})" if ceiling else "")
            loaded = " measured under load" if (p.get("load") or {}).get("under_load") else ""
            lines.append(f"| {t.get('name') or t['backend'] + '/' + t['device']} | {p['batch_size']} | "
                         f"{p['throughput_fps']:.3f}{loaded} | {_f(p['latency_ms'].get('p50'), '.1f')} | "
                         f"{_f(p['latency_ms'].get('p99'), '.1f')} | {_f(base.get('throughput_fps'), '.3f')} | "
                         f"{_f(p.get('speedup_vs_torch_fp32'), '.2f', 'x')} | "
                         f"{_f(p.get('achieved_gflops'), '.0f')}{matmul} | "
                         f"{_f(p.get('fraction_of_ceiling'), '.0%')} |")
    return "\n".join(lines)


def main() -> None:
    report = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "report.json"
    if not report.is_file():
        sys.exit("no results/report.json yet: run .venv/bin/snakemake -c1 report first")
    print(summary(json.loads(report.read_text())))


if __name__ == "__main__":
    main()
