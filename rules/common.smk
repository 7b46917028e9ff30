# The matrix this run builds, image discovery and input functions. Every path comes from
# scripts/paths.py (P), every resource figure from scripts/resources.py (R).
import os
import sys
from pathlib import Path

from pipeline import paths as P
from pipeline import resources as R

# A dry run (-n) and a job step (--mode remote/subprocess: a cluster job parses this file again) never
# write: Snakemake knows -n from its output settings at parse time (workflow.dryrun only later).
DRY_RUN = bool(workflow.output_settings.dryrun or workflow.dryrun)
MAIN_PROCESS = workflow.is_main_process

IMAGES_DIR = config["images"] or P.SAMPLE_IMAGES_DIR
# {stem: image path}
IMAGES = P.discover_images(IMAGES_DIR, sample=not config["images"])
# {path: why}: bad files skipped with skip_bad_images (listed in the report)
SKIPPED_IMAGES = {}
if config["images"]:
    from pipeline.config_check import usable_images

    IMAGES, SKIPPED_IMAGES = usable_images(
        IMAGES,
        IMAGES_DIR,
        config["skip_bad_images"],
        ".snakemake/cnclip-image-check.json",
        write_cache=MAIN_PROCESS and not DRY_RUN,
    )
STEMS = sorted(IMAGES)
LABELS = list(config["labels"])
ITEMS = {"image": STEMS, "text": LABELS}  # what each tower's model is run on
THREADS = config["threads"] or P.physical_cores()


def ascend_precision(atc):
    """The precision coordinate of ATC's precision option: its value, `v2_<value>` for
    precision_mode_v2, or fp16 (ATC's default on the fp16 ONNX) when neither is set."""
    if atc.get("precision_mode"):
        return atc["precision_mode"]
    if atc.get("precision_mode_v2"):
        return f"v2_{atc['precision_mode_v2']}"
    return P.ASCEND_DEFAULT_PRECISION


def precisions(backend):
    """The precisions of a backend's targets (each a target of its own)."""
    if backend == "ascend":
        return config["atc_precisions"] or [ascend_precision(config["atc"])]
    return config["precisions"] or [config["precision"]]


# The matrix: every (arch, tower, backend, device, precision) target, each at every batch size.
RUN_ARCHS = config["model_archs"] or [config["model_arch"]]
BACKENDS = config["backends"] or [config["backend"]]
TOWERS = config["towers"]
TARGETS = [
    P.Target(arch, tower, backend, device, precision)
    for arch in RUN_ARCHS
    for tower in TOWERS
    for backend in BACKENDS
    for device in P.devices(backend, config["soc_version"], config["soc_versions"])
    for precision in precisions(backend)
]
# The per-item jobs (preprocess, reference) work a shard of items each (scripts/paths.py shards)
SHARDS = {
    tower: P.shards(items, config["shard_size"]) for tower, items in ITEMS.items()
}


def arch_qualifier(arch):
    """An architecture in a sharded rule's name: only when the run has several."""
    return [arch] if len(RUN_ARCHS) > 1 else []


BATCH_SIZES = sorted(config["batch_sizes"])
# The text tower is compiled at batch 1 (infer's) and not benchmarked: batch sizes are the image tower's.
TOWER_BATCH_SIZES = {"image": BATCH_SIZES, "text": [1]}
# the cosine gates similarity applies (the zero-shot bound is zero_shot's own: changing it reruns only that)
COSINE_GATES = {
    k: v for k, v in config["gates"].items() if k != "zero_shot_max_prob_change"
}

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


wildcard_constraints:
    arch="|".join(P.ARCHS).replace(".", r"\."),
    tower="|".join(P.TOWERS),
    part="|".join(P.PART.values()),
    stage="|".join(P.STAGES),
    backend="onnxruntime|ascend",
    device=r"[A-Za-z0-9_]+",
    precision=r"[A-Za-z0-9_]+",
    bs=r"[0-9]+",


# The wildcard values this config's jobs take (others belong to another config's run).
WILDCARD_VALUES = {
    "arch": set(RUN_ARCHS),
    "prefix": {P.prefix(arch) for arch in RUN_ARCHS},
    "tower": set(TOWERS),
    "part": {P.part(tower) for tower in TOWERS},
    "backend": set(BACKENDS),
    "device": {t.device for t in TARGETS},
    "precision": {t.precision for t in TARGETS},
    "bs": {str(bs) for bs in BATCH_SIZES},
    "seed": {str(config["seed"])},
}


