# Chinese-CLIP deployment workflow: checkpoint -> npy inputs -> fp32/fp16 ONNX -> compiled
# model per target -> outputs, similarity, benchmarks -> results/report.{md,html,json}.
# Rules live in rules/*.smk (one concern each), the Python for each rule in scripts/.
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# This file's folder (not workflow.basedir: used as a module, that is the calling workflow's).
WORKFLOW_DIR = str(workflow.current_basedir)
sys.path.insert(0, f"{WORKFLOW_DIR}/scripts")
import backends
from pipeline import paths as P, report_params, resources as R, stale_lock
from reporting import exit_status
from pipeline.config_check import check_config
from pipeline.matrix import Matrix

# Every bad key listed by name (command-line numbers coerced first), then Snakemake's own
# validation fills the schema's defaults.
check_config(config, f"{WORKFLOW_DIR}/config/schema.yaml")
validate(config, "config/schema.yaml")

# A dry run (-n) and a job step (--mode remote/subprocess: a cluster job parses this file again) never
# write: Snakemake knows -n from its output settings at parse time (workflow.dryrun only later).
DRY_RUN = bool(workflow.output_settings.dryrun or workflow.dryrun)
# The run's matrix: images, targets, shards (scripts/pipeline/matrix.py)
M = Matrix(config, dry_run=DRY_RUN, main_process=workflow.is_main_process)


# Every wildcard's values: the coordinates a path can take (the backends the registry finds, scripts/backends/)
wildcard_constraints:
    arch="|".join(P.ARCHS).replace(".", r"\."),
    tower="|".join(P.TOWERS),
    part="|".join(P.PART.values()),
    stage="|".join(P.REFERENCE_STAGES),
    backend="|".join(backends.names()),
    device=r"[A-Za-z0-9_]+",
    precision=r"[A-Za-z0-9_]+",
    bs=rf"[0-9]+|{P.DYNAMIC}",


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/reference.smk"
include: "rules/target.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


# After `kill -9` the plain command must go on: a provably dead run's lock is dropped, and outputs its
# jobs left missing are made again with everything made from them (Snakemake alone would not, while
# what depends on them looks up to date). Only a real run's main process acts; see scripts/pipeline/stale_lock.py.
stale_lock.recover(
    lambda f: stale_lock.output_kind(f, workflow.rules, M.wildcard_values),
    dry_run=DRY_RUN,
    main_process=workflow.is_main_process,
)
# The report as it was before this run: only a report this run writes sets the exit status.
REPORT_BEFORE = exit_status.file_state(P.REPORT["json"])


# One job at a time on each accelerator a backend's plan declares (its ACCELERATOR: the resource its infer and
# benchmark jobs hold, each job every device the run uses), unless --resources <name>=N says otherwise.
for accelerator in backends.accelerators():
    if accelerator not in workflow.global_resources:
        workflow.register_resource(accelerator, M.accelerator_units(accelerator))


# Default target (`snakemake -c1` = `snakemake -c1 report`). Defined here: Snakemake ignores
# default_target in included files.
rule all:
    default_target: True
    input:
        rules.report.output,


onstart:
    # Runs for a real run only (never for -n), once Snakemake holds the directory lock.
    stale_lock.record_owner()
    # A backend that cannot run here (a missing tool, an unsafe scratch folder) stops the run before any job.
    for name in M.backends:
        try:
            backends.get(name).preflight(config)
        except backends.PreflightError as exc:
            print(f"ERROR: {exc}", file=sys.stderr)
            sys.exit(1)


onsuccess:
    stale_lock.forget_owner()
    # A missed accuracy gate fails the run after the report files are written, when this run wrote it.
    exit_status.exit_on_missed_gates(P.REPORT["json"], REPORT_BEFORE)


onerror:
    stale_lock.forget_owner()
