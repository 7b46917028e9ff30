"""The node-by-node view of a reduced-precision target (locate's second view): every intermediate tensor of
the fp32 graph against the same tensor of the reduced one (or of the device's own dump), in topological
order: cosine, max abs error, relative error, and whether inf/NaN appeared; the first jump (the first tensor
where inf/NaN appears that the fp32 tensor does not have, or whose 1 - cosine exceeds both `floor` and `k`
times the median 1 - cosine of every tensor before it), and per node the error it adds over the worst of its
inputs, summed per op type.

What is compared: every output of every node of the fp32 graph that depends on the image, whose values are
floating point, and whose name the reduced graph also produces (the fp16 converter and the
quantisers keep tensor names), with bounded memory: the compared tensors are grouped `chunk` at a time, each
group its own small ONNX model (graph.segments.SegmentRunner), so only the live tensors are held between groups
(marking every tensor as an output made ViT-B-16 peak at 2.1 GB instead of 1.5). Sessions run with graph
optimisation disabled, so each row is exactly one ONNX node."""

import csv
import re
from pathlib import Path

import numpy as np

from accuracy.measures import cosine
from graph import FLOAT_TYPES, load_graph, tensor_types, topological_order
from graph.segments import SegmentRunner
from pipeline.common import log

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


def _reference_session():
    """The session factory the graphs run on: the reference runtime's (backends/base.py REFERENCE)."""
    import backends

    return backends.reference().graph_session


def compare_graphs(reference_onnx: str | Path, target_onnx: str | Path, inputs: list[np.ndarray], input_name: str = "image",
           k: float = DEFAULTS["k"], floor: float = DEFAULTS["floor"], atol: float = DEFAULTS["atol"],
           chunk: int = DEFAULTS["chunk"], threads: int = 1, fp16_storage: bool = True) -> tuple[list[dict], dict]:
    """(rows, summary): every compared tensor of `target_onnx` against `reference_onnx` (fp32), worst
    case over `inputs` (arrays fed as `input_name`). fp16_storage: every fp16 tensor of the target is
    stored in fp16 between nodes (SegmentRunner), the view of fp16 hardware; a CPU runtime's own
    execution of an fp16 graph is at least as accurate (it computes most nodes in fp32: SegmentRunner)."""
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
    session = _reference_session()
    ref = SegmentRunner(reference_onnx, groups, session, threads)
    got = SegmentRunner(target_onnx, groups, session, threads, fp16_storage=fp16_storage)
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

    stats = compare_runs(rows, groups, SegmentRunner(reference_onnx, groups, _reference_session(), threads), Given(),
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
