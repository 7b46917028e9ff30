"""Ascend NPU: Huawei's ATC compiles the fp16 ONNX into an offline model (.om) for one chip
(`soc_version`), and ais_bench runs it, exactly as the seed's manual steps do:

  atc --framework=5 --model=<fp16.onnx> --output=<prefix> --input_format=NCHW
      --input_shape=image:<bs>,3,<R>,<R> --soc_version=<soc> --log=error [--precision_mode=...]
  python3 -m ais_bench --model <om> --input <npy dir> --output <dir> --output_dirname dst --outfmt NPY
  python3 -m ais_bench --model <om> --loop <N> --batchsize <bs>            (pure-inference benchmark)

The command lines are built by pure functions (atc_command, ais_bench_infer_command,
ais_bench_benchmark_command) and ais_bench's own figures are read by pure parsers
(parse_ais_bench_stdout, parse_summary), so the tests pin both without an NPU.

Facts about the real tools this module relies on:
- ATC appends `.om` to --output; it prints `ATC run success, welcome to the next use.` and exits 0,
  or `ATC run failed, ...` with error codes and a non-zero exit. It writes fusion_result.json (and,
  with debug options, kernel_meta/) into its working directory, so every job runs in a fresh one.
- ATC computes in fp16 by default (precision_mode force_fp16), even for an fp32 graph, unless
  precision_mode=must_keep_origin_dtype.
- ais_bench names each output after its input file cut at the first dot (`a.b.npy` -> `a_0.npy`).
  It groups input files by byte size, not by shape, so every input must be exactly one batch-1 tensor:
  float32 1xCxHxW for the image tower, int64 1x52 token ids (416 bytes) for the text tower (compiled
  with --input_format=ND --input_shape=text:<bs>,52).
- ais_bench writes `<output>/<output_dirname>_summary.json` beside the output folder, with
  NPU_compute_time {min, max, mean, median, percentile(99%), count}, throughput and
  npu_compute_time_list (one device compute time per run, ms).
- ais_bench's path rules (ais_bench/infer/common/path_security_check.py and args_check.py of gitee
  Ascend/tools, December 2025): every path it is given (the .om, --input and each file in it, --output,
  --output_dirname relative to its working directory) may hold only [_A-Za-z0-9/.-], at most 32 levels, no
  symbolic link, owned by the user or the user's group; the .om and the inputs must not be group- or
  other-writable; an existing --output must be 0750 or stricter (the mid-2024 copy chmod-s it to 0750
  itself). The C++ runtime checks the .om again (at most 1024 characters). Bounds (args_check.py,
  utils.py): --loop 1..100000, --warmup_count <= 10000, --batchsize <= 4096.
  So ais_bench never sees the user's names or folders: every run works in a private scratch folder
  (tempfile.mkdtemp under TMPDIR: mode 0700, ASCII name) holding a copy of each input named
  in_000000.npy..., the .om (a hard link when the workflow's file is already safe, else a 0600 copy),
  and an --output folder made 0750; the outputs are then written back under the user's own stems and
  the mapping recorded as dst_names.json beside dst/. preflight() (check_scratch) stops the run before any job when
  TMPDIR itself cannot be such a folder.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from backends.base import PreflightError
from pipeline.common import log

# --- the plan (scripts/backends/base.py) ----------------------------------------------------------
NAME = "ascend"
CONFIG_KEYS = ("soc_version", "soc_versions", "atc", "ais_bench_python", "npu_device", "locate_npu_dump")
# What a target computes in -> the exported ONNX ATC compiles, and ATC's --precision_mode for it (None: not
# passed). ATC's default on any graph is force_fp16 (fp16 wherever the chip allows), so:
#   fp16        the seed's: the fp16 ONNX, no option
#   fp32        the fp32 ONNX in its own dtype (must_keep_origin_dtype): what the chip runs in fp32
#   mixed_fp16  the fp32 ONNX, fp16 where ATC's op lists allow it, fp32 elsewhere (allow_mix_precision_fp16)
#   mixed_bf16  the same in bf16 (allow_mix_precision_bf16; chips with bf16, such as the 910B series)
# CANN's ATC documentation, --precision_mode:
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0067.html
PRECISION_MODE = {"fp16": None, "fp32": "must_keep_origin_dtype", "mixed_fp16": "allow_mix_precision_fp16",
                  "mixed_bf16": "allow_mix_precision_bf16"}
PRECISIONS = {"fp16": "fp16", "fp32": "fp32", "mixed_fp16": "fp32", "mixed_bf16": "fp32"}
DEFAULT_PRECISION = "fp16"
CALIBRATED = frozenset()
# locate and repair work on the fp16 ONNX stored in fp16 between nodes, the proxy of ATC's fp16 computation
REDUCED = frozenset({"fp16"})
ACCELERATOR = "npu"  # infer, benchmark and a dumping locate hold one NPU each
RUNS_ON_HOST_CPU = False  # runs on the NPU: the host's matmul ceiling says nothing of its speed
ATC = "atc"


def devices(config: dict) -> list[str]:
    """The chips (soc_version) its targets are compiled for."""
    return list(config["soc_versions"]) or [config["soc_version"]]


def options(config: dict, precision: str) -> dict:
    """ATC's options (those config `atc` sets, and --precision_mode for the precision), the Python that
    runs ais_bench, the NPU's device id, and whether locate reads the NPU's own tensors."""
    atc = {k: v for k, v in config["atc"].items() if v}
    if PRECISION_MODE[precision]:
        atc["precision_mode"] = PRECISION_MODE[precision]
    return {"atc": atc, "ais_bench_python": config["ais_bench_python"], "device_id": config["npu_device"],
            "dump_tensors": config["locate_npu_dump"]}


def preflight(config: dict) -> None:
    """atc and ais_bench must be there, and TMPDIR must allow a private scratch folder ais_bench accepts."""
    check_tools(config["ais_bench_python"])
    check_scratch()
INPUT_NAME = "image"  # cn_clip's exported image input
TEXT_INPUT_NAME, CONTEXT_LENGTH = "text", 52  # the text tower's input: int64 token ids (paths.CONTEXT_LENGTH)
MODEL_PREFIX = "model"  # the .om is <out_dir>/model.om
# The ATC options users tune (config `atc:`), in the order they are appended to the command line.
# Their allowed values live in config/schema.yaml (checked at parse time), from CANN's ATC documentation:
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0067.html
# (--precision_mode), .../atlasatcparam_16_0069.html (--precision_mode_v2, "cannot be used together with
# --precision_mode") and .../atlasatcparam_16_0072.html (--op_select_implmode).
ATC_OPTIONS = ("precision_mode", "precision_mode_v2", "op_select_implmode", "optypelist_for_implmode")

# ais_bench's rules (see the module docstring for where each comes from)
AIS_PATH_ILLEGAL = re.compile(r"[^_A-Za-z0-9/.-]")  # PATH_WHITE_LIST_REGEX
AIS_CHARS = "A-Z a-z 0-9 _ - / ."
AIS_MAX_PATH = 1024  # the C++ runtime's limit (File::CheckFile); the Python front end allows 4096
AIS_MAX_NAME = 255
AIS_MAX_DEPTH = 32
AIS_LOOP_MAX, AIS_WARMUP_MAX, AIS_BATCHSIZE_MAX = 100000, 10000, 4096
AIS_UNSAFE_READ = stat.S_IWGRP | stat.S_IWOTH  # an input or .om with these bits is refused
# the deepest path a run hands to ais_bench, below the scratch folder (an output file)
_SCRATCH_TAIL = "ais_bench-infer-xxxxxxxx/out/dst/in_000000_0.npy"
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

def atc_command(onnx_fp16: str | os.PathLike, output_prefix: str | os.PathLike, batch_size: int,
                resolution: int, soc_version: str, atc_options: dict | None = None,
                tower: str = "image", spec=None) -> list[str]:
    """The ATC command line, as an argument list for subprocess (no shell, so no quoting).
    Only the options in `atc_options` that are set (non-empty) are passed, in ATC_OPTIONS order.
    `spec` (backends.base.TensorSpec, read from the ONNX) gives the input's name and its non-batch
    dimensions: a 4-d input is NCHW, any other ND. Without it, cn_clip's towers as exported: the image
    `image:<bs>,3,<R>,<R>` (NCHW), tower="text" `text:<bs>,52` (ND, int64 token ids; `resolution`
    not used)."""
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
    cmd = [
        ATC,
        "--framework=5",
        f"--model={onnx_fp16}",
        f"--output={output_prefix}",
        "--input_format=NCHW",
        f"--input_shape={INPUT_NAME}:{int(batch_size)},3,{int(resolution)},{int(resolution)}",
        f"--soc_version={soc_version}",
        "--log=error",
    ]
    if spec is not None:
        dims = ",".join(str(int(d)) for d in (batch_size, *spec.shape[1:]))
        cmd[4:6] = [f"--input_format={'NCHW' if len(spec.shape) == 4 else 'ND'}", f"--input_shape={spec.name}:{dims}"]
    elif tower == "text":
        cmd[4:6] = ["--input_format=ND", f"--input_shape={TEXT_INPUT_NAME}:{int(batch_size)},{CONTEXT_LENGTH}"]
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
    from backends.timing import bootstrap_ci

    seconds = [v / 1000.0 for v in runs_ms] if runs_ms else None
    ci = bootstrap_ci(seconds, batch_size)
    return {**ci, "seconds": seconds}, ([] if seconds else [NO_INTERVALS])


# --------------------------------------------------------------------------------------------
# Running the tools
# --------------------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: str | os.PathLike, what: str) -> tuple[int, str]:
    """Run without a shell, every output line into the log as it comes; returns (exit code, output)."""
    log.info("%s: %s  (cwd %s)", what, shlex.join(cmd), cwd)
    lines: list[str] = []
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", bufsize=1)
    except FileNotFoundError as exc:
        raise MissingToolError(_missing_message(cmd[0], what)) from exc
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        log.info("%s| %s", what, line)
    return proc.wait(), "\n".join(lines)


def _tail(output: str, n: int = LOG_TAIL_LINES) -> str:
    return "\n".join(collections.deque(output.splitlines(), maxlen=n))


def _failure(what: str, cmd: list[str], cwd, output: str, reason: str) -> ToolError:
    return ToolError(f"{what} failed ({reason}).\ncommand: {shlex.join(cmd)}\ncwd: {cwd}\n"
                     f"--- last {LOG_TAIL_LINES} lines of its output ---\n{_tail(output)}")


def _missing_message(tool: str, what: str) -> str:
    if what == "atc" or Path(tool).name == ATC:
        return f"`atc` (Huawei ATC, needed for backend ascend) is not on PATH: {CANN_FIX}"
    return f"`{tool}` (the Python that runs ais_bench, config `ais_bench_python`) was not found: {AIS_BENCH_FIX}"


def compile_command(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
                    options: dict) -> list[str]:
    """The exact ATC command line compile() runs (absolute paths: ATC runs in a scratch folder); the
    input's name and shape are read from the ONNX."""
    from backends.base import model_inputs

    prefix = Path(out_dir).resolve() / MODEL_PREFIX
    (spec,) = model_inputs(onnx_model)
    return atc_command(Path(onnx_model).resolve(), prefix, batch_size, resolution, options["hardware"],
                       options.get("atc"), options.get("tower", "image"), spec=spec)


