# The text tower (config towers: [image, text]), beside the image paths under results/{arch}/text/:
# label prompts tokenised by cn_clip, fp32/fp16 ONNX by the same patched exporter, references,
# one compiled model per target, infer and similarity with the image tower's gates; then zero_shot,
# which checks that the deployed pair of towers classifies and retrieves like PyTorch.


rule tokenize:
    output:
        [f"results/{{arch}}/text/npy/{label}.npy" for label in LABELS],
    params:
        labels=LABELS,
        template=config["label_template"],
        context_length=P.CONTEXT_LENGTH,
    log:
        "logs/{arch}/text/tokenize.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/tokens.py"


rule export_text_onnx:
    input:
        ckpt=checkpoint_file,
        info="results/{arch}/checkpoint.json",
        exporter=rules.patch_exporter.output[0],
    output:
        onnx="results/{arch}/text/onnx/{prefix}.txt.fp32.onnx",
        data="results/{arch}/text/onnx/{prefix}.txt.fp32.onnx.extra_file",
    params:
        opset=config["opset"],
    log:
        "logs/{arch}/text/export_onnx.{prefix}.log",
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "export"),
        runtime=lambda wc: P.runtime_min(wc.arch, "export"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/text_tower.py"


rule fp16_text_onnx:
    input:
        fp32=rules.export_text_onnx.output.onnx,
        data=rules.export_text_onnx.output.data,
        exporter=rules.patch_exporter.output[0],
    output:
        onnx="results/{arch}/text/onnx/{prefix}.txt.fp16.onnx",
    log:
        "logs/{arch}/text/fp16_onnx.{prefix}.log",
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "fp16"),
        runtime=lambda wc: P.runtime_min(wc.arch, "fp16"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/text_tower.py"


rule text_reference:
    input:
        tokens=lambda wc: [P.tokens(wc.arch, label) for label in LABELS],
        model=text_reference_model,
        data=lambda wc: [P.text_onnx_fp32_data(wc.arch)] if wc.stage == "onnx_fp32" else [],
    output:
        [f"results/{{arch}}/text/reference/{{stage}}/{label}.npy" for label in LABELS],
    log:
        "logs/{arch}/text/reference/{stage}.log",
    threads: P.physical_cores()
    resources:
        # torch_fp32 loads both towers of the checkpoint, as the exporter does
        mem_mb=lambda wc: P.mem_mb(wc.arch, "export"),
        runtime=lambda wc: P.runtime_min(wc.arch, "reference"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/text_tower.py"


rule text_compile:
    input:
        unpack(text_compile_source),
    output:
        model=directory("results/{arch}/text/{backend}/{device}/model_bs{bs}"),
        manifest="results/{arch}/text/{backend}/{device}/compile_bs{bs}.json",
    params:
        options=text_backend_options,
    log:
        "logs/{arch}/text/{backend}/{device}/compile_bs{bs}.log",
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "compile"),
        runtime=lambda wc: P.runtime_min(wc.arch, "compile"),
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/compile.py"


rule text_infer:
    input:
        manifest="results/{arch}/text/{backend}/{device}/compile_bs1.json",
        npy=lambda wc: [P.tokens(wc.arch, label) for label in LABELS],
    output:
        [f"results/{{arch}}/text/{{backend}}/{{device}}/dst/{label}_0.npy" for label in LABELS],
    params:
        options=text_backend_options,
    log:
        "logs/{arch}/text/{backend}/{device}/infer.log",
    threads: P.physical_cores()
    resources:
        mem_mb=lambda wc: P.mem_mb(wc.arch, "infer"),
        runtime=lambda wc: P.runtime_min(wc.arch, "infer"),
        npu=npu,
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/infer.py"


rule text_similarity:
    input:
        offline=lambda wc: [P.text_dst(wc.arch, wc.backend, wc.device, label) for label in LABELS],
        torch_fp32=lambda wc: [P.text_reference(wc.arch, "torch_fp32", label) for label in LABELS],
        onnx_fp32=lambda wc: [P.text_reference(wc.arch, "onnx_fp32", label) for label in LABELS],
        onnx_fp16=lambda wc: [P.text_reference(wc.arch, "onnx_fp16", label) for label in LABELS],
    output:
        "results/{arch}/text/{backend}/{device}/similarity.json",
    params:
        gates=COSINE_GATES,
    log:
        "logs/{arch}/text/{backend}/{device}/similarity.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/similarity.py"


rule zero_shot:
    input:
        image_torch_fp32=reference_files("torch_fp32"),
        image_onnx_fp16=reference_files("onnx_fp16"),
        image_offline=lambda wc: [P.dst(wc.arch, wc.backend, wc.device, s) for s in STEMS],
        text_torch_fp32=lambda wc: [P.text_reference(wc.arch, "torch_fp32", label) for label in LABELS],
        text_onnx_fp16=lambda wc: [P.text_reference(wc.arch, "onnx_fp16", label) for label in LABELS],
        text_offline=lambda wc: [P.text_dst(wc.arch, wc.backend, wc.device, label) for label in LABELS],
    output:
        "results/{arch}/{backend}/{device}/zero_shot.json",
    params:
        max_prob_change=config["gates"]["zero_shot_max_prob_change"],
    log:
        "logs/{arch}/{backend}/{device}/zero_shot.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/zero_shot.py"
