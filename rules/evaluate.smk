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
        gates=M.cosine_gates,
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


# Why a reduced-precision target loses accuracy: its plan rebuilds it with one part at a time at the
# target's precision (each block, then each node of the worst) and each part's effect on the output
# is measured (accuracy.locate), with the node-by-node comparison as a second view. The report asks for
# it for every such target; the job locates when the target's similarity.json shows a missed gate (or
# with `locate: all`), and otherwise writes a record saying the gates were met.
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
        **accelerator_resources(T, dumps_tensors, job="locate"),
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export"),
    params:
        always=config["locate"] == "all",
        max_inputs=4,
        gate=config["gates"]["vs_torch_fp32"],
        options=backend_options,
    script:
        "../scripts/locate.py"


# The smallest set of nodes kept in fp32 that brings the target back over vs_torch_fp32: grown from
# locate's ranking until the gate passes, then shrunk until no kept node can go (1-minimal), each
# candidate built by the target's plan and verified on every input; with `repair: true` for every
# reduced-precision target (or on demand: `snakemake <target>/repair/repair.json`).
rule repair:
    input:
        unpack(repair_inputs),
    output:
        json=T.repair("json"),
        model=directory(T.repair("model")),
        kept=T.repair("kept"),
    log:
        T.log("repair"),
    benchmark:
        T.cost("repair")
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export", scale=4),
    params:
        gate=config["gates"]["vs_torch_fp32"],
        max_builds=config["repair_max_builds"],
        options=backend_options,
    script:
        "../scripts/repair.py"
