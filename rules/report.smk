# results/report.{md,html,json} for the configured target.

TARGETS = [
    {
        "backend": BACKEND,
        "device": DEVICE,
        "manifests": [P.compiled_manifest(ARCH, BACKEND, DEVICE, bs) for bs in BATCH_SIZES],
        "similarity": P.similarity(ARCH, BACKEND, DEVICE),
        "benchmarks": [P.benchmark(ARCH, BACKEND, DEVICE, bs) for bs in BATCH_SIZES],
    }
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
    script:
        "../scripts/report.py"
