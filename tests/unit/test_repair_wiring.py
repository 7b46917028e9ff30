"""The wiring of locate and repair into the workflow's DAG, without running any model: a copy of the
workflow whose every file the report stands on is a placeholder made up to date with `--touch`, then
dry runs. A target whose similarity.json shows a missed gate gets locate before the report; with
`repair: true` every target repair applies to gets locate and repair; a passing target gets neither."""
import json
import subprocess

import pytest

from conftest import SNAKEMAKE, Workflow, copy_workflow
from paths import Target

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
    assert TARGET.similarity() in files and TARGET.locate() not in files
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
    (wf.root / TARGET.similarity()).write_text(json.dumps(similarity(passed)))


def test_a_passing_target_is_neither_located_nor_repaired_unless_asked(placeholders):
    rewrite_similarity(placeholders, True)
    assert placeholders.plan("report") == {}
    # repair: true repairs every reduced-precision target (one that passes keeps its model)
    assert placeholders.plan("report", config={"repair": True}) == {"locate": 1, "repair": 1, "report": 1}


def test_a_new_target_beside_an_existing_report_is_planned(placeholders):
    """The report exists: a target added to the matrix still gets all its jobs (with similarity as a
    checkpoint, Snakemake said 'Nothing to be done')."""
    plan = placeholders.plan("report", config={"precisions": ["fp16", "fp32"]})
    assert {"compile", "infer", "similarity", "benchmark", "report"} <= set(plan)


def test_a_missed_gate_locates_the_target_and_with_repair_true_repairs_it(placeholders):
    rewrite_similarity(placeholders, False)
    assert placeholders.plan("report") == {"locate": 1, "report": 1}
    assert placeholders.plan("report", config={"repair": True}) == {"locate": 1, "repair": 1, "report": 1}


def test_repair_on_demand_names_its_outputs_from_paths(placeholders):
    dry = placeholders.run("-n", TARGET.repair("json"))
    text = dry.stdout + dry.stderr
    assert "rule repair:" in text and TARGET.repair("onnx") in text and TARGET.locate("csv") in text
    assert "keep_dtype" not in text


def test_an_ascend_target_also_gets_atcs_keep_dtype_file():
    ascend = Target("ViT-B-16", "image", "ascend", "Ascend910B4", "fp16")
    assert ascend.repair("keep_dtype") == f"{ascend.dir}/repair/keep_dtype.cfg"
    assert ascend.locate("png") == f"{ascend.dir}/locate/locate.png"
