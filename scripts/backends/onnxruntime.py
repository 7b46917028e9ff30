"""ONNX Runtime on the CPU: the backend that runs on every machine.

compile: the graph (fp32, fp16, or int8 by ONNX Runtime's dynamic quantisation) with its batch
size fixed, optimised by ONNX Runtime and saved to disk, so the offline model loads with
optimisations disabled (nothing is re-optimised at load time)."""

from pathlib import Path

import numpy as np

from common import log

RUNS_ON_HOST_CPU = True
MODEL_NAME = "model.onnx"
DATA_NAME = "model.onnx.data"


def _ort():
    import onnxruntime as ort

    return ort


LEVELS = ("basic", "extended", "all")


def session(model: str | Path, threads: int, optimize: bool = False, optimized_out: str | Path | None = None,
            level: str = "extended", disabled_optimizers: list[str] | None = None):
    """An ONNX Runtime CPU session. optimize=False for compiled models: load as saved."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
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
    return ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"],
                                disabled_optimizers=disabled_optimizers or [])


def fix_batch(onnx_in: str | Path, onnx_out: str | Path, batch_size: int) -> None:
    """Fix the symbolic batch axis (what ATC's --input_shape does for the .om)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    model = onnx.load(str(onnx_in))
    make_dim_param_fixed(model.graph, "batch", batch_size)
    onnx.save(model, str(onnx_out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=Path(onnx_out).name + ".data", size_threshold=1024)


def quantize_int8(onnx_in: str | Path, onnx_out: str | Path, per_channel: bool = True,
                  recipe: str = "matmul") -> None:
    """Dynamic int8 quantisation of every weight MatMul with ONNX Runtime's tools (weights int8,
    activations quantised per run; the attention's activation x activation MatMuls stay fp32).

    First ONNX Runtime's BASIC optimisation folds the constants: cn_clip's vision export keeps the
    weights behind Transpose nodes, which hides them from quantize_dynamic. MatMulAddFusion is
    disabled there: on a fixed-batch graph it turns each MatMul + bias into Reshape + Gemm + Reshape,
    which quantize_dynamic then has to turn back into a MatMul; without it the int8 graph has fewer
    nodes and compiles faster, at the same speed and cosine (docs/performance.md).
    Per-channel weight scales (the default) were as fast or faster than per-tensor in every
    measured pair and closer to torch_fp32 (ViT-H-14 cosine 0.999833 vs 0.999795).
    recipe="pre_process" is the previous recipe (quant_pre_process, then quantize_dynamic), kept so
    that bench/ort_variants.py can compare the two."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folded = Path(onnx_out).with_name("folded.onnx")
    prepared = Path(onnx_out).with_name("prepared.onnx")
    if recipe == "pre_process":
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(onnx_in), str(prepared), skip_symbolic_shape=True, save_as_external_data=True,
                          all_tensors_to_one_file=True, external_data_location=prepared.name + ".data")
    else:
        session(onnx_in, 1, optimize=True, optimized_out=folded, level="basic",
                disabled_optimizers=["MatMulAddFusion"])
        prepared = folded
    quantize_dynamic(str(prepared), str(onnx_out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     use_external_data_format=True)


def compile(onnx_model: str | Path, out_dir: str | Path, batch_size: int, resolution: int, options: dict) -> list[str]:
    """`onnx_model` is the fp32 ONNX (precision fp32 or int8) or the fp16 one (precision fp16)."""
    import tempfile

    precision = options.get("precision", "fp32")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from common import remove_stale_scratch

    prefix = f".compile-{out_dir.name}-"
    remove_stale_scratch(out_dir.parent, prefix)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=prefix) as scratch:
        fixed = Path(scratch) / "fixed.onnx"
        log.info("fixing batch size %d in %s", batch_size, onnx_model)
        fix_batch(onnx_model, fixed, batch_size)
        if precision == "int8":
            log.info("quantising to int8 (ONNX Runtime dynamic quantisation)")
            quantized = Path(scratch) / "int8.onnx"
            quantize_int8(fixed, quantized, per_channel=options.get("per_channel", True),
                          recipe=options.get("int8_recipe", "matmul"))
            fixed = quantized
        level = options.get("graph_optimization", "extended")
        log.info("optimising %s with ONNX Runtime (level %s) into %s", precision, level, out_dir / MODEL_NAME)
        session(fixed, options["threads"], optimize=True, optimized_out=out_dir / MODEL_NAME, level=level)
    files = [out_dir / MODEL_NAME] + ([out_dir / DATA_NAME] if (out_dir / DATA_NAME).exists() else [])
    return [str(f) for f in files]


def _run(sess):
    name = sess.get_inputs()[0].name
    return lambda batch: sess.run(None, {name: batch})[0]


def infer(model: str | Path, npy_files: list[str | Path], dst_dir: str | Path, options: dict) -> None:
    from common import Progress

    run = _run(session(model, options["threads"]))
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress("infer", len(npy_files))
    for npy in npy_files:
        out = run(np.load(npy))
        np.save(dst_dir / f"{Path(npy).stem}_0.npy", out.astype(np.float32, copy=False))
        progress.step()


def benchmark(model: str | Path, npy_files: list[str | Path], batch_size: int, loop: int, warmup: int,
              options: dict) -> dict:
    from timing import time_runs

    run = _run(session(model, options["threads"]))
    inputs = [np.load(f) for f in npy_files]
    result = time_runs(run, inputs, batch_size, loop, warmup, f"onnxruntime bs{batch_size}")
    return {**result, "threads": options["threads"]}


def versions() -> dict:
    return {"onnxruntime": _ort().__version__}
