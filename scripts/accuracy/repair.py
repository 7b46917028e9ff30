"""repair: the smallest set of nodes (or op types) kept in fp32 that brings a reduced-precision target back
over its gate, chosen from locate's list, each candidate rebuilt with the real tools and re-verified.

Rebuild, per precision:
- fp16 (ONNX Runtime): onnxruntime.transformers.float16.convert_float_to_float16 with node_block_list /
  op_block_list (its default op block list kept), keep_io_types, as the workflow's fp16 ONNX is made.
  That converter puts a fp32 -> fp16 Cast after every blocked node and a fp16 -> fp32 Cast before it,
  also between two blocked nodes, so a value that does not fit fp16 would still overflow on the edge
  between them; build_fp16 removes the value_info of edges whose producer and every consumer are blocked,
  which the converter then leaves in fp32.
- int8 (ONNX Runtime): the backend's static QDQ quantisation (quantize_static_int8, its `exclude`) or
  quantize_dynamic's nodes_to_exclude (int8_dynamic), on the graph the onnxruntime backend quantises
  (backends.onnxruntime.fold_constants).
- Ascend: ATC cannot run here. The fp16 ONNX on ONNX Runtime stands in for ATC's fp16 computation, the
  kept set is found on it, and written as ATC's --keep_dtype file (write_keep_dtype). Use it with ATC on
  the fp32 ONNX: `--precision_mode=force_fp16 --keep_dtype=keep_dtype.cfg` (keep_dtype does nothing under
  must_keep_origin_dtype); or give ATC the repaired fp16 ONNX with --precision_mode=must_keep_origin_dtype.

Strategy (greedy by located error): the nodes that read or write a tensor whose fp32 values exceed the
fp16 range first, as one step (no fp16 model can hold such a tensor); then one node at a time, by the
error it adds (locate's `increment`), largest first. After each step: rebuild, verify, stop as soon as
the gate passes. Each rebuild and each verify is its own function, so a rule can make each a job."""

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from pipeline.common import log, write_json

MODES = ("nodes", "op_types")


# --------------------------------------------------------------------------------------------
# Candidates from locate
# --------------------------------------------------------------------------------------------

def candidate_steps(rows: list[dict], summary: dict, mode: str = "nodes", precision: str = "fp16") -> list[list[str]]:
    """Ordered steps, each a list of node names (mode "nodes") or op types (mode "op_types") to add to the
    kept set. Overflow nodes only matter where fp16 storage is involved (fp16, ascend)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode}")
    steps, seen = [], set()
    if mode == "op_types":
        overflow_ops = list(dict.fromkeys(r["op_type"] for r in rows if r["node"] in set(summary["overflow_nodes"])))
        if overflow_ops and precision != "int8":
            steps.append(overflow_ops)
            seen.update(overflow_ops)
        for entry in summary["op_types"]:
            if entry["increment_sum"] > 0 and entry["op_type"] not in seen:
                steps.append([entry["op_type"]])
                seen.add(entry["op_type"])
        return steps
    if summary.get("overflow_nodes") and precision != "int8":
        steps.append(list(summary["overflow_nodes"]))
        seen.update(summary["overflow_nodes"])
    for r in sorted(rows, key=lambda r: (-r["increment"], r["depth"])):
        if r["increment"] > 0 and r["node"] not in seen:
            steps.append([r["node"]])
            seen.add(r["node"])
    return steps


# --------------------------------------------------------------------------------------------
# Rebuilds
# --------------------------------------------------------------------------------------------

def _save(model, out: Path) -> Path:
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    if model.ByteSize() < 2 ** 31 - 2 ** 20:
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


def build_fp16(fp32_onnx: str | Path, out: str | Path, node_block_list=(), op_block_list=()) -> Path:
    """The fp16 ONNX of `fp32_onnx` with the given nodes / op types kept in fp32 (plus the converter's
    default op block list); fp32 inputs and outputs; one file when under 2 GB."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from onnx import helper

    from accuracy.locate import tensor_types

    model = onnx.load(str(fp32_onnx))
    blocked = set(node_block_list) | {n.name for n in model.graph.node if n.op_type in set(op_block_list)}
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
                                    node_block_list=sorted(set(node_block_list)),
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | set(op_block_list)))
    log.info("fp16 with %d nodes kept fp32 (%d fp32 edges between them), op types %s", len(blocked), len(edges),
             sorted(op_block_list) or "none")
    return _save(fp16, Path(out))


