"""One module per backend, each with the same functions:

compile(onnx_fp16, out_dir, batch_size, resolution, options) -> list of model files (first: the model)
infer(model, npy_files, dst_dir, options)                    -> writes dst_dir/{stem}_0.npy per input
benchmark(model, npy_files, batch_size, loop, warmup, options) -> {"throughput_fps", "latency_ms", ...}
versions()                                                    -> {tool: version}
compile_command(onnx_fp16, out_dir, batch_size, resolution, options) -> argv, optional: the tool command
                                                               line compile() runs (recorded for the report)

A new accelerator is one new module here and one config value, with no new rules.
"""

import importlib


def get(name: str):
    return importlib.import_module(f"backends.{name}")
