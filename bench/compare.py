"""Two runs side by side (scripts/reporting/compare.py does the work; `snakemake -c1 compare --config
baseline=...` is the rule that compares the current run with another):

    .venv/bin/python bench/compare.py BASELINE [CURRENT] [--out DIR] [--tolerance 1e-6]

BASELINE and CURRENT are each a results folder or a report.json; CURRENT defaults to results/report.json,
and compare.{json,md,html} are written next to it (or into --out)."""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from reporting.compare import TOLERANCE, compare, load_report, report_path, summary_line, write_compare  # noqa: E402


def run(baseline, current, out_dir=None, tolerance: float = TOLERANCE) -> dict:
    """Compare two results folders or report.json files; write compare.{json,md,html} into out_dir
    (default: the current report's folder). Returns the result."""
    base_path, cur_path = report_path(baseline), report_path(current)
    result = compare(load_report(base_path), load_report(cur_path), tolerance, sources=(base_path, cur_path))
    out = Path(out_dir) if out_dir else cur_path.parent
    write_compare(result, out / "compare.json", out / "compare.md", out / "compare.html")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the baseline run: a results folder or its report.json")
    parser.add_argument("current", nargs="?", default=str(ROOT / "results" / "report.json"),
                        help="the current run (default results/report.json)")
    parser.add_argument("--out", help="folder for compare.{json,md,html} (default: beside the current report.json)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"absolute change below which an accuracy figure is unchanged (default {TOLERANCE:g})")
    args = parser.parse_args(argv)
    try:
        result = run(args.baseline, args.current, args.out, args.tolerance)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else report_path(args.current).parent
    print(summary_line(result))
    print(f"written: {out / 'compare.md'}, {out / 'compare.html'}, {out / 'compare.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
