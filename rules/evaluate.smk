# Accuracy of one target: every pair of stages, paired by image name, and the gates.


rule similarity:
    input:
        offline=lambda wc: [P.dst(wc.arch, wc.backend, wc.device, s) for s in STEMS],
        torch_fp32=reference_files("torch_fp32"),
        onnx_fp32=reference_files("onnx_fp32"),
        onnx_fp16=reference_files("onnx_fp16"),
    output:
        "results/{arch}/{backend}/{device}/similarity.json",
    params:
        gates=COSINE_GATES,
    log:
        "logs/{arch}/{backend}/{device}/similarity.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/similarity.py"
