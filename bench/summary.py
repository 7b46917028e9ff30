"""One table of what the last run cost and achieved: per-rule wall time and peak RSS (from
Snakemake's benchmark: files under benchmarks/), and per target and batch size the throughput,
latency, ratio to the PyTorch baseline and fraction of the measured ceiling (from results/report.json).

    .venv/bin/python bench/summary.py            # after .venv/bin/snakemake -c1 report
"""
import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rule_costs(bench_dir: Path) -> list[tuple[str, float, float]]:
    rows = []
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        with tsv.open() as f:
            records = list(csv.DictReader(f, delimiter="\t"))
        if records:
            last = records[-1]
            rows.append((str(tsv.relative_to(bench_dir).with_suffix("")), float(last["s"]),
                         float(last["max_rss"]) if last["max_rss"] not in ("", "-") else float("nan")))
    return rows


def main() -> None:
    bench_dir = ROOT / "benchmarks"
    print("| job | wall s | peak RSS MB |\n|---|---|---|")
    for name, seconds, rss in rule_costs(bench_dir):
        print(f"| {name} | {seconds:.1f} | {rss:.0f} |")
    report = ROOT / "results" / "report.json"
    if not report.is_file():
        sys.exit("no results/report.json yet: run .venv/bin/snakemake -c1 report first")
    r = json.loads(report.read_text())
    print(f"\n{r['model']['arch']} ({'synthetic' if r['model']['synthetic'] else 'real'} weights), verdict {r['verdict']}")
    print("| target | batch | images/s | p50 ms | p99 ms | vs torch_fp32 | GFLOP/s | of ceiling |\n|---|---|---|---|---|---|---|---|")
    for t in r["targets"]:
        for p in t["performance"]:
            frac = p.get("fraction_of_ceiling")
            print(f"| {t['backend']}/{t['device']} | {p['batch_size']} | {p['throughput_fps']:.3f} | "
                  f"{p['latency_ms']['p50']:.1f} | {p['latency_ms']['p99']:.1f} | "
                  f"{p.get('speedup_vs_torch_fp32', float('nan')):.2f}x | {p.get('achieved_gflops') or float('nan'):.0f} | "
                  f"{'n/a' if frac is None else f'{frac:.0%}'} |")


if __name__ == "__main__":
    main()
