"""locate: why does a reduced-precision target lose accuracy? Two views, both in locate.json.

Causes, measured (the primary view). The target's plan (scripts/backends/) rebuilds the model with one
part at a time at the target's precision and everything else in fp32, and each part's effect is measured
on the final feature against cn_clip's PyTorch fp32 model, on the first inputs of the run: first every
unit of the tower (each residual block, plus the stem before the first and the head after the last),
then every node of the worst unit. The error a part causes alone is `1 - cosine min` with only it
reduced; the ranking of units is what repair grows its kept set by. Cost: units + 1 + the worst unit's
nodes builds, each run on `max_inputs` inputs (ViT-H-14: 34 units; README "Localise and repair").
This fits every precision: an fp16 overflow, whose error is zero until one node, and int8, where every
quantised node adds a little from the first one on and the first change says nothing.

Node by node (the second view), where the plan's reduced model is an ONNX graph: every intermediate
tensor of the fp32 graph against the same tensor of the reduced one (or of the device's own dump),
in topological order: cosine, max abs error, relative error, and whether inf/NaN appeared; the first
jump (the first tensor where inf/NaN appears that the fp32 tensor does not have, or whose 1 - cosine
exceeds both `floor` and `k` times the median 1 - cosine of every tensor before it), and per node the
error it adds over the worst of its inputs, summed per op type.

What is compared there: every output of every node of the fp32 graph that depends on the image, whose
values are floating point, and whose name the reduced graph also produces (the fp16 converter and ONNX
Runtime's quantisers keep tensor names), with bounded memory: the compared tensors are grouped `chunk` at
a time, each group its own small ONNX model run on ONNX Runtime (backends.graph.SegmentRunner), so only
the live tensors are held between groups (marking every tensor as an output made ViT-B-16 peak at 2.1 GB
instead of 1.5). Sessions run with graph optimisation disabled, so each row is exactly one ONNX node."""

import csv
import re
from pathlib import Path

import numpy as np

from backends.graph import FLOAT_TYPES, SegmentRunner, load_graph, tensor_types, topological_order
from accuracy.measures import cosine
from pipeline.common import log, write_json

FP16_MAX = 65504.0
DEFAULTS = {"k": 10.0, "floor": 1e-4, "atol": 1e-3, "chunk": 64}
CSV_FIELDS = ["depth", "node", "op_type", "tensor", "block", "cosine_min", "one_minus_cosine", "error", "max_abs_err",
              "rel_err", "ref_max_abs", "target_nonfinite", "nonfinite_new", "increment", "inputs_error"]


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------

def activation_rows(model) -> list[dict]:
    """Every output of every node that depends on a graph input, in topological order, with its node."""
    inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    live = set(inputs)
    rows = []
    for index, node in enumerate(topological_order(list(model.graph.node))):
        if not any(x in live for x in node.input if x):
            continue
        live.update(o for o in node.output if o)
        for o in node.output:
            if o:
                rows.append({"node": node.name or o, "op_type": node.op_type, "tensor": o, "node_index": index,
                             "inputs": [x for x in node.input if x in live]})
    return rows


def block_of(name: str) -> int | None:
    """The residual block index in a cn_clip node name (`.../resblocks.7/mlp/...` -> 7), else None."""
    m = re.search(r"resblocks\.(\d+)", name)
    return int(m.group(1)) if m else None


def compared_rows(reference, target_names: set[str] | None) -> list[dict]:
    """The reference's activation outputs that are floating point (where known) and exist in the target."""
    types = tensor_types(reference)
    rows = []
    for r in activation_rows(reference):
        if types.get(r["tensor"], 1) not in FLOAT_TYPES:
            continue
        if target_names is not None and r["tensor"] not in target_names:
            continue
        rows.append(r)
    for depth, r in enumerate(rows):
        r["depth"] = depth
        r["block"] = block_of(r["node"])
    return rows


# --------------------------------------------------------------------------------------------
# Running a graph segment by segment (bounded memory)
# --------------------------------------------------------------------------------------------

# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------

