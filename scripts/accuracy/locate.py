"""locate: where does a reduced-precision model lose accuracy? Every intermediate tensor of the fp32 ONNX
against the same tensor of the target (fp16 ONNX, int8 ONNX, or an Ascend NPU dump), node by node in
topological order, on ONNX Runtime: cosine, max abs error, relative error, and whether inf/NaN appeared.

What is compared: every output of every node of the fp32 graph that depends on the image (not the
weight-only or constant branches), whose values are floating point, and whose name the target graph also
produces. The fp16 converter keeps tensor names (it adds Cast nodes with new names), ONNX Runtime's int8
quantiser keeps the name of each quantised node's output, so matching on the fp32 graph's names is exact;
tensors only the target has (Casts, QDQ) are not rows. The rows are in the fp32 graph's topological order
(`depth`). This is what Polygraphy's `--onnx-outputs mark all` compares, with bounded memory:

Memory. Marking every tensor as a graph output makes ONNX Runtime keep all of them alive until the run
ends, whatever subset is fetched (measured: ViT-B-16 fp32 peaks 2.1 GB with all 1056 marked, 1.5 GB
without, and the same 2.1 GB when only 50 of the marked ones are fetched). So the graph is cut instead:
the compared tensors, in order, are grouped `chunk` at a time; each group becomes its own small ONNX
model (the not yet computed nodes that group needs, their weights, as graph inputs the tensors
computed before that are still consumed later), one ONNX Runtime session each. Running the segments
in order is one forward pass; between segments only the live tensors are held (for a ViT: the
residual stream and shape values). Peak memory: both models' weights once, the live tensors, and one
group's outputs of each model. Weights are never loaded into Python for external-data models.

Sessions run with graph optimisation disabled, so each row is exactly one ONNX node; the deployed
ONNX Runtime model runs with fusions (e.g. LayerNormalization), which may compute some of these nodes
at higher precision, so the per-node view is the unfused graph's.

The first node where the error jumps: the first compared tensor where inf/NaN appears that the fp32
tensor does not have, or whose 1 - cosine exceeds both `floor` and `k` times the median 1 - cosine of
every tensor before it. The op types carrying the error: per node the increase of 1 - cosine over
the worst of its inputs (the error this node adds), summed per op type."""

import csv
import heapq
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from pipeline.common import log, write_json

FP16_MAX = 65504.0
FLOAT_TYPES = {1, 10, 11, 16}  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
DEFAULTS = {"k": 10.0, "floor": 1e-4, "atol": 1e-3, "chunk": 64}
CSV_FIELDS = ["depth", "node", "op_type", "tensor", "block", "cosine_min", "one_minus_cosine", "error", "max_abs_err",
              "rel_err", "ref_max_abs", "target_nonfinite", "nonfinite_new", "increment", "inputs_error"]


# --------------------------------------------------------------------------------------------
# Graphs
# --------------------------------------------------------------------------------------------

