"""OpenVINO on the CPU: the exported fp32 ONNX converted to OpenVINO's IR, run by OpenVINO's own CPU plugin.

compile: openvino.convert_model reads the fp32 ONNX (its external weights file included), the batch axis is
fixed, int8 is quantised with NNCF, and the IR is saved with fp32 weights (model.xml + model.bin). What a
target computes in is decided when the IR is compiled for the CPU, by the plugin's inference precision hint:
  fp32   INFERENCE_PRECISION_HINT f32 (set explicitly: on a CPU with bf16 instructions the plugin's
         default is bf16)
  fp16   hint f16
  bf16   hint bf16
  int8   NNCF post-training quantisation (nncf.quantize, ModelType.TRANSFORMER) calibrated on the run's
         inputs (options["calibration"]: .npy paths), the rest of the graph with hint f32
The hint and what the plugin made of it are written beside the IR (model.json, RECORD_NAME): infer,
benchmark and load_reduced compile the IR with the same config. The plugin does not always honour a hint:
without avx512_fp16 or AMX-FP16 it turns f16 into bf16 (measured on an AMD EPYC with avx512_bf16, OpenVINO
2026.4.1: INFERENCE_PRECISION_HINT reads back bf16 and every runtime node runs bf16). compile then logs a
warning and records the precision actually used ("inference_precision", "hint_honoured").

Keeping ONNX nodes in fp32 (build_reduced, for repair and locate): nodes are named by the fp32 ONNX, and
OpenVINO names its ops after them (ov_names has the mapping and its rules). int8 keeps them out of NNCF's
quantisation (IgnoredScope(names=...), which takes OpenVINO's names); fp16 and bf16 mark them with the
DisablePrecisionConversion runtime attribute (the successor of disable_fp16_compression), which the CPU
plugin reads when it enforces the hint. Two things drop it, so build_reduced works around the one and
refuses the other (both measured on OpenVINO 2026.4.1):
- the plugin fuses a MatMul and its bias Add into a new FullyConnected node (FullyConnectedBiasFusion), which
  does not copy the attribute: a kept MatMul is given a second consumer (an extra model output, after the
  first one, FUSION_BARRIER), so the fusion does not apply and it stays fp32;
- attention (ScaledDotProductAttention, or MatMul x MatMul with a Softmax between) becomes one snippets
  subgraph that computes in the hint's precision whatever the marks say (its results are bit-identical
  marked or not): such nodes cannot be kept in fp32 under fp16/bf16, and build_reduced says so.
Every kept node is then checked in the compiled runtime graph (fp16/bf16: it runs in f32) or in the
quantised model (int8: no FakeQuantize or int8 weight feeds it)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from backends.base import PreflightError, cpu_has_vnni
from pipeline.common import log

# --- the plan (scripts/backends/base.py) ----------------------------------------------------------
NAME = "openvino"
CONFIG_KEYS = ()  # nothing of its own: `threads` and the precisions are every backend's
RUNS_ON_HOST_CPU = True
ACCELERATOR = None  # it holds no accelerator
REFERENCE = False  # the reference stages run elsewhere (backends/base.py)
LABEL, SHORT = "OpenVINO", "OV"  # how the report names it
FACTS = ("openvino", "OpenVINO", "OV", "nncf", "NNCF")  # its words: no file outside this plan names them
# precision -> the exported ONNX it starts from
PRECISIONS = {"fp32": "fp32", "fp16": "fp32", "bf16": "fp32", "int8": "fp32"}
CALIBRATED = frozenset({"int8"})  # compile needs options["calibration"]
DEFAULT_PRECISION = "fp32"
REDUCED = frozenset({"fp16", "bf16", "int8"})
CANDIDATE_OPS = {"int8": ("MatMul", "Gemm", "Conv")}  # what NNCF quantises of a transformer
AUTO_PRECISIONS = ("fp32", "fp16", "int8")  # what `precisions: auto` builds and chooses among
# precision -> the CPU plugin's INFERENCE_PRECISION_HINT (int8: what the unquantised rest computes in)
HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16", "int8": "f32"}
PRECISION_OF_HINT = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}
MODEL_NAME = "model.xml"
WEIGHTS_NAME = "model.bin"
RECORD_NAME = "model.json"  # the precision and compile config the IR is run with
KEPT_NAME = "kept.txt"  # build_reduced: OpenVINO's names of the kept ops, for NNCF's IgnoredScope
FUSION_BARRIER = "keep_fp32_barrier/"  # prefix of the extra outputs build_reduced adds (fp16/bf16)
SETUP_FIX = "run `bash envs/setup.sh` (envs/requirements.txt pins openvino==2026.4.1 and nncf==3.4.0)"
# the runtime attribute the CPU plugin reads to leave an op out of the hint's precision, as the IR stores it
# (ov::DisablePrecisionConversion: from any type to f16; the plugin checks that entry whatever the hint)
KEEP_ATTRIBUTE = {"name": "DisablePrecisionConversion", "version": "0", "value": "dynamic:f16"}
KEEP_RT_KEY = "DisablePrecisionConversion_0"  # its key in an op's get_rt_info()
# ops that only move or reshape data: nothing to verify in the runtime graph when the plugin folds them away
DATA_MOVEMENT = {"Reshape", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Gather", "ShapeOf", "Convert",
                 "Broadcast", "Slice", "StridedSlice", "VariadicSplit", "Split", "Constant"}


def _ov():
    import openvino as ov

    return ov


def _nncf():
    import nncf

    return nncf


@functools.cache
def _core():
    """One OpenVINO Core per process: a new one reloads the CPU plugin and recompiles from nothing."""
    return _ov().Core()


def devices(config: dict) -> list[str]:
    return ["cpu"]


def options(config: dict, precision: str) -> dict:
    return {}


def preflight(config: dict | None = None) -> None:
    """Before any job: OpenVINO and NNCF import in this Python, else a PreflightError naming the fix."""
    absent = []
    for module in ("openvino", "nncf"):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is the same fix
            absent.append(f"{module} ({type(exc).__name__}: {exc})")
    if absent:
        raise PreflightError(f"the openvino backend cannot import {' and '.join(absent)}: {SETUP_FIX}")


def _check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} for the openvino backend; known: {', '.join(PRECISIONS)}")
    return precision


def compile_config(precision: str, threads: int) -> dict:
    """The CPU plugin's config for a target: its precision hint, latency mode (one stream), `threads`
    threads (0: OpenVINO's choice)."""
    config = {"INFERENCE_PRECISION_HINT": HINTS[_check_precision(precision)], "PERFORMANCE_HINT": "LATENCY",
              "NUM_STREAMS": 1}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return config


def _fix_batch(model, batch_size: int):
    """Every input's first axis fixed to batch_size (the others as the ONNX declares them)."""
    shapes = {}
    for inp in model.inputs:
        dims = list(inp.get_partial_shape())
        shapes[inp.get_any_name()] = [batch_size] + [d.get_length() if d.is_static else -1 for d in dims[1:]]
    model.reshape(shapes)
    return model


def convert(onnx_model: str | os.PathLike, batch_size: int):
    """The fp32 ONNX as an OpenVINO model (openvino.convert_model, which applies OpenVINO's own fusions)
    with its batch axis fixed."""
    log.info("converting %s with openvino.convert_model, batch size %d", onnx_model, batch_size)
    return _fix_batch(_ov().convert_model(str(onnx_model)), batch_size)


def _calibration(options: dict, batch_size: int) -> list[np.ndarray]:
    from timing import batches

    files = options.get("calibration") or []
    if not files:
        raise ValueError("precision int8 (NNCF post-training quantisation) needs calibration inputs: "
                         "options['calibration'] must list preprocessed .npy files of real inputs")
    return batches([np.load(f) for f in files], batch_size)


def quantize(model, calibration: list[np.ndarray], ignored: list[str] | None = None):
    """NNCF post-training int8 (ModelType.TRANSFORMER) calibrated on every batch of `calibration`,
    leaving the ops named `ignored` (OpenVINO friendly names) unquantised. On a CPU without VNNI the
    plugin's u8 x s8 kernels add pairs of products in saturating 16-bit arithmetic: NNCF's overflow fix
    (7-bit weights) goes on every layer there, as NNCF advises for such CPUs, not only the first
    (its default)."""
    nncf = _nncf()
    overflow_fix = nncf.OverflowFix.FIRST_LAYER if cpu_has_vnni() else nncf.OverflowFix.ENABLE
    log.info("quantising to int8 with NNCF %s (ModelType.TRANSFORMER, %d calibration batches, %d ops ignored, "
             "overflow fix %s)", nncf.__version__, len(calibration), len(ignored or []), overflow_fix.value)
    kwargs = {"ignored_scope": nncf.IgnoredScope(names=list(ignored))} if ignored else {}
    return nncf.quantize(model, nncf.Dataset(calibration), model_type=nncf.ModelType.TRANSFORMER,
                         subset_size=len(calibration),
                         advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow_fix), **kwargs)


