"""repair: the smallest set of nodes kept in fp32 that brings a reduced-precision target back over the gates
it missed, each candidate built by the target's plan (scripts/backends/: build_reduced keeps nodes in fp32,
the set closed by graph.closure.kept_closure, weights and outputs included, with the backend's own tools) and judged
as the target computes (its load_reduced) on every input.

What it judges (accuracy.causes.Judge): vs_torch_fp32 on every input, and every other gate the target missed
that this job can measure again (TargetGates: the seed's offline vs onnx_fp16 cosine on the items that stage
covers, the image-to-image ranking against torch_fp32). A missed gate it cannot measure (image-to-label
ranking, zero-shot) is listed in `not_acted_on` with its value from similarity.json, and the record never
says `passed` while one is.

1. Converge. Starting from the target as built, whole units (residual blocks, the stem, the head) are
   added to the kept set in the order locate measured them (causes.order: the worst alone first, or the best
   restoring first where locate had to measure the complement), until the judge passes.
2. If every unit is kept and it still fails, nothing is blamed unmeasured: the all-fp32 candidate (every
   candidate node kept, closed) is compared with the fp32 graph run on the reference runtime. If they match
   (cosine >= MATCH on every input) the fp32 model itself misses the gate; if not, the backend's mechanism
   cannot express fp32 there, and the record names the first tensor where the two part.
3. Shrink to a 1-minimal set. The kept nodes are taken out again, in halves, then quarters, ... then one
   at a time (ddmin), each removal kept when the judge still passes; it ends when no single kept node can
   be removed without failing, checked against the final set.

The record lists every step both ways (added or removed, nodes kept, cosine, passed), the kept set and its
closure apart, and the speed of the repaired model against the unrepaired one and against fp32, measured the
same way in one job (`max_builds` bounds the builds of the whole search)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from accuracy.causes import Judge, Measure, error, graph_candidates, inputs_and_references, units_of
from accuracy.measures import cosine
from graph.closure import kept_closure
from pipeline.common import log

# the all-fp32 candidate "matches" the fp32 graph at this cosine on every input (and no inf/NaN)
MATCH = 0.99999


class OutOfBuilds(RuntimeError):
    """The search reached max_builds."""


class TargetGates:
    """The target's missed gates (similarity.json) beside vs_torch_fp32 that repair measures again on each
    candidate's outputs ({item: feature}); `not_acted_on` lists the others, each with its recorded value."""

    def __init__(self, similarity: dict | None, references: dict[str, dict], gate: float):
        from accuracy.similarity import missed

        self.references, self.checks, self.not_acted_on = references, [], []
        broken = {g["a"]: g for g in missed(similarity or {}) if g["b"] == "torch_fp32" and g.get("kind") != "ranking"}
        for g in missed(similarity or {}):
            if g["a"] != "offline":
                continue  # another stage's gate: the reference chain's, not the target's
            if g.get("kind") != "ranking" and g["b"] == "torch_fp32" and g["threshold"] <= gate:
                continue  # the judge's own gate
            if g.get("kind") != "ranking" and g["b"] in broken:
                self.not_acted_on.append({**g, "why": (
                    f"{self._what(g)} = {self._value(g):.6g} (threshold {g['threshold']:g}): {g['b']} itself misses "
                    f"vs_torch_fp32 (cosine min {self._value(broken[g['b']]):.6g}, similarity.json), so no kept set "
                    "of the target can meet a gate against it")})
            elif g.get("kind") != "ranking" and g["b"] in references:
                self.checks.append(g)
            elif g.get("kind") == "ranking" and g["measure"].startswith("image_to_image"):
                self.checks.append(g)
            else:
                self.not_acted_on.append({**g, "why": (
                    f"{self._what(g)} = {self._value(g):.6g} (threshold {g['threshold']:g}, similarity.json): repair "
                    "measures this tower's features only, so it cannot judge this gate again")})

    @staticmethod
    def _what(g: dict) -> str:
        return g.get("measure") or f"{g['a']} vs {g['b']} cosine min"

    @staticmethod
    def _value(g: dict) -> float:
        value = g.get("value", g.get("cosine_min"))
        return float("nan") if value is None else value

    def __call__(self, outputs: dict[str, np.ndarray]) -> list[dict]:
        from accuracy import ranking
        from accuracy.measures import stack

        out = []
        for g in self.checks:
            if g.get("kind") == "ranking":
                stems = sorted(outputs)
                r = ranking.image_to_image(stack(self.references["torch_fp32"], stems), stack(outputs, stems), stems)
                key = g["measure"].removeprefix("image_to_image_")
                value = r[key]
            else:
                items = sorted(set(outputs) & set(self.references[g["b"]]))
                value = min(cosine(outputs[i], self.references[g["b"]][i]) if np.isfinite(outputs[i]).all()
                            else float("nan") for i in items)
            out.append({"measure": g.get("measure") or f"{g['a']}_vs_{g['b']}_cosine_min", "a": g["a"], "b": g["b"],
                        "value": value, "threshold": g["threshold"], "passed": bool(value >= g["threshold"])})
        return out


