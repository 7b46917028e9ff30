"""ONNX graphs as the accuracy tools and the reduced-precision proxies run them: loaded without their
weights, in topological order, with every tensor's type, and run segment by segment on ONNX Runtime
(SegmentRunner): bounded memory for node-by-node comparisons, and fp16 storage between nodes, the proxy
of fp16 hardware."""

import collections
import heapq
import os
import tempfile
from pathlib import Path

import numpy as np

from pipeline.common import log

FLOAT_TYPES = {1, 10, 11, 16}  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
# ONNX ops that only move, reshape or cast a value: no arithmetic of their own. A reduced-precision compiler
# stores their output in its low precision like any other op's (ATC under force_fp16 runs them in fp16 unless
# --keep_dtype names them; ONNX Runtime's fp16 converter converts them unless blocked)
MOVES = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "GatherElements", "Slice", "Concat",
                   "Split", "Identity", "Cast", "CastLike", "Flatten", "Expand", "Tile", "Pad", "DepthToSpace",
                   "SpaceToDepth"})
# ops that make values from shapes or constants only: no precision of their own either
SHAPE_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape", "Range"})

# Per-node sessions (fp16 storage) by their serialised segment: locate and repair build the same model
# many times with a few nodes changed, and a node's segment is the same bytes in each, so its session is
# made once. At most _MAX_CACHED, the least recently used dropped first: the sessions a runner holds stay
# alive beside the cache, so a cache bigger than a model (ViT-H-14: about 2,500 segments) only adds memory
# (a first-in-first-out cache of 4096 took a ViT-H-14 fp16 repair past this host's 24 GB).
_SESSIONS: "collections.OrderedDict[bytes, object]" = collections.OrderedDict()
_MAX_CACHED = 2048


def _cached_session(data: bytes, options):
    import hashlib

    import onnxruntime as ort

    key = hashlib.sha1(data).digest()
    if key in _SESSIONS:
        _SESSIONS.move_to_end(key)
        return _SESSIONS[key]
    session = _SESSIONS[key] = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    while len(_SESSIONS) > _MAX_CACHED:
        _SESSIONS.popitem(last=False)
    return session


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
        # fp16 storage makes a session per node: each single-threaded and without spinning threads, so a
        # ViT's hundreds of sessions hold one thread each, not `threads` spinning ones each (a ViT-B-16
        # repair once ran 823 threads at a load average of 20 on 2 cores)
        self.threads = 1 if fp16_storage else threads
        self.per_node = fp16_storage
        self.spinning = not fp16_storage
        self.optimization = optimization
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
            nodes, "segment",
            [helper.make_tensor_value_info(x, helper.np_dtype_to_tensor_dtype(held[x].dtype), None) for x in feeds],
            [onnx.ValueInfoProto(name=o) for o in outputs], initializer=inits)
        seg = helper.make_model(graph, opset_imports=self.model.opset_import, ir_version=self.model.ir_version)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = self.threads, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        if self.per_node:  # hundreds of sessions held at once: no memory arena each (a ViT-B-16 fp16 locate
            so.enable_cpu_mem_arena = False  # peaked at 5.7 GB with one per session)
        so.log_severity_level = 3
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_{self.optimization.upper()}")
        if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in inits):
            data = seg.SerializeToString()
            if not self.per_node:
                return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"]), feeds, outputs
            return _cached_session(data, so), feeds, outputs
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
# "Kept in fp32", closed
# --------------------------------------------------------------------------------------------

def kept_closure(model, keep) -> list[str]:
    """The nodes a kept set needs beside its own for its values to stay fp32 all the way (names, in graph
    order, none of `keep`): every node that only moves or casts (MOVES) a kept node's output on its way to
    another kept node or to a graph output, and every node that carries a constant (an initializer, a
    Constant) into a kept node or into one of those. Without them a kept LayerNorm hands its output to a
    Cast that is stored in fp16 on the way to a kept MatMul, and a kept MatMul's weight reaches it through
    a Transpose converted to fp16: every reduced-precision mechanism (ONNX Runtime's fp16 converter, the
    fp16-storage proxy, ATC's --keep_dtype, the quantisers' exclusions, OpenVINO's ignored ops) takes the
    kept set with this closure, so keeping every node computes exactly the fp32 graph. `model`: an onnx
    ModelProto or a path (read without its weights)."""
    if not hasattr(model, "graph"):
        model = load_graph(model)
    g = model.graph
    nodes = topological_order(list(g.node))
    keep = set(keep)
    kept = {i for i, n in enumerate(nodes) if n.name in keep}
    types = tensor_types(model)
    outputs = {o.name for o in g.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for x in n.input:
            if x:
                consumers.setdefault(x, []).append(i)
    constant = {t.name for t in g.initializer}  # values computed from constants only
    constant_nodes = set()
    for i, n in enumerate(nodes):
        if all(x in constant for x in n.input if x):
            constant_nodes.add(i)
            constant.update(o for o in n.output if o)

    def floating(i: int) -> bool:
        return any(types.get(o, 1) in FLOAT_TYPES for o in nodes[i].output if o)

    def moves(i: int) -> bool:
        return nodes[i].op_type in MOVES and i not in constant_nodes and floating(i)

    # movement nodes from which a kept node or a graph output is reached through movement nodes only
    leads: set[int] = set()
    for i in reversed(range(len(nodes))):
        if moves(i) and any(o in outputs or any(c in kept or c in leads for c in consumers.get(o, []))
                            for o in nodes[i].output if o):
            leads.add(i)
    added: set[int] = set()
    stack = [c for i in kept for o in nodes[i].output if o for c in consumers.get(o, [])]
    while stack:
        c = stack.pop()
        if c in kept or c in added or c not in leads:
            continue
        added.add(c)
        stack.extend(u for o in nodes[c].output if o for u in consumers.get(o, []))
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    stack = [producer[x] for i in kept | added for x in nodes[i].input if x in producer]
    while stack:
        p = stack.pop()
        if p in kept or p in added or p not in constant_nodes or not floating(p):
            continue
        added.add(p)
        stack.extend(producer[x] for x in nodes[p].input if x in producer)
    return [nodes[i].name for i in sorted(added)]


def closed(model, keep) -> list[str]:
    """`keep` (its order, each once) and then its kept_closure."""
    keep = list(dict.fromkeys(keep))
    return keep + kept_closure(model, keep)
