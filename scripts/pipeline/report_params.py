"""The report rule's parameters, derived from the run's matrix: each target's folder and the records the
report reads (reporting/load.py), the Snakemake benchmark records of every job it stands on, and the
locate and repair records it asks for."""

from pipeline import paths as P


def target_entry(m, t: P.Target) -> dict:
    """params.targets entry of one target: its coordinates, folder and records (zero_shot belongs to the image
    target of a pair)."""
    image = t.tower == "image"
    return {
        **t.coordinates(),
        "dir": t.dir,
        "manifests": [t.manifest(unit) for unit in m.compile_units(t)],
        "similarity": t.similarity(),
        "benchmarks": m.benchmarks(t),
        "zero_shot": t.zero_shot() if image and "text" in m.towers else None,
        # read when present (after a missed gate, or run on demand)
        "locate": t.locate("json"),
        "repair": t.repair("json"),
    }


def targets(m) -> list[dict]:
    return [target_entry(m, t) for t in m.targets]


def located(m, repair: bool) -> list[str]:
    """What the report adds for accuracy lost: locate.json of every reduced-precision target (its job
    locates only a target that missed a gate) and, with `repair: true`, its repair.json."""
    return [f for t in m.targets if m.reduced(t) for f in [t.locate("json")] + ([t.repair("json")] if repair else [])]


def costs(m, config: dict) -> dict[str, list[str]]:
    """Snakemake's benchmark: record (wall time, peak RSS) of every job the report stands on, by rule. Read
    by path (params), not as inputs: every such job is upstream of the report's inputs anyway, and looking up
    a record's job scans that job's outputs first, one per item (at 10,000 images, most of the plan)."""
    archs, towers, shards = m.archs, m.towers, m.shards
    out = {
        "synthetic_checkpoint": [f"benchmarks/{a}/synthetic_checkpoint.seed{config['seed']}.tsv" for a in archs]
        if config["checkpoint"] == "synthetic" else [],
        "export_onnx": [P.cost(P.onnx(a, tw, "fp32")) for a in archs for tw in towers],
        "fp16_onnx": [P.cost(P.onnx(a, tw, "fp16")) for a in archs for tw in towers],
        "preprocess": [P.cost(P.npy(a, shard.label)) for a in archs for shard in shards["image"]],
    }
    for tw in towers:
        out["reference" if tw == "image" else "text_reference"] = [
            P.cost(P.reference(a, tw, st, shard.label)) for a in archs for st in P.REFERENCE_STAGES
            for shard in m.stage_shards(tw, st)]
    out["compile"] = [t.cost(f"compile_bs{unit}") for t in m.targets for unit in m.compile_units(t)]
    for tw in towers:
        out["infer" if tw == "image" else "text_infer"] = [
            t.cost(shard.rule("infer")) for t in m.targets if t.tower == tw for shard in shards[tw]]
    out["benchmark"] = [P.cost(f) for t in m.targets for f in m.benchmarks(t)]
    return out


def onnx_files(m) -> list[str]:
    """Every exported ONNX the report describes."""
    return [f for a in m.archs for tower in m.towers
            for f in (P.onnx(a, tower, "fp32"), P.onnx_data(a, tower), P.onnx(a, tower, "fp16"))]
