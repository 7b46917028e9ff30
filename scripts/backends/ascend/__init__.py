"""Ascend NPU: Huawei's ATC compiles the fp16 ONNX into an offline model (.om) for one chip
(`soc_version`), and ais_bench runs it, exactly as the seed's manual steps do:

  atc --framework=5 --model=<fp16.onnx> --output=<prefix> --input_format=NCHW
      --input_shape=image:<bs>,3,<R>,<R> --soc_version=<soc> --log=error [--precision_mode=... | --precision_mode_v2=...]
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
  precision_mode=must_keep_origin_dtype. --precision_mode_v2 is the newer option of the same setting: ATC
  refuses the two together.
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

# The plan's modules: commands.py (the tools' command lines, parsers of ais_bench's figures, running a tool),
# scratch.py (ais_bench's path rules, the private scratch folder), probe.py (are the tools here, which versions),
# dumps.py (the NPU's own tensors for locate); this file, the plan itself (base.py).
import json
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path

from pipeline.common import log

from . import aipp, cube
from .commands import (MODEL_PREFIX, ais_bench_benchmark_command, ais_bench_infer_command, atc_command, dynamic_gears,
                       end_to_end, failure, parse_ais_bench_stdout, parse_multidevice_stdout, parse_summary, run_tool,
                       speed_intervals)
from .dumps import node_tensors  # noqa: F401 - the plan's node_tensors (base.py)
from .probe import check_tools, versions  # noqa: F401 - the plan's versions (base.py)
from .scratch import (AIS_UNSAFE_READ, check_inputs, check_scratch, output_folder, private_scratch, stage_inputs,
                      stage_model, write_atomically)

# --- the plan (scripts/backends/base.py) ----------------------------------------------------------
NAME = "ascend"
AIPP_CONFIG = "aipp.cfg"  # beside the .om: the static AIPP configuration ATC got (--insert_op_conf)
CONFIG_KEYS = ("soc_version", "soc_versions", "atc", "ais_bench_python", "npu_device", "npu_devices",
               "ascend_dynamic_batch", "aipp", "locate_npu_dump")
# What a target computes in -> the exported ONNX ATC compiles, and ATC's --precision_mode for it (None: not
# passed). ATC's default on any graph is force_fp16 (fp16 wherever the chip allows), so:
#   fp16        the seed's: the fp16 ONNX, no option
#   fp32        the fp32 ONNX in its own dtype (must_keep_origin_dtype): what the chip runs in fp32
#   mixed_fp16  the fp32 ONNX, fp16 where ATC's op lists allow it, fp32 elsewhere (allow_mix_precision_fp16)
#   mixed_bf16  the same in bf16 (allow_mix_precision_bf16; chips with bf16, such as the 910B series)
# and one precision set by --precision_mode_v2 instead (ATC refuses both options together):
#   cube_fp16in_fp32out  the fp32 ONNX, matrix products (the cube unit: cube.CUBE_OPS) with fp16 inputs and
#                        fp32 outputs, every vector op in fp32 (ATC's cube_fp16in_fp32out; cube.py, its proxy)
# CANN's ATC documentation, --precision_mode and --precision_mode_v2:
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0067.html
# https://www.hiascend.com/document/detail/en/canncommercial/850/devaids/atctool/atlasatcparam_16_0069.html
PRECISION_MODE = {"fp16": None, "fp32": "must_keep_origin_dtype", "mixed_fp16": "allow_mix_precision_fp16",
                  "mixed_bf16": "allow_mix_precision_bf16"}
PRECISION_MODE_V2 = {cube.PRECISION: "cube_fp16in_fp32out"}
PRECISIONS = {"fp16": "fp16", "fp32": "fp32", "mixed_fp16": "fp32", "mixed_bf16": "fp32", cube.PRECISION: "fp32"}
DEFAULT_PRECISION = "fp16"
CALIBRATED = frozenset()
# locate and repair work on a CPU proxy of each: for fp16 the fp16 ONNX stored in fp16 between nodes, for
# cube_fp16in_fp32out the fp32 ONNX with its matrix products' inputs rounded to fp16 (cube.py)
REDUCED = frozenset({"fp16", cube.PRECISION})
CANDIDATE_OPS = {cube.PRECISION: cube.CUBE_OPS}  # the only nodes cube_fp16in_fp32out changes
# what `precisions: auto` builds and chooses among: fp32, and the two reduced precisions the chip computes in
AUTO_PRECISIONS = ("fp32", "fp16", cube.PRECISION)
# ATC's precision option for a repaired target's --keep_dtype build (kept_command), per reduced precision: the
# fp32 ONNX under the option that computes the target's precision
KEPT_MODE = {"fp16": ("precision_mode", "force_fp16"), cube.PRECISION: ("precision_mode_v2", "cube_fp16in_fp32out")}
ACCELERATOR = "npu"  # infer, benchmark and a dumping locate hold one NPU each
RUNS_ON_HOST_CPU = False  # runs on the NPU: the host's matmul ceiling says nothing of its speed
REFERENCE = False  # the reference stages run elsewhere (backends/base.py)
LABEL, SHORT = "Ascend NPU (ATC, ais_bench)", "NPU"  # how the report names it
# its words (the chip family, its tools, its resource): no file outside this plan names them
FACTS = ("ascend", "Ascend", "ATC", "atc", "ais_bench", "aclruntime", "npu", "NPU", "npu-smi", "CANN", "msaccucmp",
         "AIPP", "aipp")


def devices(config: dict) -> list[str]:
    """The chips (soc_version) its targets are compiled for."""
    return list(config["soc_versions"]) or [config["soc_version"]]


def atc_precision(precision: str) -> dict:
    """The ATC option the precision sets: {"precision_mode": ...}, {"precision_mode_v2": ...} or {} (fp16,
    ATC's default on the fp16 ONNX)."""
    if PRECISION_MODE_V2.get(precision):
        return {"precision_mode_v2": PRECISION_MODE_V2[precision]}
    return {"precision_mode": PRECISION_MODE[precision]} if PRECISION_MODE[precision] else {}


def options(config: dict, precision: str) -> dict:
    """ATC's options (those config `atc` sets, and --precision_mode or --precision_mode_v2 for the precision),
    the Python that runs ais_bench, the NPU's device id (infer, locate's dump) and the NPUs a benchmark runs
    over (`npu_devices`, else that one), AIPP, and whether locate reads the NPU's own tensors.
    ConfigError when config `atc` sets a precision mode of its own beside a precision that sets one (the schema
    has no such key; a config that bypasses it): ATC takes one, and the target's precision names it."""
    atc = {k: v for k, v in config["atc"].items() if v}
    sets = atc_precision(precision)
    clash = {k: atc[k] for k in ("precision_mode", "precision_mode_v2") if sets and atc.get(k) and atc[k] != sets.get(k)}
    if clash:
        from pipeline.paths import ConfigError

        (key, value), (own, mode) = next(iter(clash.items())), next(iter(sets.items()))
        raise ConfigError(f"config `atc: {key}: {value}` conflicts with precision {precision}, which sets ATC's "
                          f"--{own}={mode} (ATC takes one precision mode: --precision_mode and --precision_mode_v2 "
                          f"are mutually exclusive): remove {key} from `atc:` and choose what ATC computes in by "
                          f"`precision`/`precisions` ({', '.join(PRECISIONS)})")
    atc.update(sets)
    return {"atc": atc, "ais_bench_python": config["ais_bench_python"], "device_id": config["npu_device"],
            "benchmark_devices": bench_devices(config), "aipp": bool(config.get("aipp")),
            "dump_tensors": config["locate_npu_dump"]}


def takes_pixels(config: dict) -> bool:
    """Whether its image targets take uint8 pixels (config `aipp`: cn_clip's resize and RGB conversion on the
    host, the conversion to fp16 and the normalisation on the NPU, aipp.py)."""
    return bool(config.get("aipp"))


def _aipp(options: dict) -> bool:
    return bool(options.get("aipp")) and options.get("tower", "image") == "image"


def device_input(spec, options: dict) -> dict:
    """What the compiled model takes for one item (base.py): the ONNX input, or with AIPP uint8 H x W x 3
    pixels."""
    if _aipp(options):
        return {"shape": [1, int(spec.shape[2]), int(spec.shape[3]), 3], "dtype": "uint8",
                "bytes_per_item": aipp.pixel_bytes(spec), "preprocessing": "uint8 pixels after cn_clip's resize "
                "and RGB conversion; conversion to fp16 and normalisation by AIPP on the NPU"}
    return None


def bench_devices(config: dict) -> list[int]:
    """The NPUs a benchmark job runs ais_bench over: config `npu_devices`, else `npu_device` alone."""
    return list(config.get("npu_devices") or [config["npu_device"]])


def batch_models(config: dict) -> tuple[str, ...]:
    """Which models a target's batch sizes get (config `ascend_dynamic_batch`): "static" (one .om per batch
    size, the seed's), "dynamic" (one .om with ATC's --dynamic_batch_size over them, the batch picked at run
    time by ais_bench's --dymBatch), or both side by side."""
    models = {False: ("static",), True: ("dynamic",), "both": ("static", "dynamic")}[config.get("ascend_dynamic_batch",
                                                                                            False)]
    if "dynamic" in models:
        dynamic_gears(config["batch_sizes"])  # ValueError naming the rule and `batch_sizes`
    return models


def accelerators(config: dict, job: str) -> int:
    """How many NPUs one job uses: a benchmark all of `npu_devices`, any other job one."""
    return len(bench_devices(config)) if job == "benchmark" else 1


def preflight(config: dict) -> None:
    """atc and ais_bench must be there, and TMPDIR must allow a private scratch folder ais_bench accepts."""
    check_tools(config["ais_bench_python"])
    check_scratch()


def compile_command(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size, resolution: int,
                    options: dict) -> list[str]:
    """The exact ATC command line compile() runs (absolute paths: ATC runs in a scratch folder); the
    input's name and shape are read from the ONNX. batch_size: an int, or the gears of a dynamic-batch
    model (commands.atc_command)."""
    from backends.base import model_inputs

    prefix = Path(out_dir).resolve() / MODEL_PREFIX
    (spec,) = model_inputs(onnx_model)
    conf = Path(out_dir).resolve() / AIPP_CONFIG if _aipp(options) else None
    return atc_command(Path(onnx_model).resolve(), prefix, batch_size, options["device"], spec, options.get("atc"),
                       insert_op_conf=conf)


def write_aipp_config(onnx_model: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """<out_dir>/aipp.cfg: cn_clip's normalisation as static AIPP for the model's input, checked against the
    fields and ranges of the CANN docs (aipp.parse, aipp.check) before ATC sees it."""
    from backends.base import model_inputs

    (spec,) = model_inputs(onnx_model)
    mean, std = aipp.cn_clip_normalisation()
    text = aipp.config_text(int(spec.shape[-1]), mean, std)
    aipp.check(aipp.parse(text), spec)
    path = Path(out_dir) / AIPP_CONFIG
    path.write_text(text, encoding="utf-8")
    return path


def compile(onnx_model: str | os.PathLike, out_dir: str | os.PathLike, batch_size, resolution: int,
            options: dict) -> list[str]:
    """ATC: <out_dir>/model.om for options["device"] (the soc_version) at a fixed batch size, or (a sequence
    of batch sizes) one dynamic-batch model over them.
    ATC runs in a fresh scratch folder beside out_dir (its cwd-relative files never collide with another
    job's); its fusion_result.json is kept next to the model as a record. On failure: ToolError with
    the command line and the tail of ATC's output, and no .om left behind."""
    given = Path(out_dir)  # the returned path keeps the caller's form (relative to the workflow root)
    out_dir = given.resolve()  # ATC runs elsewhere: every path it gets is absolute
    out_dir.mkdir(parents=True, exist_ok=True)
    om = out_dir / f"{MODEL_PREFIX}.om"
    om.unlink(missing_ok=True)
    cmd = compile_command(onnx_model, out_dir, batch_size, resolution, options)
    if _aipp(options):
        write_aipp_config(onnx_model, out_dir)
    from pipeline.common import remove_stale_scratch

    remove_stale_scratch(out_dir.parent, f".atc-{out_dir.name}-")  # left by a killed earlier run
    scratch = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".atc-{out_dir.name}-"))
    try:
        code, output = run_tool(cmd, scratch, "atc")
        if code != 0 or not om.is_file():
            reason = f"exit code {code}" if code != 0 else f"exit code 0 but no {om.name} was written"
            raise failure("ATC", cmd, scratch, output, reason)
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
    return [str(given / om.name)] + ([str(given / AIPP_CONFIG)] if _aipp(options) else [])