def _check(measure: Measure, max_builds: int):
    def check(keep: list[str]) -> dict:
        if measure.builds >= max_builds:
            raise OutOfBuilds(f"repair_max_builds ({max_builds}) reached")
        return measure(keep)

    return check


def converge(check, units: dict[str, list[str]], order: list[str], steps: list[dict]) -> tuple[list[str], dict | None]:
    """Add whole units in `order` until the judge passes: (kept nodes, the passing result or None)."""
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


def shrink(check, kept: list[str], last: dict, steps: list[dict]) -> tuple[list[str], dict, bool]:
    """ddmin: remove chunks of the kept set (halves, then smaller) while the judge still passes, then single
    nodes until none can go: (kept, its passing result, True) for a 1-minimal set; when the builds run out
    first, the smallest passing set found so far and False. `last` is the passing result of `kept`."""
    size = max(1, len(kept) // 2)
    while kept:
        removed_any = False
        i = 0
        while i < len(kept):
            chunk = kept[i:i + size]
            trial = [n for n in kept if n not in chunk]
            try:
                r = check(trial)
            except OutOfBuilds:
                return kept, last, False
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
    return kept, last, True


def all_fp32_verdict(measure: Measure, graph: str, nodes: list[dict], scratch: Path) -> dict:
    """Step 2 of the module docstring: the all-fp32 candidate built through the plan and compared with the
    fp32 graph on the reference runtime, input by input; `reason` rests on the figures beside it."""
    import backends

    every = [n["node"] for n in nodes]
    candidate = measure(every, scratch / "all_fp32", keep_outputs=True)
    run = backends.reference().load_reduced(graph, measure.options)
    fp32 = [np.asarray(run(x)) for x in measure.inputs]
    vs = [cosine(c, f) if np.isfinite(c).all() else float("nan") for c, f in zip(candidate["outputs"], fp32)]
    fp32_judged = measure.judge(fp32)
    out = {"candidate": {"nodes": len(every), "closure": len(kept_closure(graph, every)),
                         "cosine_min_vs_torch_fp32": candidate["cosine_min"], "nonfinite": candidate["nonfinite"],
                         "passed": candidate["passed"]},
           "fp32_graph": {"cosine_min_vs_torch_fp32": fp32_judged["cosine_min"], "passed": fp32_judged["passed"]},
           "candidate_vs_fp32_graph": {"cosine_min": min(vs) if all(np.isfinite(vs)) else float("nan"),
                                       "threshold": MATCH}}
    matches = bool(all(np.isfinite(vs)) and min(vs) >= MATCH)
    out["matches"] = matches
    who = f"the all-fp32 candidate ({len(every)} candidate nodes and their closure)"
    if matches:
        out["reason"] = (f"{who} matches the fp32 graph (cosine min {min(vs):.7f} >= {MATCH}) and still misses "
                         f"{_misses(candidate, measure.gate)}; the fp32 graph itself: {_misses(fp32_judged, measure.gate)}: "
                         "the fp32 model itself misses it")
        return out
    parted = _first_difference(graph, candidate["model"], measure)
    out["first_difference"] = parted
    where = (f"they part first at tensor {parted['tensor']} (node {parted['node']}, {parted['op_type']}: "
             f"1 - cosine {parted['one_minus_cosine']:.3g}{', new inf/NaN' if parted['nonfinite_new'] else ''})"
             if parted and parted.get("tensor") else (parted or {}).get("why", "no tensor compared"))
    out["reason"] = (f"{who} does not match the fp32 graph (cosine min vs it "
                     f"{out['candidate_vs_fp32_graph']['cosine_min']:.6g} < {MATCH}"
                     f"{', ' + str(candidate['nonfinite']) + ' inf/NaN' if candidate['nonfinite'] else ''}): "
                     f"{measure.plan.NAME}'s way of keeping nodes in fp32 cannot express fp32 there; {where}")
    return out


def _misses(result: dict, gate: float) -> str:
    """What a judged result misses, with its figures (or what it meets)."""
    parts = [f"vs_torch_fp32 (cosine min {result['cosine_min']:.6f}, gate {gate})"] if not (
        result["cosine_min"] >= gate) else []
    parts += [f"{g['measure']} ({g['value']:.6g}, threshold {g['threshold']:g})" for g in result.get("gates", [])
              if not g["passed"]]
    return " and ".join(parts) or f"nothing (cosine min {result['cosine_min']:.6f} >= {gate})"


def _first_difference(graph: str, model: str, measure: Measure) -> dict | None:
    """The first tensor (topological order) where `model` and the fp32 graph part on the first input: new
    inf/NaN, or 1 - cosine over 1e-5 with values off by more than node_view's atol."""
    if not str(model).endswith(".onnx"):
        return {"why": f"{measure.plan.NAME}'s model is not an ONNX graph: its tensors cannot be compared with the "
                       "fp32 graph's node by node"}
    from accuracy.node_view import compare_graphs
    from backends.base import model_inputs

    rows, _ = compare_graphs(graph, model, measure.inputs[:1], model_inputs(graph)[0].name,
                             threads=int(measure.options.get("threads", 1)))
    row = next((r for r in rows if r["nonfinite_new"] or r["error"] > 1e-5), None)
    if row is None:
        return {"why": "every compared tensor agrees within 1e-5: they part only in tensors the graphs do not share"}
    return {k: row[k] for k in ("depth", "node", "op_type", "tensor", "one_minus_cosine", "nonfinite_new")}


def repair(plan, fp32_onnx: str | Path, precision: str, npy: list[str], reference_files: list[str], gate: float,
           options: dict, locate_record: dict, out_dir: str | Path, max_builds: int = 200, speed_loop: int = 10,
           similarity: dict | None = None, references: dict[str, dict] | None = None) -> dict:
    """The whole repair of one target: the record (see the module docstring) and, in out_dir, the repaired
    model (the target as built when it already passed or nothing passed). `similarity`: the target's
    similarity.json (its missed gates); `references`: {stage: {item: feature}} of the reference stages
    those gates name (torch_fp32 is read from `reference_files`)."""
    out_dir = Path(out_dir)
    scratch = out_dir.parent / f".{out_dir.name}-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        files, inputs, torch_fp32 = inputs_and_references(npy, reference_files)
        stems = [Path(f).stem for f in files]
        refs = {**(references or {}), "torch_fp32": dict(zip(stems, torch_fp32))}
        gates = TargetGates(similarity, refs, gate)
        graph, nodes = graph_candidates(plan, fp32_onnx, precision, scratch, options)
        units = units_of(nodes)
        judge = Judge(stems, torch_fp32, gate, gates if gates.checks else None)
        measure = Measure(plan, graph, precision, inputs, judge, options, scratch)
        check = _check(measure, max_builds)
        causes = (locate_record or {}).get("causes") or {}
        order = [u for u in causes.get("order") or [u["unit"] for u in causes.get("units", [])] if u in units]
        order += [u for u in units if u not in order]  # any unit locate did not measure, in graph order
        steps: list[dict] = []
        before = check([])
        record = {"precision": precision, "backend": plan.NAME, "gate": gate, "inputs": len(inputs),
                  "before": _short(before), "candidates": len(nodes), "steps": steps, "kept": [], "closure": [],
                  "passed": before["passed"], "repaired": False, "not_acted_on": gates.not_acted_on}
        kept: list[str] = []
        if not before["passed"]:
            try:
                kept, passing = converge(check, units, order, steps)
                if passing is None:
                    record["all_fp32"] = all_fp32_verdict(measure, graph, nodes, scratch)
                    record["reason"] = record["all_fp32"]["reason"]
            except OutOfBuilds as exc:
                passing, kept = None, []
                record["reason"] = f"{exc} before any kept set passed (the last step: {_last(steps)})"
            if passing is not None:
                grown = len(kept)
                kept, passing, minimal = shrink(check, kept, passing, steps)
                record.update(passed=True, repaired=True, grown_to=grown, after=_short(passing), minimal=minimal)
                if not minimal:
                    record["reason"] = (f"repair_max_builds ({max_builds}) reached while shrinking: the {len(kept)} "
                                        "kept nodes pass but may not be 1-minimal")
        record["kept"] = kept if record["repaired"] else []
        record["closure"] = kept_closure(graph, record["kept"]) if record["kept"] else []
        record["kept_units"] = sorted({n["unit"] for n in nodes if n["node"] in set(record["kept"])})
        if record["not_acted_on"]:
            names = ", ".join(g.get("measure") or f"{g['a']} vs {g['b']}" for g in record["not_acted_on"])
            record["passed"] = False
            record["reason"] = "; ".join(filter(None, [record.get("reason"), f"the target still misses {names}: "
                                                       + "; ".join(g["why"] for g in record["not_acted_on"])]))
        shutil.rmtree(out_dir, ignore_errors=True)
        final = measure.model(record["kept"], out_dir)
        record["model"] = final
        if record["repaired"]:
            models = {"repaired": final, "unrepaired": measure.model([], scratch / "unrepaired"),
                      "fp32": measure.model([n["node"] for n in nodes], scratch / "fp32")}
            record["speed"] = speed(measure, models, inputs[0], speed_loop)
        record["builds"] = measure.builds
        log.info("repair: %s after %d builds, %d node(s) kept (+%d by closure)%s",
                 "passed" if record["passed"] else "FAILED", measure.builds, len(record["kept"]),
                 len(record["closure"]), f": {record['reason']}" if record.get("reason") else "")
        return record
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def speed(measure: Measure, models: dict[str, str], x: np.ndarray, loop: int = 10, warmup: int = 1) -> dict:
    """Median latency (ms) of each model on one input, as its plan runs it, in one job, with the ratios:
    the repaired model against the unrepaired one and against fp32."""
    from timing import time_runs

    out = {}
    for name, model in models.items():
        run = measure.plan.load_reduced(model, measure.options)
        out[name] = time_runs(run, [x], 1, loop, warmup, f"repair speed {name}")["latency_ms"]["p50"]
    return {"latency_ms_p50": out, "repaired_vs_unrepaired": out["repaired"] / out["unrepaired"],
            "repaired_vs_fp32": out["repaired"] / out["fp32"], "loop": loop,
            "measured_on": "this host, batch 1, one input, as the plan computes"
                           + ("" if measure.plan.RUNS_ON_HOST_CPU else " (the CPU proxy of the device, not the device)")}


def _last(steps: list[dict]) -> str:
    if not steps:
        return "none"
    s = steps[-1]
    return f"{s['phase']}, {s['nodes']} nodes kept, cosine min {s['cosine_min']:.6g}"


def _short(result: dict) -> dict:
    out = {k: result[k] for k in ("cosine_min", "per_input", "nonfinite", "passed")} | {"error": error(result)}
    if "gates" in result:
        out["gates"] = result["gates"]
    return out
