# Reference features per image: torch_fp32 (cn_clip PyTorch, the ground truth), onnx_fp32 and
# onnx_fp16 (ONNX Runtime on the CPU, the seed's online reference).


rule reference:
    input:
        npy="results/{arch}/npy/{stem}.npy",
        model=reference_model,
        data=lambda wc: [P.onnx_fp32_data(wc.arch)] if wc.stage == "onnx_fp32" else [],
    output:
        "results/{arch}/reference/{stage}/{stem}.npy",
    log:
        "logs/{arch}/reference/{stage}/{stem}.log",
    benchmark:
        P.cost("{arch}", "reference/{stage}/{stem}")
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "reference"),
        runtime=lambda wc: P.runtime_min(wc.arch, "reference"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/reference.py"
