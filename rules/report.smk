# results/report.{md,html,json} for the configured target, the figures and CSV tables beside them
# in results/report/, all flagged for Snakemake's own report (`snakemake --report report.html`),
# with captions and categories from report/ at the repository root.

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

REPORT_DIR = "results/report"


# The text on the front page of `snakemake --report` (a global directive; the path is relative to
# this file).
report: "../report/workflow.rst"


rule report:
    input:
        checkpoint=P.checkpoint_info(ARCH),
        onnx=[P.onnx_fp32(ARCH), P.onnx_fp32_data(ARCH), P.onnx_fp16(ARCH)],
        targets=[f for t in TARGETS for f in t["manifests"] + [t["similarity"]] + t["benchmarks"]],
    output:
        md=report(REPORT["md"], caption="../report/report_md.rst", category="Summary"),
        html=report(REPORT["html"], caption="../report/report_html.rst", category="Summary"),
        json=report(REPORT["json"], caption="../report/report_json.rst", category="Summary"),
        accuracy_chain=report(
            f"{REPORT_DIR}/accuracy_chain.png",
            caption="../report/accuracy_chain.rst",
            category="Accuracy",
        ),
        per_image=report(
            f"{REPORT_DIR}/per_image.png",
            caption="../report/per_image.rst",
            category="Accuracy",
        ),
        accuracy_csv=report(
            f"{REPORT_DIR}/accuracy.csv",
            caption="../report/accuracy_csv.rst",
            category="Accuracy",
        ),
        throughput=report(
            f"{REPORT_DIR}/throughput.png",
            caption="../report/throughput.rst",
            category="Performance",
        ),
        latency=report(
            f"{REPORT_DIR}/latency.png",
            caption="../report/latency.rst",
            category="Performance",
        ),
        performance_csv=report(
            f"{REPORT_DIR}/performance.csv",
            caption="../report/performance_csv.rst",
            category="Performance",
        ),
        artifacts_csv=report(
            f"{REPORT_DIR}/artifacts.csv",
            caption="../report/artifacts_csv.rst",
            category="Artifacts",
        ),
    params:
        targets=TARGETS,
        config={k: v for k, v in config.items()},
    log:
        "logs/report.log",
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/report.py"