def output_kind(path, all_rules):
    """ "dir" or "file" when a job of this config's run makes `path` (a directory() output or not),
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


def tower_of(wildcards):
    return (
        wildcards.tower
        if "tower" in wildcards.keys()
        else P.TOWER_OF_PART[wildcards.part]
    )


def checkpoint_file(wildcards):
    return P.checkpoint_path(config["checkpoint"], wildcards.arch, config["seed"])


def shard_model_inputs(arch, tower, shard):
    """What a job over a shard's items takes for their model inputs: an image shard's list of its npy
    files (scripts/paths.py npy_shard; scripts/common.py model_input_files expands it), a text shard's
    token files (the labels are few). One file per image shard, not one per image: Snakemake stats every
    input of every job waiting for a core, in every scheduling round (docs/performance.md).
    """
    if tower == "image":
        return [P.npy_shard(arch, shard.name)]
    return [P.model_input(arch, tower, item) for item in shard.items]


def model_inputs(wildcards):
    """Every input of a target's tower (shard_model_inputs of each shard)."""
    tower = tower_of(wildcards)
    return [
        f
        for shard in SHARDS[tower]
        for f in shard_model_inputs(wildcards.arch, tower, shard)
    ]


def first_shard_inputs(wildcards):
    """The inputs of a target's tower that a job needs only a sample of: the first shard's. A benchmark
    rotates through real batches of them, locate compares its first few (every image of a large set
    would cost memory and plan time for nothing, and adding an image to another shard reruns neither).
    """
    tower = tower_of(wildcards)
    return shard_model_inputs(wildcards.arch, tower, SHARDS[tower][0])


def features(stage):
    """Input function: one stage's features of a target's tower, a stacked file per shard (the target's
    own for `offline`, else the reference's): a consumer of every item looks up a file per shard, not
    one per item (the plan at 10,000 images). Each is written by the job that writes the per-item files.
    """

    def files(wildcards):
        t = P.Target.of(wildcards)
        if stage == "offline":
            return [t.features(shard.name) for shard in SHARDS[t.tower]]
        return [
            P.reference_features(t.arch, t.tower, stage, shard.name)
            for shard in SHARDS[t.tower]
        ]

    return files


def reference_model(arch, tower):
    """The input function of a reference rule: what one stage runs, the checkpoint (torch_fp32) or the
    tower's ONNX, with the fp32 ONNX's weight file."""

    def model(wildcards):
        if wildcards.stage == "torch_fp32":
            return {
                "model": P.checkpoint_path(config["checkpoint"], arch, config["seed"])
            }
        if wildcards.stage == "onnx_fp32":
            return {
                "model": P.onnx(arch, tower, "fp32"),
                "data": P.onnx_data(arch, tower),
            }
        return {"model": P.onnx(arch, tower, "fp16")}

    return model


def source_stage(t):
    """The exported ONNX (fp32 or fp16) a target starts from: fp16 for Ascend (as the seed does); for
    ONNX Runtime the one its precision starts from (int8 is quantised from fp32)."""
    return P.ORT_PRECISIONS[t.precision] if t.backend == "onnxruntime" else "fp16"


def compile_source(wildcards):
    """The ONNX a target compiles (source_stage); static int8 is calibrated on the run's own inputs, the
    first shard's (about shard_size: a sample enough for MinMax ranges; more images would cost the
    compile and the plan time without changing the model much, and a new image outside that shard
    does not recompile it)."""
    t = P.Target.of(wildcards)
    stage = source_stage(t)
    source = {"onnx": P.onnx(t.arch, t.tower, stage)}
    if stage == "fp32":
        source["data"] = P.onnx_data(t.arch, t.tower)
    if t.backend == "onnxruntime" and t.precision == "int8":
        source["calibration"] = first_shard_inputs(wildcards)
    return source


def backend_options(wildcards):
    return target_options(P.Target.of(wildcards))