def tensor_stats(ref: np.ndarray, got: np.ndarray) -> dict:
    """Cosine (measures.cosine, float64), max abs and relative error of `got` against `ref`. inf/NaN in
    `got` are counted, then saturated (+-65504, NaN -> 0) so the figures stay finite and comparable."""
    r = np.asarray(ref, dtype=np.float64).ravel()
    g = np.asarray(got, dtype=np.float64).ravel()
    if r.shape != g.shape:
        raise ValueError(f"shape mismatch: {np.shape(ref)} vs {np.shape(got)}")
    nonfinite = nonfinite_new = 0
    if not np.isfinite(g).all():
        bad_g = ~np.isfinite(g)
        nonfinite, nonfinite_new = int(bad_g.sum()), int((bad_g & np.isfinite(r)).sum())
        g = np.nan_to_num(g, nan=0.0, posinf=FP16_MAX, neginf=-FP16_MAX)
    if not np.isfinite(r).all():
        r = np.nan_to_num(r, nan=0.0)
    if r.size == 0:
        return {"cosine": 1.0, "max_abs_err": 0.0, "rel_err": 0.0, "ref_max_abs": 0.0,
                "target_nonfinite": 0, "nonfinite_new": 0}
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    diff = r - g
    return {"cosine": cosine(r, g) if nr > 0 and ng > 0 else (1.0 if nr == ng else 0.0),
            "max_abs_err": float(np.abs(diff).max()),
            "rel_err": float(np.linalg.norm(diff)) / nr if nr > 0 else float(ng > 0),
            "ref_max_abs": float(max(r.max(), -r.min())),
            "target_nonfinite": nonfinite, "nonfinite_new": nonfinite_new}


def _merge(acc: dict | None, s: dict) -> dict:
    """Worst case over images."""
    if acc is None:
        return dict(s)
    return {"cosine": min(acc["cosine"], s["cosine"]), "max_abs_err": max(acc["max_abs_err"], s["max_abs_err"]),
            "rel_err": max(acc["rel_err"], s["rel_err"]), "ref_max_abs": max(acc["ref_max_abs"], s["ref_max_abs"]),
            "target_nonfinite": acc["target_nonfinite"] + s["target_nonfinite"],
            "nonfinite_new": acc["nonfinite_new"] + s["nonfinite_new"]}


def error_of(stats: dict, atol: float = DEFAULTS["atol"]) -> float:
    """The error a row counts with: 1 - cosine; 0 where no element is off by more than `atol` (a tensor
    near zero, like a LayerNorm's mean, has a meaningless cosine: ViT-B-16's first ln_1 mean gives
    1 - cosine 0.92 in fp16 from a 2e-5 difference); at least 1 where inf/NaN appeared that the fp32
    tensor does not have."""
    if stats["nonfinite_new"]:
        return max(1.0, 1.0 - stats["cosine"])
    return 0.0 if stats["max_abs_err"] <= atol else max(0.0, 1.0 - stats["cosine"])


def finish_rows(rows: list[dict], stats: dict[str, dict], atol: float = DEFAULTS["atol"]) -> list[dict]:
    """Rows with their figures and per-node error increments, in depth order (tensors without figures dropped)."""
    err = {t: error_of(s, atol) for t, s in stats.items()}
    out = []
    for r in rows:
        s = stats.get(r["tensor"])
        if s is None:
            continue
        inputs_error = max((err[x] for x in r["inputs"] if x in err), default=0.0)
        out.append({**{k: r[k] for k in ("depth", "node", "op_type", "tensor", "block")},
                    "cosine_min": s["cosine"], "one_minus_cosine": 1.0 - s["cosine"], "error": err[r["tensor"]],
                    "max_abs_err": s["max_abs_err"],
                    "rel_err": s["rel_err"], "ref_max_abs": s["ref_max_abs"], "target_nonfinite": s["target_nonfinite"],
                    "nonfinite_new": s["nonfinite_new"], "inputs_error": inputs_error,
                    "increment": max(0.0, err[r["tensor"]] - inputs_error), "inputs": r["inputs"]})
    return out


def first_jump(rows: list[dict], k: float = DEFAULTS["k"], floor: float = DEFAULTS["floor"]) -> dict | None:
    """The first row with new inf/NaN, or whose error (error_of) exceeds `floor` and k x the median of all
    rows before it (the running median ignores a few noisy early rows, unlike the running mean)."""
    seen: list[float] = []
    for r in rows:
        e = r["error"]
        median = float(np.median(seen)) if seen else 0.0
        if r["nonfinite_new"] or (e > floor and e > k * median):
            return {**{key: r[key] for key in ("depth", "node", "op_type", "tensor", "block", "one_minus_cosine",
                                               "error", "nonfinite_new", "max_abs_err")}, "median_before": median}
        seen.append(e)
    return None