def compile(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
            options: dict) -> list[str]:
    """ATC: <out_dir>/model.om for options["hardware"] (the soc_version) at a fixed batch size.
    ATC runs in a fresh scratch folder beside out_dir (its cwd-relative files never collide with another
    job's); its fusion_result.json is kept next to the model as a record. On failure: ToolError with
    the command line and the tail of ATC's output, and no .om left behind."""
    given = Path(out_dir)  # the returned path keeps the caller's form (relative to the workflow root)
    out_dir = given.resolve()  # ATC runs elsewhere: every path it gets is absolute
    out_dir.mkdir(parents=True, exist_ok=True)
    om = out_dir / f"{MODEL_PREFIX}.om"
    om.unlink(missing_ok=True)
    cmd = compile_command(onnx_model, out_dir, batch_size, resolution, options)
    from pipeline.common import remove_stale_scratch

    remove_stale_scratch(out_dir.parent, f".atc-{out_dir.name}-")  # left by a killed earlier run
    scratch = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".atc-{out_dir.name}-"))
    try:
        code, output = _run(cmd, scratch, "atc")
        if code != 0 or not om.is_file():
            reason = f"exit code {code}" if code != 0 else f"exit code 0 but no {om.name} was written"
            raise _failure("ATC", cmd, scratch, output, reason)
        fusion = scratch / "fusion_result.json"
        if fusion.is_file():
            shutil.move(str(fusion), out_dir / "fusion_result.json")
    except BaseException:
        om.unlink(missing_ok=True)  # never leave a half-written or unvalidated model behind
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # ais_bench refuses a group/other-writable .om (umask 002 makes it 0664): drop those bits from our own file,
    # so infer/benchmark can hand ais_bench a hard link instead of a copy
    os.chmod(om, stat.S_IMODE(om.stat().st_mode) & ~AIS_UNSAFE_READ)
    log.info("ATC wrote %s (%.1f MB)", om, om.stat().st_size / 1e6)
    return [str(given / om.name)]


