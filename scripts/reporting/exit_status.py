"""The run's exit status: a missed accuracy gate fails the run after the report is written, and only a
report this run wrote counts (a single target such as a checkpoint or a compile never reads an old one)."""

import json
import os
import sys
from pathlib import Path


def file_state(path: str | os.PathLike) -> tuple | None:
    """(inode, size, mtime) of a file, or None: compared before and after a run to tell whether the run
    wrote it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def exit_on_missed_gates(report_json: str | os.PathLike, before: tuple | None) -> None:
    """Exit 1, listing the missed gates, when this run wrote `report_json` (its state differs from
    `before`) and a gate in it was missed."""
    from .load import failed_gates

    if file_state(report_json) in (None, before):
        return
    failed = failed_gates(json.loads(Path(report_json).read_text()))
    if failed:
        print("FAIL: accuracy gates missed (see results/report.md):", *failed, sep="\n  ")
        sys.exit(1)
