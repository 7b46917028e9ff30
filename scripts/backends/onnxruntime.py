"""ONNX Runtime on the CPU: the backend that runs on every machine.

compile: the graph with its batch size fixed, in one of PRECISIONS, optimised by ONNX Runtime and
saved to disk, so the offline model loads with optimisations disabled (nothing is re-optimised at
load time):
  fp32           the exported fp32 ONNX
  fp16           the fp16 ONNX
  int8           static int8 (QDQ): weights and activations int8, activation scales calibrated on
                 the run's own preprocessed inputs (options["calibration"]: .npy paths, 1x3xRxR);
                 options["static_recipe"] picks one of STATIC_RECIPES (default DEFAULT_STATIC_RECIPE)
  int8_dynamic   dynamic int8: weights int8, activations quantised at every run (no calibration)

`session` is the one ONNX Runtime session factory: every ONNX Runtime session of the workflow and
of bench/ is made by it, so thread count and spinning are the same everywhere."""

import os
from pathlib import Path

import numpy as np

from backends.base import cpu_has_vnni
from pipeline.common import log

# --- the plan (scripts/backends/base.py) ----------------------------------------------------------
NAME = "onnxruntime"
CONFIG_KEYS = ()  # nothing of its own: `threads` and the precisions are every backend's
# what a target computes in -> the exported ONNX it starts from (int8 is quantised from fp32)
PRECISIONS = {"fp32": "fp32", "fp16": "fp16", "int8": "fp32", "int8_dynamic": "fp32"}
DEFAULT_PRECISION = "fp32"
CALIBRATED = frozenset({"int8"})  # static int8: calibrated on the run's first shard of inputs
REDUCED = frozenset({"fp16", "int8", "int8_dynamic"})
# the ops its quantisers quantise (op_types_to_quantize): the nodes an int8 precision changes
CANDIDATE_OPS = {"int8": ("MatMul", "Gemm", "Conv"), "int8_dynamic": ("MatMul", "Gemm", "Conv")}
ACCELERATOR = None
RUNS_ON_HOST_CPU = True
STATIC_PRECISIONS = tuple(CALIBRATED)  # those that need options["calibration"]

MODEL_NAME = "model.onnx"
DATA_NAME = "model.onnx.data"


def devices(config: dict) -> list[str]:
    return ["cpu"]


def options(config: dict, precision: str) -> dict:
    return {}


def preflight(config: dict) -> None:
    """ONNX Runtime is in the workflow's own environment: nothing to check."""

# session.intra_op.allow_spinning: ONNX Runtime's default (threads spin between parallel regions).
# bench/spinning.py measures both settings, idle and beside a busy process; docs/performance.md
# ("Thread spinning") holds the figures. options["spinning"] overrides it per job.
ALLOW_SPINNING = True


def _ort():
    import onnxruntime as ort

    return ort


LEVELS = ("basic", "extended", "all")