def int8_prepared(fp32_onnx: str | Path, out_dir: str | Path) -> Path:
    """The graph the onnxruntime backend quantises (backends.onnxruntime.fold_constants): locate compares
    an int8 model against this one, whose node names the quantisers keep."""
    from backends.onnxruntime import fold_constants

    folded = Path(out_dir) / "folded.onnx"
    folded.parent.mkdir(parents=True, exist_ok=True)
    if not folded.exists():
        fold_constants(fp32_onnx, folded)
    return folded


def build_int8(prepared_onnx: str | Path, out: str | Path, nodes_to_exclude=(), per_channel: bool = True,
               reduce_range: bool = False) -> Path:
    """Dynamic int8 (the backend's int8_dynamic: quantize_dynamic, weights int8 per channel) of the
    prepared graph, leaving `nodes_to_exclude` in fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(prepared_onnx), str(out), weight_type=QuantType.QInt8, per_channel=per_channel,
                     reduce_range=reduce_range, use_external_data_format=True,
                     nodes_to_exclude=sorted(set(nodes_to_exclude)))
    return Path(out)


def build_int8_static(fp32_onnx: str | Path, out: str | Path, calibration: list[str | Path], batch_size: int = 1,
                      nodes_to_exclude=(), **options) -> Path:
    """Static QDQ int8 (the backend's int8: backends.onnxruntime.quantize_static_int8, calibrated on the
    .npy files `calibration`), leaving `nodes_to_exclude` in fp32 (as exact-name patterns of its `exclude`)."""
    import re

    from backends.onnxruntime import quantize_static_int8

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    quantize_static_int8(fp32_onnx, out, list(calibration), batch_size,
                         exclude=[f"^{re.escape(n)}$" for n in sorted(set(nodes_to_exclude))], **options)
    return Path(out)


def write_keep_dtype(path: str | Path, nodes=(), op_types=()) -> Path:
    """ATC's --keep_dtype file: one operator name per line, or `OpType::<type>` per line for an operator
    type (an Ascend IR type, which is not always the ONNX one: ONNX MatMul is MatMulV2 there).
    Format: CANN ATC docs, "--keep_dtype", e.g.
    https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/80RC2alpha002/devaids/auxiliarydevtool/atlasatc_16_0105.html
    For an ONNX model ATC names its operators after the ONNX nodes, so locate's node names are used."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = list(dict.fromkeys(nodes)) + [f"OpType::{t}" for t in dict.fromkeys(op_types)]
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Verify
# --------------------------------------------------------------------------------------------

def run_model(onnx_path: str | Path, inputs: list[np.ndarray], input_name: str = "image", threads: int = 1,
              fp16_storage: bool = False) -> list[np.ndarray]:
    """First output for each input on ONNX Runtime's CPU: as the onnxruntime backend runs it (EXTENDED
    optimisation), or with every fp16 tensor stored in fp16 between nodes (locate.SegmentRunner, one
    session per node): the proxy of fp16 hardware such as ATC's fp16 .om, which ONNX Runtime's own CPU
    execution is not (it computes most fp16 nodes in fp32)."""
    if fp16_storage:
        from accuracy.locate import SegmentRunner, load_graph

        output = load_graph(onnx_path).graph.output[0].name
        runner = SegmentRunner(onnx_path, [[output]], threads, fp16_storage=True)
        return [next(iter(runner.run({input_name: x})))[output] for x in inputs]
    from backends.onnxruntime import session

    sess = session(onnx_path, threads, optimize=True, level="extended")
    return [sess.run(None, {input_name: x})[0] for x in inputs]


def verify(onnx_path: str | Path, inputs: list[np.ndarray], reference: list[np.ndarray], gate: float,
           input_name: str = "image", threads: int = 1, fp16_storage: bool = False) -> dict:
    """Cosine of the model's output against `reference` per input, and whether the minimum meets `gate`
    (inf/NaN in any output fails it)."""
    from accuracy.locate import tensor_stats

    outs = run_model(onnx_path, inputs, input_name, threads, fp16_storage)
    stats = [tensor_stats(r, o) for r, o in zip(reference, outs)]
    cos = [s["cosine"] for s in stats]
    nonfinite = sum(s["target_nonfinite"] for s in stats)
    passed = bool(min(cos) >= gate and nonfinite == 0)
    return {"model": str(onnx_path), "cosine_min": float(min(cos)), "per_input": cos, "nonfinite": nonfinite,
            "gate": gate, "fp16_storage": fp16_storage, "passed": passed}


# --------------------------------------------------------------------------------------------
# The greedy loop
# --------------------------------------------------------------------------------------------

