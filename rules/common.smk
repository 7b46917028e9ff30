# Every artifact path, derived from config in one place; image discovery; input functions.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

import paths as P  # noqa: E402  (scripts/paths.py: shared by rules and tests)

# A dry run (-n) and a job step (--mode remote/subprocess: a cluster job parses this file again) never
# write: Snakemake knows -n from its output settings at parse time (workflow.dryrun only later).
DRY_RUN = bool(workflow.output_settings.dryrun or workflow.dryrun)
MAIN_PROCESS = workflow.is_main_process

# The matrix this run builds: every (arch, backend, device) target, each at every batch size.
RUN_ARCHS = config["model_archs"] or [config["model_arch"]]
BACKENDS = config["backends"] or [config["backend"]]
TARGETS = [
    {"arch": arch, "backend": backend, "device": device}
    for arch in RUN_ARCHS
    for backend in BACKENDS
    for device in P.devices(backend, config["soc_version"], config["soc_versions"])
]
BATCH_SIZES = sorted(config["batch_sizes"])
IMAGES_DIR = config["images"] or P.SAMPLE_IMAGES_DIR
IMAGES = P.discover_images(IMAGES_DIR, sample=not config["images"])  # {stem: image path}
SKIPPED_IMAGES = {}  # {path: why}: bad files skipped with skip_bad_images (listed in the report)
if config["images"]:
    from config_check import usable_images

    IMAGES, SKIPPED_IMAGES = usable_images(
        IMAGES,
        IMAGES_DIR,
        config["skip_bad_images"],
        ".snakemake/cnclip-image-check.json",
        write_cache=MAIN_PROCESS and not DRY_RUN,
    )
STEMS = sorted(IMAGES)
THREADS = config["threads"] or P.physical_cores()
if config["checkpoint"] not in ("synthetic", "download"):
    if len(RUN_ARCHS) > 1:
        raise P.ConfigError(
            f"checkpoint '{config['checkpoint']}' is one file, but model_archs names {len(RUN_ARCHS)} "
            f"architectures: use `checkpoint: synthetic` or `download` for a matrix, or one model_arch"
        )
    if not Path(config["checkpoint"]).is_file():
        raise P.ConfigError(
            f"checkpoint '{config['checkpoint']}' does not exist: set `checkpoint` to the path of an official "
            f"Chinese-CLIP .pt file of {RUN_ARCHS[0]} (e.g. clip_cn_{P.prefix(RUN_ARCHS[0])}.pt), "
            f"`synthetic` or `download`"
        )

# The text tower (config towers: [image, text]): label prompts tokenised by cn_clip, and the zero-shot check.
TOWERS = config["towers"]
TEXT = "text" in TOWERS
LABELS = list(config["labels"])
# the cosine gates similarity applies (the zero-shot bound is zero_shot's own: changing it reruns only that)
COSINE_GATES = {k: v for k, v in config["gates"].items() if k != "zero_shot_max_prob_change"}

REPORT = {fmt: f"results/report.{fmt}" for fmt in ("md", "html", "json")}


wildcard_constraints:
    arch="|".join(P.ARCHS).replace(".", r"\."),
    stage="torch_fp32|onnx_fp32|onnx_fp16",
    backend="onnxruntime|ascend",
    device=r"[A-Za-z0-9_]+",
    bs=r"[0-9]+",
    stem=r"[^/]+",


# The wildcard values this config's jobs take (others belong to another config's run).
WILDCARD_VALUES = {
    "arch": set(RUN_ARCHS),
    "prefix": {P.prefix(arch) for arch in RUN_ARCHS},
    "backend": set(BACKENDS),
    "device": {t["device"] for t in TARGETS},
    "bs": {str(bs) for bs in BATCH_SIZES},
    "stem": set(STEMS),
    "seed": {str(config["seed"])},
}