def target_options(t):
    """What a backend needs besides its inputs. Only the options of the target's own backend, so
    changing an ATC option recompiles the Ascend models and nothing else."""
    options = {
        "threads": THREADS,
        "device": t.device,
        "tower": t.tower,
        "precision": t.precision,
    }
    if t.backend == "ascend":
        atc = {
            k: v
            for k, v in config["atc"].items()
            if v and k not in ("precision_mode", "precision_mode_v2")
        }
        if t.precision.startswith("v2_"):
            atc["precision_mode_v2"] = t.precision.removeprefix("v2_")
        elif t.precision != P.ASCEND_DEFAULT_PRECISION:
            atc["precision_mode"] = t.precision
        options.update(
            atc=atc,
            ais_bench_python=config["ais_bench_python"],
            npu_device=config["npu_device"],
        )
    return options


def npu(wildcards):
    return holds_npu(P.Target.of(wildcards))


def holds_npu(t):
    """Jobs that hold the NPU (infer, benchmark on ascend) take one; the profile caps the total, so
    -c8 never puts two of them on one device. ATC (compile) runs on the host CPU. Cluster profiles
    tell these jobs by their `manifest` input (in an ascend target's folder)."""
    return 1 if t.backend == "ascend" else 0


def infer_rules():
    """(target, shard) of each infer rule. A tower whose items make one shard has one rule for every
    target: a pattern (Target with only the tower named), as any other target step. Several shards:
    a rule per target and shard, with named outputs (a pattern's outputs, all under `results/`, would
    make Snakemake scan every item's output for every file it looks up: a plan growing with items
    squared)."""
    for tower in TOWERS:
        if len(SHARDS[tower]) == 1:
            yield P.Target(tower=tower), SHARDS[tower][0]
        else:
            for t in TARGETS:
                if t.tower == tower:
                    for shard in SHARDS[tower]:
                        yield t, shard


def target_qualifier(t):
    """A target in a sharded rule's name: the fewest of its coordinates that tell this run's targets
    of its tower apart (none for one target: infer_3of8; infer_ascend_3of8 beside an onnxruntime
    target; infer_ViT-B-16_ascend_3of8 in a matrix of architectures and backends). None for a
    pattern (while the items make one shard, `infer` serves every target)."""
    from itertools import combinations

    if t not in TARGETS:
        return []
    peers = [x for x in TARGETS if x.tower == t.tower]
    names = [c for c in P.COORDINATES if c != "tower"]
    for n in range(len(names) + 1):
        for chosen in combinations(names, n):
            if len({tuple(getattr(x, c) for c in chosen) for x in peers}) == len(peers):
                return [getattr(t, c) for c in chosen]


def shard_inputs(arch, tower, shard):
    """shard_model_inputs of a concrete shard rule. An image shard's list is its preprocess rule's own
    output: from it Snakemake knows the rule without searching its output index. Snakemake does that
    for unnamed inputs only: the rules give these unnamed (scripts/common.py unnamed_inputs).
    """
    if tower == "image":
        return [
            getattr(rules, shard.rule("preprocess", *arch_qualifier(arch))).output.shard
        ]
    return shard_model_inputs(arch, tower, shard)


def of_job(t, value):
    """An input function for the rules of target t (a pattern or a concrete one): value() of the
    job's own target, t with the job's wildcards filled in."""

    def function(wildcards):
        coordinates = t.coordinates()
        coordinates.update((k, wildcards[k]) for k in wildcards.keys())
        return value(P.Target.of(coordinates))

    return function


def zero_shot_inputs(wildcards):
    """Both towers' torch_fp32, onnx_fp16 and deployed features of one deployment (shard files)."""
    image = P.Target(
        wildcards.arch,
        "image",
        wildcards.backend,
        wildcards.device,
        wildcards.precision,
    )
    files = {}
    for tower, target in (("image", image), ("text", image.twin("text"))):
        coordinates = target.coordinates()
        for stage in ("torch_fp32", "onnx_fp16", "offline"):
            files[f"{tower}_{stage}"] = features(stage)(coordinates)
    return files