def load_graph(path: str | Path):
    """The ONNX model without loading external weights (they stay referenced by file offset)."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def topological_order(nodes) -> list:
    """Nodes in an order where every producer comes before its consumers (the fp16 converter appends
    its Cast nodes at the end of the node list, so a converted graph is not sorted)."""
    produced = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    deps = [{produced[x] for x in n.input if x in produced} for n in nodes]
    users: dict[int, list[int]] = {}
    for i, d in enumerate(deps):
        for j in d:
            users.setdefault(j, []).append(i)
    missing = [len(d) for d in deps]
    ready = [i for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)  # lowest original index first: keeps the exporter's order where it is valid
        order.append(i)
        for u in users.get(i, []):
            missing[u] -= 1
            if missing[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise ValueError("the graph has a cycle")
    return [nodes[i] for i in order]


def tensor_types(model) -> dict[str, int]:
    """{tensor name: onnx elem type}: the graph's own value_info, completed by ONNX shape inference on a
    copy whose initializers carry no data (types need no weights; torch's TorchScript export of cn_clip
    writes no value_info at all, and a full copy of ViT-H-14 would not fit protobuf's 2 GB)."""
    import onnx
    from onnx import helper

    g = model.graph
    inits = {t.name for t in g.initializer}
    light = helper.make_graph(  # weights become typed graph inputs
        list(g.node), g.name,
        [i for i in g.input if i.name not in inits] +
        [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in g.initializer],
        list(g.output), value_info=list(g.value_info))
    types = {}
    try:
        light = onnx.shape_inference.infer_shapes(helper.make_model(light, opset_imports=model.opset_import,
                                                                    ir_version=model.ir_version)).graph
    except Exception as exc:  # noqa: BLE001 - inference is a help, the runtime dtype decides
        log.info("shape inference failed (%s); using the graph's own value_info", exc)
    for v in list(light.value_info) + list(g.value_info) + list(g.output) + list(g.input):
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    return types


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

class SegmentRunner:
    """Runs `model_path` in consecutive segments, each producing one group of wanted tensors, holding
    between segments only the tensors later segments consume or later groups want. Sessions are built on
    the first run (segment input types come from the arrays then held) and reused for every later input.

    fp16_storage: every node that depends on the input is a segment of its own (with the constant or
    weight-only nodes it reads), so each of its fp16 outputs leaves ONNX Runtime as an fp16 array and
    the next node reads it back: every tensor is stored in fp16 between nodes, as on fp16 hardware.
    ONNX Runtime's CPU has fp16 kernels for data movement and LayerNormalization only (measured with
    1.32 on x86: MatMul, Gemm, Add, Mul, Div, Pow, Sqrt, ReduceMean, Sigmoid, Softmax, Erf... run in
    fp32 between Casts it inserts), and it drops the Casts between two such nodes, so inside one
    session a chain like MatMul -> Add -> Mul -> Sigmoid stays fp32 and a value past 65504 in the
    middle never overflows. An Identity or a Cast pair inserted between them is optimised away too."""

    def __init__(self, model_path: str | Path, groups: list[list[str]], threads: int = 1,
                 optimization: str = "disable_all", fp16_storage: bool = False):
        self.path = Path(model_path)
        self.model = load_graph(self.path)
        self.nodes = topological_order(list(self.model.graph.node))
        self.threads, self.optimization = threads, optimization
        self.inits = {t.name: t for t in self.model.graph.initializer}
        self.graph_inputs = [i.name for i in self.model.graph.input if i.name not in self.inits]
        producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        live = set(self.graph_inputs)
        types = tensor_types(self.model) if fp16_storage else {}
        active = set()  # nodes that depend on a graph input
        for i, n in enumerate(self.nodes):
            if any(x in live for x in n.input):
                active.add(i)
                live.update(n.output)
        done: set[int] = set()
        self.segments = []  # (node indices, wanted names, yield after this segment)
        for group in groups:
            need, stack = set(), [producer[t] for t in group if t in producer]
            while stack:
                i = stack.pop()
                if i in done or i in need:
                    continue
                need.add(i)
                stack.extend(producer[x] for x in self.nodes[i].input if x in producer)
            done |= need
            wanted = [t for t in group if t in producer or t in self.graph_inputs]
            parts = [sorted(need)]
            if fp16_storage:  # a segment ends after each input-dependent node with a floating-point output
                parts, pending = [], []
                for i in sorted(need):
                    pending.append(i)
                    if i in active and any(types.get(o, 1) in FLOAT_TYPES for o in self.nodes[i].output):
                        parts.append(pending)
                        pending = []
                if pending:
                    parts.append(pending)
            for j, part in enumerate(parts or [[]]):
                self.segments.append((part, wanted, j == len(parts or [[]]) - 1))
        # after segment s, keep the tensors a node of a later segment consumes or a group not yet yielded wants
        self.keep_after = []
        later: set[str] = set()
        for idx, wanted, _ in reversed(self.segments):
            self.keep_after.append(set(later))
            later.update(wanted)
            for i in idx:
                later.update(x for x in self.nodes[i].input if x)
        self.keep_after.reverse()
        self.sessions: list = [None] * len(self.segments)
        self.last_segment = max((s for s, seg in enumerate(self.segments) if seg[0]), default=-1)

    def _session(self, s: int, held: dict[str, np.ndarray]):
        import onnx
        import onnxruntime as ort
        from onnx import helper

        idx, wanted, _ = self.segments[s]
        nodes = [self.nodes[i] for i in idx]
        produced = {o for n in nodes for o in n.output if o}
        consumed = [x for n in nodes for x in n.input if x]
        inits = [self.inits[x] for x in dict.fromkeys(consumed) if x in self.inits]
        feeds = [x for x in dict.fromkeys(consumed) if x not in produced and x not in self.inits]
        absent = [x for x in feeds if x not in held]
        if absent:
            raise RuntimeError(f"segment {s} of {self.path.name} needs {absent[:3]}, not computed before")
        outputs = list(dict.fromkeys([t for t in wanted if t in produced] +
                                     [t for t in produced if t in self.keep_after[s]]))
        graph = helper.make_graph(
            nodes, f"segment{s}",
            [helper.make_tensor_value_info(x, helper.np_dtype_to_tensor_dtype(held[x].dtype), None) for x in feeds],
            [onnx.ValueInfoProto(name=o) for o in outputs], initializer=inits)
        seg = helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = self.threads, 1
        so.log_severity_level = 3
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{self.optimization.upper()}")
        if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in inits):
            return ort.InferenceSession(seg.SerializeToString(), so, providers=["CPUExecutionProvider"]), feeds, outputs
        # written beside the source model, so relative external-data locations resolve; removed once loaded
        fd, tmp = tempfile.mkstemp(prefix=f".locate-{self.path.stem}-", suffix=".onnx", dir=self.path.parent)
        os.close(fd)
        try:
            onnx.save(seg, tmp)
            sess = ort.InferenceSession(tmp, so, providers=["CPUExecutionProvider"])
        finally:
            os.remove(tmp)
        return sess, feeds, outputs

    def run(self, feed: dict[str, np.ndarray]):
        """Yields, per group, {tensor name: array} of the wanted tensors of that group."""
        held = dict(feed)
        for s, (idx, wanted, last) in enumerate(self.segments):
            if idx:
                if self.sessions[s] is None:
                    self.sessions[s] = self._session(s, held)
                    if s == self.last_segment:
                        # every session is built and holds its weights: the graph (and the weights of a
                        # model without external data) can go
                        self.model = self.inits = self.nodes = None
                sess, feeds, outputs = self.sessions[s]
                if outputs:
                    held.update(zip(outputs, sess.run(outputs, {x: held[x] for x in feeds})))
            if last:
                yield {t: held[t] for t in wanted if t in held}
            keep = self.keep_after[s]
            held = {k: v for k, v in held.items() if k in keep}


