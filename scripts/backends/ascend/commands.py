"""The tools' command lines, built by pure functions (atc_command, ais_bench_*_command), ais_bench's figures read
by pure parsers (parse_ais_bench_stdout, parse_summary), and running a tool with its output in the log: the
tests pin all of them without an NPU. The rules each follows are in the package's docstring."""

from __future__ import annotations

import collections
import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from backends.base import PreflightError
from pipeline.common import log

ATC = "atc"
MODEL_PREFIX = "model"  # the .om is <out_dir>/model.om
# The ATC options users tune (config `atc:`), in the order they are appended to the command line.
# Their allowed values live in config/schema.yaml (checked at parse time), from CANN's ATC documentation:
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0067.html
# (--precision_mode), .../atlasatcparam_16_0069.html (--precision_mode_v2, "cannot be used together with
# --precision_mode") and .../atlasatcparam_16_0072.html (--op_select_implmode).
ATC_OPTIONS = ("precision_mode", "precision_mode_v2", "op_select_implmode", "optypelist_for_implmode")

AIS_LOOP_MAX, AIS_WARMUP_MAX, AIS_BATCHSIZE_MAX = 100000, 10000, 4096
# ais_bench's --device: ids 0..255, at most 256 of them (its args_check.check_device_range_valid)
AIS_DEVICE_MAX, AIS_DEVICE_COUNT_MAX = 255, 256
DYNAMIC_GEARS_MIN, DYNAMIC_GEARS_MAX, DYNAMIC_GEAR_MAX = 2, 100, 2048
LOG_TAIL_LINES = 40

CANN_FIX = ("install the CANN toolkit (it provides atc) and load its environment in this shell: "
            "`source /usr/local/Ascend/ascend-toolkit/set_env.sh` (or <CANN install dir>/set_env.sh)")
AIS_BENCH_FIX = ("install ais_bench into that Python from its repository "
                 "(https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench: build and "
                 "`pip3 install` the aclruntime and ais_bench wheels as its README says), or point config "
                 "`ais_bench_python` at the Python that has it")


class MissingToolError(PreflightError):
    """atc or ais_bench is not available; the message names the tool and the fix."""


class ToolError(RuntimeError):
    """atc or ais_bench ran and failed; the message holds the command line and the tail of its output."""


class UnsafePathError(PreflightError):
    """A path ais_bench would refuse that the workflow cannot make safe; the message names the path, the
    rule it breaks and the fix."""



# --------------------------------------------------------------------------------------------
# Command lines (pure)
# --------------------------------------------------------------------------------------------

def dynamic_gears(batch_sizes) -> list[int]:
    """The gears of ATC's --dynamic_batch_size, sorted, or ValueError naming the rule and the config key.
    CANN's ATC documentation, --dynamic_batch_size (atlasatcparam_16_0018): 2 to 100 gears (the range
    (1, 100]), each in [1, 2048], used with --input_shape's batch axis set to -1; it cannot be combined
    with --dynamic_image_size, --dynamic_dims or --input_shape_range (this module passes none of them)."""
    gears = sorted({int(b) for b in batch_sizes})
    if not DYNAMIC_GEARS_MIN <= len(gears) <= DYNAMIC_GEARS_MAX:
        raise ValueError(f"a dynamic-batch model needs {DYNAMIC_GEARS_MIN} to {DYNAMIC_GEARS_MAX} batch sizes "
                         f"(ATC --dynamic_batch_size), {len(gears)} given ({gears}): set config `batch_sizes` to "
                         f"at least two, e.g. [1, 8]")
    bad = [g for g in gears if not 1 <= g <= DYNAMIC_GEAR_MAX]
    if bad:
        raise ValueError(f"batch size(s) {bad}: ATC's --dynamic_batch_size takes gears in [1, {DYNAMIC_GEAR_MAX}]; "
                         f"set config `batch_sizes` in that range")
    return gears