def locate_inputs(wildcards):
    """What locate compares for a target: its tower's fp32 ONNX against the ONNX at the target's
    precision (the fp16 ONNX stands for ATC's fp16 computation on Ascend); int8 pairs are rebuilt by
    the job itself (scripts/locate.py quantised_pair)."""
    t = P.Target.of(wildcards)
    files = {
        "fp32": P.onnx(t.arch, t.tower, "fp32"),
        "data": P.onnx_data(t.arch, t.tower),
    }
    files["npy"] = first_shard_inputs(wildcards)
    if locates_npu_dump(wildcards):
        files["manifest"] = t.manifest(1)
    if source_stage(t) == "fp16":
        files["target"] = P.onnx(t.arch, t.tower, "fp16")
    elif t.precision == "fp32":
        files["target"] = files["fp32"]
    return files


def locates_npu_dump(wildcards):
    """Whether locate reads the NPU's own tensors (ais_bench --dump) for an Ascend target
    (`locate_npu_dump: true`): the job then holds the NPU and its input names the compiled model.
    """
    return wildcards.backend == "ascend" and config["locate_npu_dump"]


def repair_step_inputs(wildcards):
    """What a repair step needs: locate's rows and summary, the fp32 ONNX it rebuilds from, the inputs and
    their torch_fp32 features (the ground truth it verifies against); step 0 the target's ONNX as deployed
    today where there is one (fp16 and Ascend: the fp16 ONNX), step n the record and model of step n - 1.
    Not the target's compiled model: repair verifies on ONNX Runtime, so it runs without the target's tools.
    """
    t = P.Target.of(wildcards)
    step = int(wildcards.step)
    files = {k: v for k, v in locate_inputs(wildcards).items() if k in ("fp32", "data")}
    files.update(
        npy=model_inputs(wildcards),  # verified on every input, not locate's sample
        csv=t.locate("csv"),
        json=t.locate("json"),
        reference=features("torch_fp32")(wildcards),
    )
    if step > 0:
        files.update(
            prev_json=t.repair_step(step - 1, "json"),
            prev_model=t.repair_step(step - 1, "onnx"),
        )
    elif source_stage(t) == "fp16":
        files["target"] = P.onnx(t.arch, t.tower, "fp16")
    return files


def repair_final_inputs(wildcards):
    """The repair chain's first model (the target before: timed against the repaired one) and its last
    step's record (which holds the whole chain's) and model."""
    t = P.Target.of(wildcards)
    last = config["repair_max_steps"]
    return {
        "first_model": t.repair_step(0, "onnx"),
        "json": t.repair_step(last, "json"),
        "model": t.repair_step(last, "onnx"),
        "npy": model_inputs(wildcards),
    }


def repair_precision(wildcards):
    """repair.py's precision: the ONNX Runtime precision, or `ascend` (the fp16 ONNX stored in fp16)."""
    return "ascend" if wildcards.backend == "ascend" else wildcards.precision


def repairable(t):
    """Whether repair can keep anything in fp32 for a target (an ONNX Runtime fp32 target is fp32)."""
    return not (t.backend == "onnxruntime" and t.precision == "fp32")


# What the report adds for accuracy lost: locate.json of every reduced-precision target (the job locates
# only a target that missed a gate, in the same run) and, with `repair: true`, its repair.json.
LOCATED = [
    f
    for t in TARGETS
    if repairable(t)
    for f in [t.locate("json")] + ([t.repair("json")] if config["repair"] else [])
]


def report_target(t):
    """params.targets entry of one target: its coordinates and folder, and the records
    scripts/reporting/load.py reads (zero_shot belongs to the image target of a pair).
    """
    image = t.tower == "image"
    return {
        **t.coordinates(),
        "dir": t.dir,
        "manifests": [t.manifest(bs) for bs in TOWER_BATCH_SIZES[t.tower]],
        "similarity": t.similarity(),
        "benchmarks": [t.benchmark(bs) for bs in BATCH_SIZES] if image else [],
        "zero_shot": t.zero_shot() if image and "text" in TOWERS else None,
        # read when present (after a missed gate, or run on demand)
        "locate": t.locate("json"),
        "repair": t.repair("json"),
    }


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

    from reporting import failed_gates

    failed = failed_gates(json.loads(Path(report_json).read_text()))
    if failed:
        print(
            "FAIL: accuracy gates missed (see results/report.md):", *failed, sep="\n  "
        )
        sys.exit(1)
