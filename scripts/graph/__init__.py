"""ONNX graphs as the accuracy tools and the reduced-precision mechanisms read them: loaded without their
weights, in topological order, with every tensor's type, and the ops that only move data. closure.py closes a
kept-in-fp32 set over them; segments.py runs a graph segment by segment (bounded memory for node-by-node
comparisons, and fp16 storage between nodes, the proxy of fp16 hardware)."""

import heapq
from pathlib import Path

from pipeline.common import log

FLOAT_TYPES = {1, 10, 11, 16}  # onnx TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
# ONNX ops that only move, reshape or cast a value: no arithmetic of their own. A reduced-precision compiler
# stores their output in its low precision like any other op's unless told to keep them (docs/accuracy.md)
MOVES = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "GatherElements", "Slice", "Concat",
                   "Split", "Identity", "Cast", "CastLike", "Flatten", "Expand", "Tile", "Pad", "DepthToSpace",
                   "SpaceToDepth"})
# ops that make values from shapes or constants only: no precision of their own either
SHAPE_OPS = frozenset({"Shape", "Size", "Constant", "ConstantOfShape", "Range"})

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
