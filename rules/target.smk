# One compiled target (scripts/paths.py Target: arch, tower, backend, device, precision): compile per
# batch size, infer, benchmark. Backend-agnostic: the work is done by scripts/backends/{backend}.py.

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


# A rule per target and shard of its items (infer, text_infer for the text tower; the target and shard
# in the name when the run has several): each output a named file, so one can be asked for.
for tower in TOWERS:
    for t, shard in shard_targets(tower):

        rule:
            name:
                shard.rule(
                    "infer" if tower == "image" else "text_infer", *target_qualifier(t)
                )
            input:
                manifest=t.manifest(1),
                npy=[P.model_input(t.arch, tower, item) for item in shard.items],
            output:
                [t.dst(item) for item in shard.items],
            log:
                t.log(shard.rule("infer")),
            benchmark:
                t.cost(shard.rule("infer"))
            conda:
                "../envs/cnclip.yaml"
            threads: P.physical_cores()
            resources:
                mem_mb=R.mem_mb(t.arch, "infer"),
                runtime=R.runtime_min(t.arch, "infer", scale=len(shard.items) / 6),
                npu=1 if t.backend == "ascend" else 0,
            params:
                backend=t.backend,
                options={
                    **target_options(t),
                    "shard": shard.label if shard.count > 1 else None,
                },
            script:
                "../scripts/infer.py"


rule benchmark:
    input:
        manifest=T.manifest(),
        ckpt=checkpoint_file,
        npy=model_inputs,
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
        mem_mb=lambda wc: R.mem_mb(wc.arch, "benchmark"),
        # measured at loop 100, batch 1: scales with the images timed
        runtime=lambda wc: R.runtime_min(
            wc.arch, "benchmark", scale=int(wc.bs) * config["loop"] / 100
        ),
        npu=npu,
    params:
        loop=config["loop"],
        baseline_loop=config["baseline_loop"],
        warmup=config["warmup"],
        quiet_wait_s=config["quiet_wait_s"],
        options=backend_options,
    script:
        "../scripts/benchmark.py"