def output_kind(path, all_rules):
    """"dir" or "file" when a job of this config's run makes `path` (a directory() output or not),
    else None (the first rule with a matching output decides)."""
    from snakemake.io import is_flagged

    for producer in all_rules:
        for out in producer.output:
            if out.match(path):
                wildcards = producer.get_wildcards(path)
                if all(v in WILDCARD_VALUES.get(k, {v}) for k, v in wildcards.items()):
                    return "dir" if is_flagged(out, "directory") else "file"
                return None
    return None


def checkpoint_file(wildcards):
    return P.checkpoint_path(config["checkpoint"], wildcards.arch, config["seed"])


def image_file(wildcards):
    return IMAGES[wildcards.stem]


def npy_files(wildcards):
    return [P.npy(wildcards.arch, s) for s in STEMS]


def reference_files(stage):
    def files(wildcards):
        return [P.reference(wildcards.arch, stage, s) for s in STEMS]

    return files


def compiled(wildcards, bs=None):
    return P.compiled_manifest(
        wildcards.arch, wildcards.backend, wildcards.device, bs or wildcards.bs
    )


def benchmark_files(wildcards):
    return [
        P.benchmark(wildcards.arch, wildcards.backend, wildcards.device, bs)
        for bs in BATCH_SIZES
    ]


def reference_model(wildcards):
    if wildcards.stage == "torch_fp32":
        return checkpoint_file(wildcards)
    if wildcards.stage == "onnx_fp32":
        return P.onnx_fp32(wildcards.arch)
    return P.onnx_fp16(wildcards.arch)


def backend_options(wildcards):
    """What a backend needs besides its inputs. Only the options of the target's own backend, so
    changing an ATC option recompiles the Ascend models and nothing else."""
    options = {"threads": THREADS, "device": wildcards.device}
    if wildcards.backend == "onnxruntime":
        options["precision"] = config["precision"]
    if wildcards.backend == "ascend":
        options["atc"] = {k: v for k, v in config["atc"].items() if v}
        options["ais_bench_python"] = config["ais_bench_python"]
        options["npu_device"] = config["npu_device"]
    return options


def compile_source(wildcards):
    """The ONNX a target compiles: fp16 for Ascend (as the seed does); for ONNX Runtime the one its
    `precision` starts from (int8 is quantised from fp32)."""
    if wildcards.backend == "onnxruntime" and config["precision"] in ("fp32", "int8"):
        return {"onnx": P.onnx_fp32(wildcards.arch), "data": P.onnx_fp32_data(wildcards.arch)}
    return {"onnx": P.onnx_fp16(wildcards.arch)}


def text_reference_model(wildcards):
    if wildcards.stage == "torch_fp32":
        return checkpoint_file(wildcards)
    if wildcards.stage == "onnx_fp32":
        return P.text_onnx_fp32(wildcards.arch)
    return P.text_onnx_fp16(wildcards.arch)


def text_compile_source(wildcards):
    """The text ONNX a target compiles, by the same choice as compile_source makes for the image."""
    if wildcards.backend == "onnxruntime" and config["precision"] in ("fp32", "int8"):
        return {"onnx": P.text_onnx_fp32(wildcards.arch), "data": P.text_onnx_fp32_data(wildcards.arch)}
    return {"onnx": P.text_onnx_fp16(wildcards.arch)}


def text_backend_options(wildcards):
    """backend_options plus the tower (the ascend backend's ATC input shape depends on it)."""
    return {**backend_options(wildcards), "tower": "text"}


def npu(wildcards):
    """Jobs that hold the NPU (infer, benchmark on ascend) take one; the profile caps the total, so
    -c8 never puts two of them on one device. ATC (compile) runs on the host CPU."""
    return 1 if wildcards.backend == "ascend" else 0


def file_state(path):
    """(inode, size, mtime) of a file, or None: compared before and after a run to tell whether the
    run wrote it."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def gates_exit_status(report_json):
    import json

    from report import failed_gates

    failed = failed_gates(json.loads(Path(report_json).read_text()))
    if failed:
        print("FAIL: accuracy gates missed (see results/report.md):", *failed, sep="\n  ")
        sys.exit(1)
