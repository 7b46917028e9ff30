"""report: results/report.{json,md,html}, the figures and the CSV tables in results/report/, from
the records of every target (the work is the `reporting` package's). The run fails afterwards when
a gate is missed (the Snakefile's onsuccess: reporting.exit_status)."""

from reporting import write_report
from reporting.load import load
from reporting.plots import PLOTS
from reporting.tables import TABLES


def main(smk) -> None:
    out = smk.output
    write_report(load(smk.input, smk.params), out.json, out.md, out.html,
                 plots={name: getattr(out, name) for name in PLOTS},
                 tables={name: getattr(out, f"{name}_csv") for name in TABLES})


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