def _type_name(t) -> str:
    return t.to_string() if hasattr(t, "to_string") else str(t)


def runtime_precisions(compiled) -> dict[str, int]:
    """{precision: number of compute nodes} of a compiled model's runtime graph (inputs, outputs, constants
    and the plugin's Reorder conversions left out)."""
    counts: dict[str, int] = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Input", "Output", "Const", "Reorder"):
            continue
        p = info["runtimePrecision"].astype(str)
        counts[p] = counts.get(p, 0) + 1
    return dict(sorted(counts.items()))


def _describe(compiled, precision: str) -> dict:
    """What the plugin made of the hint: the precision it reads back and the runtime graph's precisions."""
    effective = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    hint = HINTS[precision]
    record = {"precision": precision, "inference_precision_hint": hint, "inference_precision": effective,
              "hint_honoured": effective == hint, "runtime_precisions": runtime_precisions(compiled)}
    if not record["hint_honoured"]:
        log.warning("OpenVINO's CPU plugin does not honour INFERENCE_PRECISION_HINT=%s on this CPU: it computes in %s "
                    "(runtime graph: %s); the %s target runs %s here", hint, effective, record["runtime_precisions"],
                    precision, PRECISION_OF_HINT.get(effective, effective))
    return record


def _write_record(out_dir: Path, precision: str, threads: int, extra: dict | None = None) -> tuple[dict, object]:
    """Compile the saved IR as infer will, and write RECORD_NAME: the precision, the hint and what the
    plugin did with it. Returns the record and the compiled model."""
    from pipeline.common import write_json

    compiled = _core().compile_model(str(out_dir / MODEL_NAME), "CPU", compile_config(precision, threads))
    record = {**_describe(compiled, precision), "openvino": _ov().__version__, **(extra or {})}
    write_json(out_dir / RECORD_NAME, record)
    return record, compiled


