"""repair: the smallest set of nodes kept in fp32 that brings a reduced-precision target back over its
gate (vs_torch_fp32, on every input), each candidate built by the target's plan (scripts/backends/:
build_reduced keeps nodes in fp32, weights and outputs included, with the backend's own tools) and
verified as the target computes (its load_reduced).

1. Converge. Starting from the target as built, whole units (residual blocks, the stem, the head) are
   added to the kept set in the order locate measured them (the worst alone first), until the gate
   passes: while the output is not finite or far off, each step adds what measurement says matters, not
   one guess at a time. If every unit is kept and the gate still fails, the fp32 graph itself does not
   pass on this backend, and repair says so.
2. Shrink to a 1-minimal set. The kept nodes are taken out again, in halves, then quarters, ... then one
   at a time (ddmin), each removal kept when the gate still passes; it ends when no single kept node can
   be removed without failing the gate, checked against the final set.

The record lists every step both ways (added or removed, nodes kept, cosine, passed), and the speed of
the repaired model against the unrepaired one and against fp32, measured the same way in one job
(`max_builds` bounds the builds of the whole search)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from accuracy.locate import Measure, candidates, error, inputs_and_references, units_of
from backends.graph import load_graph
from pipeline.common import log


class OutOfBuilds(RuntimeError):
    """The search reached max_builds."""


def _check(measure: Measure, max_builds: int):
    def check(keep: list[str]) -> dict:
        if measure.builds >= max_builds:
            raise OutOfBuilds(f"repair_max_builds ({max_builds}) reached")
        return measure(keep)

    return check


def converge(check, units: dict[str, list[str]], order: list[str], steps: list[dict]) -> tuple[list[str], dict | None]:
    """Add whole units in `order` until the gate passes: (kept nodes, the passing result or None)."""
    kept: list[str] = []
    for unit in order:
        kept += [n for n in units[unit] if n not in kept]
        r = check(kept)
        steps.append({"phase": "grow", "added": [unit], "nodes": len(kept), "cosine_min": r["cosine_min"],
                      "nonfinite": r["nonfinite"], "passed": r["passed"]})
        log.info("repair: + %s -> %d nodes kept, cosine min %.6f%s", unit, len(kept), r["cosine_min"],
                 " PASS" if r["passed"] else "")
        if r["passed"]:
            return kept, r
    return kept, None


def shrink(check, kept: list[str], last: dict, steps: list[dict]) -> tuple[list[str], dict]:
    """ddmin: remove chunks of the kept set (halves, then smaller) while the gate still passes, then single
    nodes until none can go: a 1-minimal set. `last` is the passing result of `kept`."""
    size = max(1, len(kept) // 2)
    while kept:
        removed_any = False
        i = 0
        while i < len(kept):
            chunk = kept[i:i + size]
            trial = [n for n in kept if n not in chunk]
            r = check(trial)
            steps.append({"phase": "shrink", "removed": chunk, "nodes": len(trial), "cosine_min": r["cosine_min"],
                          "nonfinite": r["nonfinite"], "passed": r["passed"]})
            if r["passed"]:
                log.info("repair: - %d node(s) -> %d kept, cosine min %.6f PASS", len(chunk), len(trial),
                         r["cosine_min"])
                kept, last, removed_any = trial, r, True
            else:
                i += size
        if size == 1 and not removed_any:
            break  # every single removal fails against the final set: 1-minimal
        size = max(1, size // 2) if not removed_any or size > 1 else 1
    return kept, last


def speed(measure: Measure, models: dict[str, str], x: np.ndarray, loop: int = 10, warmup: int = 1) -> dict:
    """Median latency (ms) of each model on one input, as its plan runs it, in one job, with the ratios:
    the repaired model against the unrepaired one and against fp32."""
    from backends.timing import time_runs

    out = {}
    for name, model in models.items():
        run = measure.plan.load_reduced(model, measure.options)
        out[name] = time_runs(run, [x], 1, loop, warmup, f"repair speed {name}")["latency_ms"]["p50"]
    return {"latency_ms_p50": out, "repaired_vs_unrepaired": out["repaired"] / out["unrepaired"],
            "repaired_vs_fp32": out["repaired"] / out["fp32"], "loop": loop,
            "measured_on": "this host, batch 1, one input, as the plan computes"
                           + ("" if measure.plan.RUNS_ON_HOST_CPU else " (the CPU proxy of the device, not the device)")}


def repair(plan, fp32_onnx: str | Path, precision: str, npy: list[str], reference_files: list[str], gate: float,
           options: dict, locate_record: dict, out_dir: str | Path, max_builds: int = 200, speed_loop: int = 10
           ) -> dict:
    """The whole repair of one target: the record (see the module docstring) and, in out_dir, the repaired
    model (the target as built when it already passed or nothing passed) and `kept` (the plan's form)."""
    out_dir = Path(out_dir)
    scratch = out_dir.parent / f".{out_dir.name}-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        files, inputs, references = inputs_and_references(npy, reference_files)
        graph = plan.reduced_graph(fp32_onnx, precision, scratch, options)
        nodes = candidates(load_graph(graph), getattr(plan, "CANDIDATE_OPS", {}).get(precision))
        units = units_of(nodes)
        measure = Measure(plan, graph, precision, inputs, references, gate, options, scratch)
        check = _check(measure, max_builds)
        causes = (locate_record or {}).get("causes") or {}
        order = [u["unit"] for u in causes.get("units", []) if u["unit"] in units]
        order += [u for u in units if u not in order]  # any unit locate did not measure, in graph order
        steps: list[dict] = []
        before = check([])
        record = {"precision": precision, "backend": plan.NAME, "gate": gate, "inputs": len(inputs),
                  "before": _short(before), "candidates": len(nodes), "steps": steps, "kept": [],
                  "passed": before["passed"], "repaired": False}
        kept: list[str] = []
        if not before["passed"]:
            try:
                kept, passing = converge(check, units, order, steps)
                if passing is None:
                    record["reason"] = ("every unit kept in fp32 and the gate still fails: the fp32 graph itself "
                                        f"misses {gate} on {plan.NAME}")
                else:
                    grown = len(kept)
                    kept, passing = shrink(check, kept, passing, steps)
                    record.update(passed=True, repaired=True, grown_to=grown, after=_short(passing))
            except OutOfBuilds as exc:
                record["reason"] = str(exc)
                kept = []
        record["kept"] = kept if record["repaired"] else []
        record["kept_units"] = sorted({n["unit"] for n in nodes if n["node"] in set(record["kept"])})
        shutil.rmtree(out_dir, ignore_errors=True)
        final = measure.model(record["kept"], out_dir)
        record["model"] = final
        if record["repaired"]:
            models = {"repaired": final, "unrepaired": measure.model([], scratch / "unrepaired"),
                      "fp32": measure.model([n["node"] for n in nodes], scratch / "fp32")}
            record["speed"] = speed(measure, models, inputs[0], speed_loop)
        record["builds"] = measure.builds
        log.info("repair: %s after %d builds, %d node(s) kept", "passed" if record["passed"] else "FAILED",
                 measure.builds, len(record["kept"]))
        return record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _short(result: dict) -> dict:
    return {k: result[k] for k in ("cosine_min", "per_input", "nonfinite", "passed")} | {"error": error(result)}
