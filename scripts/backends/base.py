"""The interface every backend module (scripts/backends/<name>.py) implements, with the same
functions and signatures: a new accelerator is one new module and one config value, no new rules.
The model's inputs are described from the ONNX itself (name, shape, dtype), never from constants."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class TensorSpec:
    """One model input as the ONNX declares it: a symbolic axis is its name (e.g. "batch")."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str  # numpy's name: float32, float16, int64, ...


def model_inputs(onnx_path: str | os.PathLike) -> list[TensorSpec]:
    """The graph inputs of an ONNX file (initializers excluded), read without loading its weights."""
    import onnx
    from onnx import helper

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    specs = []
    for value in graph.input:
        if value.name in weights:
            continue
        tensor = value.type.tensor_type
        shape = tuple(d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim)
        specs.append(TensorSpec(value.name, shape, helper.tensor_dtype_to_np_dtype(tensor.elem_type).name))
    return specs


@runtime_checkable
class Backend(Protocol):
    """What scripts/compile.py, infer.py, benchmark.py and the report call."""

    RUNS_ON_HOST_CPU: bool  # its speed can be set against this host's matmul ceiling

    def compile(self, onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int,
                resolution: int, options: dict) -> list[str]:
        """The offline model at a fixed batch size; the files written, the model first."""

    def compile_command(self, onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int,
                        resolution: int, options: dict) -> list[str] | None:
        """The tool command line compile() runs (recorded for the report), or None (no tool)."""

    def infer(self, model: str | os.PathLike, npy_files: list, dst_dir: str | os.PathLike, options: dict) -> None:
        """dst_dir/<input stem>_0.npy for every input."""

    def benchmark(self, model: str | os.PathLike, npy_files: list, batch_size: int, loop: int, warmup: int,
                  options: dict) -> dict:
        """{"throughput_fps", "latency_ms": {mean, p50, p90, p99, ...}, "seconds" (each timed run, or None),
        "throughput_fps_ci95", "latency_ms_ci95" (timing.bootstrap_ci of those runs), ...}. A backend that
        times the runs itself (timing.time_runs) stops early per options["ci_width"]."""

    def versions(self, options: dict) -> dict:
        """{tool: version, or a string that says why it is absent}."""