def atc_command(onnx_model: str | os.PathLike, output_prefix: str | os.PathLike, batch_size: int | Sequence[int],
                soc_version: str, spec, atc_options: dict | None = None,
                insert_op_conf: str | os.PathLike | None = None) -> list[str]:
    """The ATC command line, as an argument list for subprocess (no shell, so no quoting). `spec`
    (backends.base.TensorSpec, read from the ONNX) gives the input's name and its non-batch dimensions: a 4-d
    input is NCHW (cn_clip's image `image:<bs>,3,<R>,<R>`), any other ND (its text tower's int64 token ids,
    `text:<bs>,52`). `batch_size`: a fixed batch, or the gears of one dynamic-batch model (a sequence:
    `image:-1,3,<R>,<R> --dynamic_batch_size=1,8`, dynamic_gears). `insert_op_conf`: an AIPP configuration
    (aipp.py). Only the options in `atc_options` that are set (non-empty) are passed, in ATC_OPTIONS order."""
    atc_options = dict(atc_options or {})
    unknown = sorted(set(atc_options) - set(ATC_OPTIONS))
    if unknown:
        raise ValueError(f"unknown ATC option(s) {unknown}; supported: {list(ATC_OPTIONS)}")
    if atc_options.get("precision_mode") and atc_options.get("precision_mode_v2"):
        raise ValueError("ATC options precision_mode and precision_mode_v2 are mutually exclusive (ATC refuses "
                         "both): set only one in config `atc:` (precision_mode_v2 is the newer one)")
    if atc_options.get("optypelist_for_implmode") and not atc_options.get("op_select_implmode"):
        # ATC itself refuses this combination (E10001): the list says which operators the mode applies to.
        raise ValueError("ATC option optypelist_for_implmode needs op_select_implmode "
                         "(high_precision or high_performance) to be set as well")
    if not soc_version:
        raise ValueError("soc_version is empty: ATC needs --soc_version (`npu-smi info`, Name column, "
                         "prefixed with Ascend: 910B4 -> Ascend910B4)")
    gears = None if isinstance(batch_size, int) else dynamic_gears(batch_size)
    dims = ",".join(str(int(d)) for d in (-1 if gears else batch_size, *spec.shape[1:]))
    cmd = [
        ATC,
        "--framework=5",
        f"--model={onnx_model}",
        f"--output={output_prefix}",
        f"--input_format={'NCHW' if len(spec.shape) == 4 else 'ND'}",
        f"--input_shape={spec.name}:{dims}",
        f"--soc_version={soc_version}",
        "--log=error",
    ]
    if gears:
        cmd.append(f"--dynamic_batch_size={','.join(map(str, gears))}")
    if insert_op_conf:
        cmd.append(f"--insert_op_conf={insert_op_conf}")
    cmd += [f"--{key}={atc_options[key]}" for key in ATC_OPTIONS if atc_options.get(key)]
    return cmd


def device_argument(device: int | Sequence[int]) -> str:
    """ais_bench's --device: one id, or several joined by commas (one ais_bench process per device, its
    multidevice_run). ValueError naming the config key outside ais_bench's range."""
    ids = [int(device)] if isinstance(device, int) else [int(d) for d in device]
    if not ids or len(ids) > AIS_DEVICE_COUNT_MAX or len(set(ids)) != len(ids) or \
            not all(0 <= d <= AIS_DEVICE_MAX for d in ids):
        raise ValueError(f"NPU device ids {ids}: ais_bench takes 1 to {AIS_DEVICE_COUNT_MAX} distinct ids in "
                         f"0..{AIS_DEVICE_MAX}; set config `npu_device` / `npu_devices` so")
    return ",".join(map(str, ids))


def ais_bench_infer_command(om: str | os.PathLike, input_dir: str | os.PathLike, output: str | os.PathLike,
                            output_dirname: str = "dst", device: int = 0, ais_bench_python: str = "python3",
                            dym_batch: int | None = None) -> list[str]:
    """ais_bench inference over a folder of npy files: writes <output>/<output_dirname>/<stem>_0.npy
    and <output>/<output_dirname>_summary.json. dym_batch: the batch of a dynamic-batch model
    (--dymBatch; ais_bench refuses such a model without it)."""
    cmd = [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--input", str(input_dir),
           "--output", str(output), "--output_dirname", output_dirname, "--outfmt", "NPY",
           "--device", device_argument(device)]
    return cmd + (["--dymBatch", str(int(dym_batch))] if dym_batch else [])


