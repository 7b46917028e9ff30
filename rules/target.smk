# One compiled target (scripts/pipeline/paths.py Target: arch, tower, backend, device, precision):
# compile per batch size, infer, benchmark. Backend-agnostic: the work is done by the target's backend
# (scripts/backends/, asked by the name in its path).

T = P.Target()  # the rules' pattern: {arch}/{tower}/{backend}/{device}/{precision}


rule compile:
    input:
        unpack(compile_source),
    output:
        model=directory(T.compiled()),
        manifest=T.manifest(),
    log:
        T.log("compile_bs{bs}"),
    benchmark:
        T.cost("compile_bs{bs}")
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "compile"),
        runtime=lambda wc: R.runtime_min(wc.arch, "compile"),
    params:
        options=backend_options,
    script:
        "../scripts/compile.py"


# infer: the compiled batch-1 model over a tower's items, into each item's dst file (a file each, so
# one can be asked for). One rule per shard of items (rules/common.smk infer_rules): `infer`
# (`text_infer` for the text tower, whose items are the labels), a pattern over every target, while
# the items make one shard; with several, one rule per target and shard with named outputs
# (infer_3of8; the coordinates that tell this run's targets apart in a matrix: infer_ascend_3of8),
# logged as infer_3of8 in the target's folder. The cluster profiles place the jobs that hold an
# accelerator by their input named `accelerator` (rules/common.smk accelerator_inputs), not by rule name.
for t, shard in M.infer_rules():

    rule:
        name:
            shard.rule(
                "infer" if t.tower == "image" else "text_infer", *M.target_qualifier(t)
            )
        input:
            # unnamed: see shard_inputs
            (
                shard_inputs(t.arch, t.tower, shard, M.takes_pixels(t))
                if t.arch != "{arch}"
                else of_job(
                    t,
                    lambda x, shard=shard: shard_model_inputs(
                        x.arch, x.tower, shard, M.takes_pixels(x)
                    ),
                )
            ),
            unpack(of_job(t, accelerator_inputs)),
            manifest=infer_manifest(t),
        output:
            # first: Snakemake finds a file's rule by trying the rule's outputs in order, and
            # similarity looks this one up
            features=t.features(shard.name),
            dst=[t.dst(item) for item in shard.items],
        log:
            t.log(shard.rule("infer")),
        benchmark:
            t.cost(shard.rule("infer"))
        conda:
            "../envs/cnclip.yaml"
        threads: P.physical_cores()
        resources:
            **accelerator_resources(t),
            mem_mb=of_job(t, lambda x: R.mem_mb(x.arch, "infer")),
            runtime=of_job(
                t,
                lambda x, n=len(shard.items): R.runtime_min(
                    x.arch, "infer", scale=n / 6
                ),
            ),
        params:
            options=of_job(t, target_options),
            # a backend's records beside dst/ (its tool's summary): one pair per shard
            record="dst" if shard.count == 1 else f"dst_{shard.label}",
        script:
            "../scripts/infer.py"


rule benchmark:
    input:
        unpack(benchmark_accelerator),
        manifest=T.manifest(),
        ckpt=checkpoint_file,
        npy=first_shard_inputs,
    output:
        T.benchmark(),
    log:
        T.log("benchmark_bs{bs}"),
    benchmark:
        T.cost("benchmark_bs{bs}")
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        **accelerator_resources(T, job="benchmark"),
        mem_mb=lambda wc: R.mem_mb(wc.arch, "benchmark"),
        # measured at loop 100, batch 1: scales with the images timed
        runtime=lambda wc: R.runtime_min(
            wc.arch, "benchmark", scale=int(wc.bs) * config["loop"] / 100
        ),
    params:
        loop=config["loop"],
        baseline_loop=config["baseline_loop"],
        warmup=config["warmup"],
        quiet_wait_s=config["quiet_wait_s"],
        ceiling_n=config["ceiling_matmul_size"],
        ci_width=config["ci_width"],
        options=backend_options,
    script:
        "../scripts/benchmark.py"


# The one dynamic-batch model of a target (a plan's batch_models; compiled as model_bsdyn) run at each batch
# size, beside the static models' records when both are asked.
use rule benchmark as benchmark_dyn with:
    input:
        unpack(dynamic_benchmark_accelerator),
        manifest=T.manifest(P.DYNAMIC),
        ckpt=checkpoint_file,
        npy=first_shard_inputs,
    output:
        T.benchmark(dynamic=True),
    log:
        P.log(T.benchmark(dynamic=True)),
    benchmark:
        P.cost(T.benchmark(dynamic=True))
