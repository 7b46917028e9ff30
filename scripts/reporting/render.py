"""report.md and report.html from the Jinja2 templates in templates/ (report.md.j2, report.html.j2)
and the rows of rows.py; report.css is inlined and the figures embedded, so the page is one file."""

import base64
import os
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

import backends

from . import rows
from .model import Report
from .reproduce import reproduce

TEMPLATES = Path(__file__).with_name("templates")


def _md(value) -> str:
    """A table cell's text for Markdown: no line breaks, pipes escaped."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=lambda name: name.endswith(".html.j2"),
                      keep_trailing_newline=True, trim_blocks=False, lstrip_blocks=False)
    env.tests["cell"] = lambda value: isinstance(value, rows.Cell)
    env.filters["md"] = _md
    return env


def _context(r: Report) -> dict:
    """What both templates show besides the rows module's per-target tables."""
    skipped = (r.get("inputs") or {}).get("skipped") or []
    return {"r": r, "rows": rows, "reproduce": r.get("reproduce") or reproduce(r),
            "skipped": skipped and rows.table(["file", "why"], [[rows.Cell(s["path"], "mono"), s["reason"]]
                                                                 for s in skipped]),
            "zero_shot": rows.zero_shot_table(r), "predictions": rows.predictions_table(r),
            "cost": rows.cost_table(r), "config": rows.config_table(r), "failed": rows.failed_banners(r),
            "reference_runtime": backends.reference().LABEL}


def render_markdown(r: Report, plots: dict | None = None, base: str | os.PathLike = ".") -> str:
    """The report as Markdown tables; `plots` ({name: path}) are linked relative to `base` (the folder
    the Markdown is written to)."""
    context = {**_context(r), "figures": rows.figure_links(plots, base), "base": str(base)}
    text = _environment().get_template("report.md.j2").render(context)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def embed(plots: dict | None) -> dict:
    """{name: base64 of the PNG} for the plots that exist."""
    return {name: base64.b64encode(Path(path).read_bytes()).decode("ascii")
            for name, path in (plots or {}).items() if path and Path(path).is_file()}


def png(path: str | None) -> str | None:
    """base64 of one PNG file of the run (locate's chart), or None when there is none."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii") if path and Path(path).is_file() else None


def render_html(r: Report, plots: dict | None = None, base: str | os.PathLike = ".") -> str:
    """One self-contained page; `plots`: {name: PNG path}, embedded as base64; links to files of the run
    (locate's CSV and chart, the repaired model) relative to `base` (the folder the page is written to)."""
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    return _environment().get_template("report.html.j2").render({**_context(r), "images": embed(plots), "css": css, "png": png,
                                                                 "base": str(base)})