def _save(model, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    _ov().save_model(model, str(out_dir / MODEL_NAME), compress_to_fp16=False)


def compile(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
            options: dict) -> list[str]:
    """The IR at batch_size in out_dir (model.xml, model.bin) and its record (model.json). `onnx_model`
    is the fp32 ONNX for every precision (PRECISIONS). Options: threads, precision, calibration (int8)."""
    precision = _check_precision(options.get("precision", DEFAULT_PRECISION))
    if precision in CALIBRATED and not options.get("calibration"):
        raise ValueError(f"precision {precision} (NNCF post-training int8) needs calibration inputs: "
                         "options['calibration'] must list preprocessed .npy files of real inputs")
    out_dir = Path(out_dir)
    model = convert(onnx_model, batch_size)
    extra = {"batch_size": batch_size}
    if precision == "int8":
        model = quantize(model, _calibration(options, batch_size))
        extra["nncf"] = _nncf().__version__
    log.info("saving the %s IR (fp32 weights) to %s", precision, out_dir / MODEL_NAME)
    _save(model, out_dir)
    record, _ = _write_record(out_dir, precision, options.get("threads", 0), extra)
    log.info("compiled for the CPU with hint %s: runs %s (runtime graph %s)", record["inference_precision_hint"],
             record["inference_precision"], record["runtime_precisions"])
    return [str(out_dir / MODEL_NAME), str(out_dir / WEIGHTS_NAME), str(out_dir / RECORD_NAME)]


def compile_command(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
                    options: dict) -> None:
    """None: compile() runs no external tool (OpenVINO and NNCF run in this process)."""
    return None


def _precision_of(model: str | os.PathLike, options: dict, strict: bool = True) -> str:
    """The precision the IR was made for: its record (RECORD_NAME) beside it, else options["precision"].
    strict: options["precision"] other than the record's is an error (a target run as another)."""
    record = Path(model).with_name(RECORD_NAME)
    asked = options.get("precision")
    if record.is_file():
        made = json.loads(record.read_text(encoding="utf-8"))["precision"]
        if strict and asked is not None and asked != made:
            raise ValueError(f"{model} was made for precision {made} ({record}), but options ask for {asked}")
        return made
    return _check_precision(asked or DEFAULT_PRECISION)


def load(model: str | os.PathLike, options: dict, strict: bool = True):
    """The IR compiled for the CPU exactly as its target runs: the precision hint of its record, latency
    mode, options["threads"] threads. Returns (compiled model, its infer request)."""
    precision = _precision_of(model, options, strict)
    compiled = _core().compile_model(str(model), "CPU", compile_config(precision, options.get("threads", 0)))
    return compiled, compiled.create_infer_request()


def _runner(request):
    def run(batch: np.ndarray) -> np.ndarray:
        request.infer({0: batch})
        return request.get_output_tensor(0).data.copy()

    return run


def infer(model: str | os.PathLike, npy_files: list, dst_dir: str | os.PathLike, options: dict) -> None:
    """dst_dir/<input stem>_0.npy (float32, the model's first output) for every input."""
    from backends.base import infer_each

    _, request = load(model, options)
    infer_each(_runner(request), npy_files, dst_dir)


def benchmark(model: str | os.PathLike, npy_files: list, batch_size: int, loop: int, warmup: int,
              options: dict) -> dict:
    """timing.time_runs over the IR as infer runs it; plus threads and the precision the plugin used."""
    from timing import time_runs

    compiled, request = load(model, options)
    inputs = [np.load(f) for f in npy_files]
    result = time_runs(_runner(request), inputs, batch_size, loop, warmup, f"openvino bs{batch_size}")
    effective = _type_name(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return {**result, "threads": options["threads"], "inference_precision": effective}


def versions(options: dict) -> dict:
    out = {}
    for name, module in (("openvino", _ov), ("nncf", _nncf)):
        try:
            out[name] = module().__version__
        except Exception as exc:  # noqa: BLE001 - the report shows why it is absent
            out[name] = f"not importable ({type(exc).__name__}: {exc}): {SETUP_FIX}"
    return out


# --------------------------------------------------------------------------------------------
# ONNX node names -> OpenVINO op names
# --------------------------------------------------------------------------------------------

def _onnx_facts(fp32_onnx: str | os.PathLike) -> dict:
    """Nodes by name, consumers by tensor, and the nodes that depend on the model's input data (the
    others are computed from constants and static shapes, so OpenVINO folds them at conversion)."""
    import onnx

    graph = onnx.load(str(fp32_onnx), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    data = {v.name for v in graph.input if v.name not in weights}
    nodes, consumers, producer, dynamic = {}, {}, {}, set()
    for node in graph.node:  # ONNX keeps nodes in topological order
        nodes[node.name] = node
        producer.update((t, node.name) for t in node.output)
        for x in node.input:
            consumers.setdefault(x, []).append(node.name)
        if node.op_type not in ("Shape", "Size") and data & set(node.input):
            data.update(node.output)
            dynamic.add(node.name)
    return {"nodes": nodes, "consumers": consumers, "producer": producer, "dynamic": dynamic}


def _ov_index(model) -> tuple[dict, dict]:
    """OpenVINO ops by friendly name, and by each output tensor name they carry."""
    by_name, by_tensor = {}, {}
    for op in model.get_ops():
        if op.get_type_name() in ("Result", "Parameter"):
            continue
        by_name[op.get_friendly_name()] = op
        for out in op.outputs():
            for tensor in out.get_names():
                by_tensor.setdefault(tensor, op)
    return by_name, by_tensor


def ov_names(fp32_onnx: str | os.PathLike, model, nodes: list[str]) -> dict:
    """Where each ONNX node of `nodes` is in `model` (the OpenVINO model convert_model made of fp32_onnx):
    {"ops": {onnx name: [OpenVINO friendly names]}, "rule": {onnx name: how it was found}, "folded": [...],
    "eliminated": [...], "unknown": [...]}. OpenVINO's ONNX front end names each op after its ONNX node and keeps the ONNX
    output tensor names; its fusions keep the name of the node they replace last. Rules, in order:
      exact     an op with the node's name (and `<name>/WithoutBiases`, the product the front end splits
                from a Conv or Gemm with bias, whose bias Add keeps `<name>`)
      tensor    the op that now produces one of the node's output tensors (an op fused into another:
                the last MatMul, renamed after the model output; a Cast or Identity removed)
      fused     a node with neither, whose computation OpenVINO fused into an op further on (a LayerNorm's
                ReduceMean, Sub, Pow... into MVN; attention's MatMul and Softmax into
                ScaledDotProductAttention; GELU's Mul and Sigmoid into Swish): the first ops found walking
                its consumers
    "folded": nodes that depend on no input data (computed at conversion from constants and static shapes:
    nothing of them runs); "eliminated": nodes that compute nothing, removed by OpenVINO (a Cast to the type
    it already has, an Identity: their output tensor is now the output of the op that fed them);
    "unknown": names that are not nodes of fp32_onnx."""
    facts = _onnx_facts(fp32_onnx)
    by_name, by_tensor = _ov_index(model)

    def direct(name: str) -> tuple[list[str], str | None]:
        found = [n for n in (name, f"{name}/WithoutBiases") if n in by_name]
        if found:
            return found, "exact"
        ops = list(dict.fromkeys(by_tensor[t].get_friendly_name() for t in facts["nodes"][name].output
                                 if t in by_tensor))
        return (ops, "tensor") if ops else ([], None)

    result = {"ops": {}, "rule": {}, "folded": [], "eliminated": [], "unknown": []}
    for name in dict.fromkeys(nodes):
        if name not in facts["nodes"]:
            result["unknown"].append(name)
            continue
        if name not in facts["dynamic"]:
            result["folded"].append(name)
            continue
        ops, rule = direct(name)
        feeders = {o for t in facts["nodes"][name].input if t in facts["producer"]
                   for o in direct(facts["producer"][t])[0]}
        if rule == "tensor" and set(ops) <= feeders:
            result["eliminated"].append(name)
            continue
        if not ops:  # fused further on: the first mapped ops along its consumers
            seen, frontier = {name}, [name]
            while frontier and not ops:
                nxt = []
                for n in frontier:
                    for t in facts["nodes"][n].output:
                        for c in facts["consumers"].get(t, []):
                            if c not in seen:
                                seen.add(c)
                                nxt.append(c)
                for c in nxt:
                    found, _ = direct(c)
                    ops.extend(f for f in found if f not in ops)
                frontier = [c for c in nxt if not direct(c)[0]]
            rule = "fused"
        if not ops:
            raise RuntimeError(f"ONNX node {name} has no counterpart in the OpenVINO model (no op of its name, "
                               "none producing its outputs, none it was fused into)")
        result["ops"][name], result["rule"][name] = ops, rule
    return result


# --------------------------------------------------------------------------------------------
# Reduced precision with nodes kept in fp32 (repair, locate)
# --------------------------------------------------------------------------------------------

def _has_constant_operand(op) -> bool:
    """Whether an input of `op` is a weight (a Constant, possibly behind Convert/Reshape/Transpose)."""
    for value in op.input_values():
        node = value.get_node()
        while node.get_type_name() in ("Convert", "Reshape", "Transpose") and node.get_input_size():
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant":
            return True
    return False


def _attention(op) -> bool:
    """Ops the CPU plugin runs as one attention subgraph (ScaledDotProductAttention, an activation x
    activation MatMul, a Softmax feeding one): they compute in the hint's precision whatever their marks."""
    kind = op.get_type_name()
    if kind == "ScaledDotProductAttention":
        return True
    if kind == "MatMul":
        return not _has_constant_operand(op)
    if kind == "Softmax":
        return any(c.get_node().get_type_name() == "MatMul" and not _has_constant_operand(c.get_node())
                   for c in op.output(0).get_target_inputs())
    return False


def quantised_inputs(model, names: list[str]) -> dict[str, list[int]]:
    """{op name: input ports fed by a FakeQuantize or by int8 weights (a low-precision integer Constant,
    through its Convert/Subtract/Multiply dequantisation)} for the ops `names` of an OpenVINO model."""
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    out = {}
    for name in names:
        ports = []
        for i, value in enumerate(by_name[name].input_values()):
            node = value.get_node()
            while node.get_type_name() in ("Convert", "Subtract", "Multiply", "Reshape", "Transpose") and node.get_input_size():
                first = node.input_value(0).get_node()
                if node.get_type_name() == "Multiply" and first.get_type_name() not in ("Convert", "Subtract"):
                    break  # an activation scaled (SmoothQuant), not a dequantised weight
                node = first
            quantised = node.get_type_name() == "FakeQuantize" or (
                node.get_type_name() == "Constant" and _type_name(node.get_element_type()) in ("i8", "u8", "i4", "u4"))
            if quantised:
                ports.append(i)
        if ports:
            out[name] = ports
    return out


def _mark_ir(xml_path: Path, names: set[str]) -> None:
    """Add KEEP_ATTRIBUTE to the rt_info of the IR layers named `names` (OpenVINO's Python API cannot make
    the attribute; read_model rebuilds it from the IR)."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(xml_path)
    marked = set()
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in names:
            continue
        rt_info = layer.find("rt_info")
        if rt_info is None:
            rt_info = ET.Element("rt_info")
            layer.insert(1 if layer.find("data") is not None else 0, rt_info)
        ET.SubElement(rt_info, "attribute", KEEP_ATTRIBUTE)
        marked.add(layer.get("name"))
    if marked != names:
        raise RuntimeError(f"{xml_path}: no IR layer named {sorted(names - marked)}")
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)


def _fuses_as_post_op(op) -> bool:
    """Whether the plugin may fuse an op reading `op`'s output into it as a post-op: a MatMul or
    Convolution, or a bias Add behind one (the plugin folds that Add into the node first)."""
    kind = op.get_type_name()
    if kind in ("MatMul", "Convolution"):
        return True
    return kind == "Add" and _has_constant_operand(op) and any(
        v.get_node().get_type_name() in ("MatMul", "Convolution") for v in op.input_values())


def _add_fusion_barriers(model, names: set[str]) -> list[str]:
    """Extra model outputs (after the first) that stop the plugin fusing a kept op with an op that is not
    kept, since such a fused node runs in the hint's precision: one on each kept MatMul with weights (else
    it fuses with its bias Add into a new FullyConnected, which drops the keep mark), and one on the
    producer of a kept op the plugin would fuse as a post-op into a MatMul or Convolution (GELU after
    a Linear). Returns the ops given one."""
    import openvino.opset13 as ops

    targets = {}
    for op in model.get_ops():
        name = op.get_friendly_name()
        if name not in names:
            continue
        if op.get_type_name() == "MatMul" and _has_constant_operand(op):
            targets[name] = op
        elif op.get_input_size():
            feeder = op.input_value(0).get_node()
            if feeder.get_friendly_name() not in names and _fuses_as_post_op(feeder):
                targets[feeder.get_friendly_name()] = feeder
    barriers = []
    for name, op in targets.items():
        result = ops.result(op.output(0))
        result.set_friendly_name(FUSION_BARRIER + name)
        barriers.append(result)
    if barriers:
        model.add_results(barriers)
    return list(targets)


def _check_kept_runtime(compiled, names: set[str], types: dict[str, str]) -> None:
    """Every kept op that computes runs in f32 in the compiled runtime graph (found by its name in a runtime
    node's originalLayersNames); one the runtime graph does not name cannot be verified: an error. Ops that
    only move data (DATA_MOVEMENT) compute nothing: they carry their input's precision, kept or not."""
    moved = {n for n in names if types[n] in DATA_MOVEMENT}
    if moved:
        log.info("kept ops that only move data, in whatever precision their input has: %s", sorted(moved))
    names = names - moved
    precision: dict[str, set[str]] = {}
    used = set()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) in ("Input", "Output", "Reorder"):
            continue
        used.add(info["runtimePrecision"].astype(str))
        for original in info["originalLayersNames"].astype(str).split(","):
            if original in names:
                precision.setdefault(original, set()).add(info["runtimePrecision"].astype(str))
    if not used & {"f16", "bf16"}:
        log.info("no node of the compiled model runs below f32 (runtime precisions %s): every kept op is fp32",
                 sorted(used))
        return
    reduced = {n: sorted(p) for n, p in precision.items() if p != {"f32"}}
    unseen = sorted(names - set(precision))
    if reduced or unseen:
        raise RuntimeError("OpenVINO's CPU plugin did not keep these ops in fp32: "
                           + "; ".join([f"{n} runs {'/'.join(p)}" for n, p in reduced.items()]
                                       + [f"{n} ({types[n]}) is fused into a node that does not name it" for n in unseen]))


def reduced_graph(fp32_onnx: str | os.PathLike, precision: str, scratch: str | os.PathLike, options: dict) -> str:
    """The graph whose node names `keep` names: the fp32 ONNX (OpenVINO names its ops after them, ov_names)."""
    return str(fp32_onnx)


def build_reduced(graph: str | os.PathLike, precision: str, keep: list[str], out_dir: str | os.PathLike,
                  options: dict) -> str:
    """The model at `precision` with the ONNX nodes `keep` (names of `graph`'s nodes: the fp32 ONNX,
    reduced_graph) computed in fp32,
    as out_dir/model.xml (with model.bin, model.json and kept.txt). Each name is found in the OpenVINO
    model by ov_names; int8 leaves the ops out of NNCF's quantisation, fp16/bf16 mark them to stay out of
    the precision hint (the module's docstring says how). keep=[] is the plain reduced model, as compile
    makes it. The kept set is closed first (graph.closure.kept_closure: the ops that move or cast a kept node's
    output to the next, and the carriers of its weights). Attention cannot be kept under fp16/bf16: it stays at
    the hint, logged and recorded
    (`not_kept` in model.json); any other node the plugin does not keep in fp32 is an error.
    Options: threads, calibration (int8), batch_size (default 1: the batch of load_reduced's inputs)."""
    from graph import MOVES, SHAPE_OPS
    from graph.closure import kept_closure

    precision = _check_precision(precision)
    out_dir = Path(out_dir)
    model = convert(graph, int(options.get("batch_size", 1)))
    closure = kept_closure(graph, keep) if keep else []
    where = ov_names(graph, model, list(keep) + closure)
    if where["unknown"]:
        raise ValueError(f"not nodes of {graph}: {where['unknown']}")
    for name in where["folded"]:
        log.info("kept node %s is computed at conversion (constants and static shapes only): nothing to keep", name)
    for name in where["eliminated"]:
        log.info("kept node %s computes nothing (OpenVINO removed it): nothing to keep", name)
    by_name = {op.get_friendly_name(): op for op in model.get_ops()}
    kept = list(dict.fromkeys(o for ops in where["ops"].values() for o in ops
                              if by_name[o].get_type_name() != "Constant"))
    types = {n: by_name[n].get_type_name() for n in kept}
    extra = {"batch_size": int(options.get("batch_size", 1)), "keep": list(keep), "closure": closure,
             "ov_names": where["ops"],
             "rule": where["rule"], "folded": where["folded"], "eliminated": where["eliminated"], "kept_ops": kept}
    facts = _onnx_facts(graph)
    computing = {n for n in facts["dynamic"] if facts["nodes"][n].op_type not in MOVES | SHAPE_OPS}
    if precision in ("fp16", "bf16") and computing <= set(keep) | set(closure):
        # nothing is left at the hint: compiled with the f32 hint, the one way the plugin keeps attention in
        # fp32 too (so keeping every node gives exactly the fp32 model)
        log.info("every computing node of %s is kept: compiled with the f32 hint", graph)
        extra.update(every_node_kept=True, hint_of=precision)
        precision = "fp32"
    if precision == "fp32":
        log.info("precision fp32: every node is fp32 already")
    elif precision == "int8":
        model = quantize(model, _calibration(options, extra["batch_size"]), kept)
        left = quantised_inputs(model, kept)
        if left:
            raise RuntimeError(f"NNCF quantised inputs of ops it was told to ignore: {left}")
        extra["nncf"] = _nncf().__version__
    else:
        refused = {onnx: [o for o in ops if o in by_name and _attention(by_name[o])]
                   for onnx, ops in where["ops"].items()}
        refused = {k: v for k, v in refused.items() if v}
        if refused:
            # the plugin runs attention as one subgraph in the hint's precision whatever the ops' marks say
            # (measured: its results are bit-identical marked or not); only the int8 target can keep it (NNCF's
            # ignored scope). Left at the hint, said in the log and in model.json (`not_kept`)
            log.warning("cannot keep in fp32 under the %s hint (OpenVINO %s CPU plugin, attention runs as one "
                        "subgraph at the hint's precision): %s", precision, _ov().__version__, ", ".join(refused))
            drop = {o for v in refused.values() for o in v}
            kept = [o for o in kept if o not in drop]
            types = {n: types[n] for n in kept}
            extra.update(kept_ops=kept, not_kept=sorted(refused))
        extra["fusion_barriers"] = _add_fusion_barriers(model, set(kept))
    _save(model, out_dir)
    if precision in ("fp16", "bf16") and kept:
        _mark_ir(out_dir / MODEL_NAME, set(kept))
    write_kept(out_dir / KEPT_NAME, kept)
    record, compiled = _write_record(out_dir, precision, options.get("threads", 0), extra)
    if precision in ("fp16", "bf16") and kept:
        _check_kept_runtime(compiled, set(kept), types)
    log.info("%s model with %d ONNX nodes kept in fp32 (%d OpenVINO ops) in %s; runs %s", precision, len(keep),
             len(kept), out_dir / MODEL_NAME, record["inference_precision"])
    return str(out_dir / MODEL_NAME)


def load_reduced(model: str | os.PathLike, options: dict):
    """run(input) -> the model's first output, compiled as its target is (load: the precision its record
    names, whatever options["precision"] says)."""
    _, request = load(model, options, strict=False)
    return _runner(request)


def write_kept(path: str | os.PathLike, nodes) -> Path:
    """The kept names, one per line, each once (build_reduced writes OpenVINO's names: the form NNCF's
    IgnoredScope(names=[...]) takes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n}\n" for n in dict.fromkeys(nodes)), encoding="utf-8")
    return path


def kept_command(fp32_onnx: str | os.PathLike, kept_file: str | os.PathLike, out_dir: str | os.PathLike,
                 options: dict) -> None:
    """None: repair's model folder is the deployable repaired model itself (no external tool builds it)."""
    return None
