"""Shards (issue 16): preprocess, reference and infer work a shard of images per job (infer per target);
reference and infer also stack a shard's features in one file, which similarity reads. An image's shard
depends on its name only, so adding an image reruns its own shard's jobs and the per-target aggregates,
and the plan grows with shards, not images."""
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline import paths as P
from conftest import E2E_ARCH, E2E_EMBED, E2E_RESOLUTION, E2E_TARGET, Workflow, private_copy

SAMPLES = ("chelsea.png", "rocket.jpg", "coffee.png", "astronaut.png", "motorcycle_left.png")


def test_adding_an_image_reruns_only_its_shard(e2e_workflow, tmp_path):
    from sample_images import sample_image_source

    images = tmp_path / "images"
    images.mkdir()
    for name in SAMPLES[:3]:
        shutil.copyfile(sample_image_source(name), images / name)
    wf = Workflow(private_copy(e2e_workflow, tmp_path / "wf"), {**e2e_workflow.config, "images": str(images),
                                                                  "shard_size": 2})
    stems = sorted(Path(n).stem for n in SAMPLES[:3])
    shards = P.shards(stems, 2)
    assert len(shards) == 2 and shards[0].count == 2, "three images, two per shard: two shards"
    plan = wf.plan("report")
    assert {r: n for r, n in plan.items() if r.startswith("infer")} == {"infer_1of2": 1, "infer_2of2": 1}, \
        "a rule (and job) per shard, named as the other sharded steps"
    wf.run("report")
    r = wf.report()
    assert r["verdict"] == "PASS"
    target = next(t for t in r["targets"] if t["dir"] == E2E_TARGET.dir)
    # the ground truth and the target on every image; the chain's middle stages on the first shard (the sample)
    sample = sorted(shards[0].items)
    for pair in target["accuracy"]["pairs"]:
        middle = {pair["a"], pair["b"]} & {"onnx_fp32", "onnx_fp16"}
        assert sorted(pair["per_image"]) == (sample if middle else stems), pair["a"] + " vs " + pair["b"]
        assert pair["images"] == len(pair["per_image"])
    for stem in stems:
        assert np.load(wf.root / P.npy(E2E_ARCH, stem)).shape == (1, 3, E2E_RESOLUTION, E2E_RESOLUTION)
        assert np.load(wf.root / E2E_TARGET.dst(stem)).shape == (1, E2E_EMBED)
        for stage in P.REFERENCE_STAGES if stem in sample else ["torch_fp32"]:  # (the copy holds the others' files too)
            assert (wf.root / P.reference(E2E_ARCH, "image", stage, stem)).is_file()
    costs = {row["rule"]: row["jobs"] for row in r["workflow"]["rules"]}
    assert (costs["preprocess"], costs["reference"], costs["infer"]) == (2, 3 + 1, 2), \
        "a job per shard (and stage: torch_fp32 on each, the middle stages on the first)"

    new = Path(SAMPLES[3]).stem
    home = next(s for s in P.shards(stems + [new], 2) if new in s.items)
    shutil.copyfile(sample_image_source(SAMPLES[3]), images / SAMPLES[3])
    # one image's output asked for by name: its shard's rules, nothing else
    assert wf.plan(E2E_TARGET.dst(new)) == {home.rule("preprocess"): 1, home.rule("infer"): 1}
    plan = wf.plan("report")
    plan.pop("all", None)
    # the benchmark times the first shard's inputs: it reruns only when the new image joins that shard
    timed = new in P.shards(stems + [new], 2)[0].items
    assert plan == {home.rule("preprocess"): 1, home.rule("reference"): 3 if timed else 1, home.rule("infer"): 1,
                    "similarity": 1, **({"benchmark": 1} if timed else {}), "report": 1}

    # a shard file or per-item file deleted by hand is made again, by its own shard's job alone, when
    # asked for by name (`report` leaves it: what was made from it is up to date, Snakemake's rule)
    os.remove(images / SAMPLES[3])
    first, second = (next(s for s in shards if stem in s.items) for stem in stems[:2])
    os.remove(wf.root / P.reference_features(E2E_ARCH, "image", "torch_fp32", second.name))
    os.remove(wf.root / E2E_TARGET.dst(stems[0]))
    assert wf.plan(P.reference_features(E2E_ARCH, "image", "torch_fp32", second.name)) == {second.rule("reference"): 1}
    assert wf.plan(E2E_TARGET.dst(stems[0])) == {first.rule("infer"): 1}