def ais_bench_benchmark_command(om: str | os.PathLike, loop: int, batch_size: int, warmup: int,
                                device: int | Sequence[int] = 0, output: str | os.PathLike | None = None,
                                output_dirname: str = "benchmark", ais_bench_python: str = "python3",
                                dynamic: bool = False) -> list[str]:
    """ais_bench pure-inference mode (no --input: ais_bench feeds zeros), `--display_all_summary true` so it
    also times the host-device copies (H2D_latency, D2H_latency). With `output`, ais_bench also writes
    <output>/<output_dirname>_summary.json (several devices: <output>/<output_dirname>/device<id>_<i>_summary.json
    each), which holds the per-run times. `device`: one id or several (one process per device). `dynamic`:
    the model has dynamic batch gears, and --dymBatch picks this batch. Values outside ais_bench's bounds
    raise ValueError naming the config key."""
    if not 1 <= int(loop) <= AIS_LOOP_MAX:
        raise ValueError(f"loop {loop}: ais_bench takes --loop 1..{AIS_LOOP_MAX}; set config `loop` in that range")
    if not 0 <= int(warmup) <= AIS_WARMUP_MAX:
        raise ValueError(f"warmup {warmup}: ais_bench takes --warmup_count 0..{AIS_WARMUP_MAX}; set config `warmup` "
                         f"in that range")
    if not 1 <= int(batch_size) <= AIS_BATCHSIZE_MAX:
        raise ValueError(f"batch size {batch_size}: ais_bench takes --batchsize 1..{AIS_BATCHSIZE_MAX}; set config "
                         f"`batch_sizes` in that range")
    cmd = [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--loop", str(int(loop)),
           "--batchsize", str(int(batch_size)), "--warmup_count", str(int(warmup)), "--device", device_argument(device)]
    if dynamic:
        cmd += ["--dymBatch", str(int(batch_size))]
    cmd += ["--display_all_summary", "true"]
    if output is not None:
        cmd += ["--output", str(output), "--output_dirname", output_dirname]
    return cmd


def ais_bench_dump_command(om: str | os.PathLike, input_file: str | os.PathLike, output: str | os.PathLike,
                           device: int = 0, ais_bench_python: str = "python3", dym_batch: int | None = None) -> list[str]:
    """One inference with every operator's tensors dumped (ais_bench --dump: it writes an acl.json with
    dump_mode all into --output and the device's dump under <output>/dump/<timestamp>/; --dump_npy: it then
    converts them with CANN's msaccucmp into <output>/dump/<timestamp>_npy/). No warm-up, one run: every
    inference is dumped. dym_batch: the gear of a dynamic-batch model (1: one input)."""
    return [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--input", str(input_file),
            "--output", str(output), "--outfmt", "NPY", "--loop", "1", "--warmup_count", "0",
            "--dump", "true", "--dump_npy", "true", "--device", str(int(device))] + \
        (["--dymBatch", str(int(dym_batch))] if dym_batch else [])



# --------------------------------------------------------------------------------------------
# Parsing ais_bench's figures (pure)
# --------------------------------------------------------------------------------------------

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_THROUGHPUT = re.compile(
    r"throughput\s+1000\s*\*\s*batchsize\.mean\(\s*(?P<bs>" + _NUM + r")\s*\)\s*/\s*"
    r"NPU_compute_time\.mean\(\s*(?P<mean>" + _NUM + r")\s*\)\s*:\s*(?P<fps>" + _NUM + r")",
    re.IGNORECASE)
_NPU_LINE = re.compile(r"NPU_compute_time\s*\(ms\)\s*:(?P<rest>[^\n]*)", re.IGNORECASE)
_NPU_FIELD = re.compile(r"(?P<key>min|max|mean|median|percentile\(\s*99\s*%\s*\))\s*=\s*(?P<val>" + _NUM + r")",
                        re.IGNORECASE)
# ais_bench's names -> ours
_LATENCY_KEYS = {"min": "min", "max": "max", "mean": "mean", "median": "p50", "percentile(99%)": "p99"}


def _num(text: str) -> float:
    return float(text)


def parse_ais_bench_stdout(text: str) -> dict:
    """ais_bench's summary lines from its stdout:

      [INFO] NPU_compute_time (ms): min = 13.7, max = 14.1, mean = 13.8, median = 13.8, percentile(99%) = 14.0
      [INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(13.8): 72.4

    Returns {"batch_size", "throughput_fps", "latency_ms": {mean[, p50, p99, min, max]}}; keyed on the
    throughput line (its mean is used when the NPU_compute_time line is missing). The last summary wins
    when several were printed. Raises ValueError when there is no throughput line."""
    matches = list(_THROUGHPUT.finditer(text))
    if not matches:
        raise ValueError("no `throughput 1000*batchsize.mean(..)/NPU_compute_time.mean(..): ..` line in "
                         "ais_bench's output")
    m = matches[-1]
    latency = {"mean": _num(m["mean"])}
    npu_lines = [n for n in _NPU_LINE.finditer(text) if n.start() < m.start()]
    if npu_lines:
        for field in _NPU_FIELD.finditer(npu_lines[-1]["rest"]):
            key = re.sub(r"\s+", "", field["key"].lower())
            latency[_LATENCY_KEYS[key]] = _num(field["val"])
    return {"batch_size": _num(m["bs"]), "throughput_fps": _num(m["fps"]), "latency_ms": latency}


