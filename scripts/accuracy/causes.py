"""locate's measured causes (its primary view): which part of the tower loses the accuracy, measured on the
final feature. The target's plan (scripts/backends/) rebuilds the model with chosen nodes kept in fp32 (its
build_reduced, the kept set closed by graph.closure.kept_closure), and each build is judged against cn_clip's
PyTorch fp32 features on the run's first inputs, by the target's own gates (Judge).

1. Each part alone. Every unit of the tower (each residual block, plus the stem before the first and the head
   after the last) alone at the target's precision, every other candidate node in fp32: the error it causes
   alone is `1 - cosine min` (2 where inf/NaN appeared). This fits an fp16 overflow, whose error is zero
   until one node, and int8, where every quantised node adds a little from the first one on.
2. When that cannot tell, the complement. The one-part-at-a-time measurement cannot name a cause when every
   unit alone misses the gate (something outside every unit, or several units, breaks it), when no unit alone
   misses it (the loss builds up over several), or when the top two are tied (within TIE_MARGIN of each
   other). Then each unit alone is kept in fp32, everything else at the target's precision: the unit whose
   fp32 restores the gate, or most of it, is the cause, unless that too is tied.
3. The nodes of the cause: each node of the cause unit reduced alone (step 1: everything else in fp32; step 2:
   the rest of the unit in fp32, everything else reduced). Nodes whose errors tie are named together.

Every verdict (`decided`, `why`) is written from the figures beside it in the same record. Cost: units + 1
builds, + units when step 1 cannot tell, + the cause unit's nodes (at most `max_nodes`)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from accuracy.measures import cosine
from accuracy.node_view import compared_rows
from graph import MOVES, SHAPE_OPS, load_graph
from pipeline.common import log

# two errors within this fraction of the larger are a tie: the measurement cannot order them
TIE_MARGIN = 0.1
_UNIT = re.compile(r"resblocks\.(\d+)|/layer\.(\d+)/|/layer(\d+)/")


def unit_name(node: str) -> str | None:
    """The residual unit a node of a cn_clip tower belongs to: a ViT's `resblocks.N`, the text encoder's
    `layer.N`, RN50's stage `layerN`; None outside them."""
    m = _UNIT.search(node)
    if not m:
        return None
    if m.group(1) is not None:
        return f"resblocks.{m.group(1)}"
    return f"layer.{m.group(2)}" if m.group(2) is not None else f"layer{m.group(3)}"


def candidates(graph, op_types=None) -> list[dict]:
    """The nodes a precision can change, in topological order, each with its unit: those that depend on the
    graph input, compute in floating point and neither move data nor make shapes (graph.MOVES, SHAPE_OPS:
    they are kept with the nodes around them by the closure, never causes of their own; `op_types`: only
    these, e.g. the ops a quantiser quantises). Nodes outside every residual unit are the `stem` (before
    the first) or `head`."""
    rows = compared_rows(graph, None)
    seen, out, started = set(), [], False
    for r in rows:
        if r["node"] in seen or r["op_type"] in MOVES | SHAPE_OPS or (op_types and r["op_type"] not in op_types):
            continue
        seen.add(r["node"])
        unit = unit_name(r["node"])
        started = started or unit is not None
        out.append({"node": r["node"], "op_type": r["op_type"], "unit": unit or ("head" if started else "stem")})
    return out


def units_of(nodes: list[dict]) -> dict[str, list[str]]:
    """{unit: its candidate nodes}, units in graph order."""
    out: dict[str, list[str]] = {}
    for n in nodes:
        out.setdefault(n["unit"], []).append(n["node"])
    return out


def error(result: dict) -> float:
    """The error a measurement counts with: 1 - cosine min, 2 where inf/NaN appeared."""
    return 2.0 if result["nonfinite"] or not np.isfinite(result["cosine_min"]) else 1.0 - result["cosine_min"]


def tied(a: float, b: float) -> bool:
    """Whether two errors are within TIE_MARGIN of the larger (equal errors, 2.0 and 2.0 for two NaN
    outputs, always are)."""
    return abs(a - b) <= TIE_MARGIN * max(abs(a), abs(b))


