# results/report.{md,html,json} for the configured target, the figures and CSV tables beside them
# in results/report/, all flagged for Snakemake's own report (`snakemake --report report.html`),
# with captions and categories from report/ at the repository root.



def target_precision(backend):
    """The precision a target computes in: `precision` for onnxruntime; ATC's precision_mode for
    ascend (fp16, ATC's own default, when unset)."""
    if backend == "onnxruntime":
        return config["precision"]
    return config["atc"]["precision_mode"] or "fp16"


def report_targets():
    """params.targets of the report: one spec per (arch, tower, backend, device, precision) with the
    records scripts/reporting/load.py reads (the text tower compiled at batch 1, infer's, and not
    benchmarked; zero_shot belongs to the image target of a pair)."""
    specs = []
    for t in TARGETS:
        at = (t["arch"], t["backend"], t["device"])
        point = {**t, "precision": target_precision(t["backend"])}
        specs.append(
            {
                **point,
                "tower": "image",
                "dir": P.target_dir(*at),
                "manifests": [P.compiled_manifest(*at, bs) for bs in BATCH_SIZES],
                "similarity": P.similarity(*at),
                "benchmarks": [P.benchmark(*at, bs) for bs in BATCH_SIZES],
                "zero_shot": P.zero_shot(*at) if TEXT else None,
            }
        )
        if TEXT:
            specs.append(
                {
                    **point,
                    "tower": "text",
                    "dir": P.text_target_dir(*at),
                    "manifests": [P.text_compiled_manifest(*at, 1)],
                    "similarity": P.text_similarity(*at),
                    "benchmarks": [],
                    "zero_shot": None,
                }
            )
    return specs


REPORT_TARGETS = report_targets()
TEXT_ONNX = [
    f for a in RUN_ARCHS for f in (P.text_onnx_fp32(a), P.text_onnx_fp32_data(a), P.text_onnx_fp16(a))
] if TEXT else []

# Snakemake's benchmark: record (wall time, peak RSS) of every job the report stands on, by rule.
COSTS = {
    "synthetic_checkpoint": [
        P.cost(a, f"synthetic_checkpoint.seed{config['seed']}") for a in RUN_ARCHS
    ]
    if config["checkpoint"] == "synthetic"
    else [],
    "export_onnx": [P.cost(a, f"export_onnx.{P.prefix(a)}") for a in RUN_ARCHS],
    "fp16_onnx": [P.cost(a, f"fp16_onnx.{P.prefix(a)}") for a in RUN_ARCHS],
    "reference": [
        P.cost(a, f"reference/{st}/{s}") for a in RUN_ARCHS for st in P.STAGES for s in STEMS
    ],
    "compile": [P.cost(*t.values(), f"compile_bs{bs}") for t in TARGETS for bs in BATCH_SIZES],
    "infer": [P.cost(*t.values(), "infer") for t in TARGETS],
    "benchmark": [P.cost(*t.values(), f"benchmark_bs{bs}") for t in TARGETS for bs in BATCH_SIZES],
}

REPORT_DIR = "results/report"


# The text on the front page of `snakemake --report` (a global directive; the path is relative to
# this file).
report: "../report/workflow.rst"


rule report:
    input:
        checkpoint=[P.checkpoint_info(a) for a in RUN_ARCHS],
        onnx=[f for a in RUN_ARCHS for f in (P.onnx_fp32(a), P.onnx_fp32_data(a), P.onnx_fp16(a))] + TEXT_ONNX,
        targets=[f for t in REPORT_TARGETS for f in t["manifests"] + [t["similarity"]] + t["benchmarks"]],
        zero_shot=[t["zero_shot"] for t in REPORT_TARGETS if t["zero_shot"]],
        costs=[f for files in COSTS.values() for f in files],
    output:
        md=report(REPORT["md"], caption="../report/report_md.rst", category="Summary"),
        html=report(REPORT["html"], caption="../report/report_html.rst", category="Summary"),
        json=report(REPORT["json"], caption="../report/report_json.rst", category="Summary"),
        accuracy_chain=report(
            f"{REPORT_DIR}/accuracy_chain.png",
            caption="../report/accuracy_chain.rst",
            category="Accuracy",
        ),
        accuracy_vs_speed=report(
            f"{REPORT_DIR}/accuracy_vs_speed.png",
            caption="../report/accuracy_vs_speed.rst",
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
        targets=REPORT_TARGETS,
        skipped=SKIPPED_IMAGES,
        costs=COSTS,
        config={k: v for k, v in config.items()},
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=P.LIGHT["mem_mb"],
        runtime=P.LIGHT["runtime"],
    conda:
        "../envs/cnclip.yaml"
    script:
        "../scripts/report.py"