def infer(model: str | os.PathLike, npy_files: list[str | os.PathLike], dst_dir: str | os.PathLike,
          options: dict) -> None:
    """ais_bench inference: dst_dir/<stem>_0.npy for every input (the user's own stem), ais_bench's summary
    as <record>_summary.json beside dst_dir (ais_bench's own layout), and <record>_names.json recording
    which safe name ais_bench saw for which input (record: options["record"], else dst_dir's name; a
    shard's infer names its own, so shards of one target keep each other's records). ais_bench itself
    runs in a private scratch folder (see the module docstring), so no user name, folder or umask
    reaches it."""
    paths = check_inputs(npy_files)
    dst_dir = Path(dst_dir).resolve()
    record_name = options.get("record") or dst_dir.name
    dst_dir.mkdir(parents=True, exist_ok=True)
    for f in dst_dir.glob("*_0.npy"):  # a stale output must never pass for a fresh one
        if f.name[:-len("_0.npy")] in {p.stem for p in paths}:
            f.unlink()
    python = options.get("ais_bench_python", "python3")
    with private_scratch("ais_bench-infer-") as scratch:
        names = stage_inputs(paths, scratch / "input")
        om = stage_model(model, scratch)
        out = output_folder(scratch)
        # a dynamic-batch model runs each input at its batch-1 gear (ais_bench refuses it without --dymBatch)
        dym_batch = 1 if options.get("dynamic_batch") else None
        cmd = ais_bench_infer_command(om, scratch / "input", out, "dst", options.get("device_id", 0), python,
                                      dym_batch=dym_batch)
        code, output = run_tool(cmd, scratch, "ais_bench")
        produced = out / "dst"
        missing = [n for n in names if not (produced / f"{n[:-len('.npy')]}_0.npy").is_file()]
        if code != 0 or missing:
            reason = f"exit code {code}" if code != 0 else (
                f"no output for {len(missing)} of {len(names)} inputs, e.g. {names[missing[0]].name} "
                f"(seen by ais_bench as {missing[0]})")
            raise failure("ais_bench", cmd, scratch, output, reason)
        for name, src in names.items():
            safe_stem = name[:-len(".npy")]
            for result in sorted(produced.glob(f"{safe_stem}_*.npy")):
                index = result.name[len(safe_stem) + 1:-len(".npy")]
                write_atomically(result, dst_dir / f"{src.stem}_{index}.npy")
        summary = out / "dst_summary.json"
        if summary.is_file():
            write_atomically(summary, dst_dir.parent / f"{record_name}_summary.json")
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
    zeros (ais_bench's pure-inference input; npy_files are not used), over options["benchmark_devices"]
    (several: one ais_bench process per device, its --device 0,1,...), at the --dymBatch gear of a
    dynamic-batch model (options["dynamic_batch"], the gears its manifest records). All figures are
    ais_bench's own: throughput from its throughput line (1000*batchsize/mean NPU compute time, host-device
    copies excluded: the seed's figure), latencies and per-run times from its summary JSON; `end_to_end`
    adds its host-device copy times (end_to_end()); 95 % intervals are bootstrapped from its per-run times.
    Over several devices: `devices` holds each one's figures, throughput_fps is ais_bench's summary
    throughput (their sum) and its interval the sum of theirs (conservative). ais_bench runs --loop exactly:
    options["ci_width"] (an early stop of the CPU benchmarks) does not apply, and a note says so."""
    python = options.get("ais_bench_python", "python3")
    devices = list(options.get("benchmark_devices") or [options.get("device_id", 0)])
    dynamic = bool(options.get("dynamic_batch"))
    with private_scratch(f"ais_bench-bs{int(batch_size)}-") as scratch:
        om = stage_model(model, scratch)
        out = output_folder(scratch)
        if len(devices) > 1:  # one process per device: made here, not raced for by them (its makedirs_safe fails)
            (out / "benchmark").mkdir(mode=0o750)
            os.chmod(out / "benchmark", 0o750)
        cmd = ais_bench_benchmark_command(om, loop, batch_size, warmup, devices[0] if len(devices) == 1 else devices,
                                          output=out, output_dirname="benchmark", ais_bench_python=python,
                                          dynamic=dynamic)
        code, output = run_tool(cmd, scratch, "ais_bench")
        if code != 0:
            raise failure("ais_bench", cmd, scratch, output, f"exit code {code}")
        try:
            if len(devices) == 1:
                per_device = {devices[0]: _device_figures(output, out / "benchmark_summary.json", loop, batch_size)}
                summary_fps = None
            else:
                printed = parse_multidevice_stdout(output)
                per_device = {d: _device_figures(None, out / "benchmark" / f"device{d}_{i}_summary.json", loop,
                                                 batch_size, printed["devices"].get(d))
                              for i, d in enumerate(devices)}
                summary_fps = printed["summary_fps"]
        except ValueError as exc:
            raise failure("ais_bench", cmd, scratch, output, str(exc)) from exc

    notes = []
    if options.get("ci_width"):
        notes.append(f"ci_width {options['ci_width']} does not apply: ais_bench runs --loop {loop} exactly")
    first = per_device[devices[0]]
    record = {key: first[key] for key in ("throughput_fps", "latency_ms", "throughput_fps_ci95", "latency_ms_ci95",
                                          "bootstrap", "seconds", "end_to_end", "ais_bench")}
    notes += first["notes"]
    if len(devices) > 1:
        record["throughput_fps"] = summary_fps
        ci = [d["throughput_fps_ci95"] for d in per_device.values()]
        record["throughput_fps_ci95"] = None if None in ci else [sum(c[0] for c in ci), sum(c[1] for c in ci)]
        e2e = [d["end_to_end"] for d in per_device.values()]
        record["end_to_end"] = None if None in e2e else _summed_end_to_end(e2e)
        total = sum(d["throughput_fps"] for d in per_device.values())
        if not math.isclose(total, summary_fps, rel_tol=1e-3, abs_tol=1e-6):
            notes.append(f"ais_bench's summary throughput {summary_fps} is not the sum of its devices' ({total:.4g})")
        notes.append(f"over {len(devices)} NPUs ({', '.join(map(str, devices))}): throughput is ais_bench's summary "
                     f"throughput (the devices' sum) and its interval the sum of theirs; latencies are NPU "
                     f"{devices[0]}'s")
        for d, fig in per_device.items():
            notes += [f"NPU {d}: {n}" for n in fig["notes"] if n not in notes]
    log.info("ais_bench bs%d over NPU %s: %.2f images/s (NPU compute), %s end to end", batch_size,
             ",".join(map(str, devices)), record["throughput_fps"],
             f"{record['end_to_end']['throughput_fps']:.2f}" if record["end_to_end"] else "no figure")
    return {
        "batch_size": batch_size,
        "loop": loop,
        "loop_max": loop,
        "stopped_early": False,
        "warmup": warmup,
        "threads": None,  # runs on the NPU: host threads do not apply
        **record,
        "devices": [{"device": d, **{k: v for k, v in fig.items() if k not in ("seconds", "notes", "bootstrap",
                                                                              "ais_bench")}}
                    for d, fig in per_device.items()],
        "dynamic_batch": options.get("dynamic_batch"),
        "measured_by": "ais_bench",
        "method": ("ais_bench pure-inference mode (zero inputs); throughput and latency = NPU_compute_time per "
                   "run (device compute, host-device copies excluded: the seed's figure); end_to_end adds "
                   "ais_bench's H2D and D2H copy times per batch; p50 = ais_bench median, p99 = its "
                   "percentile(99%), p90 = numpy percentile(90) of its npu_compute_time_list"),
        "command": cmd,  # the tool command line the report prints under "Reproduce"
        "notes": notes,
    }


def _device_figures(stdout: str | None, summary_file: Path, loop: int, batch_size: int,
                    printed_fps: float | None = None) -> dict:
    """One device's figures: its summary JSON (and, for a single device, the printed summary lines, whose
    throughput is the one the seed reads)."""
    printed = parse_ais_bench_stdout(stdout) if stdout is not None else None
    summary = parse_summary(json.loads(summary_file.read_text())) if summary_file.is_file() else None
    notes = []
    if summary is None:
        if printed is None:
            raise ValueError(f"ais_bench wrote no {summary_file.name}")
        latency = {k: printed["latency_ms"].get(k) for k in ("mean", "p50", "p90", "p99", "min", "max")}
        notes.append("ais_bench wrote no summary JSON: latencies from its printed summary, p90 unavailable")
    else:
        latency = summary["latency_ms"]
        notes += summary["notes"]
        if summary["count"] is not None and summary["count"] != loop:
            notes.append(f"ais_bench timed {summary['count']} runs for --loop {loop}")
    throughput = printed["throughput_fps"] if printed else (printed_fps if printed_fps is not None
                                                            else summary["throughput_fps"])
    if summary is not None and summary["throughput_fps"] is not None and not math.isclose(
            summary["throughput_fps"], throughput, rel_tol=1e-3, abs_tol=1e-6):
        notes.append(f"summary JSON throughput {summary['throughput_fps']} differs from the printed {throughput}")
    runs = summary["runs_ms"] if summary is not None else None
    intervals, why = speed_intervals(runs, batch_size)
    e2e, why_e2e = end_to_end(runs, summary["copies_ms"] if summary else {}, batch_size)
    return {"throughput_fps": throughput, "latency_ms": latency, **intervals, "end_to_end": e2e,
            "ais_bench": {"printed": printed, "summary_count": summary["count"] if summary else None},
            "notes": notes + why + why_e2e}


def _summed_end_to_end(figures: list[dict]) -> dict:
    """Several devices' end-to-end figures as one host's: throughputs and their bounds added."""
    return {"throughput_fps": sum(f["throughput_fps"] for f in figures),
            "throughput_fps_ci95": None if any(f["throughput_fps_ci95"] is None for f in figures) else
            [sum(f["throughput_fps_ci95"][0] for f in figures), sum(f["throughput_fps_ci95"][1] for f in figures)],
            "latency_ms": figures[0]["latency_ms"], "latency_ms_ci95": figures[0]["latency_ms_ci95"],
            "method": figures[0]["method"] + "; over several NPUs, their throughputs and bounds added"}


# --------------------------------------------------------------------------------------------
# Repair's mechanism: a CPU proxy of each reduced precision stands for ATC's computation (fp16: the fp16 ONNX
# stored in fp16 between nodes; cube_fp16in_fp32out: cube.py), and the nodes kept in fp32 go to ATC as its
# --keep_dtype file
# --------------------------------------------------------------------------------------------

def reduced_graph(fp32_onnx: str | os.PathLike, precision: str, scratch: str | os.PathLike, options: dict) -> str:
    """The graph whose node names `keep` names: the fp32 ONNX itself (ATC names its ops after them)."""
    return str(fp32_onnx)


def build_reduced(graph: str | os.PathLike, precision: str, keep: list[str], out_dir: str | os.PathLike,
                  options: dict) -> str:
    """What ATC computes with the nodes `keep` in --keep_dtype: for fp16 the fp16 ONNX with those nodes in fp32
    (ONNX Runtime's fp16 converter, as the workflow's fp16 ONNX is made; the set closed over its Casts and
    carriers); for cube_fp16in_fp32out the fp32 ONNX with the inputs of every matrix product but those rounded
    to fp16 (cube.round_cube_inputs: the other nodes compute in fp32 anyway, so nothing needs closing)."""
    from backends.onnxruntime import build_fp16

    out = Path(out_dir) / "model.onnx"
    if precision == "fp16":
        return str(build_fp16(graph, out, node_block_list=keep))
    if precision == cube.PRECISION:
        return str(cube.round_cube_inputs(graph, out, keep))
    raise ValueError(f"ascend: {precision} has no proxy to rebuild (only {', '.join(sorted(REDUCED))})")


def load_reduced(model: str | os.PathLike, options: dict):
    """run(input) -> the model's first output, computed as the NPU computes it: the fp16 proxy with every fp16
    tensor stored in fp16 between nodes (ONNX Runtime's own CPU computes most fp16 nodes in fp32); the
    cube_fp16in_fp32out proxy (marked by cube.is_proxy) by the reference runtime in fp32, as it is."""
    from backends.base import model_inputs
    from backends.onnxruntime import graph_session
    from graph import load_graph
    from graph.segments import SegmentRunner

    graph = load_graph(model)
    (spec,) = model_inputs(model)
    if cube.is_proxy(graph):
        import backends

        run = backends.reference().load_reduced(model, options)
    else:
        output = graph.graph.output[0].name
        runner = SegmentRunner(model, [[output]], graph_session, options.get("threads", 1), fp16_storage=True)
        run = lambda x: next(iter(runner.run({spec.name: x})))[output]  # noqa: E731
    if not _aipp(options):
        return run
    # the target takes the image's pixels: cn_clip's tensor -> its exact pixels -> AIPP's fp16 arithmetic
    mean, std = aipp.cn_clip_normalisation()
    fields = aipp.parameters(mean, std)
    return lambda x: run(aipp.emulate(aipp.to_pixels(x, mean, std), fields).astype(spec.dtype))


def kept_command(fp32_onnx: str | os.PathLike, kept_file: str | os.PathLike, out_dir: str | os.PathLike,
                 options: dict) -> list[str]:
    """The ATC command that builds the repaired target on the device, batch 1: the fp32 ONNX under the option
    that computes the target's precision (options["precision"], fp16 when absent: --precision_mode=force_fp16;
    cube_fp16in_fp32out: --precision_mode_v2=cube_fp16in_fp32out; KEPT_MODE) with --keep_dtype naming the kept
    nodes and their closure (write_kept). ATC refuses a --keep_dtype file naming an operator its graph does not
    have (E10042), so every name in it is a node of that ONNX."""
    from backends.base import model_inputs

    precision = options.get("precision") or "fp16"
    if precision not in KEPT_MODE:
        raise ValueError(f"ascend: {precision} has no --keep_dtype build (only {', '.join(sorted(KEPT_MODE))})")
    key, mode = KEPT_MODE[precision]
    (spec,) = model_inputs(fp32_onnx)
    atc = {k: v for k, v in (options.get("atc") or {}).items() if k not in ("precision_mode", "precision_mode_v2")}
    cmd = atc_command(Path(fp32_onnx).resolve(), Path(out_dir).resolve() / MODEL_PREFIX, 1, options["device"], spec,
                      {**atc, key: mode})
    return cmd + [f"--keep_dtype={Path(kept_file).resolve()}"]


def write_kept(path: str | os.PathLike, nodes: list[str]) -> None:
    """ATC's --keep_dtype file: one operator name per line (ATC names an ONNX model's operators after its
    nodes), for kept_command's `atc --precision_mode=force_fp16 --keep_dtype=<file>` on the fp32 ONNX (or
    --precision_mode_v2=cube_fp16in_fp32out). Format: CANN ATC docs, "--keep_dtype", e.g.
    https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/80RC2alpha002/devaids/auxiliarydevtool/atlasatc_16_0105.html"""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(f"{n}\n" for n in dict.fromkeys(nodes)), encoding="utf-8")