def new_record(before: dict, precision: str, mode: str, gate: float) -> dict:
    """The record before any step: `before` is verify() of the target as it is."""
    return {"precision": precision, "mode": mode, "gate": gate, "before": before, "kept": [], "steps": [],
            "passed": before["passed"], "done": before["passed"], "after": before, "model": before.get("model")}


def take_step(record: dict, n: int, steps: list[list[str]], build: Callable[[list[str], Path], Path],
              check: Callable[[Path], dict], out: str | Path) -> dict:
    """Greedy step n (from 1) on the record left by step n - 1: add steps[n - 1] to the kept set,
    build(kept, out), check() it. A step after the gate passed, or past the last candidate, changes
    nothing but `done`. Returns a new record."""
    record = dict(record)
    if record["done"]:
        return record
    if n > len(steps):
        log.info("no candidate left after %d steps: gate not met", n - 1)
        return {**record, "done": True}
    step = steps[n - 1]
    kept = record["kept"] + [s for s in step if s not in record["kept"]]
    model = build(list(kept), Path(out))
    result = check(model)
    log.info("repair step %d: +%s -> %d kept, cosine min %.6f%s", n, step if len(step) < 4 else f"{len(step)} items",
             len(kept), result["cosine_min"], " PASS" if result["passed"] else "")
    record["steps"] = record["steps"] + [{"step": n, "added": step, "kept": len(kept),
                                          "cosine_min": result["cosine_min"], "nonfinite": result["nonfinite"],
                                          "passed": result["passed"], "model": str(model)}]
    record.update(kept=kept, after=result, model=str(model), passed=result["passed"], done=result["passed"])
    return record


def greedy(steps: list[list[str]], build: Callable[[list[str], Path], Path], check: Callable[[Path], dict],
           workdir: str | Path, before: dict, max_steps: int = 20, cleanup: bool = False) -> dict:
    """take_step after take_step in one process, each step's model in workdir/step{n}/model.onnx; stops
    at the first that passes. cleanup: remove each failed step's folder once the next step starts."""
    workdir = Path(workdir)
    record = new_record(before, "", "", before.get("gate"))
    if before["passed"]:
        log.info("gate already met (cosine min %.6f): nothing to repair", before["cosine_min"])
    for n in range(1, max_steps + 1):
        if record["done"]:
            break
        if cleanup and n > 1:  # the previous step failed: its model is not needed again (a model per step fills a disk)
            shutil.rmtree(workdir / f"step{n - 1}", ignore_errors=True)
        record = take_step(record, n, steps, build, check, workdir / f"step{n}" / "model.onnx")
    if not record["passed"]:
        log.info("gate not met after %d steps", len(record["steps"]))
    return record


def builder(fp32_onnx: str | Path, precision: str, mode: str, scratch: str | Path,
            calibration: list[str | Path] | None = None, reduce_range: bool = False) -> Callable[[list[str], Path], Path]:
    """build(kept, out) for a precision: fp16 or ascend (the fp16 converter's block lists), int8 (static
    QDQ, the backend's default; needs `calibration`, the .npy inputs) or int8_dynamic. reduce_range: the
    backend's choice for the host (backends.onnxruntime.use_reduce_range)."""
    if precision in ("fp16", "ascend"):
        def build(kept, out):
            return build_fp16(fp32_onnx, out, **({"node_block_list": kept} if mode == "nodes" else
                                                 {"op_block_list": kept}))
        return build
    if precision not in ("int8", "int8_dynamic"):
        raise ValueError(f"precision must be fp16, int8, int8_dynamic or ascend, not {precision}")
    if mode != "nodes":
        raise ValueError("int8 repair excludes nodes (the quantisers' nodes_to_exclude); use mode 'nodes'")
    if precision == "int8_dynamic":
        prepared = int8_prepared(fp32_onnx, scratch)

        def build(kept, out):
            return build_int8(prepared, out, kept, reduce_range=reduce_range)
        return build
    if not calibration:
        raise ValueError("static int8 repair needs the calibration inputs (calibration=[.npy files])")

    def build(kept, out):
        return build_int8_static(fp32_onnx, out, calibration, nodes_to_exclude=kept, reduce_range=reduce_range)
    return build