def op_type_shares(rows: list[dict]) -> list[dict]:
    """Sum of error increments per op type, largest first, with its share of the total."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for r in rows:
        sums[r["op_type"]] = sums.get(r["op_type"], 0.0) + r["increment"]
        counts[r["op_type"]] = counts.get(r["op_type"], 0) + 1
    total = sum(sums.values())
    return [{"op_type": op, "increment_sum": v, "share": v / total if total > 0 else 0.0, "nodes": counts[op]}
            for op, v in sorted(sums.items(), key=lambda kv: -kv[1])]


def overflow_nodes(rows: list[dict]) -> list[str]:
    """Nodes that read or write a tensor whose fp32 values exceed the fp16 range: such a tensor cannot be
    stored in fp16 at all, so these nodes (and the edges between them) must stay fp32."""
    big = {r["tensor"] for r in rows if r["ref_max_abs"] > FP16_MAX}
    return list(dict.fromkeys(r["node"] for r in rows if r["tensor"] in big or any(x in big for x in r["inputs"])))


def summarise(rows: list[dict], k: float, floor: float, atol: float, top: int = 20) -> dict:
    jump = first_jump(rows, k, floor)
    nonfinite = next((r for r in rows if r["nonfinite_new"]), None)
    blocks: dict[int, float] = {}
    for r in rows:
        if r["block"] is not None:
            blocks[r["block"]] = blocks.get(r["block"], 0.0) + r["increment"]
    ranked = sorted(rows, key=lambda r: (-r["increment"], r["depth"]))
    return {
        "tensors_compared": len(rows),
        "first_jump": jump,
        "first_nonfinite": {key: nonfinite[key] for key in ("depth", "node", "op_type", "tensor", "block")}
        if nonfinite else None,
        "op_types": op_type_shares(rows),
        "top_nodes": [{key: r[key] for key in ("depth", "node", "op_type", "block", "increment", "one_minus_cosine")}
                      for r in ranked[:top] if r["increment"] > 0],
        "blocks": [{"block": b, "increment_sum": v} for b, v in sorted(blocks.items(), key=lambda kv: -kv[1])[:top]],
        "overflow_nodes": overflow_nodes(rows),
        "final": {key: rows[-1][key] for key in ("node", "tensor", "cosine_min", "one_minus_cosine", "nonfinite_new")}
        if rows else None,
        "params": {"k": k, "floor": floor, "atol": atol},
    }


def compare_runs(rows: list[dict], groups: list[list[str]], reference, target, feeds: list[dict]) -> dict[str, dict]:
    """Worst-case figures over every feed of each compared tensor; `reference`/`target` are objects with
    run(feed) yielding per-group dicts (SegmentRunner), compared group by group and dropped."""
    stats: dict[str, dict] = {}
    for n, feed in enumerate(feeds):
        for want, ref_vals, got_vals in zip(groups, reference.run(feed), target.run(feed)):
            for t in want:
                if t in ref_vals and t in got_vals and np.issubdtype(ref_vals[t].dtype, np.floating):
                    stats[t] = _merge(stats.get(t), tensor_stats(ref_vals[t], got_vals[t]))
        log.info("locate: input %d/%d compared (%d tensors)", n + 1, len(feeds), len(stats))
    return stats


def group(rows: list[dict], chunk: int) -> list[list[str]]:
    names = [r["tensor"] for r in rows]
    return [names[i:i + chunk] for i in range(0, len(names), chunk)]


def compare_graphs(reference_onnx: str | Path, target_onnx: str | Path, inputs: list[np.ndarray], input_name: str = "image",
           k: float = DEFAULTS["k"], floor: float = DEFAULTS["floor"], atol: float = DEFAULTS["atol"],
           chunk: int = DEFAULTS["chunk"], threads: int = 1, fp16_storage: bool = True) -> tuple[list[dict], dict]:
    """(rows, summary): every compared tensor of `target_onnx` against `reference_onnx` (fp32), worst
    case over `inputs` (arrays fed as `input_name`). fp16_storage: every fp16 tensor of the target is
    stored in fp16 between nodes (SegmentRunner), the view of fp16 hardware; ONNX Runtime's own
    CPU execution of an fp16 graph is at least as accurate (it computes most nodes in fp32: SegmentRunner)."""
    target_graph = load_graph(target_onnx)
    target_names = {o for n in target_graph.graph.node for o in n.output} | {i.name for i in target_graph.graph.input}
    # per-node segments only matter where the target stores fp16 (an int8 graph computes in fp32)
    fp16_storage = fp16_storage and (
        any(t.data_type == 10 for t in target_graph.graph.initializer) or
        any(n.op_type == "Cast" and any(a.name == "to" and a.i == 10 for a in n.attribute) for n in target_graph.graph.node))
    del target_graph
    rows = compared_rows(load_graph(reference_onnx), target_names)
    groups = group(rows, chunk)
    log.info("locate: %d tensors of %s in both graphs, %d segments of up to %d", len(rows), Path(reference_onnx).name,
             len(groups), chunk)
    ref = SegmentRunner(reference_onnx, groups, threads)
    got = SegmentRunner(target_onnx, groups, threads, fp16_storage=fp16_storage)
    stats = compare_runs(rows, groups, ref, got, [{input_name: x} for x in inputs])
    rows = finish_rows(rows, stats, atol)
    summary = summarise(rows, k, floor, atol)
    summary.update(reference=str(reference_onnx), target=str(target_onnx), inputs=len(inputs), fp16_storage=fp16_storage,
                   memory={"approach": "segments", "chunk": chunk, "segments": len(groups)})
    return rows, summary


def compare_tensors(reference_onnx: str | Path, tensors: dict[str, np.ndarray], input_array: np.ndarray,
                    input_name: str = "image", k: float = DEFAULTS["k"], floor: float = DEFAULTS["floor"],
                    atol: float = DEFAULTS["atol"], chunk: int = DEFAULTS["chunk"],
                    threads: int = 1) -> tuple[list[dict], dict]:
    """Like compare_graphs(), the target's tensors being given ({ONNX tensor name: value} of the model run on
    `input_array`: a device's own dump, from its plan's node_tensors)."""
    rows = [r for r in compared_rows(load_graph(reference_onnx), None) if r["tensor"] in tensors]
    for depth, r in enumerate(rows):
        r["depth"] = depth
    groups = group(rows, chunk)

    class Given:
        def run(self, feed):
            for want in groups:
                yield {t: tensors[t] for t in want}

    stats = compare_runs(rows, groups, SegmentRunner(reference_onnx, groups, threads), Given(),
                         [{input_name: input_array}])
    rows = finish_rows(rows, stats, atol)
    summary = summarise(rows, k, floor, atol)
    summary.update(reference=str(reference_onnx), inputs=1,
                   memory={"approach": "segments", "chunk": chunk, "segments": len(groups)})
    return rows, summary


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------

def write_csv(rows: list[dict], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_FIELDS})


def read_csv(path: str | Path) -> list[dict]:
    """Rows back from write_csv (numbers as numbers) - what repair reads."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            row = dict(r)
            for key in ("depth", "target_nonfinite", "nonfinite_new"):
                row[key] = int(row[key])
            for key in ("cosine_min", "one_minus_cosine", "error", "max_abs_err", "rel_err", "ref_max_abs",
                        "increment", "inputs_error"):
                row[key] = float(row[key])
            row["block"] = int(row["block"]) if row["block"] else None
            out.append(row)
    return out


