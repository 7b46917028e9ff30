# results/report.{md,html,json} for every target of the matrix, the figures and CSV tables beside
# them in results/report/, all flagged for Snakemake's own report (`snakemake --report report.html`),
# with captions and categories from report/ at the repository root.


REPORT, REPORT_DIR = P.REPORT, P.REPORT_DIR
REPORT_TARGETS = [report_target(t) for t in TARGETS]
ONNX = [
    f
    for a in RUN_ARCHS
    for tower in TOWERS
    for f in (P.onnx(a, tower, "fp32"), P.onnx_data(a, tower), P.onnx(a, tower, "fp16"))
]

# Snakemake's benchmark: record (wall time, peak RSS) of every job the report stands on, by rule. Read by
# path (params), not as inputs: every such job is upstream of the report's inputs anyway, and looking up
# a record's job scans that job's outputs first, one per item (at 10,000 images, most of the plan).
COSTS = {
    "synthetic_checkpoint": (
        [
            f"benchmarks/{a}/synthetic_checkpoint.seed{config['seed']}.tsv"
            for a in RUN_ARCHS
        ]
        if config["checkpoint"] == "synthetic"
        else []
    ),
    "export_onnx": [P.cost(P.onnx(a, tw, "fp32")) for a in RUN_ARCHS for tw in TOWERS],
    "fp16_onnx": [P.cost(P.onnx(a, tw, "fp16")) for a in RUN_ARCHS for tw in TOWERS],
    "preprocess": [
        P.cost(P.npy(a, shard.label)) for a in RUN_ARCHS for shard in SHARDS["image"]
    ],
    **{
        ("reference" if tw == "image" else "text_reference"): [
            P.cost(P.reference(a, tw, st, shard.label))
            for a in RUN_ARCHS
            for st in P.STAGES
            for shard in SHARDS[tw]
        ]
        for tw in TOWERS
    },
    "compile": [
        t.cost(f"compile_bs{bs}") for t in TARGETS for bs in TOWER_BATCH_SIZES[t.tower]
    ],
    **{
        ("infer" if tw == "image" else "text_infer"): [
            t.cost(shard.rule("infer"))
            for t in TARGETS
            if t.tower == tw
            for shard in SHARDS[tw]
        ]
        for tw in TOWERS
    },
    "benchmark": [
        t.cost(f"benchmark_bs{bs}")
        for t in TARGETS
        if t.tower == "image"
        for bs in BATCH_SIZES
    ],
}


# The text on the front page of `snakemake --report` (a global directive; the path is relative to
# this file).
report: "../report/workflow.rst"


rule report:
    input:
        checkpoint=[P.checkpoint_info(a) for a in RUN_ARCHS],
        onnx=ONNX,
        targets=[
            f
            for t in REPORT_TARGETS
            for f in t["manifests"] + [t["similarity"]] + t["benchmarks"]
        ],
        zero_shot=[t["zero_shot"] for t in REPORT_TARGETS if t["zero_shot"]],
        located=LOCATED,
    output:
        md=report(REPORT["md"], caption="../report/report_md.rst", category="Summary"),
        html=report(
            REPORT["html"], caption="../report/report_html.rst", category="Summary"
        ),
        json=report(
            REPORT["json"], caption="../report/report_json.rst", category="Summary"
        ),
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
    log:
        P.log(REPORT["json"]),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        targets=REPORT_TARGETS,
        skipped=SKIPPED_IMAGES,
        costs=COSTS,
        config={k: v for k, v in config.items()},
    script:
        "../scripts/report.py"
