# Checkpoint (synthetic | download | path), the patched upstream exporter, fp32 and fp16 ONNX.


rule synthetic_checkpoint:
    output:
        "resources/checkpoints/synthetic/{arch}.seed{seed}.pt",
    params:
        seed=lambda wc: int(wc.seed),
    log:
        "logs/{arch}/synthetic_checkpoint.seed{seed}.log",
    benchmark:
        P.cost("{arch}", "synthetic_checkpoint.seed{seed}")
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "checkpoint"),
        runtime=lambda wc: P.runtime_min(wc.arch, "checkpoint"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/checkpoint.py"


rule download_checkpoint:
    output:
        "resources/checkpoints/{filename}.pt",
    log:
        "logs/download_checkpoint/{filename}.log",
    wildcard_constraints:
        filename="clip_cn_[a-z0-9-]+",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=60,
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/checkpoint.py"


rule checkpoint_info:
    input:
        ckpt=checkpoint_file,
    output:
        "results/{arch}/checkpoint.json",
    params:
        source=config["checkpoint"],
    log:
        "logs/{arch}/checkpoint_info.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/checkpoint.py"


rule patch_exporter:
    input:
        # relative to the working directory, so a copy of the repository does not see new inputs
        patches=sorted(
            os.path.relpath(p) for p in Path(workflow.basedir, "patches").glob("*.patch")
        ),
    output:
        "results/exporter/pytorch_to_onnx.py",
    log:
        "logs/patch_exporter.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/export_onnx.py"


rule export_onnx:
    input:
        ckpt=checkpoint_file,
        info="results/{arch}/checkpoint.json",
        exporter=rules.patch_exporter.output[0],
    output:
        onnx="results/{arch}/onnx/{prefix}.img.fp32.onnx",
        data="results/{arch}/onnx/{prefix}.img.fp32.onnx.extra_file",
    params:
        opset=config["opset"],
    log:
        "logs/{arch}/export_onnx.{prefix}.log",
    benchmark:
        P.cost("{arch}", "export_onnx.{prefix}")
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "export"),
        runtime=lambda wc: P.runtime_min(wc.arch, "export"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/export_onnx.py"


rule fp16_onnx:
    input:
        fp32=rules.export_onnx.output.onnx,
        data=rules.export_onnx.output.data,
        exporter=rules.patch_exporter.output[0],
    output:
        onnx="results/{arch}/onnx/{prefix}.img.fp16.onnx",
    log:
        "logs/{arch}/fp16_onnx.{prefix}.log",
    benchmark:
        P.cost("{arch}", "fp16_onnx.{prefix}")
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "fp16"),
        runtime=lambda wc: P.runtime_min(wc.arch, "fp16"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/export_onnx.py"
