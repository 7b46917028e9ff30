# Accuracy of one target: every pair of stages, paired by item name, and the gates; zero_shot checks
# that a deployed pair of towers classifies and retrieves like PyTorch.


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
        csv=f"{T.dir}/locate/locate.csv",
        chart=f"{T.dir}/locate/locate.png",
        json=f"{T.dir}/locate/locate.json",
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