def _check_inputs(npy_files: list[str | os.PathLike]) -> list[Path]:
    """Every input: an .npy file, its stem unique, one batch-1 tensor (float32 1xCxHxW images, or int64 1xL
    token ids of the text tower), all the same shape. Any stem is fine (ais_bench sees in_000000.npy ...)."""
    import numpy as np

    paths = [Path(f) for f in npy_files]
    if not paths:
        raise ValueError("no npy inputs for ais_bench")
    seen: dict[str, Path] = {}
    for p in paths:
        if p.suffix != ".npy":
            raise ValueError(f"ais_bench input {p} is not an .npy file")
        if p.stem in seen:
            raise ValueError(f"two inputs share the stem '{p.stem}': {seen[p.stem]} and {p}")
        seen[p.stem] = p
    shapes = set()
    for p in paths:
        arr = np.load(p, mmap_mode="r")
        image = arr.dtype == np.float32 and arr.ndim == 4
        tokens = arr.dtype == np.int64 and arr.ndim == 2
        if not (image or tokens) or arr.shape[0] != 1:
            # ais_bench groups files by byte size: a float16 or batch-2 file would silently be paired.
            raise ValueError(f"{p}: {arr.dtype} {tuple(arr.shape)}; ais_bench needs each input to be one float32 "
                             f"1xCxHxW tensor (or, for the text tower, one int64 1xL tensor of token ids)")
        shapes.add(tuple(arr.shape))
    if len(shapes) > 1:
        raise ValueError(f"inputs have different shapes {sorted(shapes)}")
    return paths


# --------------------------------------------------------------------------------------------
# Paths ais_bench accepts
# --------------------------------------------------------------------------------------------

def ais_path_problem(path: str | os.PathLike) -> str | None:
    """Which of ais_bench's rules for a path string `path` breaks (as ais_bench sees it: made absolute, not
    resolved), or None."""
    full = os.path.abspath(path)
    bad = sorted(set(AIS_PATH_ILLEGAL.findall(full)))
    if bad:
        return f"holds {''.join(bad)!r}: ais_bench accepts only the characters {AIS_CHARS} in a path"
    if len(full) > AIS_MAX_PATH:
        return f"is {len(full)} characters long: ais_bench's runtime accepts at most {AIS_MAX_PATH}"
    parts = [p for p in full.split("/") if p]
    if len(parts) > AIS_MAX_DEPTH:
        return f"is {len(parts)} levels deep: ais_bench accepts at most {AIS_MAX_DEPTH}"
    if any(len(p) > AIS_MAX_NAME for p in parts):
        return f"has a name longer than {AIS_MAX_NAME} characters"
    return None


