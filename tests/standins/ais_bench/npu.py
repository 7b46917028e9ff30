"""What the stand-in ais_bench does in the NPU's place (tests only, never the product): the .om's input as
aclruntime describes it, the memory copies it times, the AIPP unit's arithmetic and the cube unit's
fp16-in/fp32-out mode. Nothing here imports the workflow's scripts.

- om_input: the input description (name, shape, dtype, realsize) aclruntime gives for the model.
  A dynamic-batch model (header "dynamic_batch_size") has -1 on its batch axis and, once --dymBatch N is
  set, realsize = the N-batch size (ModelInferenceProcessor::SetDynamicBatchsize: size * N / max gear, in
  the aclruntime source of ais_bench, ais-bench_workload/tool/ais_bench/backend/base/module/ModelInfer/).
  An AIPP model (header "aipp") takes uint8 NHWC [N, src_h, src_w, 3] (CANN ATC documentation, AIPP
  "config_file_template": with AIPP the input is NHWC; "--insert_op_conf": the input data type is UINT8).
- aipp: pixel_out_c = (pixel_in_c - mean_chn_c - min_chn_c) * var_reci_chn_c for uint8 -> fp16 (the same
  template, "减均值、乘系数设置"), each step rounded to fp16 and the parameters rounded to fp16 (min_chn and
  var_reci_chn are float16 there; mean_chn uint8), after the R/B swap when rbuv_swap_switch is true (the
  template's processing order: swap > crop > csc > mean/normalisation > padding), then NCHW in the ONNX
  input's dtype.
- cube_graph: --precision_mode_v2=cube_fp16in_fp32out (and --precision_mode force_fp32 /
  cube_fp16in_fp32out, documented as the same mode): matrix operators take float16 inputs and give float32
  outputs, vector operators run in float32 (CANN ATC documentation "--precision_mode_v2",
  atlasatcparam_16_0069; "--precision_mode", atlasatcparam_16_0067). Emulated by a Cast to float16 and back
  before every float32 input of MatMul, Gemm and Conv (ONNX Runtime keeps the pair: the product is
  computed in float32 from fp16-rounded operands), everything else untouched.
- copy_ms: one host<->device copy, timed (aclruntime MemoryHelper::Memcpy times each H2D/D2H copy with
  gettimeofday and appends it to MemorySummary): here a real numpy copy of the same bytes, timed with
  time.perf_counter, so the figure is > 0.
"""
import time

import numpy as np

CUBE_OPS = ("MatMul", "Gemm", "Conv")
CUBE_MODES = {("precision_mode_v2", "cube_fp16in_fp32out"), ("precision_mode", "cube_fp16in_fp32out"),
              ("precision_mode", "force_fp32")}
DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64,
          "tensor(int32)": np.int32, "tensor(uint8)": np.uint8}


class OmInput:
    """One model input as ais_bench sees it: `shape` has -1 on a dynamic batch axis until set_batch."""

    def __init__(self, name: str, shape: list[int], dtype, aipp: dict | None):
        self.name, self.shape, self.dtype, self.aipp = name, list(shape), np.dtype(dtype), aipp

    def set_batch(self, n: int) -> None:
        self.shape[0] = n

    @property
    def realsize(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize


def om_input(header: dict, onnx_input) -> OmInput:
    """`onnx_input`: ONNX Runtime's NodeArg of the model's one input."""
    dynamic = bool(header.get("dynamic_batch_size"))
    shape = [d if isinstance(d, int) else -1 for d in onnx_input.shape]
    if not dynamic and any(d < 0 for d in shape):
        raise RuntimeError(f"input {onnx_input.name} has a symbolic axis {onnx_input.shape} in a static .om")
    if dynamic:
        shape[0] = -1
    aipp = header.get("aipp")
    if aipp and aipp.get("input") == onnx_input.name:
        return OmInput(onnx_input.name, [shape[0], aipp["src_image_size_h"], aipp["src_image_size_w"], 3], np.uint8,
                       aipp)
    return OmInput(onnx_input.name, shape, DTYPES.get(onnx_input.type, np.float32), None)


def aipp(pixels: np.ndarray, params: dict, dtype) -> np.ndarray:
    """uint8 NHWC -> the ONNX input (NCHW, `dtype`) as the AIPP unit computes it in fp16."""
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[3] != 3:
        raise RuntimeError(f"AIPP input must be uint8 NHWC with 3 channels, got {pixels.dtype} {pixels.shape}")
    if params.get("rbuv_swap_switch"):
        pixels = pixels[..., ::-1]
    f16 = np.float16
    out = np.empty(pixels.shape, f16)
    for c in range(3):
        x = pixels[..., c].astype(f16)
        x = x - f16(params[f"mean_chn_{c}"])  # numpy rounds every float16 operation to float16
        x = x - f16(params[f"min_chn_{c}"])
        out[..., c] = x * f16(params[f"var_reci_chn_{c}"])
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2)).astype(dtype)


def cube_mode(header: dict) -> bool:
    return any(header.get(key) == value for key, value in CUBE_MODES)


def cube_graph(onnx_bytes: bytes) -> bytes:
    """Every float32 input of a MatMul, Gemm or Conv node through Cast(float16) -> Cast(float)."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.input, *inferred.value_info, *inferred.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    nodes, done = [], {}
    for node in graph.node:
        if node.op_type in CUBE_OPS:
            for k, name in enumerate(node.input):
                if not name or types.get(name) != TensorProto.FLOAT:
                    continue
                if name not in done:
                    half, back = f"{name}__standin_fp16", f"{name}__standin_fp16in"
                    nodes.append(helper.make_node("Cast", [name], [half], to=TensorProto.FLOAT16, name=half))
                    nodes.append(helper.make_node("Cast", [half], [back], to=TensorProto.FLOAT, name=back))
                    done[name] = back
                node.input[k] = done[name]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model.SerializeToString()


def copy_ms(array: np.ndarray, into: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Copy `array` (into `into` when given); the copy and its time in ms."""
    start = time.perf_counter()
    if into is None:
        into = array.copy()
    else:
        np.copyto(into, array)
    return into, (time.perf_counter() - start) * 1000.0
