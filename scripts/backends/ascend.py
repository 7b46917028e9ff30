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
- ais_bench names each output after its input file cut at the first dot (`a.b.npy` -> `a_0.npy`),
  so stems with a dot are refused. It groups input files by byte size, not by shape, so every input
  must be exactly one batch-1 tensor: float32 1xCxHxW for the image tower, int64 1x52 token ids
  (416 bytes) for the text tower (compiled with --input_format=ND --input_shape=text:<bs>,52). Recent versions refuse symbolic links as inputs, so
  the input folder holds hard links (or copies), never symlinks.
- ais_bench writes `<output>/<output_dirname>_summary.json` beside the output folder, with
  NPU_compute_time {min, max, mean, median, percentile(99%), count}, throughput and
  npu_compute_time_list (one device compute time per run, ms).
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from common import log

ATC = "atc"
INPUT_NAME = "image"  # cn_clip's exported input (CONTRACT.md)
TEXT_INPUT_NAME, CONTEXT_LENGTH = "text", 52  # the text tower's input: int64 token ids (paths.CONTEXT_LENGTH)
MODEL_PREFIX = "model"  # the .om is <out_dir>/model.om
# The ATC options users tune (config `atc:`), in the order they are appended to the command line.
ATC_OPTIONS = ("precision_mode", "op_select_implmode", "optypelist_for_implmode")
LOG_TAIL_LINES = 40

CANN_FIX = ("install the CANN toolkit (it provides atc) and load its environment in this shell: "
            "`source /usr/local/Ascend/ascend-toolkit/set_env.sh` (or <CANN install dir>/set_env.sh)")
AIS_BENCH_FIX = ("install ais_bench into that Python from its repository "
                 "(https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench: build and "
                 "`pip3 install` the aclruntime and ais_bench wheels as its README says), or point config "
                 "`ais_bench_python` at the Python that has it")


class MissingToolError(RuntimeError):
    """atc or ais_bench is not available; the message names the tool and the fix."""


class ToolError(RuntimeError):
    """atc or ais_bench ran and failed; the message holds the command line and the tail of its output."""


# --------------------------------------------------------------------------------------------
# Command lines (pure)
# --------------------------------------------------------------------------------------------

def atc_command(onnx_fp16: str | os.PathLike, output_prefix: str | os.PathLike, batch_size: int,
                resolution: int, soc_version: str, atc_options: dict | None = None,
                tower: str = "image") -> list[str]:
    """The ATC command line, as an argument list for subprocess (no shell, so no quoting).
    Only the options in `atc_options` that are set (non-empty) are passed, in ATC_OPTIONS order.
    tower="text": the text encoder, `--input_format=ND --input_shape=text:<bs>,52` (int64 token ids;
    `resolution` is not used)."""
    atc_options = dict(atc_options or {})
    unknown = sorted(set(atc_options) - set(ATC_OPTIONS))
    if unknown:
        raise ValueError(f"unknown ATC option(s) {unknown}; supported: {list(ATC_OPTIONS)}")
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
    if tower == "text":
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
    writes <output>/<output_dirname>_summary.json, which holds the per-run times."""
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
    min, max}, "notes": [...]}. p50 is ais_bench's median and p99 its percentile(99%); ais_bench prints no
    p90, so p90 is numpy's percentile(90) of the per-run times it writes (npu_compute_time_list, the same
    method ais_bench uses for its p99), or None with a note when the list is absent (never invented)."""
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
    else:
        latency["p90"] = None
        notes.append("p90 unavailable: ais_bench reports min/max/mean/median/p99 only and this summary has no "
                     "per-run npu_compute_time_list")
    for key in ("p50", "p99", "min", "max"):
        latency.setdefault(key, None)
    throughput = summary.get("throughput")
    return {"throughput_fps": float(throughput) if throughput is not None else None,
            "count": int(npu["count"]) if "count" in npu else None,
            "latency_ms": {k: latency[k] for k in ("mean", "p50", "p90", "p99", "min", "max")},
            "notes": notes}


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


def compile_command(onnx_fp16: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
                    options: dict) -> list[str]:
    """The exact ATC command line compile() runs (absolute paths: ATC runs in a scratch folder)."""
    prefix = Path(out_dir).resolve() / MODEL_PREFIX
    return atc_command(Path(onnx_fp16).resolve(), prefix, batch_size, resolution, options["device"],
                       options.get("atc"), options.get("tower", "image"))


def compile(onnx_fp16: str | os.PathLike, out_dir: str | os.PathLike, batch_size: int, resolution: int,
            options: dict) -> list[str]:
    """ATC: <out_dir>/model.om for options["device"] (the soc_version) at a fixed batch size.
    ATC runs in a fresh scratch folder beside out_dir (its cwd-relative files never collide with another
    job's); its fusion_result.json is kept next to the model as a record. On failure: ToolError with
    the command line and the tail of ATC's output, and no .om left behind."""
    given = Path(out_dir)  # the returned path keeps the caller's form (relative to the workflow root)
    out_dir = given.resolve()  # ATC runs elsewhere: every path it gets is absolute
    out_dir.mkdir(parents=True, exist_ok=True)
    om = out_dir / f"{MODEL_PREFIX}.om"
    om.unlink(missing_ok=True)
    cmd = compile_command(onnx_fp16, out_dir, batch_size, resolution, options)
    from common import remove_stale_scratch

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
    log.info("ATC wrote %s (%.1f MB)", om, om.stat().st_size / 1e6)
    return [str(given / om.name)]


