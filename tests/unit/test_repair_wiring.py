"""The wiring of locate and repair into the workflow's DAG, without running any model: a copy of the
workflow whose every file the report stands on is a placeholder made up to date with `--touch`, then
dry runs. Every reduced-precision target gets a locate job before the report, rerun whenever its
similarity.json changes (the job decides whether to locate: scripts/locate.py gates_met); with
`repair: true` also its repair; an fp32 target gets neither."""
import json
import subprocess

import pytest

from conftest import SNAKEMAKE, Workflow, copy_workflow
from pipeline.paths import Target

CONFIG = {"model_arch": "ViT-B-16", "precision": "fp16"}
TARGET = Target("ViT-B-16", "image", "onnxruntime", "cpu", "fp16")


def similarity(passed: bool) -> dict:
    return {"pairs": [], "gates": [{"a": "offline", "b": "torch_fp32", "threshold": 0.99, "cosine_min": 0.5,
                                    "passed": True},
                                   {"a": "offline", "b": "onnx_fp16", "threshold": 0.999, "cosine_min": 0.5,
                                    "passed": passed}]}


@pytest.fixture(scope="module")
def placeholders(tmp_path_factory):
    """A workflow copy where everything `report` needs exists and is up to date (placeholders)."""
    root = copy_workflow(tmp_path_factory.mktemp("wiring"))
    wf = Workflow(root, CONFIG)
    out = subprocess.run([SNAKEMAKE, "--summary", "report", *wf.args()], cwd=root, capture_output=True, text=True,
                         check=True).stdout
    files = [line.split("\t")[0] for line in out.splitlines()[1:] if line.strip()]
    forced = wf.run("-n", "-F", "report")
    files += [line.split(":", 1)[1].strip() for line in forced.stdout.splitlines()
              if line.startswith("    benchmark:")]
    assert TARGET.similarity() in files and TARGET.locate() in files and TARGET.repair() not in files
    for f in files:
        path = root / f
        if path.name.startswith("model_bs"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(similarity(True) if path.name == "similarity.json" else {"targets": []}))
    wf.run("--touch", "report")
    assert wf.plan("report") == {}
    return wf


def rewrite_similarity(wf: Workflow, passed: bool) -> None:
    """A similarity.json newer than every file made from it (as a rerun of similarity leaves it; Snakemake
    reruns nothing for a newer file whose content it recorded unchanged)."""
    import os
    import time

    path = wf.root / TARGET.similarity()
    path.write_text(json.dumps(similarity(passed)))
    later = time.time() + 10
    os.utime(path, (later, later))


def test_locate_is_decided_in_the_same_run_as_the_gates_and_repair_follows_it(placeholders):
    assert placeholders.plan("report") == {}
    # a changed similarity.json (this run's gates: here one missed) reruns locate before the report
    rewrite_similarity(placeholders, False)
    assert placeholders.plan("report") == {"locate": 1, "report": 1}
    assert placeholders.plan("report", config={"repair": True}) == {"locate": 1, "repair": 1, "report": 1}


def test_an_fp32_target_gets_no_locate_job(placeholders):
    plan = placeholders.plan("report", config={"precision": "fp32"})
    assert "locate" not in plan and "repair" not in plan and "similarity" in plan


def test_a_new_target_beside_an_existing_report_is_planned(placeholders):
    """The report exists: a target added to the matrix still gets all its jobs (with similarity as a
    checkpoint, Snakemake said 'Nothing to be done')."""
    plan = placeholders.plan("report", config={"precisions": ["fp16", "fp32"]})
    assert {"compile", "infer", "similarity", "benchmark", "report"} <= set(plan)


def test_repair_on_demand_names_its_outputs_from_paths(placeholders):
    dry = placeholders.run("-n", TARGET.repair("json"))
    text = dry.stdout + dry.stderr
    block = text.split("rule repair:", 1)[1].split("\n\n", 1)[0]
    assert TARGET.repair("model") in block and TARGET.repair("kept") in block and TARGET.locate("json") in block
    inputs = block.split("input:", 1)[1].split("\n", 1)[0]
    assert "reference/image/shards/" in inputs, "verified against torch_fp32's features of every input"

