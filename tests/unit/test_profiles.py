"""The cluster profiles place the jobs that hold an accelerator (infer and benchmark of a target whose backend's
plan declares one) by their input named `accelerator`, not by rule name (issue 16) nor by a backend's or a
resource's name (the jobs set `gres` themselves from the plan's resource): a run with many images has an infer
rule per target and
shard (infer_3of8, infer_ascend_3of8), which `set-resources: infer:` would miss, sending an Ascend
infer shard to a CPU node. Each profile's default-resources are evaluated here as Snakemake evaluates
them per job (its own parser and evaluator), and on a sharded plan by Snakemake itself."""
import re
import subprocess

import pytest
import yaml
from snakemake.iocontainers import InputFiles, Wildcards
from snakemake.resources import Resources

from pipeline import paths as P
from conftest import REPO, SNAKEMAKE, copy_workflow

ASCEND = P.Target("ViT-B-16", "image", "ascend", "Ascend910B4", "fp16")
ORT = P.Target("ViT-B-16", "image", "onnxruntime", "cpu", "fp32")
# {job: (its named inputs, whether it holds an NPU)}, the inputs as rules/target.smk names them
JOBS = {
    "infer ascend": ({"manifest": ASCEND.manifest(1), "accelerator": ASCEND.manifest(1)}, True),
    "infer_3of8 ascend": ({"manifest": ASCEND.manifest(1), "accelerator": ASCEND.manifest(1)}, True),
    "benchmark ascend": ({"manifest": ASCEND.manifest(2), "accelerator": ASCEND.manifest(2), "ckpt": "resources/x.pt"},
                         True),
    "compile ascend (ATC on the CPU)": ({"onnx": P.onnx("ViT-B-16", "image", "fp16")}, False),
    "infer onnxruntime": ({"manifest": ORT.manifest(1)}, False),
    "benchmark onnxruntime": ({"manifest": ORT.manifest(1)}, False),
    "similarity ascend": ({"offline": [ASCEND.dst("a")]}, False),
    "report": ({"targets": [ASCEND.manifest(1), ASCEND.similarity()]}, False),
}
# per profile: {resource: (value for a job holding an accelerator, value for any other job)}
PLACEMENT = {
    "slurm": {"slurm_partition": ("<accelerator-partition>", "<cpu-partition>")},
    "slurm-test": {"slurm_partition": ("cnclip", "cnclip")},
    "donau": {"queue": ("<accelerator-queue>", "<cpu-queue>"), "exclusive": (1, 0)},
}


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def evaluated(resources: Resources, inputs: dict) -> dict:
    files = InputFiles(fromdict=inputs)
    return {name: r.evaluate(Wildcards(), input=files, attempt=1, threads=2, rulename="any",
                             async_run=None).value
            for name, r in resources.items()}


@pytest.mark.parametrize("name", sorted(PLACEMENT))
def test_profile_places_accelerator_jobs_by_their_input(name):
    config = profile(name)
    assert "set-resources" not in config and "set-threads" not in config, \
        "keyed by rule name: a sharded run's infer rules are named infer_3of8"
    resources = Resources.parse([f"{k}={v}" for k, v in config["default-resources"].items()],
                                allow_expressions=True)
    for job, (inputs, holds_npu) in JOBS.items():
        values = evaluated(resources, inputs)
        for resource, (npu, other) in PLACEMENT[name].items():
            assert values[resource] == (npu if holds_npu else other), (name, job, resource, values[resource])


def test_snakemake_places_each_shard_of_a_sharded_plan(tmp_path):
    """Snakemake itself, on the slurm-test profile: a dry run of both backends at shard_size 2 (the six
    sample images make four shards per target) gives `gres=npu:1` (the resource the Ascend plan declares) to
    every ascend infer shard and benchmark, and to no other job (the ascend compile included)."""
    root = copy_workflow(tmp_path / "wf")
    done = subprocess.run([SNAKEMAKE, "--workflow-profile", "profiles/slurm-test", "-n", "report", "--config",
                           "model_arch=ViT-B-16", "backends=[onnxruntime,ascend]", "shard_size=2"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = re.findall(r"^rule (\S+):\n((?:    .*\n)+)", done.stdout + done.stderr, flags=re.M)
    placed = {}
    for rule, body in jobs:
        output = re.search(r"^    output: (.*)$", body, flags=re.M).group(1)
        found = re.search(r"\bgres=([^,\s]*)", body)  # set by the jobs that may hold an accelerator
        gres = found.group(1) if found else ""
        holds_npu = rule.startswith(("infer", "benchmark")) and "/ascend/" in output
        placed.setdefault(rule, set()).add((holds_npu, gres))
    assert {r for r in placed if r.startswith("infer")} == {
        f"infer_{backend}_{i}of4" for backend in ("onnxruntime", "ascend") for i in range(1, 5)}
    assert "compile" in placed and "benchmark" in placed
    for rule, seen in placed.items():
        for holds_npu, gres in seen:
            assert gres == ("npu:1" if holds_npu else ""), (rule, holds_npu, gres)
    assert (True, "npu:1") in placed["benchmark"] and (False, "") in placed["benchmark"]


@pytest.mark.parametrize("chain, middle_shards", [("first_shard", 1), ("all", 4)])
def test_the_chains_middle_stages_run_on_the_first_shard_unless_asked_for_all(tmp_path, chain, middle_shards):
    """Six sample images at shard_size 2 make four shards: torch_fp32 runs on each, onnx_fp32 and onnx_fp16
    on the first only (chain_images: first_shard) or on each (all)."""
    root = copy_workflow(tmp_path / "wf")
    done = subprocess.run([SNAKEMAKE, "-n", "report", "--config", "model_arch=ViT-Toy-16", "shard_size=2",
                           f"chain_images={chain}"], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = re.findall(r"^rule (reference_\dof4):\n(?:    .*\n)*?    wildcards: .*stage=(\w+)", done.stdout, flags=re.M)
    stages = {}
    for rule, stage in jobs:
        stages.setdefault(stage, set()).add(rule)
    assert len(stages["torch_fp32"]) == 4
    assert len(stages["onnx_fp32"]) == len(stages["onnx_fp16"]) == middle_shards
