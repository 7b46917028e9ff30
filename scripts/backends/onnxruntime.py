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

from pathlib import Path

import numpy as np

from pipeline.common import log

RUNS_ON_HOST_CPU = True
MODEL_NAME = "model.onnx"
DATA_NAME = "model.onnx.data"
PRECISIONS = ("fp32", "fp16", "int8", "int8_dynamic")
STATIC_PRECISIONS = ("int8",)  # those that need options["calibration"]

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
    """Fix the symbolic batch axis (what ATC's --input_shape does for the .om)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    model = onnx.load(str(onnx_in))
    make_dim_param_fixed(model.graph, "batch", batch_size)
    onnx.save(model, str(onnx_out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=Path(onnx_out).name + ".data", size_threshold=1024)


def cpu_has_vnni() -> bool:
    """Whether this CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI; ARM's dot
    product counts as one). Without it ONNX Runtime's x86 u8 x s8 kernels (VPMADDUBSW) add pairs
    of products in saturating 16-bit arithmetic, and full-range int8 weights overflow it."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


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
    from pipeline.common import Progress

    run = _run(session(model, options["threads"], spinning=options.get("spinning")))
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress("infer", len(npy_files))
    for npy in npy_files:
        out = run(np.load(npy))
        np.save(dst_dir / f"{Path(npy).stem}_0.npy", out.astype(np.float32, copy=False))
        progress.step()


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
