# Accuracy of one target: every pair of stages, paired by item name, and the gates; zero_shot checks
# that a deployed pair of towers classifies and retrieves like PyTorch; locate and repair say where a
# reduced-precision target loses accuracy and what to keep in fp32 to win it back.


rule similarity:
    input:
        offline=features("offline"),
        torch_fp32=features("torch_fp32"),
        onnx_fp32=features("onnx_fp32"),
        onnx_fp16=features("onnx_fp16"),
    output:
        T.similarity(),
    log:
        T.log("similarity"),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        gates=COSINE_GATES,
    script:
        "../scripts/similarity.py"


rule zero_shot:
    input:
        unpack(zero_shot_inputs),
    output:
        P.Target(tower="image").zero_shot(),
    log:
        P.Target(tower="image").log("zero_shot"),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        max_prob_change=config["gates"]["zero_shot_max_prob_change"],
    script:
        "../scripts/zero_shot.py"


# Where in the graph a reduced-precision target loses accuracy, node by node against the fp32 ONNX. The
# report asks for it for every such target; the job locates when the target's similarity.json shows a
# missed gate (or with `locate: all`), and otherwise writes a record saying the gates were met. For an
# Ascend target it compares the fp16 ONNX (ATC's proxy), or with `locate_npu_dump: true` the NPU's own
# tensors dumped by ais_bench.
rule locate:
    input:
        unpack(locate_inputs),
        similarity=T.similarity(),
    output:
        csv=T.locate("csv"),
        chart=T.locate("png"),
        json=T.locate("json"),
    log:
        T.log("locate"),
    benchmark:
        T.cost("locate")
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export"),
        npu=lambda wc: int(locates_npu_dump(wc)),
    params:
        precision=lambda wc: wc.precision,
        always=config["locate"] == "all",
        max_inputs=4,
        threads=THREADS,
        options=backend_options,
    script:
        "../scripts/locate.py"


# Repair, one job per greedy step (scripts/repair.py run_step): step 0 verifies the target as it is
# against torch_fp32, step n adds locate's n-th candidate to the nodes kept in fp32, rebuilds with the
# real tools and re-verifies; once the gate passes (or nothing was located) the steps after pass the
# record on. On a cluster a target's steps go as one group job.
rule repair_step:
    input:
        unpack(repair_step_inputs),
    output:
        json=temp(T.repair_step("{step}", "json")),
        model=temp(T.repair_step("{step}", "onnx")),
    log:
        T.log("repair/step{step}"),
    benchmark:
        T.cost("repair/step{step}")
    wildcard_constraints:
        step=r"\d+",
    group:
        "repair"
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export"),
    params:
        step=lambda wc: int(wc.step),
        precision=repair_precision,
        gate=config["gates"]["vs_torch_fp32"],
        mode=config["repair_mode"],
        threads=THREADS,
        options=backend_options,
    script:
        "../scripts/repair.py"


# The record of the chain (before, after, nodes kept, steps, speed) and the repaired model, with
# `repair: true` for every reduced-precision target (or on demand: `snakemake <target>/repair/repair.json`).
# Ascend targets also get ATC's --keep_dtype file.
rule repair:
    input:
        unpack(repair_final_inputs),
    output:
        json=T.repair("json"),
        model=T.repair("onnx"),
    log:
        T.log("repair"),
    benchmark:
        T.cost("repair")
    wildcard_constraints:
        backend="onnxruntime",
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export"),
    params:
        threads=THREADS,
    script:
        "../scripts/repair.py"


use rule repair as repair_ascend with:
    output:
        json=T.repair("json"),
        model=T.repair("onnx"),
        keep_dtype=T.repair("keep_dtype"),
    wildcard_constraints:
        backend="ascend",
