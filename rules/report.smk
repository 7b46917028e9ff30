# results/report.{md,html,json} for every target of the matrix, the figures and CSV tables beside
# them in results/report/, all flagged for Snakemake's own report (`snakemake --report report.html`),
# with captions and categories from report/ at the repository root.


REPORT, REPORT_DIR = P.REPORT, P.REPORT_DIR
REPORT_TARGETS = report_params.targets(M)


# The text on the front page of `snakemake --report` (a global directive; the path is relative to
# this file).
report: "../report/workflow.rst"


rule report:
    input:
        checkpoint=[P.checkpoint_info(a) for a in M.archs],
        onnx=report_params.onnx_files(M),
        targets=[
            f
            for t in REPORT_TARGETS
            for f in t["manifests"] + [t["similarity"]] + t["benchmarks"]
        ],
        zero_shot=[t["zero_shot"] for t in REPORT_TARGETS if t["zero_shot"]],
        # `precisions: auto` repairs what misses, to choose among
        located=report_params.located(
            M, config["repair"] or config["precisions"] == "auto"
        ),
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
        skipped=M.skipped_images,
        costs=report_params.costs(M, config),
        config={k: v for k, v in config.items()},
    script:
        "../scripts/report.py"


# This run against another (config `baseline`: a results folder or its report.json):
# `snakemake -c1 compare --config baseline=...` writes results/compare.{md,html,json}.
rule compare:
    input:
        current=P.REPORT["json"],
    output:
        md=P.COMPARE["md"],
        html=P.COMPARE["html"],
        json=P.COMPARE["json"],
    log:
        P.log(P.COMPARE["json"]),
    conda:
        "../envs/cnclip.yaml"
    threads: 1
    resources:
        mem_mb=R.LIGHT["mem_mb"],
        runtime=R.LIGHT["runtime"],
    params:
        baseline=compare_baseline,
    script:
        "../scripts/compare.py"