def parse_summary(summary: dict) -> dict:
    """ais_bench's <dirname>_summary.json -> {"throughput_fps", "count", "latency_ms": {mean, p50, p90, p99,
    min, max}, "runs_ms", "notes": [...]}. p50 is ais_bench's median and p99 its percentile(99%); ais_bench
    prints no p90, so p90 is numpy's percentile(90) of the per-run times it writes (npu_compute_time_list,
    the same method ais_bench uses for its p99), or None with a note when the list is absent (never
    invented). runs_ms: that list (ms per run), or None."""
    npu = summary.get("NPU_compute_time")
    if not isinstance(npu, dict) or "mean" not in npu:
        raise ValueError("ais_bench summary has no NPU_compute_time.mean")
    latency = {"mean": float(npu["mean"])}
    for key, ours in _LATENCY_KEYS.items():
        if key in npu and ours != "mean":
            latency[ours] = float(npu[key])
    notes = []
    runs = summary.get("npu_compute_time_list")
    if isinstance(runs, list) and runs and all(isinstance(v, (int, float)) for v in runs):
        import numpy as np

        latency["p90"] = float(np.percentile(np.asarray(runs, dtype=np.float64), 90))
        runs = [float(v) for v in runs]
    else:
        runs = None
        latency["p90"] = None
        notes.append("p90 unavailable: ais_bench reports min/max/mean/median/p99 only and this summary has no "
                     "per-run npu_compute_time_list")
    for key in ("p50", "p99", "min", "max"):
        latency.setdefault(key, None)
    throughput = summary.get("throughput")
    return {"throughput_fps": float(throughput) if throughput is not None else None,
            "count": int(npu["count"]) if "count" in npu else None,
            "latency_ms": {k: latency[k] for k in ("mean", "p50", "p90", "p99", "min", "max")},
            "runs_ms": runs, "copies_ms": copies(summary), "notes": notes}


def copies(summary: dict) -> dict:
    """ais_bench's host-device copy times (its H2D_latency and D2H_latency, ms per copy) as {"h2d", "d2h"}:
    {mean, min, max, p50, p99, count} each, or None where the summary has none (an older ais_bench, or no
    copy counted). ais_bench keeps only these statistics of the copies, not each copy's time."""
    out = {}
    for key, ours in (("H2D_latency", "h2d"), ("D2H_latency", "d2h")):
        stats = summary.get(key)
        if not isinstance(stats, dict) or not stats.get("count"):
            out[ours] = None
            continue
        out[ours] = {_LATENCY_KEYS.get(k, k): float(v) for k, v in stats.items()
                     if k in _LATENCY_KEYS and isinstance(v, (int, float))}
        out[ours]["count"] = int(stats["count"])
    return out


Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def end_to_end(runs_ms: list[float] | None, copies_ms: dict, batch_size: int) -> tuple[dict | None, list[str]]:
    """What a service sees per batch: one host-to-device copy of the input, the NPU's compute, one
    device-to-host copy of the outputs (ais_bench's own three figures: H2D_latency.mean + NPU_compute_time per
    run + D2H_latency.mean), as {"throughput_fps", "latency_ms": {"mean", "h2d", "compute", "d2h"},
    "throughput_fps_ci95", "latency_ms_ci95", "method"}; None with a note without the copies or the runs.
    Its 95 % interval: the compute runs bootstrapped (timing.bootstrap_ci) with the copies' means added, widened
    by the copies' own uncertainty: ais_bench keeps each copy kind's min, max and count only, so the half-width
    of a copy mean is bounded by 1.96 * (max - min) / 2 / sqrt(count) (a spread is at most half the range:
    Popoviciu's inequality). A copy timed once gives no spread: the interval then says so in `method`."""
    from timing import bootstrap_ci

    h2d, d2h = copies_ms.get("h2d"), copies_ms.get("d2h")
    if not runs_ms or h2d is None or d2h is None:
        return None, ["no end-to-end figure: ais_bench's summary has no " +
                      ("per-run compute times" if not runs_ms else "host-device copy times (H2D/D2H_latency)")]
    shift = h2d["mean"] + d2h["mean"]
    runs = [r + shift for r in runs_ms]
    ci = bootstrap_ci([r / 1000.0 for r in runs], batch_size)
    widen, once = 0.0, []
    for name, c in (("H2D", h2d), ("D2H", d2h)):
        if c["count"] >= 2 and c.get("max") is not None and c.get("min") is not None:
            widen += Z95 * (c["max"] - c["min"]) / 2.0 / c["count"] ** 0.5
        else:
            once.append(name)
    mean = sum(runs) / len(runs)
    lat_ci = ci["latency_ms_ci95"]["mean"]
    if lat_ci is not None:
        lat_ci = [max(lat_ci[0] - widen, 1e-9), lat_ci[1] + widen]
    method = ("per batch: H2D_latency.mean + NPU_compute_time + D2H_latency.mean (ais_bench's figures); 95 % "
              "interval: the compute runs bootstrapped, widened by each copy mean's bound 1.96*(max-min)/2/sqrt(count)")
    if once:
        method += f"; {' and '.join(once)} timed once: their spread is not in the interval"
    return {"throughput_fps": 1000.0 * batch_size / mean,
            "latency_ms": {"mean": mean, "h2d": h2d["mean"], "compute": mean - shift, "d2h": d2h["mean"]},
            "latency_ms_ci95": lat_ci,
            "throughput_fps_ci95": None if lat_ci is None else [1000.0 * batch_size / lat_ci[1],
                                                                1000.0 * batch_size / lat_ci[0]],
            "copies_ms": copies_ms, "method": method}, []