class Judge:
    """The gate a rebuilt model is judged by: the per-input cosine vs torch_fp32 >= `gate` on every input,
    and, where `extra` names them, the target's other gates this job can measure again (accuracy.gates)."""

    def __init__(self, stems: list[str], reference: list[np.ndarray], gate: float, extra=None):
        self.stems, self.reference, self.gate, self.extra = stems, reference, gate, extra

    def __call__(self, outputs: list[np.ndarray]) -> dict:
        cos = [cosine(o, r) if np.isfinite(o).all() else float("nan") for o, r in zip(outputs, self.reference)]
        finite = [c for c in cos if np.isfinite(c)]
        worst = min(finite) if len(finite) == len(cos) else float("nan")
        result = {"cosine_min": worst, "per_input": cos, "nonfinite": sum(int((~np.isfinite(o)).sum()) for o in outputs),
                  "passed": bool(len(finite) == len(cos) and worst >= self.gate)}
        if self.extra is not None:
            result["gates"] = self.extra(dict(zip(self.stems, outputs)))
            result["passed"] = result["passed"] and all(g["passed"] for g in result["gates"])
        return result


class Measure:
    """Builds the target's model with a set of nodes kept in fp32 (its plan's build_reduced, which closes the
    set) and judges it: {"cosine_min", "per_input", "nonfinite", "passed", "kept", ("gates")}. Each call is one
    build and one run over the inputs (`builds` counts them)."""

    def __init__(self, plan, graph: str | Path, precision: str, inputs: list[np.ndarray], judge: Judge,
                 options: dict, scratch: str | Path):
        self.plan, self.graph, self.precision = plan, str(graph), precision
        self.inputs, self.judge, self.options = inputs, judge, options
        self.gate = judge.gate
        self.scratch = Path(scratch)
        self.builds = 0

    def model(self, keep: list[str], folder: str | Path | None = None) -> str:
        self.builds += 1
        out = Path(folder) if folder else self.scratch / f"build{self.builds}"
        out.mkdir(parents=True, exist_ok=True)
        return self.plan.build_reduced(self.graph, self.precision, list(keep), out, self.options)

    def outputs(self, model: str) -> list[np.ndarray]:
        run = self.plan.load_reduced(model, self.options)
        return [np.asarray(run(x)) for x in self.inputs]

    def __call__(self, keep: list[str], folder: str | Path | None = None, keep_outputs: bool = False) -> dict:
        model = self.model(keep, folder)
        outs = self.outputs(model)
        result = {**self.judge(outs), "kept": len(keep), "model": model}
        if keep_outputs:
            result["outputs"] = outs
        if folder is None:  # a measurement's model is not kept
            shutil.rmtree(Path(model).parent, ignore_errors=True)
            result.pop("model")
        return result


def _row(unit: str, members: list[str], r: dict) -> dict:
    return {"unit": unit, "nodes": len(members), "error": error(r), "cosine_min": r["cosine_min"],
            "nonfinite": r["nonfinite"], "passed": r["passed"]}


def _figures(rows: list[dict], n: int = 3) -> str:
    return ", ".join(f"{r['unit']} {'inf/NaN' if r['nonfinite'] else format(r['error'], '.3g')}" for r in rows[:n])


def judge_alone(ranked: list[dict]) -> tuple[bool, str]:
    """(decided, why) of step 1, from its figures (units worst first)."""
    if not ranked:
        return False, "no candidate node to measure"
    if all(not u["passed"] for u in ranked):
        return False, (f"every unit alone at the target's precision misses the gate ({len(ranked)} of {len(ranked)}; "
                       f"worst {_figures(ranked)}): the one-part-at-a-time measurement cannot tell")
    top = ranked[0]
    if top["passed"]:
        return False, (f"no unit alone misses the gate (worst {_figures(ranked)}): the loss builds up over "
                       "several parts")
    if len(ranked) > 1 and tied(top["error"], ranked[1]["error"]):
        return False, (f"the top two are tied ({_figures(ranked, 2)}, within {TIE_MARGIN:.0%}): no cause is named "
                       "from a tie")
    return True, f"{top['unit']} alone misses the gate ({_figures(ranked, 2)})"


def judge_complement(ranked: list[dict], target_error: float) -> tuple[bool, str]:
    """(decided, why) of step 2, from its figures (units best restoring first)."""
    if not ranked:
        return False, "no candidate node to measure"
    top = ranked[0]
    restored = target_error - top["error"]
    if restored <= 0:
        return False, (f"no unit kept alone in fp32 lowers the error (target {target_error:.3g}; best "
                       f"{_figures(ranked, 2)}): the cause cannot be told apart unit by unit")
    if len(ranked) > 1 and (top["passed"] and ranked[1]["passed"] or
                            tied(restored, target_error - ranked[1]["error"])):
        return False, (f"the two best units kept alone in fp32 are tied ({_figures(ranked, 2)}; target "
                       f"{target_error:.3g}): no cause is named from a tie")
    how = "restores the gate" if top["passed"] else f"restores {restored / target_error:.0%} of the error"
    return True, f"{top['unit']} kept alone in fp32 {how} (error {_figures(ranked, 2)}; target {target_error:.3g})"