def repair(fp32_onnx: str | Path, precision: str, rows: list[dict], summary: dict, inputs: list[np.ndarray],
           reference: list[np.ndarray], gate: float, workdir: str | Path, target_onnx: str | Path | None = None,
           mode: str = "nodes", max_steps: int = 20, threads: int = 1, fp16_storage: bool | None = None,
           input_name: str = "image", before: dict | None = None,
           calibration: list[str | Path] | None = None, cleanup: bool = False) -> dict:
    """Everything at once: the kept set, before and after. precision: fp16 or ascend (fp16 ONNX on ONNX
    Runtime as the proxy), int8 or int8_dynamic (see builder). For both int8 the rows must come from
    locate against int8_prepared()'s graph. `target_onnx` is the target as built today (before); without
    it the unrepaired model is built here. fp16_storage (default: true for ascend, false otherwise):
    verify with every fp16 tensor stored in fp16 (see run_model). `before`: verify() of the target
    already at hand (else it is verified here)."""
    workdir = Path(workdir)
    build = builder(fp32_onnx, precision, mode, workdir, calibration)
    storage = precision == "ascend" if fp16_storage is None else fp16_storage

    def check(model):
        return verify(model, inputs, reference, gate, input_name, threads, storage)

    if before is None:
        before = check(target_onnx if target_onnx else build([], workdir / "step0" / "model.onnx"))
    result = greedy(candidate_steps(rows, summary, mode, precision), build, check, workdir, before, max_steps,
                    cleanup)
    result.update(precision=precision, mode=mode, gate=gate)
    if precision == "ascend":
        cfg = write_keep_dtype(workdir / "keep_dtype.cfg", *((result["kept"], ()) if mode == "nodes"
                                                               else ((), result["kept"])))
        result["keep_dtype"] = str(cfg)
    return result


