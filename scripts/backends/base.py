"""What a backend module (scripts/backends/<name>.py) declares: its whole plan. The registry
(scripts/backends/__init__.py) finds every module here that sets NAME, and everything else (the rules,
paths, the accuracy tools, the report, the profiles) asks it through the registry, so a new backend is one
module here, its config keys in config/schema.yaml, and its tests: no rule and no other file names it.

The plan, module-level names and functions (`Backend` below checks them):

  NAME               its value of the `backend` coordinate and config key
  CONFIG_KEYS        the top-level config keys it owns (their schema: config/schema.yaml)
  devices(config)    the `device` coordinate of its targets: the chips it compiles for, or "cpu"
  PRECISIONS         its precision vocabulary: what a target computes in -> the exported ONNX it starts
                     from ("fp32" or "fp16"); DEFAULT_PRECISION when config names none
  CALIBRATED         the precisions whose compile calibrates on the run's first shard of inputs
  AUTO_PRECISIONS    what `precisions: auto` builds (fp32 first, then the reduced ones the run checks, repairs
                     and chooses among): each backend weighs its own
  options(config, precision)  its compile, infer and benchmark options (the workflow adds "threads",
                     "precision", "device" and "tower")
  ACCELERATOR        the resource its infer and benchmark jobs hold, one per job (e.g. "npu"), or None
  RUNS_ON_HOST_CPU   whether its speed can be set against this host's matmul ceiling
  LABEL, SHORT       how the report names its runtime, in full and in a narrow column
  FACTS              its words: its runtime's names and abbreviations, its tools, its accelerator resource;
                     no file outside its plan names them (tests/unit/test_house.py)
  REFERENCE          whether its runtime is the reference runtime (exactly one plan): it computes the onnx_fp32
                     and onnx_fp16 reference stages, runs ONNX graphs for the accuracy tools (graph.segments), and
                     measures the host's matmul ceiling beside torch's; that plan also has
  graph_session(model, threads, optimization, per_node)  a session of an ONNX file or serialised graph, with
                     run(output names, feeds) (per_node: one of hundreds held at once, fp16 storage)
  preflight(config)  raise PreflightError, naming the fix, when it cannot run here (before any job)
  versions(options)  {tool: version, or why it is absent}, recorded in the report
  compile / compile_command / infer / benchmark   the offline model and what runs it
  REDUCED            the precisions whose loss locate measures and repair can win back
  reduced_graph(fp32_onnx, precision, scratch, options) -> the ONNX graph whose node names `keep` names
                     (the fp32 ONNX, or the graph the backend's quantiser works on)
  CANDIDATE_OPS      {precision: the op types it changes} where not every floating-point op (int8)
  build_reduced(graph, precision, keep, out_dir, options) -> model path: the model at `precision` with
                     the nodes named in `keep` computed in fp32, weights and outputs included (how repair
                     keeps nodes in higher precision)
  load_reduced(model, options) -> run(input): such a model's first output, computed as the target computes
  write_kept(path, nodes)   the kept nodes (and their closure) in the form the backend's own tool takes them
  kept_command(fp32_onnx, kept_file, out_dir, options)  the tool command that builds the repaired target from
                     that file (ATC's --keep_dtype), or None where repair's model folder is the repaired model
  node_tensors(...)  (optional) the device's own intermediate tensors, for locate's node-by-node view
  batch_models(config)  (optional) the models a target's batch sizes get: ("static",), one per batch size
                     (the default), ("dynamic",), one model over all of them whose batch is picked at run time
                     (compile then gets the tuple of batch sizes and the manifest records them as
                     `dynamic_batch`; infer and benchmark find them in options["dynamic_batch"]), or both
  takes_pixels(config)  (optional) whether its image targets take uint8 HxWx3 pixels after cn_clip's resize and
                     RGB conversion (its device converts and normalises them; default False): preprocess then
                     writes them too, and its infer reads them
  device_input(spec, options)  (optional) what its compiled model takes for one item when not the ONNX's input
                     ({shape, dtype, bytes_per_item, preprocessing}), recorded in the compile manifest
  accelerators(config, job)  (optional) how many of its ACCELERATOR one job holds ("infer", "benchmark",
                     "locate"; default 1): a benchmark over several devices asks the scheduler for all of them

The model's inputs are described from the ONNX itself (name, shape, dtype), never from constants."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PreflightError(RuntimeError):
    """A backend cannot run on this machine; the message names what is missing and the fix."""


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


def infer_each(run, npy_files: list, dst_dir: str | os.PathLike) -> None:
    """What a backend's infer does when it runs in this process: run(input) for every input, its output to
    dst_dir/<input stem>_0.npy (float32: ais_bench's layout, one code path for similarity)."""
    from pathlib import Path

    import numpy as np

    from pipeline.common import Progress

    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress("infer", len(npy_files))
    for npy in npy_files:
        np.save(dst_dir / f"{Path(npy).stem}_0.npy", np.asarray(run(np.load(npy))).astype(np.float32, copy=False))
        progress.step()


@runtime_checkable
class Backend(Protocol):
    """The plan every backend module declares (see the module docstring)."""

    NAME: str
    CONFIG_KEYS: tuple[str, ...]
    PRECISIONS: dict[str, str]
    DEFAULT_PRECISION: str
    CALIBRATED: frozenset[str]
    AUTO_PRECISIONS: tuple[str, ...]
    REDUCED: frozenset[str]
    ACCELERATOR: str | None
    RUNS_ON_HOST_CPU: bool
    REFERENCE: bool
    LABEL: str
    SHORT: str
    FACTS: tuple[str, ...]

    def devices(self, config: dict) -> list[str]:
        """The devices its targets are built for (the `device` coordinate)."""

    def options(self, config: dict, precision: str) -> dict:
        """Compile, infer and benchmark options from config: only its own keys, so changing another
        backend's option rebuilds none of its targets."""

    def preflight(self, config: dict) -> None:
        """Raise PreflightError naming the fix when this backend cannot run here."""

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
        """{"throughput_fps", "latency_ms": {mean, p50, p90, p99, ...}, ...}."""

    def versions(self, options: dict) -> dict:
        """{tool: version, or a string that says why it is absent}."""

    def reduced_graph(self, fp32_onnx: str | os.PathLike, precision: str, scratch: str | os.PathLike,
                      options: dict) -> str:
        """The ONNX graph whose node names build_reduced's `keep` names."""

    def build_reduced(self, graph: str | os.PathLike, precision: str, keep: list[str],
                      out_dir: str | os.PathLike, options: dict) -> str:
        """The model at `precision` with the nodes `keep` computed in fp32."""

    def load_reduced(self, model: str | os.PathLike, options: dict):
        """run(input) -> the first output, computed as the target computes."""

    def write_kept(self, path: str | os.PathLike, nodes: list[str]) -> None:
        """The kept nodes, in the form the backend's tool takes them."""

    def kept_command(self, fp32_onnx: str | os.PathLike, kept_file: str | os.PathLike, out_dir: str | os.PathLike,
                     options: dict) -> list[str] | None:
        """The tool command that builds the repaired target from the kept file, or None."""


def cpu_has_vnni() -> bool:
    """Whether this CPU has an int8 dot-product instruction (AVX512-VNNI or AVX-VNNI; ARM's dot
    product counts as one). Without it the x86 u8 x s8 kernels of the CPU backends (VPMADDUBSW, in
    ONNX Runtime and in OpenVINO's CPU plugin) add pairs of products in saturating 16-bit arithmetic,
    and full-range int8 weights overflow it: each backend then quantises weights to 7 bits."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return True
    try:
        flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "").split()
    except OSError:
        return False
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))
