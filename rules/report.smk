# results/report.{md,html,json} for the configured target.

TARGETS = [
    {
        "backend": BACKEND,
        "device": device,
        "manifests": [P.compiled_manifest(ARCH, BACKEND, device, bs) for bs in BATCH_SIZES],
        "similarity": P.similarity(ARCH, BACKEND, device),
        "benchmarks": [P.benchmark(ARCH, BACKEND, device, bs) for bs in BATCH_SIZES],
    }
    for device in DEVICES
]


rule report:
    input:
        checkpoint=P.checkpoint_info(ARCH),
        onnx=[P.onnx_fp32(ARCH), P.onnx_fp32_data(ARCH), P.onnx_fp16(ARCH)],
        targets=[f for t in TARGETS for f in t["manifests"] + [t["similarity"]] + t["benchmarks"]],
    output:
        md=REPORT["md"],
        html=REPORT["html"],
        json=REPORT["json"],
    params:
        targets=TARGETS,
        config={k: v for k, v in config.items()},
    log:
        "logs/report.log",
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/report.py"