def latency_ms(onnx_path: str | Path, x: np.ndarray, input_name: str = "image", threads: int = 1,
               runs: int = 5) -> dict:
    """Median and minimum wall time of one input through the model on ONNX Runtime's CPU (as the onnxruntime
    backend runs it), after one untimed run: enough to show what keeping nodes in fp32 costs."""
    from backends.onnxruntime import session

    sess = session(onnx_path, threads, optimize=True, level="extended")
    sess.run(None, {input_name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {input_name: x})
        times.append((time.perf_counter() - start) * 1e3)
    return {"median": float(np.median(times)), "min": float(min(times)), "runs": runs}


def speed(before_model: str | Path, after_model: str | Path, x: np.ndarray, input_name: str = "image",
          threads: int = 1, runs: int = 5) -> dict:
    """Latency of the model before and after repair, measured the same way in one job."""
    before = latency_ms(before_model, x, input_name, threads, runs)
    after = latency_ms(after_model, x, input_name, threads, runs)
    return {"before_ms": before, "after_ms": after, "ratio": after["median"] / before["median"],
            "threads": threads, "measured_on": "ONNX Runtime CPU, batch 1, one input",
            "note": "for an Ascend target this is the CPU proxy, not the NPU"}


def link_model(src: str | Path, dst: str | Path, copy: bool = False) -> None:
    """An ONNX model and its external data file, if any (named as the model refers to it), at `dst`: a
    hard link where the file system allows (a step's model is the model of the step before it, a
    repair's model is its last step's), else a copy. copy: always a copy, for a `src` that is another
    rule's output (Snakemake sets its outputs' times, which a shared inode would give that file too)."""
    import onnx

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    locations = {e.value for t in onnx.load(str(src), load_external_data=False).graph.initializer
                 for e in t.external_data if e.key == "location"}
    for a, b in [(src, dst)] + [(src.parent / loc, dst.parent / loc) for loc in locations]:
        if a.resolve() == b.resolve():
            continue
        b.unlink(missing_ok=True)
        if not copy:
            try:
                os.link(a, b)
                continue
            except OSError:  # another file system, or links not allowed
                pass
        shutil.copyfile(a, b)


def _inputs(npy: list[str], reference: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The inputs and their torch_fp32 features (`reference`: the shards' features files,
    common.write_features), paired by item name."""
    from pipeline.common import read_features
    from accuracy.locate import load_inputs

    npy = sorted(npy)
    refs = read_features(reference)
    missing = [Path(f).stem for f in npy if Path(f).stem not in refs]
    if missing:
        raise ValueError(f"no torch_fp32 reference for inputs {missing}")
    return load_inputs(npy), [refs[Path(f).stem] for f in npy]


def run_step(step: int, fp32: str, csv_path: str, locate_json: str, npy: list[str], reference: list[str],
             precision: str, gate: float, out_json: str, out_model: str, prev_json: str | None = None,
             prev_model: str | None = None, target: str | None = None, mode: str = "nodes",
             threads: int = 1, reduce_range: bool = False) -> dict:
    """One job of the repair chain (rule repair_step). Step 0 verifies the target as it is (the fp16 ONNX
    given as `target`, or the unrepaired model built here) and starts the record; it is done at once when
    the gate is met or locate did not locate the target (every gate of similarity.json met). Step n
    takes greedy step n on the record of step n - 1 (prev_json, prev_model), or, once done, passes that
    record and model on unchanged. Writes the record to out_json and the step's model to out_model."""
    from backends.base import model_inputs
    from pipeline.common import read_json
    from accuracy.locate import read_csv

    if precision == "fp32":
        raise ValueError("an fp32 target has nothing to keep in fp32: repair applies to fp16, int8, int8_dynamic "
                         "and Ascend targets")
    record = read_json(prev_json) if step > 0 else None
    if record is not None and record["done"]:
        link_model(prev_model, out_model)
        write_json(out_json, record)
        return record
    inputs, ref = _inputs(npy, reference)
    name = model_inputs(fp32)[0].name
    storage = precision == "ascend"
    out_model = Path(out_model)
    out_model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_model.parent, prefix=".repair-") as scratch:
        build = builder(fp32, precision, mode, scratch, sorted(npy), reduce_range)

        def check(model):
            return verify(model, inputs, ref, float(gate), name, threads, storage)

        if record is None:
            if target:
                link_model(target, out_model, copy=True)
            else:
                build([], out_model)
            record = new_record(check(out_model), precision, mode, float(gate))
            summary = read_json(locate_json)
            record["locate"] = {"csv": str(csv_path), "json": str(locate_json),
                                "located": summary.get("located", True)}
            if not record["done"] and not record["locate"]["located"]:
                log.info("locate did not locate this target (its gates were met): nothing to repair from")
                record["done"] = True
        else:
            steps = candidate_steps(read_csv(csv_path), read_json(locate_json), mode, precision)
            record = take_step(record, step, steps, build, check, out_model)
            if record["model"] != str(out_model):  # no candidate left: the step built nothing
                link_model(prev_model, out_model)
    write_json(out_json, record)
    return record


def finish(last_json: str, last_model: str, npy: list[str], out_json: str, out_model: str,
           keep_dtype: str | None = None, threads: int = 1, speed_runs: int = 5) -> dict:
    """The repair rule: the chain's last record to `out_json` (before, after, kept nodes or op types, the
    steps taken, and the speed before and after when steps were taken: the record names step 0's model,
    which the rule keeps as an input so that temp() leaves it until then), its model (the repaired one, or
    when nothing needed repair or nothing passed the last one verified) to `out_model`, and for Ascend
    ATC's --keep_dtype file to `keep_dtype`."""
    from backends.base import model_inputs
    from pipeline.common import read_json
    from accuracy.locate import load_inputs

    record = read_json(last_json)
    before = record["before"]
    record.pop("done", None)
    record["repaired"] = bool(record["steps"]) and record["passed"]
    link_model(last_model, out_model)
    if speed_runs and record["steps"]:
        x = load_inputs(npy, 1)[0]
        record["speed"] = speed(before["model"], out_model, x, model_inputs(out_model)[0].name, threads, speed_runs)
    record["model"] = str(out_model)
    if keep_dtype:
        write_keep_dtype(keep_dtype, record["kept"] if record["mode"] == "nodes" else (),
                         record["kept"] if record["mode"] == "op_types" else ())
        record["keep_dtype"] = str(keep_dtype)
    write_json(out_json, record)
    return record


def run(fp32: str, data: str | None, csv_path: str, locate_json: str, npy: list[str], reference: list[str],
        precision: str, gate: float, out_json: str, out_model: str, keep_dtype: str | None = None,
        target: str | None = None, mode: str = "nodes", max_steps: int = 20,
        threads: int = 1, workdir: str | Path | None = None, speed_runs: int = 5) -> dict:
    """The whole chain in one process, as the rules run it job by job: run_step 0 to max_steps, each
    step's files in `workdir` (removed at the end), then finish()."""
    workdir = Path(workdir or Path(out_json).parent / "steps")
    shutil.rmtree(workdir, ignore_errors=True)  # steps of an earlier run are not this run's
    workdir.mkdir(parents=True)
    files = [(workdir / f"step{n}.json", workdir / f"step{n}" / "model.onnx") for n in range(max_steps + 1)]
    for n, (j, m) in enumerate(files):
        prev = files[n - 1] if n else (None, None)
        run_step(n, fp32, csv_path, locate_json, npy, reference, precision, gate, str(j), str(m),
                 *(str(f) if f else None for f in prev), target, mode, threads)
    result = finish(str(files[-1][0]), str(files[-1][1]), npy, out_json, out_model, keep_dtype, threads, speed_runs)
    shutil.rmtree(workdir, ignore_errors=True)
    return result