def session(model: str | Path | bytes, threads: int, optimize: bool = False, optimized_out: str | Path | None = None,
            level: str = "extended", disabled_optimizers: list[str] | None = None, spinning: bool | None = None):
    """An ONNX Runtime CPU session of a model file (or serialised model bytes). optimize=False for
    compiled models: load as saved. threads 0 = ONNX Runtime's choice (the physical cores).
    spinning None = ALLOW_SPINNING."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning",
                                "1" if (ALLOW_SPINNING if spinning is None else spinning) else "0")
    if optimize:
        # EXTENDED (the default, chosen by measurement in docs/performance.md): ONNX Runtime's fusions
        # that any CPU can run. ALL adds the NCHWc layout transformer, whose saved graph is tied to
        # this CPU's vector width (ONNX Runtime warns so), and here it only touches the patch
        # embedding Conv: no measurable gain.
        so.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level]
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if optimized_out is not None:
        so.optimized_model_filepath = str(optimized_out)
        # model.onnx -> model.onnx.data (DATA_NAME)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                    Path(optimized_out).name + ".data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), sess_options=so,
                                providers=["CPUExecutionProvider"], disabled_optimizers=disabled_optimizers or [])


def fix_batch(onnx_in: str | Path, onnx_out: str | Path, batch_size: int) -> None:
    """Fix the symbolic batch axis (what ATC's --input_shape does for the .om): every `batch` dimension of
    the graph's inputs, outputs and value_info, as onnxruntime.tools.onnx_model_utils.make_dim_param_fixed
    does (that package imports torch on its way in: 2 s a compile job)."""
    import onnx

    model = onnx.load(str(onnx_in))
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == "batch":
                dim.Clear()
                dim.dim_value = batch_size
    onnx.save(model, str(onnx_out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=Path(onnx_out).name + ".data", size_threshold=1024)


def use_reduce_range(options: dict) -> bool:
    """7-bit weights (quantize_*'s reduce_range) unless this CPU has VNNI: options["reduce_range"]
    True or False forces it; unset (None) decides from this CPU, the one the offline model runs on."""
    forced = options.get("reduce_range")
    return (not cpu_has_vnni()) if forced is None else bool(forced)


def fold_constants(onnx_in: str | Path, folded: str | Path) -> None:
    """ONNX Runtime's BASIC optimisation, saved: folds the constants. cn_clip's vision export keeps the
    weights behind Transpose nodes, which hides them from the quantisers. MatMulAddFusion is disabled:
    on a fixed-batch graph it turns each MatMul + bias into Reshape + Gemm + Reshape, which the
    quantiser then has to turn back into a MatMul; without it the int8 graph has fewer nodes and
    compiles faster, at the same speed and cosine (docs/performance.md)."""
    session(onnx_in, 1, optimize=True, optimized_out=folded, level="basic", disabled_optimizers=["MatMulAddFusion"])


def quantize_int8(onnx_in: str | Path, onnx_out: str | Path, per_channel: bool = True,
                  recipe: str = "matmul", reduce_range: bool = False) -> None:
    """Dynamic int8 quantisation of every weight MatMul with ONNX Runtime's tools (weights int8,
    activations quantised per run; the attention's activation x activation MatMuls stay fp32), on the
    constant-folded graph (fold_constants).
    Per-channel weight scales (the default) were as fast or faster than per-tensor in every
    measured pair and closer to torch_fp32 (docs/performance.md).
    recipe="pre_process" is the previous recipe (quant_pre_process, then quantize_dynamic), kept so
    that bench/ort_variants.py can compare the two."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    prepared = Path(onnx_out).with_name("prepared.onnx")
    if recipe == "pre_process":
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(onnx_in), str(prepared), skip_symbolic_shape=True, save_as_external_data=True,
                          all_tensors_to_one_file=True, external_data_location=prepared.name + ".data")
    else:
        prepared = Path(onnx_out).with_name("folded.onnx")
        fold_constants(onnx_in, prepared)
    quantize_dynamic(str(prepared), str(onnx_out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     reduce_range=reduce_range, use_external_data_format=True)


# Static (QDQ) recipes: what each quantises. All: activations uint8 and weights int8 (U8S8, the
# VNNI path of ONNX Runtime's x86 kernels), weight scales per output channel, activation ranges
# from the calibration inputs. ONNX Runtime's EXTENDED optimisation (compile) then fuses each
# DequantizeLinear -> MatMul into an integer kernel.
# "attention": whether the attention's activation x activation MatMuls (Q K^T, softmax x V) are
# quantised too; "extra": quantize_static's extra_options.
STATIC_RECIPES = {
    # the weight MatMul/Gemm and the patch-embedding Conv; MatMul/Gemm outputs stay fp32
    # (MatMulIntegerToFloat: no requantisation, the bias Add and LayerNorm read fp32)
    "weights": {"attention": False, "extra": {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}},
    # the same and the attention's products
    "attention": {"attention": True, "extra": {"OpTypesToExcludeOutputQuantization": ["MatMul", "Gemm"]}},
    # weight MatMul/Gemm with int8 outputs as well (QLinearMatMul: one requantisation per product)
    "qlinear": {"attention": False, "extra": {}},
}
DEFAULT_STATIC_RECIPE = "weights"
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")


def calibration_batches(npy_files: list[str | Path], batch_size: int) -> list[np.ndarray]:
    """The calibration inputs at the compiled batch size: the real inputs (each 1xCxHxW), rotated into
    one batch per input, as the benchmark builds them."""
    from backends.timing import batches

    if not npy_files:
        raise ValueError("static int8 quantisation needs calibration inputs (options['calibration']: "
                         "preprocessed .npy files of real images), and none were given")
    return batches([np.load(f) for f in npy_files], batch_size)


def nodes_to_leave(onnx_path: str | Path, patterns: list[str], attention: bool) -> list[str]:
    """Names of the nodes static quantisation must leave in fp32: those whose name matches one of the
    regular expressions (re.search), and unless `attention`, every MatMul with no constant operand
    (quantize_static's QDQ mode quantises activation x activation MatMuls too)."""
    import re

    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if any(re.search(p, n.name) for p in patterns)
            or (not attention and n.op_type == "MatMul" and not weights & set(n.input))]


def quantize_static_int8(onnx_in: str | Path, onnx_out: str | Path, calibration: list[str | Path], batch_size: int,
                         recipe: str = DEFAULT_STATIC_RECIPE, per_channel: bool = True, method: str = "minmax",
                         exclude: list[str] | None = None, reduce_range: bool = False) -> None:
    """Static int8 (QDQ) quantisation with ONNX Runtime's quantize_static, calibrated on the real
    inputs `calibration` (.npy, 1xCxHxW), of the constant-folded graph (fold_constants). `exclude`:
    regular expressions over node names left in fp32."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if recipe not in STATIC_RECIPES:
        raise ValueError(f"unknown static int8 recipe {recipe!r}; known: {', '.join(STATIC_RECIPES)}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(CALIBRATION_METHODS)}")
    data = calibration_batches(calibration, batch_size)
    folded = Path(onnx_out).with_name("folded.onnx")
    fold_constants(onnx_in, folded)
    name = session(folded, 1).get_inputs()[0].name

    class Inputs(CalibrationDataReader):
        def __init__(self):
            self.rest = iter(data)

        def get_next(self):
            return {name: batch} if (batch := next(self.rest, None)) is not None else None

    quantize_static(str(folded), str(onnx_out), Inputs(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["MatMul", "Gemm", "Conv"], per_channel=per_channel, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=nodes_to_leave(folded, exclude or [], STATIC_RECIPES[recipe]["attention"]),
                    use_external_data_format=True,
                    calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                                      "entropy": CalibrationMethod.Entropy}[method],
                    extra_options=dict(STATIC_RECIPES[recipe]["extra"]))


def compile(onnx_model: str | Path, out_dir: str | Path, batch_size: int, resolution: int, options: dict) -> list[str]:
    """`onnx_model` is the fp32 ONNX (precision fp32, int8, int8_dynamic) or the fp16 one (precision
    fp16). Options: threads, precision (PRECISIONS), calibration (.npy paths; precision int8),
    static_recipe, calibration_method, int8_exclude (int8), int8_recipe (int8_dynamic), per_channel
    (both int8), graph_optimization (LEVELS)."""
    import tempfile

    precision = options.get("precision", "fp32")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} for the onnxruntime backend; known: {', '.join(PRECISIONS)}")
    if precision in STATIC_PRECISIONS and not options.get("calibration"):
        raise ValueError(f"precision {precision} (static int8) needs calibration inputs: options['calibration'] "
                         "must list preprocessed .npy files of real images; int8_dynamic needs none")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from pipeline.common import remove_stale_scratch

    prefix = f".compile-{out_dir.name}-"
    remove_stale_scratch(out_dir.parent, prefix)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=prefix) as scratch:
        fixed = Path(scratch) / "fixed.onnx"
        log.info("fixing batch size %d in %s", batch_size, onnx_model)
        fix_batch(onnx_model, fixed, batch_size)
        quantized = Path(scratch) / "int8.onnx"
        if precision == "int8_dynamic":
            log.info("quantising to int8 (ONNX Runtime dynamic quantisation)")
            quantize_int8(fixed, quantized, per_channel=options.get("per_channel", True),
                          recipe=options.get("int8_recipe", "matmul"), reduce_range=use_reduce_range(options))
            fixed = quantized
        elif precision == "int8":
            recipe = options.get("static_recipe", DEFAULT_STATIC_RECIPE)
            log.info("quantising to int8 (ONNX Runtime static QDQ quantisation, recipe %s, calibrated on %d inputs)",
                     recipe, len(options["calibration"]))
            quantize_static_int8(fixed, quantized, options["calibration"], batch_size, recipe=recipe,
                                 per_channel=options.get("per_channel", True),
                                 method=options.get("calibration_method", "minmax"),
                                 exclude=options.get("int8_exclude"), reduce_range=use_reduce_range(options))
            fixed = quantized
        level = options.get("graph_optimization", "extended")
        log.info("optimising %s with ONNX Runtime (level %s) into %s", precision, level, out_dir / MODEL_NAME)
        # MatMulAddFusion would turn DequantizeLinear -> MatMul + bias into an fp32 Gemm before the QDQ
        # fusions run, leaving the weight product in fp32 (fold_constants says why it is off there too)
        session(fixed, options["threads"], optimize=True, optimized_out=out_dir / MODEL_NAME, level=level,
                disabled_optimizers=["MatMulAddFusion"] if precision in STATIC_PRECISIONS else None)
    files = [out_dir / MODEL_NAME] + ([out_dir / DATA_NAME] if (out_dir / DATA_NAME).exists() else [])
    return [str(f) for f in files]


def _run(sess):
    name = sess.get_inputs()[0].name
    return lambda batch: sess.run(None, {name: batch})[0]


def infer(model: str | Path, npy_files: list[str | Path], dst_dir: str | Path, options: dict) -> None:
    from backends.base import infer_each

    infer_each(_run(session(model, options["threads"], spinning=options.get("spinning"))), npy_files, dst_dir)


def benchmark(model: str | Path, npy_files: list[str | Path], batch_size: int, loop: int, warmup: int,
              options: dict) -> dict:
    """timing.time_runs of the offline model: up to `loop` runs, fewer once the throughput interval is
    within options["ci_width"] (0 or absent: all of them)."""
    from backends.timing import time_runs

    run = _run(session(model, options["threads"], spinning=options.get("spinning")))
    inputs = [np.load(f) for f in npy_files]
    result = time_runs(run, inputs, batch_size, loop, warmup, f"onnxruntime bs{batch_size}",
                       ci_width=float(options.get("ci_width") or 0))
    return {**result, "threads": options["threads"]}


def compile_command(onnx_model: str | Path, out_dir: str | Path, batch_size: int, resolution: int,
                    options: dict) -> None:
    """None: compile() runs no external tool (ONNX Runtime optimises in this process)."""
    return None


def versions(options: dict) -> dict:
    return {"onnxruntime": _ort().__version__}


# --------------------------------------------------------------------------------------------
# Repair's mechanism: the target's precision with chosen nodes in fp32, rebuilt with ONNX Runtime's own
# tools (the fp16 converter's node_block_list, the quantisers' nodes_to_exclude)
# --------------------------------------------------------------------------------------------

def needs_external_data(model) -> bool:
    """Whether a model must keep its weights beside it: protobuf cannot write one message past 2 GiB, and
    refuses even to size it (EncodeError, as a locate step keeping half of ViT-H-14 in fp32 found)."""
    from google.protobuf.message import EncodeError

    try:
        return model.ByteSize() >= 2 ** 31 - 2 ** 20
    except EncodeError:
        return True


def _save(model, out: Path) -> Path:
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    if not needs_external_data(model):
        onnx.save(model, str(out))
    else:
        onnx.save(model, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                  location=out.name + ".data", size_threshold=1024)
    return out


def fp32_edges(model, blocked: set[str]) -> set[str]:
    """Tensors produced by a blocked node and consumed only by blocked nodes (and not graph outputs)."""
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    outputs = {o.name for o in model.graph.output}
    edges = set()
    for n in model.graph.node:
        if n.name not in blocked:
            continue
        for o in n.output:
            users = consumers.get(o, [])
            if users and o not in outputs and all(u.name in blocked for u in users):
                edges.add(o)
    return edges


def _fold_round_trips(model) -> int:
    """Remove every fp32 -> fp16 -> fp32 round trip the converter leaves on a kept node's input: a Cast to
    fp32 that reads a Cast to fp16 of an fp32 tensor (a graph input, or a kept node's output that unkept
    nodes read too) now reads that fp32 tensor itself, so the kept node gets the value unrounded (and not
    inf where it passes 65504). Returns the number of Casts removed."""
    from onnx import TensorProto

    g = model.graph
    fp32 = {v.name for v in [*g.input, *g.value_info, *g.output]
            if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    producer = {o: n for n in g.node for o in n.output}

    def cast_to(n) -> int | None:
        return next((a.i for a in n.attribute if a.name == "to"), None) if n.op_type == "Cast" else None

    rename, drop = {}, set()
    for n in g.node:
        if cast_to(n) != TensorProto.FLOAT:
            continue
        source, p = None, producer.get(n.input[0])
        while p is not None and cast_to(p) == TensorProto.FLOAT16:  # through Casts to fp16 only
            source = p.input[0]
            p = producer.get(source)
        if source in fp32:
            rename[n.output[0]] = source
            drop.add(n.name)
    if not rename:
        return 0
    outputs = {o.name for o in g.output}
    kept_nodes = [n for n in g.node if n.name not in drop or n.output[0] in outputs]
    for n in kept_nodes:
        for i, x in enumerate(n.input):
            if x in rename and n.name not in drop:
                n.input[i] = rename[x]
    del g.node[:]
    g.node.extend(kept_nodes)
    return len(drop)


def build_fp16(fp32_onnx: str | Path, out: str | Path, node_block_list=(), op_block_list=()) -> Path:
    """The fp16 ONNX of `fp32_onnx` with the given nodes / op types kept in fp32 (plus the converter's
    default op block list), the kept set closed (graph.kept_closure: the Casts, Transposes and Reshapes
    between kept nodes and the carriers of their weights are kept too) and no fp16 round trip left on a
    kept node's input; fp32 inputs and outputs; one file when under 2 GB."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from onnx import helper

    from backends.graph import closed, tensor_types

    model = onnx.load(str(fp32_onnx))
    named = set(node_block_list) | {n.name for n in model.graph.node if n.op_type in set(op_block_list)}
    blocked = set(closed(model, sorted(named))) if named else set()
    if blocked:
        # the converter places its Casts around blocked nodes by value_info, which torch's export does not
        # write: give every tensor its type (without it a blocked node would read fp16 as if fp32)
        known = {v.name for v in model.graph.value_info} | {t.name for t in model.graph.initializer} | \
            {v.name for v in list(model.graph.input) + list(model.graph.output)}
        model.graph.value_info.extend(helper.make_tensor_value_info(name, t, None)
                                      for name, t in tensor_types(model).items() if name not in known)
    edges = fp32_edges(model, blocked)
    kept = [v for v in model.graph.value_info if v.name not in edges]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)
    fp16 = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=True,
                                    node_block_list=sorted(blocked),
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(op_block_list)))
    folded = _fold_round_trips(fp16) if blocked else 0
    log.info("fp16 with %d nodes kept fp32 (%d named, %d by closure; %d fp32 edges between them, %d fp16 round "
             "trips removed), op types %s", len(blocked), len(named), len(blocked - named), len(edges), folded,
             sorted(op_block_list) or "none")
    return _save(fp16, Path(out))