def plot(rows: list[dict], summary: dict, path: str | Path, title: str = "") -> None:
    """Error (log) against depth; new inf/NaN in red; the first jump marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(10, 4))
    depth = [r["depth"] for r in rows]
    ax.plot(depth, [max(r["one_minus_cosine"], 1e-12) for r in rows], lw=0.6, color="#bbbbbb",
            label="1 − cosine (raw)")
    ax.plot(depth, [max(r["error"], 1e-12) for r in rows], lw=0.9, color="#4466aa",
            label=f"error (1 − cosine; 0 where every element is within {summary['params']['atol']:g})")
    bad = [(r["depth"], max(r["error"], 1e-12)) for r in rows if r["nonfinite_new"]]
    if bad:
        ax.scatter(*zip(*bad), s=8, color="#cc2222", label="inf/NaN appeared", zorder=3)
    jump = summary.get("first_jump")
    if jump:
        ax.axvline(jump["depth"], color="#cc2222", ls="--", lw=0.8)
        name = jump["node"] if len(jump["node"]) <= 48 else "…" + jump["node"][-47:]
        ax.text(0.01, 0.03, f"first jump: {name} ({jump['op_type']}, depth {jump['depth']})",
                transform=ax.transAxes, fontsize=8, va="bottom", color="#cc2222")
    ax.set_yscale("log")
    ax.set_xlabel("depth (compared tensors in topological order)")
    ax.set_ylabel("1 − cosine (worst input)")
    ax.set_title(title or f"{Path(str(summary.get('target', ''))).name} vs fp32, node by node")
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_outputs(rows: list[dict], summary: dict, csv_path, chart_path, json_path, title: str = "") -> None:
    write_csv(rows, csv_path)
    plot(rows, summary, chart_path, title)
    write_json(json_path, summary)


def load_inputs(npy_files: list[str | Path], limit: int | None = None) -> list[np.ndarray]:
    """The first `limit` inputs as stored (float32 images, or the text tower's int64 token ids)."""
    files = sorted(npy_files)[:limit] if limit else sorted(npy_files)
    return [np.load(f) for f in files]


def gates_met(similarity_json: str | Path) -> dict | None:
    """The record locate writes in place of a localisation when every gate of the target's
    similarity.json was met (None when one was missed): the gates, and how to locate anyway."""
    from pipeline.common import read_json
    from accuracy.similarity import missed

    record = read_json(similarity_json)
    if missed(record):
        return None
    return {"located": False, "reason": "every gate met: not located (config `locate: all` locates anyway)",
            "similarity": str(similarity_json), "gates": record.get("gates", []), "first_jump": None,
            "overflow_nodes": [], "op_types": [], "blocks": [], "params": dict(DEFAULTS)}


# --------------------------------------------------------------------------------------------
# Causes, measured: each part alone at the target's precision, its effect on the final feature
# --------------------------------------------------------------------------------------------

# ONNX ops that only move or reshape values: no precision of their own, never a cause
DATA_MOVEMENT = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Shape", "Slice", "Concat", "Split",
                 "Identity", "Cast", "Constant", "ConstantOfShape", "Expand", "Flatten", "Range", "Tile"}
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
    graph input, compute in floating point and are not data movement (`op_types`: only these, e.g. the ops
    a quantiser quantises). Nodes outside every residual unit are the `stem` (before the first) or `head`."""
    rows = compared_rows(graph, None)
    seen, out, started = set(), [], False
    for r in rows:
        if r["node"] in seen or r["op_type"] in DATA_MOVEMENT or (op_types and r["op_type"] not in op_types):
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


class Measure:
    """Builds the target's model with a set of nodes kept in fp32 (its plan's build_reduced) and measures
    it against the reference features: {"cosine_min", "per_input", "nonfinite", "passed", "kept"}. Each call
    is one build and one run over the inputs (`builds` counts them)."""

    def __init__(self, plan, graph: str | Path, precision: str, inputs: list[np.ndarray],
                 reference: list[np.ndarray], gate: float, options: dict, scratch: str | Path):
        self.plan, self.graph, self.precision = plan, str(graph), precision
        self.inputs, self.reference, self.gate, self.options = inputs, reference, gate, options
        self.scratch = Path(scratch)
        self.builds = 0

    def model(self, keep: list[str], folder: str | Path | None = None) -> str:
        self.builds += 1
        out = Path(folder) if folder else self.scratch / f"build{self.builds}"
        out.mkdir(parents=True, exist_ok=True)
        return self.plan.build_reduced(self.graph, self.precision, list(keep), out, self.options)

    def outputs(self, model: str) -> list[np.ndarray]:
        run = self.plan.load_reduced(model, self.options)
        return [run(x) for x in self.inputs]

    def __call__(self, keep: list[str], folder: str | Path | None = None) -> dict:
        import shutil

        model = self.model(keep, folder)
        outs = self.outputs(model)
        cos = [cosine(np.nan_to_num(o, nan=0.0), r) if np.isfinite(o).all() else float("nan")
               for o, r in zip(outs, self.reference)]
        nonfinite = sum(int((~np.isfinite(o)).sum()) for o in outs)
        finite = [c for c in cos if np.isfinite(c)]
        worst = min(finite) if len(finite) == len(cos) else float("nan")
        result = {"cosine_min": worst, "per_input": cos, "nonfinite": nonfinite, "kept": len(keep),
                  "passed": bool(len(finite) == len(cos) and worst >= self.gate), "model": model}
        if folder is None:  # a measurement's model is not kept
            shutil.rmtree(Path(model).parent, ignore_errors=True)
            result.pop("model")
        return result


def measure_causes(measure: Measure, nodes: list[dict], max_nodes: int = 64) -> dict:
    """Each unit alone at the target's precision (every other candidate kept in fp32), then each node of
    the worst unit alone: {"target": the model as built, "units": [{unit, nodes, error, cosine_min,
    nonfinite}] worst first, "nodes": [{node, op_type, unit, error, ...}] of the worst unit, worst first,
    "builds"}."""
    units = units_of(nodes)
    everything = [n["node"] for n in nodes]
    target = measure([])
    log.info("locate: target as built: cosine min %.6f%s", target["cosine_min"],
             f", {target['nonfinite']} inf/NaN" if target["nonfinite"] else "")
    ranked = []
    for unit, members in units.items():
        alone = set(members)
        r = measure([n for n in everything if n not in alone])
        ranked.append({"unit": unit, "nodes": len(members), "error": error(r), "cosine_min": r["cosine_min"],
                       "nonfinite": r["nonfinite"]})
        log.info("locate: only %s reduced (%d nodes): cosine min %.6f", unit, len(members), r["cosine_min"])
    ranked.sort(key=lambda u: -u["error"])
    per_node = []
    if ranked and ranked[0]["error"] > 0:
        worst = ranked[0]["unit"]
        for n in [n for n in nodes if n["unit"] == worst][:max_nodes]:
            r = measure([m for m in everything if m != n["node"]])
            per_node.append({**n, "error": error(r), "cosine_min": r["cosine_min"], "nonfinite": r["nonfinite"]})
        per_node.sort(key=lambda n: -n["error"])
    return {"target": {k: target[k] for k in ("cosine_min", "nonfinite", "passed")}, "units": ranked,
            "nodes": per_node, "builds": measure.builds, "inputs": len(measure.inputs),
            "method": "each part alone at the target's precision, every other candidate node in fp32; "
                      "error = 1 - cosine min vs torch_fp32 (2 where inf/NaN appeared)"}


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


def localise(plan, fp32_onnx: str | Path, precision: str, npy: list[str], reference_files: list[str], gate: float,
             options: dict, scratch: str | Path, max_inputs: int = 4, device_model: str | None = None,
             params: dict | None = None) -> tuple[list[dict], dict]:
    """(node-by-node rows, summary) of one target: the measured causes (measure_causes) and the node-by-node
    view, against the graph its plan quantises or converts (plan.reduced_graph), on the first `max_inputs`
    inputs. `device_model`: the compiled model, whose own tensors the plan reads (plan.node_tensors) for the
    node-by-node view instead of the rebuilt graph's. `params`: k, floor, atol, chunk (DEFAULTS)."""
    from backends.base import model_inputs

    opts = {**DEFAULTS, **(params or {})}
    files, inputs, references = inputs_and_references(npy, reference_files, max_inputs)
    graph = plan.reduced_graph(fp32_onnx, precision, scratch, options)
    nodes = candidates(load_graph(graph), getattr(plan, "CANDIDATE_OPS", {}).get(precision))
    measure = Measure(plan, graph, precision, inputs, references, gate, options, scratch)
    causes = measure_causes(measure, nodes)
    name = model_inputs(fp32_onnx)[0].name
    threads = int(options.get("threads", 1))
    if device_model:
        tensors = plan.node_tensors(device_model, files[0], load_graph(fp32_onnx), scratch, options)
        rows, summary = compare_tensors(fp32_onnx, tensors, inputs[0], name, threads=threads,
                                        **{k: opts[k] for k in DEFAULTS})
        summary["source"] = "the device's own tensors (first input)"
    else:
        target = measure.model([], Path(scratch) / "target")
        if str(target).endswith(".onnx"):
            rows, summary = compare_graphs(graph, target, inputs, name, threads=threads,
                                           **{k: opts[k] for k in DEFAULTS})
            summary["source"] = "ONNX Runtime" + (" with fp16 storage" if summary.get("fp16_storage") else "")
        else:
            rows = []
            summary = {**summarise([], **{k: opts[k] for k in ("k", "floor", "atol")}),
                       "source": f"none: {plan.NAME}'s reduced model is not an ONNX graph, so only the measured "
                                 "causes are given"}
    top = causes["units"][0] if causes["units"] else None
    summary.update(located=True, causes=causes, precision=precision, backend=plan.NAME,
                   top_cause=({"unit": top["unit"], "error": top["error"],
                               "node": causes["nodes"][0]["node"] if causes["nodes"] else None}
                              if top and top["error"] > 0 else None))
    log.info("top cause: %s", summary["top_cause"])
    return rows, summary