# --------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------

def tensor_stats(ref: np.ndarray, got: np.ndarray) -> dict:
    """Cosine, max abs and relative error of `got` against `ref`. inf/NaN in `got` are counted, then
    saturated (+-65504, NaN -> 0) so the figures stay finite and comparable. Computed in float32 (a
    float64 copy of every tensor was most of the run time); 1 - cosine as half the squared distance of
    the normalised tensors, which keeps it accurate down to ~1e-9 where 1 - r.g/(|r||g|) would not."""
    r = np.asarray(ref).astype(np.float32, copy=False).ravel()
    g = np.asarray(got).astype(np.float32, copy=False).ravel()
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
    if nr > 0 and ng > 0:
        d = float(np.linalg.norm(r * np.float32(1 / nr) - g * np.float32(1 / ng)))
        cos = 1.0 - min(d * d / 2, 2.0)
    else:
        cos = 1.0 if nr == ng else 0.0
    return {"cosine": cos, "max_abs_err": float(np.abs(diff).max()),
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


def locate(reference_onnx: str | Path, target_onnx: str | Path, inputs: list[np.ndarray], input_name: str = "image",
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


# --------------------------------------------------------------------------------------------
# Ascend: ais_bench dumps
# --------------------------------------------------------------------------------------------
# Layout, from ais_bench's source (Ascend/tools ais-bench_workload/tool/ais_bench, read in the mirror
# Yanguan619/aclruntime: ais_bench/infer/common/miscellaneous.py get_acl_json_path, common/utils.py
# create_tmp_acl_json / move_subdir / convert_helper) and CANN's msaccucmp docs ("Data Format
# Requirements", "Converting Dump File Formats"):
#   `--dump 1 --output OUT` writes OUT/acl.json with dump_path OUT/dump, dump_mode "all"; CANN writes
#   OUT/dump/{timestamp}/{device_id}/{model_name}/{model_id}/{data_index}/
#       {op_type}.{op_name}.{task_id}.{stream_id}.{timestamp}           (binary, CANN's own format)
#   (newer CANN: {op_type}.{op_name}.({stream_id}.){task_id}.{timestamp}.{task_type}.{context_id}.{thread_id}.{device_id}).
#   With `--dump_npy 1` ais_bench runs msaccucmp.py convert into OUT/dump/{timestamp}_npy/<same relative dirs>/
#       <dump file name>.output.{index}.{shape}.npy   and   .input.{index}.{shape}.npy   (shape like 1x3x224x224)
#   op_type/op_name have '.', '/', '\\' and spaces replaced by '_'. For an ONNX model ATC names its ops
#   after the ONNX nodes, so the ONNX node name with those characters replaced is the op_name (fused ops
#   keep one of the names; a node without a dump row is skipped). Only the npy form is read here: the
#   binary form needs CANN's msaccucmp.

def dump_op_name(onnx_node_name: str) -> str:
    """How an ONNX node name appears in a CANN dump file name."""
    return re.sub(r"[./\\ ]", "_", onnx_node_name)


def read_ais_bench_dump(folder: str | Path, data_index: int | None = None) -> dict[str, dict]:
    """{op_name: {"op_type", "outputs": {index: path}, "inputs": {index: path}}} from the npy files of an
    ais_bench `--dump 1 --dump_npy 1` run: `folder` is ais_bench's --output folder (or its dump/ or a
    {timestamp}_npy/ below it). The newest {timestamp}_npy folder is read; `data_index` picks the
    inference (default: the lowest)."""
    folder = Path(folder)
    roots = sorted(p for p in list(folder.glob("*_npy")) + list(folder.glob("dump/*_npy")) if p.is_dir())
    root = roots[-1] if roots else folder
    files = sorted(root.rglob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no dump .npy files under {folder} (run ais_bench with --dump 1 --dump_npy 1)")
    by_index: dict[str, list[Path]] = {}
    for f in files:
        parent = f.parent.name
        by_index.setdefault(parent if parent.isdigit() else "0", []).append(f)
    pick = str(data_index) if data_index is not None else min(by_index, key=lambda s: int(s) if s.isdigit() else 0)
    out: dict[str, dict] = {}
    for f in by_index[pick]:
        tokens = f.name[: -len(".npy")].split(".")
        kinds = [i for i, t in enumerate(tokens) if t in ("input", "output")]
        if len(tokens) < 4 or not kinds or kinds[-1] + 1 >= len(tokens) or not tokens[kinds[-1] + 1].isdigit():
            log.info("not a dump file name, skipped: %s", f.name)
            continue
        kind, index = tokens[kinds[-1]], int(tokens[kinds[-1] + 1])
        entry = out.setdefault(tokens[1], {"op_type": tokens[0], "outputs": {}, "inputs": {}})
        entry["outputs" if kind == "output" else "inputs"][index] = f
    return out


class DumpTarget:
    """A target whose tensors come from an NPU dump: run(feed) yields the dumped output of each wanted
    tensor's producer node (output index of that tensor). The feed is ignored: the dump is of one run."""

    def __init__(self, dump: dict[str, dict], reference_graph, groups: list[list[str]]):
        self.groups = groups
        self.where = {}
        for n in reference_graph.graph.node:
            for i, o in enumerate(n.output):
                entry = dump.get(dump_op_name(n.name))
                if entry and i in entry["outputs"]:
                    self.where[o] = entry["outputs"][i]

    def run(self, feed):
        for want in self.groups:
            yield {t: np.load(self.where[t]) for t in want if t in self.where}


def locate_dump(reference_onnx: str | Path, dump_folder: str | Path, input_array: np.ndarray,
                input_name: str = "image", k: float = DEFAULTS["k"], floor: float = DEFAULTS["floor"],
                atol: float = DEFAULTS["atol"], chunk: int = DEFAULTS["chunk"],
                threads: int = 1) -> tuple[list[dict], dict]:
    """Like locate(), the target being an ais_bench NPU dump of the model run on `input_array`."""
    reference = load_graph(reference_onnx)
    dump = read_ais_bench_dump(dump_folder)
    names = {dump_op_name(n.name) for n in reference.graph.node}
    rows = [r for r in compared_rows(reference, None) if dump_op_name(r["node"]) in names]
    where = DumpTarget(dump, reference, []).where
    rows = [r for r in rows if r["tensor"] in where]
    for depth, r in enumerate(rows):
        r["depth"] = depth
    groups = group(rows, chunk)
    target = DumpTarget(dump, reference, groups)
    stats = compare_runs(rows, groups, SegmentRunner(reference_onnx, groups, threads), target,
                         [{input_name: input_array}])
    rows = finish_rows(rows, stats, atol)
    summary = summarise(rows, k, floor, atol)
    summary.update(reference=str(reference_onnx), target=str(dump_folder), inputs=1,
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


def quantised_pair(fp32_onnx: str | Path, precision: str, calibration: list[str | Path], scratch: str | Path,
                   options: dict) -> tuple[Path, Path]:
    """(reference, target) ONNX of an int8 target, rebuilt as the onnxruntime backend quantises: the
    prepared (constant-folded) fp32 graph whose node names the quantisers keep, and its int8 graph before
    ONNX Runtime's fusions (the compiled model's fused nodes have no fp32 twin to compare with)."""
    from accuracy import repair
    from backends.onnxruntime import use_reduce_range

    prepared = repair.int8_prepared(fp32_onnx, scratch)
    out = Path(scratch) / "int8.onnx"
    if precision == "int8":
        return prepared, repair.build_int8_static(fp32_onnx, out, calibration, 1,
                                                  reduce_range=use_reduce_range(options))
    return prepared, repair.build_int8(prepared, out, reduce_range=use_reduce_range(options))


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