def int8_prepared(fp32_onnx: str | Path, out_dir: str | Path) -> Path:
    """The graph the onnxruntime backend quantises (backends.onnxruntime.fold_constants): locate compares
    an int8 model against this one, whose node names the quantisers keep."""
    folded = Path(out_dir) / "folded.onnx"
    folded.parent.mkdir(parents=True, exist_ok=True)
    if not folded.exists():
        fold_constants(fp32_onnx, folded)
    return folded


def build_int8(prepared_onnx: str | Path, out: str | Path, nodes_to_exclude=(), per_channel: bool = True,
               reduce_range: bool = False) -> Path:
    """Dynamic int8 (the backend's int8_dynamic: quantize_dynamic, weights int8 per channel) of the
    prepared graph, leaving `nodes_to_exclude` in fp32 (closed: graph.kept_closure)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from backends.graph import closed

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(prepared_onnx), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     reduce_range=reduce_range, use_external_data_format=True,
                     nodes_to_exclude=sorted(closed(prepared_onnx, nodes_to_exclude)) if nodes_to_exclude else [])
    return Path(out)


def build_int8_static(fp32_onnx: str | Path, out: str | Path, calibration: list[str | Path], batch_size: int = 1,
                      nodes_to_exclude=(), **options) -> Path:
    """Static QDQ int8 (the backend's int8: backends.onnxruntime.quantize_static_int8, calibrated on the
    .npy files `calibration`), leaving `nodes_to_exclude` in fp32 (closed: graph.kept_closure; as exact-name
    patterns of its `exclude`)."""
    import re

    from backends.graph import closed

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    keep = sorted(closed(fp32_onnx, nodes_to_exclude)) if nodes_to_exclude else []
    quantize_static_int8(fp32_onnx, out, list(calibration), batch_size,
                         exclude=[f"^{re.escape(n)}$" for n in keep], **options)
    return Path(out)


def reduced_graph(fp32_onnx: str | Path, precision: str, scratch: str | Path, options: dict) -> str:
    """The graph whose node names `keep` names: the fp32 ONNX for fp16, for int8 the constant-folded graph
    the quantisers work on (fold_constants: the weights reach their MatMul without Transpose nodes there)."""
    if precision.startswith("int8"):
        return str(int8_prepared(fp32_onnx, scratch))
    return str(fp32_onnx)


def build_reduced(graph: str | Path, precision: str, keep: list[str], out_dir: str | Path,
                  options: dict) -> str:
    """The model at `precision` with the nodes `keep` computed in fp32, weights and outputs included, from
    `graph` (reduced_graph's): fp16 by the fp16 converter's node_block_list, int8 by the quantisers'
    nodes_to_exclude (static: calibrated on options["calibration"], as compile does)."""
    out = Path(out_dir) / MODEL_NAME
    if precision == "fp16":
        return str(build_fp16(graph, out, node_block_list=keep))
    if precision == "int8_dynamic":
        return str(build_int8(graph, out, keep, reduce_range=use_reduce_range(options)))
    if precision == "int8":
        return str(build_int8_static(graph, out, options["calibration"], nodes_to_exclude=keep,
                                     reduce_range=use_reduce_range(options)))
    raise ValueError(f"onnxruntime: {precision} has nothing to keep in fp32 (reduced precisions: "
                     f"{', '.join(sorted(REDUCED))})")


def load_reduced(model: str | Path, options: dict):
    """run(batch) -> the model's first output, as the compiled target computes (EXTENDED optimisation)."""
    return _run(session(model, options.get("threads", 1), optimize=True, level="extended"))


def write_kept(path: str | Path, nodes: list[str]) -> None:
    """The kept nodes, one per line: the names quantize_static / quantize_dynamic take as nodes_to_exclude
    and the fp16 converter as node_block_list."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(f"{n}\n" for n in dict.fromkeys(nodes)), encoding="utf-8")


def kept_command(fp32_onnx: str | os.PathLike, kept_file: str | os.PathLike, out_dir: str | os.PathLike,
                 options: dict) -> None:
    """None: repair's model folder is the deployable repaired model itself (no external tool builds it)."""
    return None
