# Accuracy of one target: every pair of stages, paired by item name, and the gates; zero_shot checks
# that a deployed pair of towers classifies and retrieves like PyTorch. The report asks for locate of a
# target whose similarity.json shows a missed gate (rules/common.smk located_for_report).


rule similarity:
    input:
        offline=offline_outputs,
        torch_fp32=references("torch_fp32"),
        onnx_fp32=references("onnx_fp32"),
        onnx_fp16=references("onnx_fp16"),
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


# On demand, for any target (`snakemake <target>/locate/locate.json`): where in the graph the target's
# precision loses accuracy, node by node against the fp32 ONNX.
rule locate:
    input:
        unpack(locate_inputs),
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
    params:
        precision=lambda wc: wc.precision,
        max_inputs=4,
        threads=P.physical_cores(),
    script:
        "../scripts/locate.py"


# On demand (`snakemake <target>/repair/repair.json`) or, with `repair: true`, for a target that misses a
# gate: the smallest kept-in-fp32 set from locate's list, each step rebuilt and re-verified against
# torch_fp32 (scripts/repair.py). Ascend targets also get ATC's --keep_dtype file.
rule repair:
    input:
        unpack(repair_inputs),
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
        runtime=lambda wc: R.runtime_min(wc.arch, "export", scale=4),
    params:
        precision=repair_precision,
        gate=config["gates"]["vs_torch_fp32"],
        mode="nodes",
        max_steps=20,
        workdir=lambda wc: P.Target.of(wc).repair("work"),
        threads=P.physical_cores(),
    script:
        "../scripts/repair.py"


use rule repair as repair_ascend with:
    output:
        json=T.repair("json"),
        model=T.repair("onnx"),
        keep_dtype=T.repair("keep_dtype"),
    wildcard_constraints:
        backend="ascend",
