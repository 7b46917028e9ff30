# Input functions. Every path comes from scripts/pipeline/paths.py (P), every resource figure from
# scripts/pipeline/resources.py (R), the run's matrix from scripts/pipeline/matrix.py (M, made in the
# Snakefile), and what a target's backend needs from its plan (scripts/backends/, asked by name).


def plan_of(t):
    """The plan (scripts/backends/<name>.py) of a target's backend."""
    return backends.get(t.backend)


def tower_of(wildcards):
    return (
        wildcards.tower
        if "tower" in wildcards.keys()
        else P.TOWER_OF_PART[wildcards.part]
    )


def checkpoint_file(wildcards):
    return P.checkpoint_path(config["checkpoint"], wildcards.arch, config["seed"])


def shard_model_inputs(arch, tower, shard, pixels=False):
    """What a job over a shard's items takes for their model inputs: an image shard's list of its npy
    files (P.npy_shard; pipeline.common.model_input_files expands it), a text shard's token files (the
    labels are few). One file per image shard, not one per image: Snakemake stats every input of every
    job waiting for a core, in every scheduling round (docs/performance.md).
    """
    if tower == "image":
        return [P.npy_shard(arch, shard.name, pixels)]
    return [P.model_input(arch, tower, item) for item in shard.items]


def model_inputs(wildcards):
    """Every input of a target's tower (shard_model_inputs of each shard)."""
    tower = tower_of(wildcards)
    return [
        f
        for shard in M.shards[tower]
        for f in shard_model_inputs(wildcards.arch, tower, shard)
    ]


def first_shard_inputs(wildcards):
    """The inputs of a target's tower that a job needs only a sample of: the first shard's. A benchmark
    rotates through real batches of them, locate measures on its first few, int8 calibrates on them
    (adding an image to another shard reruns none of these).
    """
    tower = tower_of(wildcards)
    return shard_model_inputs(wildcards.arch, tower, M.shards[tower][0])


