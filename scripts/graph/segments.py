"""Running an ONNX graph segment by segment (SegmentRunner): bounded memory for the node-by-node view, and
fp16 storage between nodes, the proxy of fp16 hardware. The sessions come from the caller (the reference
runtime's graph_session): this module runs graphs, it does not choose a runtime."""

import os
import tempfile
from pathlib import Path

import numpy as np

from graph import FLOAT_TYPES, load_graph, tensor_types, topological_order


class SegmentRunner:
    """Runs `model_path` in consecutive segments, each producing one group of wanted tensors, holding
    between segments only the tensors later segments consume or later groups want. Sessions are built on
    the first run (segment input types come from the arrays then held) and reused for every later input,
    by `session(model, threads, optimization, per_node)` (a path or the serialised segment; an object with
    `run(outputs, feeds)`): the reference runtime's graph_session (backends.reference()).

    fp16_storage: every node that depends on the input is a segment of its own (with the constant or
    weight-only nodes it reads), so each of its fp16 outputs leaves the runtime as an fp16 array and the
    next node reads it back: every tensor is stored in fp16 between nodes, as on fp16 hardware. A CPU
    runtime computes most fp16 nodes in fp32 and keeps the values in fp32 inside one session, so a value
    past 65504 in the middle of a chain never overflows there (docs/accuracy.md). Each per-node session is
    single-threaded and without spinning threads (`per_node`): a ViT's hundreds of sessions hold one thread
    each, not `threads` spinning ones each (a ViT-B-16 repair once ran 823 threads at a load average of 20
    on 2 cores)."""

    def __init__(self, model_path: str | Path, groups: list[list[str]], session, threads: int = 1,
                 optimization: str = "disable_all", fp16_storage: bool = False):
        self.path = Path(model_path)
        self.make_session = session
        self.model = load_graph(self.path)
        self.nodes = topological_order(list(self.model.graph.node))
        self.threads = 1 if fp16_storage else threads
        self.per_node = fp16_storage
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
            if fp16_storage:
                parts = self._per_node(need, active, producer, types)
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

    def _per_node(self, need: set[int], active: set[int], producer: dict[str, int], types: dict) -> list[list[int]]:
        """fp16 storage's segments of the nodes `need`: one ends after each input-dependent node with a
        floating-point output. A weight-only node (no input upstream: the exporter's Constants, a weight's
        Transpose or Cast) joins the segment of the first node that reads it, so a segment holds its own
        node's weights only: one first segment holding every weight would change with every kept set and
        hold the whole model once more in each cached session."""
        parts, pending, placed = [], [], set()
        for i in sorted(need):
            if i not in active:
                continue
            stack = [producer[x] for x in self.nodes[i].input if x in producer]
            while stack:
                j = stack.pop()
                if j in need and j not in active and j not in placed:
                    placed.add(j)
                    pending.append(j)
                    stack.extend(producer[x] for x in self.nodes[j].input if x in producer)
            placed.add(i)
            pending.append(i)
            if any(types.get(o, 1) in FLOAT_TYPES for o in self.nodes[i].output):
                parts.append(sorted(pending))
                pending = []
        pending += [i for i in need if i not in placed]  # weight-only nodes only a wanted tensor needs
        if pending:
            parts.append(sorted(pending))
        return parts

    def _session(self, s: int, held: dict[str, np.ndarray]):
        import onnx
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
        if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in inits):
            return self.make_session(seg.SerializeToString(), self.threads, self.optimization, self.per_node), \
                feeds, outputs
        # written beside the source model, so relative external-data locations resolve; removed once loaded
        fd, tmp = tempfile.mkstemp(prefix=f".locate-{self.path.stem}-", suffix=".onnx", dir=self.path.parent)
        os.close(fd)
        try:
            onnx.save(seg, tmp)
            sess = self.make_session(tmp, self.threads, self.optimization, self.per_node)
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
