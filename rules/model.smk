# Checkpoint (synthetic | download | path), the patched upstream exporter, each tower's fp32 and
# fp16 ONNX.


rule synthetic_checkpoint:
    output:
        P.checkpoint_path("synthetic", "{arch}", "{seed}"),
    log:
        "logs/{arch}/synthetic_checkpoint.seed{seed}.log",
    benchmark:
        "benchmarks/{arch}/synthetic_checkpoint.seed{seed}.tsv"
    conda:
        "../envs/cnclip.yaml"
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "checkpoint"),
        runtime=lambda wc: R.runtime_min(wc.arch, "checkpoint"),
    params:
        seed=lambda wc: int(wc.seed),
    script:
        "../scripts/synthetic_checkpoint.py"


rule download_checkpoint:
    output:
        "resources/checkpoints/{filename}.pt",
    log:
        "logs/download_checkpoint/{filename}.log",
    wildcard_constraints:
        filename="clip_cn_[a-z0-9-]+",
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=60,
    script:
        "../scripts/download_checkpoint.py"


rule checkpoint_info:
    input:
        ckpt=checkpoint_file,
    output:
        P.checkpoint_info(),
    log:
        P.log(P.checkpoint_info()),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        source=config["checkpoint"],
    script:
        "../scripts/checkpoint_info.py"


rule patch_exporter:
    input:
        # relative to the working directory, so a copy of the repository does not see new inputs
        patches=sorted(
            os.path.relpath(p) for p in Path(WORKFLOW_DIR, "patches").glob("*.patch")
        ),
    output:
        P.exporter(),
    log:
        P.log(P.exporter()),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    script:
        "../scripts/patch_exporter.py"


rule export_onnx:
    input:
        ckpt=checkpoint_file,
        info=P.checkpoint_info(),
        exporter=P.exporter(),
    output:
        onnx=P.onnx(dtype="fp32"),
        data=P.onnx_data(),
    log:
        P.log(P.onnx(dtype="fp32")),
    benchmark:
        P.cost(P.onnx(dtype="fp32"))
    conda:
        "../envs/cnclip.yaml"
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "export"),
        runtime=lambda wc: R.runtime_min(wc.arch, "export"),
    params:
        dtype="fp32",
        tower=tower_of,
        opset=config["opset"],
    script:
        "../scripts/export_onnx.py"


use rule export_onnx as fp16_onnx with:
    input:
        fp32=P.onnx(dtype="fp32"),
        data=P.onnx_data(),
        exporter=P.exporter(),
    output:
        onnx=P.onnx(dtype="fp16"),
    log:
        P.log(P.onnx(dtype="fp16")),
    benchmark:
        P.cost(P.onnx(dtype="fp16"))
    threads: 1
    resources:
        mem_mb=lambda wc: R.mem_mb(wc.arch, "fp16"),
        runtime=lambda wc: R.runtime_min(wc.arch, "fp16"),
    params:
        dtype="fp16",
        tower=tower_of,
        opset=config["opset"],
