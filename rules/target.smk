# One compiled target, results/{arch}/{backend}/{device}/: compile (per batch size), infer, benchmark.
# Backend-agnostic: the work is done by scripts/backends/{backend}.py.


rule compile:
    input:
        unpack(compile_source),
    output:
        model=directory("results/{arch}/{backend}/{device}/model_bs{bs}"),
        manifest="results/{arch}/{backend}/{device}/compile_bs{bs}.json",
    params:
        options=backend_options,
    log:
        "logs/{arch}/{backend}/{device}/compile_bs{bs}.log",
    benchmark:
        P.cost("{arch}", "{backend}", "{device}", "compile_bs{bs}")
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "compile"),
        runtime=lambda wc: P.runtime_min(wc.arch, "compile"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/compile.py"


rule infer:
    input:
        manifest="results/{arch}/{backend}/{device}/compile_bs1.json",
        npy=npy_files,
    output:
        [f"results/{{arch}}/{{backend}}/{{device}}/dst/{stem}_0.npy" for stem in STEMS],
    params:
        options=backend_options,
    log:
        "logs/{arch}/{backend}/{device}/infer.log",
    benchmark:
        P.cost("{arch}", "{backend}", "{device}", "infer")
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "infer"),
        runtime=lambda wc: P.runtime_min(wc.arch, "infer", scale=len(STEMS) / 6),
        npu=npu,
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/infer.py"


rule benchmark:
    input:
        manifest="results/{arch}/{backend}/{device}/compile_bs{bs}.json",
        ckpt=checkpoint_file,
        npy=npy_files,
    output:
        "results/{arch}/{backend}/{device}/benchmark_bs{bs}.json",
    params:
        loop=config["loop"],
        baseline_loop=config["baseline_loop"],
        warmup=config["warmup"],
        options=backend_options,
    log:
        "logs/{arch}/{backend}/{device}/benchmark_bs{bs}.log",
    benchmark:
        P.cost("{arch}", "{backend}", "{device}", "benchmark_bs{bs}")
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "benchmark"),
        # measured at loop 100, batch 1: scales with the images timed
        runtime=lambda wc: P.runtime_min(wc.arch, "benchmark", scale=int(wc.bs) * config["loop"] / 100),
        npu=npu,
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/benchmark.py"
