# Reference features per image: torch_fp32 (cn_clip PyTorch, the ground truth), onnx_fp32 and
# onnx_fp16 (ONNX Runtime on the CPU, the seed's online reference).


def reference_model(wildcards):
    if wildcards.stage == "torch_fp32":
        return checkpoint_file(wildcards)
    if wildcards.stage == "onnx_fp32":
        return P.onnx_fp32(wildcards.arch)
    return P.onnx_fp16(wildcards.arch)


rule reference:
    input:
        npy="results/{arch}/npy/{stem}.npy",
        model=reference_model,
        data=lambda wc: [P.onnx_fp32_data(wc.arch)] if wc.stage == "onnx_fp32" else [],
    output:
        "results/{arch}/reference/{stage}/{stem}.npy",
    log:
        "logs/{arch}/reference/{stage}/{stem}.log",
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "reference"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/reference.py"
