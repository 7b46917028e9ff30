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


# The outputs are every item's dst file (a file each, so one can be asked for); the two towers run on
# different items, so the text tower's infer is this rule with its own list. One job per target, not
# per shard: the cluster profiles place NPU jobs by this rule's name (set-resources: infer), which a
# rule per shard would not have.
rule infer:
    input:
        manifest=T.manifest(1),
        npy=model_inputs,
    output:
        [T.dst(stem) for stem in STEMS],
    log:
        T.log("infer"),
    benchmark:
        T.cost("infer")
    wildcard_constraints:
        tower="image",
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "infer"),
        runtime=lambda wc: R.runtime_min(wc.arch, "infer", scale=len(STEMS) / 6),
        npu=npu,
    params:
        options=backend_options,
    script:
        "../scripts/infer.py"


use rule infer as text_infer with:
    output:
        [T.dst(label) for label in LABELS],
    wildcard_constraints:
        tower="text",


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
        ceiling_n=config["ceiling_matmul_size"],
        options=backend_options,
    script:
        "../scripts/benchmark.py"