def measure_causes(measure: Measure, nodes: list[dict], max_nodes: int = 64) -> dict:
    """Steps 1 to 3 of the module docstring: {"target", "units" (step 1, worst first), "decided", "why",
    "method" ("alone" or "complement"), "complement" (step 2, best first, when measured), "order" (the units
    repair grows by), "cause" (the unit or None), "nodes" (step 3, worst first), "tied_nodes", "builds",
    "inputs"}."""
    units = units_of(nodes)
    everything = [n["node"] for n in nodes]
    target = measure([])
    log.info("locate: target as built: cosine min %.6f%s", target["cosine_min"],
             f", {target['nonfinite']} inf/NaN" if target["nonfinite"] else "")
    alone = []
    for unit, members in units.items():
        inside = set(members)
        r = measure([n for n in everything if n not in inside])
        alone.append(_row(unit, members, r))
        log.info("locate: only %s reduced (%d nodes): cosine min %.6f", unit, len(members), r["cosine_min"])
    alone.sort(key=lambda u: -u["error"])
    decided, why = judge_alone(alone)
    if target["passed"]:  # measured on request (locate: all): a ranking of what costs accuracy, no cause
        decided, why = False, (f"the target as built meets the gate (cosine min {target['cosine_min']:.6f} >= "
                               f"{measure.gate}): nothing to locate; the units alone are ranked for information")
    out = {"target": {k: target[k] for k in ("cosine_min", "nonfinite", "passed")} | {"error": error(target)},
           "units": alone, "decided": decided, "why": why, "method": "alone", "complement": None,
           "order": [u["unit"] for u in alone], "cause": alone[0]["unit"] if decided else None}
    if not decided and alone and not target["passed"]:
        log.info("locate: %s; measuring each unit alone in fp32 instead", why)
        complement = []
        for unit, members in units.items():
            r = measure(members)
            complement.append(_row(unit, members, r))
            log.info("locate: only %s in fp32 (%d nodes): cosine min %.6f", unit, len(members), r["cosine_min"])
        complement.sort(key=lambda u: u["error"])
        decided, why2 = judge_complement(complement, error(target))
        out.update(method="complement", complement=complement, order=[u["unit"] for u in complement],
                   decided=decided, why=f"{why}; {why2}", cause=complement[0]["unit"] if decided else None)
    per_node = []
    if out["cause"]:
        members = units[out["cause"]]
        for n in [n for n in nodes if n["unit"] == out["cause"]][:max_nodes]:
            if out["method"] == "alone":
                keep = [m for m in everything if m != n["node"]]
            else:
                keep = [m for m in members if m != n["node"]]
            r = measure(keep)
            per_node.append({**n, "error": error(r), "cosine_min": r["cosine_min"], "nonfinite": r["nonfinite"]})
        per_node.sort(key=lambda n: -n["error"])
    top_nodes = [n["node"] for n in per_node if n["error"] > 0 and tied(n["error"], per_node[0]["error"])]
    out.update(nodes=per_node, tied_nodes=top_nodes if len(top_nodes) > 1 else [], builds=measure.builds,
               inputs=len(measure.inputs),
               measured=("step 1: each unit alone at the target's precision, every other candidate node in fp32"
                         + ("; step 2: each unit alone in fp32, everything else at the target's precision"
                            if out["method"] == "complement" else "")
                         + "; error = 1 - cosine min vs torch_fp32 (2 where inf/NaN appeared)"))
    return out


def inputs_and_references(npy: list[str], reference_files: list[str], limit: int | None = None
                          ) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
    """(npy files, inputs, their torch_fp32 features): the first `limit` inputs by name, paired with the
    reference features (pipeline.common.write_features files) by item name."""
    from pipeline.common import read_features

    files = sorted(npy)[:limit] if limit else sorted(npy)
    refs = read_features(reference_files)
    missing = [Path(f).stem for f in files if Path(f).stem not in refs]
    if missing:
        raise ValueError(f"no torch_fp32 reference for inputs {missing}")
    return files, [np.load(f) for f in files], [refs[Path(f).stem] for f in files]


def graph_candidates(plan, fp32_onnx: str | Path, precision: str, scratch: str | Path, options: dict
                     ) -> tuple[str, list[dict]]:
    """(the graph whose node names the plan keeps, its candidate nodes for `precision`)."""
    graph = plan.reduced_graph(fp32_onnx, precision, scratch, options)
    return graph, candidates(load_graph(graph), getattr(plan, "CANDIDATE_OPS", {}).get(precision))
