"""The deployment report as a package: `load` builds report.json's data (model.py) from the report
rule's records, rows.py holds the rows every view shares, render.py fills the Jinja2 templates
(Markdown, self-contained HTML with report.css inlined), tables.py writes the CSV tables and
plots.py the figures; `write_report` writes them all."""

import importlib
from pathlib import Path

__all__ = ["build_report", "failed_gates", "load_targets", "render_html", "render_markdown", "target_entry",
           "write_report", "write_tables"]
# imported when first asked for (PEP 562), so the Snakefile's `reporting.exit_status` costs a parse nothing. Not
# `load` (the function): that name is its module's, reporting.load, once anything imports it; take it from there.
_LAZY = {"build_report": "load", "failed_gates": "load", "load_targets": "load", "target_entry": "load",
         "render_html": "render", "render_markdown": "render", "write_tables": "tables"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def write_report(report: dict, out_json: str, out_md: str, out_html: str, plots: dict | None = None,
                 tables: dict | None = None) -> None:
    """report.json, the figures ({name: path}, see plots.PLOTS), the CSV tables ({name: path}, see
    tables.TABLES), report.md and report.html."""
    from pipeline.common import log, write_json

    from . import plots as figures
    from .render import render_html, render_markdown
    from .tables import write_tables

    write_json(out_json, report)
    written = figures.write_plots(report, plots or {})
    write_tables(report, tables or {})
    Path(out_md).write_text(render_markdown(report, written, Path(out_md).parent), encoding="utf-8")
    Path(out_html).write_text(render_html(report, written, Path(out_html).parent), encoding="utf-8")
    log.info("report: %s and %s (verdict %s)", out_md, out_html, report["verdict"])