def features(stage):
    """Input function: one stage's features of a target's tower, a stacked file per shard (the target's
    own for `offline`, else the reference's: the shards the stage runs on, M.stage_shards).
    """

    def files(wildcards):
        t = P.Target.of(wildcards)
        if stage == "offline":
            return [t.features(shard.name) for shard in M.shards[t.tower]]
        return [
            P.reference_features(t.arch, t.tower, stage, shard.name)
            for shard in M.stage_shards(t.tower, stage)
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
        # onnx_fp16 -> fp16
        return onnx_files(arch, tower, wildcards.stage.removeprefix("onnx_"))

    return model


def onnx_files(arch, tower, dtype):
    """The exported ONNX of one dtype (fp32: with its weight file)."""
    files = {"model": P.onnx(arch, tower, dtype)}
    if dtype == "fp32":
        files["data"] = P.onnx_data(arch, tower)
    return files


def compile_source(wildcards):
    """The exported ONNX a target compiles (its plan says which one its precision starts from), and for
    a calibrated precision (int8) the run's own inputs, the first shard's: a sample enough for
    activation ranges; a new image outside that shard does not recompile it."""
    t = P.Target.of(wildcards)
    plan = plan_of(t)
    source = onnx_files(t.arch, t.tower, plan.PRECISIONS[t.precision])
    if t.precision in plan.CALIBRATED:
        source["calibration"] = first_shard_inputs(wildcards)
    return {"onnx" if k == "model" else k: v for k, v in source.items()}


def backend_options(wildcards):
    """target_options of a job's target; a dynamic-batch model's compile also gets its batch sizes."""
    options = target_options(P.Target.of(wildcards))
    if wildcards.get("bs") == P.DYNAMIC:
        options["dynamic_batch"] = M.batch_sizes
    return options


def target_options(t):
    """What a backend needs besides its inputs: its plan's own options (changing one backend's option
    rebuilds none of another's targets), and the target's threads, device, tower and precision.
    """
    return {
        **plan_of(t).options(config, t.precision),
        "threads": M.threads,
        "device": t.device,
        "tower": t.tower,
        "precision": t.precision,
    }


def accelerator_inputs(t, bs=None):
    """The compiled model's record (at batch size bs, else the one infer runs) again, under the name
    `accelerator`, for a target whose backend's jobs hold one: cluster profiles place such jobs by that input
    (profiles/slurm: `input.get('accelerator')`), without naming a backend or its resource.
    """
    unit = M.infer_unit(t) if bs is None else bs
    return {"accelerator": t.manifest(unit)} if plan_of(t).ACCELERATOR else {}


def benchmark_accelerator(wildcards):
    """accelerator_inputs of a benchmark job: its own batch size's model."""
    return accelerator_inputs(P.Target.of(wildcards), wildcards.bs)


def dynamic_benchmark_accelerator(wildcards):
    """accelerator_inputs of a benchmark of the dynamic-batch model."""
    return accelerator_inputs(P.Target.of(wildcards), P.DYNAMIC)


def infer_manifest(t):
    """The compiled model's record infer runs: batch size 1's, or the dynamic-batch model's."""
    return of_job(t, lambda x: x.manifest(M.infer_unit(x)))


def accelerator_resources(t, holds=lambda target: True, job="infer"):
    """`resources:` of the jobs of target t (a pattern or a concrete one) that may hold an accelerator: for
    each accelerator some backend declares (its plan's ACCELERATOR), the units the job holds where
    holds(target) and the target's backend holds that one (M.accelerator_units: every device the run's jobs
    use, so two jobs never share one), else 0; and `gres`, the devices this kind of job uses
    (`<name>:<count>`: a benchmark over several NPUs asks for all of them; '' for the others), which the Slurm
    executor asks for. The Snakefile caps each accelerator's total at those units (`--resources <name>=N`
    raises it), so -c8 never puts two such jobs on one device."""

    def amount(accelerator):
        return of_job(
            t,
            lambda x: (
                M.accelerator_units(accelerator)
                if holds(x) and plan_of(x).ACCELERATOR == accelerator
                else 0
            ),
        )

    def gres(x):
        held = holds(x) and plan_of(x).ACCELERATOR
        count = backends.accelerator_count(plan_of(x), config, job)
        return f"{held}:{count}" if held else ""

    return {
        **{accelerator: amount(accelerator) for accelerator in backends.accelerators()},
        "gres": of_job(t, gres),
    }


def of_job(t, value):
    """An input function for the rules of target t (a pattern or a concrete one): value() of the
    job's own target, t with the job's wildcards filled in."""

    def function(wildcards):
        coordinates = t.coordinates()
        coordinates.update((k, wildcards[k]) for k in wildcards.keys())
        return value(P.Target.of(coordinates))

    return function


def shard_inputs(arch, tower, shard, pixels=False):
    """shard_model_inputs of a concrete shard rule. An image shard's list is its preprocess rule's own
    output: from it Snakemake knows the rule without searching its output index. Snakemake does that
    for unnamed inputs only: the rules give these unnamed (pipeline.common.unnamed_inputs). pixels: the
    uint8 pixels a target takes whose device normalises them (M.takes_pixels).
    """
    if tower == "image":
        output = getattr(
            rules, shard.rule("preprocess", *M.arch_qualifier(arch))
        ).output
        return [output.pixels_shard if pixels else output.shard]
    return shard_model_inputs(arch, tower, shard)


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
        for stage in P.ZERO_SHOT_STAGES:
            files[f"{tower}_{stage}"] = features(stage)(target.coordinates())
    return files


def locate_inputs(wildcards):
    """What locate measures a target with: its tower's fp32 ONNX (which its plan rebuilds at the
    target's precision, one part at a time), the first shard's inputs and their torch_fp32 features,
    and with a backend that dumps the device's own tensors the compiled model (the job then holds the
    accelerator)."""
    t = P.Target.of(wildcards)
    files = {
        **onnx_files(t.arch, t.tower, "fp32"),
        "npy": first_shard_inputs(wildcards),
        "reference": [
            P.reference_features(
                t.arch, t.tower, "torch_fp32", M.shards[t.tower][0].name
            )
        ],
    }
    if dumps_tensors(t):
        files.update(manifest=t.manifest(M.infer_unit(t)), **accelerator_inputs(t))
    return files


def dumps_tensors(t):
    """Whether locate reads the device's own tensors for a target (its plan's option, e.g.
    `locate_npu_dump`)."""
    return bool(target_options(t).get("dump_tensors"))


def repair_inputs(wildcards):
    """What repair needs: the fp32 ONNX its plan rebuilds from, every input and its torch_fp32 features
    (the ground truth it verifies against), the onnx_fp16 features (the seed's gate, where missed), the
    first shard (int8 calibration), the target's similarity.json (the gates it missed) and locate's
    ranking. Not the target's compiled model: repair verifies as the plan computes, on this machine.
    """
    t = P.Target.of(wildcards)
    return {
        **onnx_files(t.arch, t.tower, "fp32"),
        "npy": model_inputs(wildcards),
        "calibration": first_shard_inputs(wildcards),
        "reference": features("torch_fp32")(wildcards),
        "onnx_fp16": features("onnx_fp16")(wildcards),
        "similarity": t.similarity(),
        "locate": t.locate("json"),
    }


def compare_baseline(wildcards):
    """The run `compare` sets this one against (config `baseline`), which must be given."""
    if not config["baseline"]:
        raise P.ConfigError(
            "compare needs the run to set this one against (--config baseline=<its results folder or "
            "report.json>)"
        )
    return config["baseline"]