def check_scratch() -> None:
    """Raise UnsafePathError when no safe scratch folder can be made for ais_bench: the temporary folder
    (TMPDIR, else /tmp) must have a path ais_bench accepts and be a writable folder. Call before any job."""
    tmp = tempfile.gettempdir()
    fix = ("fix: point TMPDIR at a folder whose path holds only those characters, e.g. "
           "`mkdir -p /tmp/ais && export TMPDIR=/tmp/ais`, then run again")
    problem = ais_path_problem(os.path.join(tmp, _SCRATCH_TAIL))
    if problem:
        where = "TMPDIR" if os.environ.get("TMPDIR") else "the temporary folder"
        raise UnsafePathError(f"backend ascend: ais_bench would refuse every file of its private scratch folder, "
                              f"because {where} {tmp} (scratch paths like {os.path.join(tmp, _SCRATCH_TAIL)}) "
                              f"{problem}; {fix}")
    if not (os.path.isdir(tmp) and os.access(tmp, os.W_OK | os.X_OK)):
        raise UnsafePathError(f"backend ascend: the temporary folder {tmp} (TMPDIR) is not a writable folder; {fix}")


@contextmanager
def _private_scratch(prefix: str):
    """A fresh folder under TMPDIR, mode 0700, ASCII name: ais_bench's working directory. Removed afterwards."""
    check_scratch()
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp: 0700, [a-z0-9_] suffix
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _safe_to_link(st: os.stat_result) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    return st.st_uid == os.geteuid() and not mode & AIS_UNSAFE_READ and bool(mode & stat.S_IRUSR)


def _stage_model(om: str | os.PathLike, scratch: Path) -> Path:
    """The .om as ais_bench gets it: <scratch>/model.om. A hard link when the file is ours and not group- or
    other-writable (a link shares the file's mode, so it is never chmod-ed through the link: that would
    change the user's file too), else a private 0600 copy."""
    src = Path(om).resolve()
    dst = scratch / "model.om"
    if _safe_to_link(src.stat()):
        try:
            os.link(src, dst)
            return dst
        except OSError:  # another file system, or links not allowed: copy
            pass
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)
    return dst


def _stage_inputs(paths: list[Path], folder: Path) -> dict[str, Path]:
    """A private 0700 folder of 0600 copies named in_000000.npy ... (ASCII, no dot before .npy, in
    ais_bench's natural order); returns {safe name: source}. Copies, not hard links: a link keeps the source's
    mode (group-writable under umask 002), and chmod through it would change the user's file."""
    folder.mkdir()
    os.chmod(folder, 0o700)
    names = {}
    for i, p in enumerate(paths):
        name = f"in_{i:06d}.npy"
        shutil.copyfile(p, folder / name)
        os.chmod(folder / name, 0o600)
        names[name] = p
    return names


def _output_folder(scratch: Path) -> Path:
    """ais_bench's --output: made 0750 (what the 2025 front end demands; the 2024 one sets it itself)."""
    out = scratch / "out"
    out.mkdir()
    os.chmod(out, 0o750)
    return out