def _check_inputs(npy_files: list[str | os.PathLike]) -> list[Path]:
    """Every input: a stem without a dot, unique, one batch-1 tensor (float32 1xCxHxW images, or int64
    1xL token ids of the text tower), all the same shape."""
    import numpy as np

    paths = [Path(f) for f in npy_files]
    if not paths:
        raise ValueError("no npy inputs for ais_bench")
    dotted = [p.name for p in paths if "." in p.stem]
    if dotted:
        raise ValueError(f"ais_bench cuts output names at the first dot, so these inputs would be misnamed or "
                         f"collide: {dotted}; rename them without a dot in the stem")
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


def _link_or_copy(src: Path, dst: Path) -> None:
    # Not a symlink: recent ais_bench refuses symbolic links as inputs.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def infer(model: str | os.PathLike, npy_files: list[str | os.PathLike], dst_dir: str | os.PathLike,
          options: dict) -> None:
    """ais_bench inference: dst_dir/<stem>_0.npy for every input. ais_bench's --output is dst_dir's parent
    and --output_dirname its name, so the layout is ais_bench's own (its <name>_summary.json lands beside
    dst_dir). The inputs are exactly npy_files (a scratch folder of links, since the npy folder may hold
    other files)."""
    paths = _check_inputs(npy_files)
    dst_dir = Path(dst_dir).resolve()
    dst_dir.mkdir(parents=True, exist_ok=True)
    expected = [dst_dir / f"{p.stem}_0.npy" for p in paths]
    for f in expected:  # a stale output must never pass for a fresh one
        f.unlink(missing_ok=True)
    python = options.get("ais_bench_python", "python3")
    from common import remove_stale_scratch

    remove_stale_scratch(dst_dir.parent, f".ais_bench-{dst_dir.name}-")  # left by a killed earlier run
    scratch = Path(tempfile.mkdtemp(dir=dst_dir.parent, prefix=f".ais_bench-{dst_dir.name}-"))
    try:
        inputs = scratch / "input"
        inputs.mkdir()
        for p in paths:
            _link_or_copy(p.resolve(), inputs / p.name)
        cmd = ais_bench_infer_command(Path(model).resolve(), inputs, dst_dir.parent, dst_dir.name,
                                      options.get("npu_device", 0), python)
        code, output = _run(cmd, scratch, "ais_bench")
        missing = [f.name for f in expected if not f.is_file()]
        if code != 0 or missing:
            reason = f"exit code {code}" if code != 0 else (
                f"no output for {len(missing)} of {len(expected)} inputs in {dst_dir}, e.g. {missing[0]}")
            raise _failure("ais_bench", cmd, scratch, output, reason)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = dst_dir.parent / f"{dst_dir.name}_summary.json"
    if not summary.is_file():
        log.warning("ais_bench wrote no %s", summary)
    log.info("ais_bench wrote %d outputs into %s", len(expected), dst_dir)


def benchmark(model: str | os.PathLike, npy_files: list[str | os.PathLike], batch_size: int, loop: int,
              warmup: int, options: dict) -> dict:
    """ais_bench pure-inference mode at `batch_size`: `loop` timed runs after `warmup` untimed ones, on
    zeros (ais_bench's pure-inference input; npy_files are not used). All figures are ais_bench's own:
    throughput from its throughput line (1000*batchsize/mean NPU compute time), latencies from its
    summary JSON (NPU compute time per run on the device, host-device copies excluded)."""
    python = options.get("ais_bench_python", "python3")
    model = Path(model).resolve()
    scratch = Path(tempfile.mkdtemp(prefix=f"ais_bench-bs{batch_size}-"))
    try:
        cmd = ais_bench_benchmark_command(model, loop, batch_size, warmup, options.get("npu_device", 0),
                                          output=scratch, output_dirname="benchmark", ais_bench_python=python)
        code, output = _run(cmd, scratch, "ais_bench")
        if code != 0:
            raise _failure("ais_bench", cmd, scratch, output, f"exit code {code}")
        try:
            printed = parse_ais_bench_stdout(output)
        except ValueError as exc:
            raise _failure("ais_bench", cmd, scratch, output, str(exc)) from exc
        summary_file = scratch / "benchmark_summary.json"
        summary = parse_summary(json.loads(summary_file.read_text())) if summary_file.is_file() else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    notes = []
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
    log.info("ais_bench bs%d: %.2f images/s, NPU compute mean %.3f ms", batch_size, throughput, latency["mean"])
    return {
        "batch_size": batch_size,
        "loop": loop,
        "warmup": warmup,
        "threads": None,  # runs on the NPU: host threads do not apply
        "throughput_fps": throughput,
        "latency_ms": latency,
        "measured_by": "ais_bench",
        "method": ("ais_bench pure-inference mode (zero inputs); latency = NPU_compute_time per run (device "
                   "compute, host-device copies excluded); p50 = ais_bench median, p99 = its percentile(99%), "
                   "p90 = numpy percentile(90) of its npu_compute_time_list"),
        "ais_bench": {"command": cmd, "printed": printed,
                      "summary_count": summary["count"] if summary else None},
        "notes": notes,
    }


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


def _cann_version(atc_path: str) -> str | None:
    """CANN's version from the install's own records near atc (never by running atc)."""
    candidates = []
    home = os.environ.get("ASCEND_TOOLKIT_HOME")
    if home:
        candidates.append(Path(home))
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


def versions(ais_bench_python: str = "python3") -> dict:
    """{"atc": CANN version or "unknown" or None when atc is absent, "ais_bench": ..., "aclruntime": ...}."""
    atc_path = shutil.which(ATC)
    atc = None if atc_path is None else (_cann_version(atc_path) or "unknown")
    probe = _probe_ais_bench(ais_bench_python) or {}
    found = probe.get("found")
    return {"atc": atc, "atc_path": atc_path,
            "ais_bench": (probe.get("ais_bench") or "unknown") if found else None,
            "aclruntime": probe.get("aclruntime")}
