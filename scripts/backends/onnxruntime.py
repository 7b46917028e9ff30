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


def session(model: str | Path, threads: int, optimize: bool = False, optimized_out: str | Path | None = None):
    """An ONNX Runtime CPU session. optimize=False for compiled models: load as saved."""
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if optimize:
        # EXTENDED: ONNX Runtime's fusions that any CPU can run; ALL would add layout changes
        # tied to this CPU's instruction set, wrong for a file that may move to another host.
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    else:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if optimized_out is not None:
        so.optimized_model_filepath = str(optimized_out)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA_NAME)
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    return ort.InferenceSession(str(model), sess_options=so, providers=["CPUExecutionProvider"])


def fix_batch(onnx_in: str | Path, onnx_out: str | Path, batch_size: int) -> None:
    """Fix the symbolic batch axis (what ATC's --input_shape does for the .om)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import make_dim_param_fixed

    model = onnx.load(str(onnx_in))
    make_dim_param_fixed(model.graph, "batch", batch_size)
    onnx.save(model, str(onnx_out), save_as_external_data=True, all_tensors_to_one_file=True,
              location=Path(onnx_out).name + ".data", size_threshold=1024)


def quantize_int8(onnx_in: str | Path, onnx_out: str | Path) -> None:
    """Dynamic int8 quantisation with ONNX Runtime's tools. quant_pre_process first: cn_clip's
    vision export keeps weights behind Transpose nodes (no constant folding), which hides the
    MatMuls from quantize_dynamic unless the graph is folded and shape-inferred first."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = Path(onnx_out).with_name("prepared.onnx")
    quant_pre_process(str(onnx_in), str(prepared), skip_symbolic_shape=True, save_as_external_data=True,
                      all_tensors_to_one_file=True,
                      external_data_location=prepared.name + ".data")
    quantize_dynamic(str(prepared), str(onnx_out), weight_type=QuantType.QInt8, use_external_data_format=True)


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
            quantize_int8(fixed, quantized)
            fixed = quantized
        log.info("optimising %s with ONNX Runtime (level EXTENDED) into %s", precision, out_dir / MODEL_NAME)
        session(fixed, options["threads"], optimize=True, optimized_out=out_dir / MODEL_NAME)
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