def _write_atomically(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.partial")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def infer(model: str | os.PathLike, npy_files: list[str | os.PathLike], dst_dir: str | os.PathLike,
          options: dict) -> None:
    """ais_bench inference: dst_dir/<stem>_0.npy for every input (the user's own stem), ais_bench's summary
    as <record>_summary.json beside dst_dir (ais_bench's own layout), and <record>_names.json recording
    which safe name ais_bench saw for which input (record: options["record"], else dst_dir's name; a
    shard's infer names its own, so shards of one target keep each other's records). ais_bench itself
    runs in a private scratch folder (see the module docstring), so no user name, folder or umask
    reaches it."""
    paths = _check_inputs(npy_files)
    dst_dir = Path(dst_dir).resolve()
    record_name = options.get("record") or dst_dir.name
    dst_dir.mkdir(parents=True, exist_ok=True)
    for f in dst_dir.glob("*_0.npy"):  # a stale output must never pass for a fresh one
        if f.name[:-len("_0.npy")] in {p.stem for p in paths}:
            f.unlink()
    python = options.get("ais_bench_python", "python3")
    with _private_scratch("ais_bench-infer-") as scratch:
        names = _stage_inputs(paths, scratch / "input")
        om = _stage_model(model, scratch)
        out = _output_folder(scratch)
        cmd = ais_bench_infer_command(om, scratch / "input", out, "dst", options.get("device_id", 0), python)
        code, output = _run(cmd, scratch, "ais_bench")
        produced = out / "dst"
        missing = [n for n in names if not (produced / f"{n[:-len('.npy')]}_0.npy").is_file()]
        if code != 0 or missing:
            reason = f"exit code {code}" if code != 0 else (
                f"no output for {len(missing)} of {len(names)} inputs, e.g. {names[missing[0]].name} "
                f"(seen by ais_bench as {missing[0]})")
            raise _failure("ais_bench", cmd, scratch, output, reason)
        for name, src in names.items():
            safe_stem = name[:-len(".npy")]
            for result in sorted(produced.glob(f"{safe_stem}_*.npy")):
                index = result.name[len(safe_stem) + 1:-len(".npy")]
                _write_atomically(result, dst_dir / f"{src.stem}_{index}.npy")
        summary = out / "dst_summary.json"
        if summary.is_file():
            _write_atomically(summary, dst_dir.parent / f"{record_name}_summary.json")
        else:
            log.warning("ais_bench wrote no %s", summary.name)
    record = {"note": "ais_bench ran on copies with safe names (its path rules allow only A-Z a-z 0-9 _ - / .); "
                      "its output <safe name>_<i>.npy was written here as <stem>_<i>.npy",
              "inputs": {name: {"stem": src.stem, "source": str(src)} for name, src in names.items()}}
    tmp = dst_dir.parent / f".{record_name}_names.json.partial"
    tmp.write_text(json.dumps(record, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, dst_dir.parent / f"{record_name}_names.json")
    log.info("ais_bench wrote %d outputs into %s", len(names), dst_dir)


def benchmark(model: str | os.PathLike, npy_files: list[str | os.PathLike], batch_size: int, loop: int,
              warmup: int, options: dict) -> dict:
    """ais_bench pure-inference mode at `batch_size`: `loop` timed runs after `warmup` untimed ones, on
    zeros (ais_bench's pure-inference input; npy_files are not used). All figures are ais_bench's own:
    throughput from its throughput line (1000*batchsize/mean NPU compute time), latencies from its
    summary JSON (NPU compute time per run on the device, host-device copies excluded); their 95 %
    intervals are bootstrapped from its per-run times (speed_intervals). ais_bench runs --loop exactly:
    options["ci_width"] (an early stop of the CPU benchmarks) does not apply, and a note says so."""
    python = options.get("ais_bench_python", "python3")
    with _private_scratch(f"ais_bench-bs{int(batch_size)}-") as scratch:
        om = _stage_model(model, scratch)
        out = _output_folder(scratch)
        cmd = ais_bench_benchmark_command(om, loop, batch_size, warmup, options.get("device_id", 0),
                                          output=out, output_dirname="benchmark", ais_bench_python=python)
        code, output = _run(cmd, scratch, "ais_bench")
        if code != 0:
            raise _failure("ais_bench", cmd, scratch, output, f"exit code {code}")
        try:
            printed = parse_ais_bench_stdout(output)
        except ValueError as exc:
            raise _failure("ais_bench", cmd, scratch, output, str(exc)) from exc
        summary_file = out / "benchmark_summary.json"
        summary = parse_summary(json.loads(summary_file.read_text())) if summary_file.is_file() else None

    notes = []
    if options.get("ci_width"):
        notes.append(f"ci_width {options['ci_width']} does not apply: ais_bench runs --loop {loop} exactly")
    if summary is not None:
        latency = summary["latency_ms"]
        notes += summary["notes"]
        if summary["count"] is not None and summary["count"] != loop:
            notes.append(f"ais_bench timed {summary['count']} runs for --loop {loop}")
    else:
        latency = {k: printed["latency_ms"].get(k) for k in ("mean", "p50", "p90", "p99", "min", "max")}
        notes.append("ais_bench wrote no summary JSON: latencies from its printed summary, p90 unavailable")
    throughput = printed["throughput_fps"]
    if summary is not None and summary["throughput_fps"] is not None and not math.isclose(
            summary["throughput_fps"], throughput, rel_tol=1e-3, abs_tol=1e-6):
        notes.append(f"summary JSON throughput {summary['throughput_fps']} differs from the printed {throughput}")
    intervals, why = speed_intervals(summary["runs_ms"] if summary is not None else None, batch_size)
    notes += why
    log.info("ais_bench bs%d: %.2f images/s, NPU compute mean %.3f ms", batch_size, throughput, latency["mean"])
    return {
        "batch_size": batch_size,
        "loop": loop,
        "loop_max": loop,
        "stopped_early": False,
        "warmup": warmup,
        "threads": None,  # runs on the NPU: host threads do not apply
        "throughput_fps": throughput,
        "latency_ms": latency,
        **intervals,
        "measured_by": "ais_bench",
        "method": ("ais_bench pure-inference mode (zero inputs); latency = NPU_compute_time per run (device "
                   "compute, host-device copies excluded); p50 = ais_bench median, p99 = its percentile(99%), "
                   "p90 = numpy percentile(90) of its npu_compute_time_list"),
        "command": cmd,  # the tool command line the report prints under "Reproduce"
        "ais_bench": {"printed": printed, "summary_count": summary["count"] if summary else None},
        "notes": notes,
    }


def ais_bench_dump_command(om: str | os.PathLike, input_file: str | os.PathLike, output: str | os.PathLike,
                           device: int = 0, ais_bench_python: str = "python3") -> list[str]:
    """One inference with every operator's tensors dumped (ais_bench --dump: it writes an acl.json with
    dump_mode all into --output and the device's dump under <output>/dump/<timestamp>/; --dump_npy: it then
    converts them with CANN's msaccucmp into <output>/dump/<timestamp>_npy/). No warm-up, one run: every
    inference is dumped."""
    return [ais_bench_python, "-m", "ais_bench", "--model", str(om), "--input", str(input_file),
            "--output", str(output), "--outfmt", "NPY", "--loop", "1", "--warmup_count", "0",
            "--dump", "true", "--dump_npy", "true", "--device", str(int(device))]


def dump(model: str | os.PathLike, npy_file: str | os.PathLike, dump_dir: str | os.PathLike,
         options: dict) -> Path:
    """The NPU's tensors of the model run on one input, as ais_bench dumps and converts them: its
    <output>/dump/ folder copied to `dump_dir` (read by scripts/locate.py read_ais_bench_dump). Raises
    ToolError when ais_bench fails or converts nothing (msaccucmp missing: CANN's toolkit is needed)."""
    path = Path(npy_file)
    if path.suffix != ".npy" or not path.is_file():
        raise ValueError(f"ais_bench dump input {path} is not an .npy file")
    dump_dir = Path(dump_dir)
    python = options.get("ais_bench_python", "python3")
    with _private_scratch("ais_bench-dump-") as scratch:
        names = _stage_inputs([path], scratch / "input")
        om = _stage_model(model, scratch)
        out = _output_folder(scratch)
        cmd = ais_bench_dump_command(om, scratch / "input" / next(iter(names)), out, options.get("device_id", 0),
                                     python)
        code, output = _run(cmd, scratch, "ais_bench")
        converted = sorted((out / "dump").glob("*_npy"))
        if code != 0 or not converted or not any(converted[-1].rglob("*.npy")):
            reason = f"exit code {code}" if code != 0 else (
                "no converted dump under <output>/dump/*_npy (ais_bench converts with CANN's msaccucmp: is the "
                "toolkit installed and set up, e.g. `source /usr/local/Ascend/ascend-toolkit/set_env.sh`?)")
            raise _failure("ais_bench", cmd, scratch, output, reason)
        shutil.rmtree(dump_dir, ignore_errors=True)
        shutil.copytree(out / "dump", dump_dir)
    log.info("ais_bench dumped %d tensors of %s into %s", sum(1 for _ in dump_dir.rglob("*.npy")), path.name,
             dump_dir)
    return dump_dir


# --------------------------------------------------------------------------------------------
# Tools present? Which versions?
# --------------------------------------------------------------------------------------------

_PROBE = r"""
import importlib.util, json, sys
from importlib import metadata
out = {"found": importlib.util.find_spec("ais_bench") is not None}
for dist in ("ais_bench", "aclruntime"):
    try:
        out[dist] = metadata.version(dist)
    except Exception:
        out[dist] = None
if out["found"] and out["ais_bench"] is None:
    try:
        import ais_bench
        out["ais_bench"] = getattr(ais_bench, "__version__", None)
    except Exception:
        pass
print(json.dumps(out))
"""


def _probe_ais_bench(ais_bench_python: str) -> dict | None:
    """{"found", "ais_bench", "aclruntime"} from the given Python, or None when that Python is missing."""
    exe = shutil.which(ais_bench_python)
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {"found": False, "ais_bench": None, "aclruntime": None}


def check_tools(ais_bench_python: str = "python3") -> None:
    """Raise MissingToolError naming every missing tool and its fix; call before any work."""
    problems = []
    if shutil.which(ATC) is None:
        problems.append(f"`atc` (Huawei ATC, compiles the ONNX model for the NPU) is not on PATH: {CANN_FIX}")
    probe = _probe_ais_bench(ais_bench_python)
    if probe is None:
        problems.append(f"`{ais_bench_python}` (config `ais_bench_python`, the Python that runs ais_bench) was "
                        f"not found: {AIS_BENCH_FIX}")
    elif not probe["found"]:
        problems.append(f"`ais_bench` is not installed in `{ais_bench_python}` (`{ais_bench_python} -m ais_bench` "
                        f"would fail): {AIS_BENCH_FIX}")
    if problems:
        raise MissingToolError("backend ascend cannot run on this machine:\n- " + "\n- ".join(problems))


def _cann_version_from_home() -> str | None:
    return _cann_version(None)


def _cann_version(atc_path: str | None) -> str | None:
    """CANN's version from the install's own records near atc or in ASCEND_TOOLKIT_HOME (never by running atc)."""
    candidates = []
    home = os.environ.get("ASCEND_TOOLKIT_HOME")
    if home:
        candidates.append(Path(home))
    if atc_path:
        candidates += list(Path(atc_path).resolve().parents)[:4]
    for folder in candidates:
        files = [folder / "version.info", folder / "ascend_toolkit_install.info",
                 *sorted(folder.glob("*/ascend_toolkit_install.info"))]
        for f in files:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            m = re.search(r"^\s*version\s*=\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
            if m:
                return m.group(1)
    return None


def _npu_smi(args: list[str]) -> tuple[str | None, str]:
    """(stdout, "") of `npu-smi <args>`, or (None, why it gave nothing)."""
    exe = shutil.which("npu-smi")
    if exe is None:
        return None, "absent: npu-smi not on PATH (it comes with the NPU driver; is this an Ascend host?)"
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"absent: `npu-smi {' '.join(args)}` could not run ({exc})"
    if done.returncode != 0:
        first = (done.stdout + done.stderr).strip().splitlines()[:1]
        return None, f"absent: `npu-smi {' '.join(args)}` exited {done.returncode}" + (f": {first[0]}" if first else "")
    return done.stdout, ""


def npu_smi_facts(info: str, board: str | None) -> dict:
    """Parse `npu-smi info` (its banner `npu-smi <tool version>  Version: <driver>` and the first NPU row,
    `| <id>  <Name> | <Health> | ...`) and `npu-smi info -t board -i <id>` (`Firmware Version : ...`)."""
    facts = {}
    banner = re.search(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", info)
    if banner:
        facts["npu_smi"], facts["npu_driver"] = banner.group(1), banner.group(2)
    row = re.search(r"^\|\s*\d+\s+(\S+)\s*\|\s*(\S+)\s*\|", info, re.MULTILINE)
    if row:
        facts["npu_chip"], facts["npu_health"] = row.group(1), row.group(2)
    if board:
        firmware = re.search(r"Firmware Version\s*:\s*(\S+)", board)
        if firmware:
            facts["npu_firmware"] = firmware.group(1)
        software = re.search(r"Software Version\s*:\s*(\S+)", board)
        if software and "npu_driver" not in facts:
            facts["npu_driver"] = software.group(1)
    return facts


def versions(options: dict) -> dict:
    """What a support ticket needs (options: ais_bench_python, device_id, as options() gives them), every
    value a string: npu_smi (tool version), npu_chip, npu_health, npu_driver, npu_firmware (from
    `npu-smi info` and `npu-smi info -t board -i <device_id>`), cann (the CANN toolkit's version, read
    from its install records, never by running atc), atc (its path), ais_bench, aclruntime and
    ais_bench_python. A value that could not be found says why, starting "absent: "."""
    ais_bench_python = options.get("ais_bench_python", "python3")
    npu_device = options.get("device_id", 0)
    out: dict[str, str] = {}
    info, why = _npu_smi(["info"])
    board, board_why = _npu_smi(["info", "-t", "board", "-i", str(int(npu_device))]) if info else (None, why)
    facts = npu_smi_facts(info, board) if info else {}
    for key in ("npu_smi", "npu_chip", "npu_health", "npu_driver"):
        out[key] = facts.get(key) or (why or "absent: not in the output of `npu-smi info`")
    out["npu_firmware"] = facts.get("npu_firmware") or (
        board_why or "absent: no `Firmware Version` in `npu-smi info -t board`")

    atc_path = shutil.which(ATC)
    out["atc"] = atc_path or f"absent: atc not on PATH ({CANN_FIX})"
    cann = _cann_version(atc_path) if atc_path else _cann_version_from_home()
    out["cann"] = cann or ("absent: no version.info or ascend_toolkit_install.info near atc or in "
                           "ASCEND_TOOLKIT_HOME" if atc_path or os.environ.get("ASCEND_TOOLKIT_HOME")
                           else "absent: atc not on PATH and ASCEND_TOOLKIT_HOME not set (CANN's set_env.sh "
                                "not loaded?)")
    exe = shutil.which(ais_bench_python)
    out["ais_bench_python"] = exe or f"absent: {ais_bench_python} (config ais_bench_python) not found"
    probe = _probe_ais_bench(ais_bench_python)
    if probe is None:
        out["ais_bench"] = out["aclruntime"] = f"absent: {ais_bench_python} (config ais_bench_python) not found"
    else:
        out["ais_bench"] = ((probe.get("ais_bench") or "unknown (installed, no version recorded)")
                            if probe.get("found") else f"absent: ais_bench is not installed in {ais_bench_python}")
        out["aclruntime"] = probe.get("aclruntime") or f"absent: no aclruntime distribution in {ais_bench_python}"
    return out


# --------------------------------------------------------------------------------------------
# The NPU's own tensors (locate with `locate_npu_dump: true`): ais_bench dumps
# --------------------------------------------------------------------------------------------
# Layout, from ais_bench's source (Ascend/tools ais-bench_workload/tool/ais_bench, read in the mirror
# Yanguan619/aclruntime: ais_bench/infer/common/miscellaneous.py get_acl_json_path, common/utils.py
# create_tmp_acl_json / move_subdir / convert_helper) and CANN's msaccucmp docs ("Data Format
# Requirements", "Converting Dump File Formats"):
#   `--dump 1 --output OUT` writes OUT/acl.json with dump_path OUT/dump, dump_mode "all"; CANN writes
#   OUT/dump/{timestamp}/{device_id}/{model_name}/{model_id}/{data_index}/
#       {op_type}.{op_name}.{task_id}.{stream_id}.{timestamp}           (binary, CANN's own format)
#   (newer CANN: {op_type}.{op_name}.({stream_id}.){task_id}.{timestamp}.{task_type}.{context_id}.{thread_id}.{device_id}).
#   With `--dump_npy 1` ais_bench runs msaccucmp.py convert into OUT/dump/{timestamp}_npy/<same relative dirs>/
#       <dump file name>.output.{index}.{shape}.npy   and   .input.{index}.{shape}.npy   (shape like 1x3x224x224)
#   op_type/op_name have '.', '/', '\\' and spaces replaced by '_'. For an ONNX model ATC names its ops
#   after the ONNX nodes, so the ONNX node name with those characters replaced is the op_name (fused ops
#   keep one of the names; a node without a dump row is skipped). Only the npy form is read here: the
#   binary form needs CANN's msaccucmp.

def dump_op_name(onnx_node_name: str) -> str:
    """How an ONNX node name appears in a CANN dump file name."""
    return re.sub(r"[./\\ ]", "_", onnx_node_name)


def read_ais_bench_dump(folder: str | Path, data_index: int | None = None) -> dict[str, dict]:
    """{op_name: {"op_type", "outputs": {index: path}, "inputs": {index: path}}} from the npy files of an
    ais_bench `--dump 1 --dump_npy 1` run: `folder` is ais_bench's --output folder (or its dump/ or a
    {timestamp}_npy/ below it). The newest {timestamp}_npy folder is read; `data_index` picks the
    inference (default: the lowest)."""
    folder = Path(folder)
    roots = sorted(p for p in list(folder.glob("*_npy")) + list(folder.glob("dump/*_npy")) if p.is_dir())
    root = roots[-1] if roots else folder
    files = sorted(root.rglob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no dump .npy files under {folder} (run ais_bench with --dump 1 --dump_npy 1)")
    by_index: dict[str, list[Path]] = {}
    for f in files:
        parent = f.parent.name
        by_index.setdefault(parent if parent.isdigit() else "0", []).append(f)
    pick = str(data_index) if data_index is not None else min(by_index, key=lambda s: int(s) if s.isdigit() else 0)
    out: dict[str, dict] = {}
    for f in by_index[pick]:
        tokens = f.name[: -len(".npy")].split(".")
        kinds = [i for i, t in enumerate(tokens) if t in ("input", "output")]
        if len(tokens) < 4 or not kinds or kinds[-1] + 1 >= len(tokens) or not tokens[kinds[-1] + 1].isdigit():
            log.info("not a dump file name, skipped: %s", f.name)
            continue
        kind, index = tokens[kinds[-1]], int(tokens[kinds[-1] + 1])
        entry = out.setdefault(tokens[1], {"op_type": tokens[0], "outputs": {}, "inputs": {}})
        entry["outputs" if kind == "output" else "inputs"][index] = f
    return out


class DumpTarget:
    """A target whose tensors come from an NPU dump: run(feed) yields the dumped output of each wanted
    tensor's producer node (output index of that tensor). The feed is ignored: the dump is of one run."""

    def __init__(self, dump: dict[str, dict], reference_graph, groups: list[list[str]]):
        self.groups = groups
        self.where = {}
        for n in reference_graph.graph.node:
            for i, o in enumerate(n.output):
                entry = dump.get(dump_op_name(n.name))
                if entry and i in entry["outputs"]:
                    self.where[o] = entry["outputs"][i]

    def run(self, feed):
        import numpy as np

        for want in self.groups:
            yield {t: np.load(self.where[t]) for t in want if t in self.where}


def node_tensors(model: str | os.PathLike, npy_file: str | os.PathLike, reference_graph, out_dir: str | os.PathLike,
                 options: dict) -> dict:
    """{ONNX tensor name of `reference_graph`: its value on the NPU} for the model run on one input:
    ais_bench's dump (dump()) read back by the ONNX node each op is named after."""
    import numpy as np

    folder = dump(model, npy_file, Path(out_dir) / "dump", options)
    where = DumpTarget(read_ais_bench_dump(folder), reference_graph, []).where
    return {tensor: np.load(path) for tensor, path in where.items()}


# --------------------------------------------------------------------------------------------
# Repair's mechanism: the fp16 ONNX stored in fp16 between nodes stands for ATC's fp16 computation; the
# nodes kept in fp32 go to ATC as its --keep_dtype file
# --------------------------------------------------------------------------------------------

def reduced_graph(fp32_onnx: str | os.PathLike, precision: str, scratch: str | os.PathLike, options: dict) -> str:
    """The graph whose node names `keep` names: the fp32 ONNX itself (ATC names its ops after them)."""
    return str(fp32_onnx)


def build_reduced(graph: str | os.PathLike, precision: str, keep: list[str], out_dir: str | os.PathLike,
                  options: dict) -> str:
    """The fp16 ONNX with the nodes `keep` in fp32 (ONNX Runtime's fp16 converter, as the workflow's fp16
    ONNX is made): what ATC computes with those nodes in --keep_dtype."""
    from backends.onnxruntime import build_fp16

    if precision not in REDUCED:
        raise ValueError(f"ascend: {precision} has no proxy to rebuild (only {', '.join(sorted(REDUCED))})")
    return str(build_fp16(graph, Path(out_dir) / "model.onnx", node_block_list=keep))


def load_reduced(model: str | os.PathLike, options: dict):
    """run(input) -> the model's first output with every fp16 tensor stored in fp16 between nodes: the proxy
    of the NPU's fp16 computation (ONNX Runtime's own CPU computes most fp16 nodes in fp32)."""
    from backends.base import model_inputs
    from backends.graph import SegmentRunner, load_graph

    output = load_graph(model).graph.output[0].name
    runner = SegmentRunner(model, [[output]], options.get("threads", 1), fp16_storage=True)
    name = model_inputs(model)[0].name
    return lambda x: next(iter(runner.run({name: x})))[output]


def kept_command(fp32_onnx: str | os.PathLike, kept_file: str | os.PathLike, out_dir: str | os.PathLike,
                 options: dict) -> list[str]:
    """The ATC command that builds the repaired target on the device, batch 1: the fp32 ONNX under
    --precision_mode=force_fp16 (what the fp16 target computes) with --keep_dtype naming the kept nodes and
    their closure (write_kept). ATC refuses a --keep_dtype file naming an operator its graph does not have
    (E10042), so every name in it is a node of that ONNX."""
    from backends.base import model_inputs

    (spec,) = model_inputs(fp32_onnx)
    atc = {k: v for k, v in (options.get("atc") or {}).items() if k not in ("precision_mode", "precision_mode_v2")}
    cmd = atc_command(Path(fp32_onnx).resolve(), Path(out_dir).resolve() / MODEL_PREFIX, 1, 0, options["hardware"],
                      {**atc, "precision_mode": "force_fp16"}, options.get("tower", "image"), spec=spec)
    return cmd + [f"--keep_dtype={Path(kept_file).resolve()}"]


def write_kept(path: str | os.PathLike, nodes: list[str]) -> None:
    """ATC's --keep_dtype file: one operator name per line (ATC names an ONNX model's operators after its
    nodes), for `atc --precision_mode=force_fp16 --keep_dtype=<file>` on the fp32 ONNX. Format: CANN ATC
    docs, "--keep_dtype", e.g.
    https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/80RC2alpha002/devaids/auxiliarydevtool/atlasatc_16_0105.html"""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(f"{n}\n" for n in dict.fromkeys(nodes)), encoding="utf-8")