_DEVICE_LINE = re.compile(r"i:\s*(?P<i>\d+)\s+device_(?P<device>\d+)\s+throughput:\s*(?P<fps>" + _NUM + r")")
_SUMMARY_LINE = re.compile(r"summary throughput:\s*(?P<fps>" + _NUM + r")")


def parse_multidevice_stdout(text: str) -> dict:
    """ais_bench's lines after a run over several devices (infer_process.multidevice_run):

      [INFO] i:0 device_0 throughput:72.4 start_time:... end_time:...
      [INFO] summary throughput:144.6

    -> {"devices": {device id: throughput}, "summary_fps": the summary}. ValueError without the summary line."""
    found = _SUMMARY_LINE.findall(text)
    if not found:
        raise ValueError("no `summary throughput:..` line in ais_bench's output over several devices")
    devices = {int(m["device"]): _num(m["fps"]) for m in _DEVICE_LINE.finditer(text)}
    return {"devices": devices, "summary_fps": _num(found[-1])}


NO_INTERVALS = ("no 95 % intervals: ais_bench's summary has no per-run times (npu_compute_time_list) to "
                "bootstrap them from")


def speed_intervals(runs_ms: list[float] | None, batch_size: int) -> tuple[dict, list[str]]:
    """The 95 % intervals of ais_bench's figures, bootstrapped (timing.bootstrap_ci, the method of every
    runtime) from its own per-run NPU compute times, and `seconds` (those times); without the list every
    interval is None and a note says why (never invented). Returns (record keys, notes)."""
    from timing import bootstrap_ci

    seconds = [v / 1000.0 for v in runs_ms] if runs_ms else None
    ci = bootstrap_ci(seconds, batch_size)
    return {**ci, "seconds": seconds}, ([] if seconds else [NO_INTERVALS])


# --------------------------------------------------------------------------------------------
# Running the tools
# --------------------------------------------------------------------------------------------

def run_tool(cmd: list[str], cwd: str | os.PathLike, what: str) -> tuple[int, str]:
    """Run without a shell, every output line into the log as it comes; returns (exit code, output)."""
    log.info("%s: %s  (cwd %s)", what, shlex.join(cmd), cwd)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
    except FileNotFoundError as exc:
        raise MissingToolError(missing_message(cmd[0], what)) from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log.info("%s| %s", what, line)
    return proc.wait(), "\n".join(lines)


def tail(output: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(collections.deque(output.splitlines(), maxlen=n))


def failure(what: str, cmd: list[str], cwd, output: str, reason: str) -> ToolError:
    return ToolError(f"{what} failed ({reason}).\ncommand: {shlex.join(cmd)}\ncwd: {cwd}\n"
                     f"--- last {LOG_TAIL_LINES} lines of its output ---\n{tail(output)}")


def missing_message(tool: str, what: str) -> str:
    if what == "atc" or Path(tool).name == ATC:
        return f"`atc` (Huawei ATC, needed for backend ascend) is not on PATH: {CANN_FIX}"
    return f"`{tool}` (the Python that runs ais_bench, config `ais_bench_python`) was not found: {AIS_BENCH_FIX}"
