# Reference features per item of each tower: torch_fp32 (cn_clip PyTorch, the ground truth), onnx_fp32
# and onnx_fp16 (ONNX Runtime on the CPU, the seed's online reference).


rule reference:
    input:
        unpack(reference_model),
        npy=lambda wc: P.model_input(wc.arch, wc.tower, wc.item),
    output:
        P.reference(),
    log:
        P.log(P.reference()),
    benchmark:
        P.cost(P.reference())
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        # torch_fp32 of the text tower loads it in fp32, as the exporter does
        mem_mb=lambda wc: R.mem_mb(
            wc.arch, "reference" if wc.tower == "image" else "export"
        ),
        runtime=lambda wc: R.runtime_min(wc.arch, "reference"),
    script:
        "../scripts/reference.py"
