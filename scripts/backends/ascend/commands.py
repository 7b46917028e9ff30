"""The tools' command lines, built by pure functions (atc_command, ais_bench_*_command), ais_bench's figures read
by pure parsers (parse_ais_bench_stdout, parse_summary), and running a tool with its output in the log: the
tests pin all of them without an NPU. The rules each follows are in the package's docstring."""

from __future__ import annotations

import collections
import os
import re
import shlex
import subprocess
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

def atc_command(onnx_model: str | os.PathLike, output_prefix: str | os.PathLike, batch_size: int, soc_version: str,
                spec, atc_options: dict | None = None) -> list[str]:
    """The ATC command line, as an argument list for subprocess (no shell, so no quoting). `spec`
    (backends.base.TensorSpec, read from the ONNX) gives the input's name and its non-batch dimensions: a 4-d
    input is NCHW (cn_clip's image `image:<bs>,3,<R>,<R>`), any other ND (its text tower's int64 token ids,
    `text:<bs>,52`). Only the options in `atc_options` that are set (non-empty) are passed, in ATC_OPTIONS
    order."""
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
    dims = ",".join(str(int(d)) for d in (batch_size, *spec.shape[1:]))
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
    cmd += [f"--{key}={atc_options[key]}" for key in ATC_OPTIONS if atc_options.get(key)]
    return cmd


def ais_bench_infer_command(om: str | os.PathLike, input_dir: str | os.PathLike, output: str | os.PathLike,
                            output_dirname: str = "dst", device: int = 0,
                            ais_bench_python: str = "python3") -> list[str]:
    """ais_bench inference over a folder of npy files: writes <output>/<output_dirname>/<stem>_0.npy
    and <output>/<output_dirname>_summary.json."""
    return [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--input", str(input_dir),
            "--output", str(output), "--output_dirname", output_dirname, "--outfmt", "NPY",
            "--device", str(int(device))]


def ais_bench_benchmark_command(om: str | os.PathLike, loop: int, batch_size: int, warmup: int,
                                device: int = 0, output: str | os.PathLike | None = None,
                                output_dirname: str = "benchmark", ais_bench_python: str = "python3") -> list[str]:
    """ais_bench pure-inference mode (no --input: ais_bench feeds zeros). With `output`, ais_bench also
    writes <output>/<output_dirname>_summary.json, which holds the per-run times. Values outside ais_bench's
    bounds raise ValueError naming the config key."""
    if not 1 <= int(loop) <= AIS_LOOP_MAX:
        raise ValueError(f"loop {loop}: ais_bench takes --loop 1..{AIS_LOOP_MAX}; set config `loop` in that range")
    if not 0 <= int(warmup) <= AIS_WARMUP_MAX:
        raise ValueError(f"warmup {warmup}: ais_bench takes --warmup_count 0..{AIS_WARMUP_MAX}; set config `warmup` "
                         f"in that range")
    if not 1 <= int(batch_size) <= AIS_BATCHSIZE_MAX:
        raise ValueError(f"batch size {batch_size}: ais_bench takes --batchsize 1..{AIS_BATCHSIZE_MAX}; set config "
                         f"`batch_sizes` in that range")
    cmd = [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--loop", str(int(loop)),
           "--batchsize", str(int(batch_size)), "--warmup_count", str(int(warmup)), "--device", str(int(device))]
    if output is not None:
        cmd += ["--output", str(output), "--output_dirname", output_dirname]
    return cmd


def ais_bench_dump_command(om: str | os.PathLike, input_file: str | os.PathLike, output: str | os.PathLike,
                           device: int = 0, ais_bench_python: str = "python3") -> list[str]:
    """One inference with every operator's tensors dumped (ais_bench --dump: it writes an acl.json with
    dump_mode all into --output and the device's dump under <output>/dump/<timestamp>/; --dump_npy: it then
    converts them with CANN's msaccucmp into <output>/dump/<timestamp>_npy/). No warm-up, one run: every
    inference is dumped."""
    return [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--input", str(input_file),
            "--output", str(output), "--outfmt", "NPY", "--loop", "1", "--warmup_count", "0",
            "--dump", "true", "--dump_npy", "true", "--device", str(int(device))]



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
            "runs_ms": runs, "notes": notes}


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
