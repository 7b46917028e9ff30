"""The CPU proxy of ATC's `--precision_mode_v2=cube_fp16in_fp32out`: what locate and repair measure for that
precision (the plan's build_reduced and load_reduced).

Under that mode (CANN ATC documentation, --precision_mode_v2:
https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0069.html)
an operator of the cube unit, a matrix product, takes float16 inputs and gives a float32 output, its sums
accumulated in float32; every vector operator that supports float32 computes in float32. The proxy is the
fp32 ONNX with every float32 input of those nodes (CUBE_OPS) rounded to float16 (an initializer rounded in
place, or in a copy where another node reads it too; any other tensor through a Cast to float16 and back)
and nothing else changed, run by the reference runtime in fp32: its matrix products take the rounded values
and accumulate in fp32, as the cube unit does. A node named in `keep` is left unrounded: what ATC's
--keep_dtype does to it on the device. Keeping every candidate is the fp32 graph itself.

This is the chip's precision rather than generic graph surgery (which ops, rounded to what, accumulated how
are ATC's), so it sits in the plan's package, not in scripts/graph/."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.common import log

PRECISION = "cube_fp16in_fp32out"  # the plan's precision and ATC's --precision_mode_v2 value
# the ONNX op types ATC maps to the cube unit (matrix products); everything else runs on the vector unit
CUBE_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# metadata the proxy carries, so load_reduced knows the model computes in fp32 (no fp16 storage between nodes)
PROXY_KEY = "ascend_proxy"
ROUNDED = "/fp16_in"  # a rounded copy of tensor t is named t + ROUNDED (t + "/fp16" the float16 value between)


def round_cube_inputs(fp32_onnx: str | os.PathLike, out: str | os.PathLike, keep=()) -> Path:
    """The proxy of `fp32_onnx` (see the module docstring) written to `out` (one file, or with its weights
    beside it as <out>.data past protobuf's 2 GB), the nodes named in `keep` left unrounded."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from backends.onnxruntime import needs_external_data
    from graph import tensor_types

    model = onnx.load(str(fp32_onnx))
    g = model.graph
    keep = set(keep)
    types = tensor_types(model)
    inits = {t.name: t for t in g.initializer}
    taken = {o for n in g.node for o in n.output} | {n.name for n in g.node} | set(inits) | {i.name for i in g.input}

    def rounds(n) -> bool:
        return n.op_type in CUBE_OPS and n.name not in keep

    def floating(x: str) -> bool:
        return bool(x) and types.get(x) == TensorProto.FLOAT

    def fresh(name: str) -> str:
        while name in taken:
            name += "_"
        taken.add(name)
        return name

    # an initializer read only as a rounded node's input is rounded in place; one read elsewhere too, in a copy
    readers: dict[str, list] = {}
    for n in g.node:
        for x in n.input:
            readers.setdefault(x, []).append(n)
    outputs = {o.name for o in g.output}
    rounded: dict[str, str] = {}  # tensor -> the name of its rounded value
    nodes, in_place, copies, casts, cube = [], 0, 0, 0, 0
    for n in g.node:
        if rounds(n):
            cube += 1
            for i, x in enumerate(n.input):
                if not floating(x):
                    continue
                if x not in rounded:
                    if x in inits:
                        value = numpy_helper.to_array(inits[x]).astype(np.float16).astype(np.float32)
                        if x not in outputs and all(rounds(r) for r in readers[x]):
                            inits[x].CopyFrom(numpy_helper.from_array(value, x))
                            rounded[x] = x
                            in_place += 1
                        else:
                            rounded[x] = fresh(x + ROUNDED)
                            g.initializer.append(numpy_helper.from_array(value, rounded[x]))
                            copies += 1
                    else:
                        half, rounded[x] = fresh(x + "/fp16"), fresh(x + ROUNDED)
                        nodes.append(helper.make_node("Cast", [x], [half], name=fresh(half + "/Cast"),
                                                      to=TensorProto.FLOAT16))
                        nodes.append(helper.make_node("Cast", [half], [rounded[x]], name=fresh(rounded[x] + "/Cast"),
                                                      to=TensorProto.FLOAT))
                        casts += 1
                n.input[i] = rounded[x]
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    model.metadata_props.append(onnx.StringStringEntryProto(key=PROXY_KEY, value=PRECISION))
    log.info("%s proxy: the inputs of %d %s nodes rounded to fp16 (%d weights in place, %d in a copy, %d tensors "
             "through a Cast pair); %d named nodes kept unrounded", PRECISION, cube, "/".join(CUBE_OPS), in_place,
             copies, casts, len(keep))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if needs_external_data(model):
        onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=out.name + ".data", size_threshold=1024)
    else:
        onnx.save(model, str(out))
    return out


def is_proxy(model) -> bool:
    """Whether an ONNX model (a ModelProto, read without its weights) is this precision's proxy."""
    return any(p.key == PROXY_KEY and p.value == PRECISION for p in model.metadata_props)
