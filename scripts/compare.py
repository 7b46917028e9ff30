"""compare: this run's report against a baseline run's (config `baseline`: a results folder or a
report.json): every accuracy figure that changed, every speed change outside the intervals, every version
that differs (reporting.compare does the work)."""
from reporting.compare import compare, load_report, report_path, write_compare


def main(smk) -> None:
    base, cur = report_path(smk.params.baseline), report_path(smk.input.current)
    result = compare(load_report(base), load_report(cur), sources=(base, cur))
    write_compare(result, smk.output.json, smk.output.md, smk.output.html)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
