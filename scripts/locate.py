"""locate: where a reduced-precision target loses accuracy (accuracy.locate does the work)."""
import tempfile
from pathlib import Path

from accuracy.locate import DEFAULTS, gates_met, load_inputs, locate, locate_dump, quantised_pair, write_outputs
from pipeline.common import log, model_input_files


def main(smk) -> None:
    """Rule locate, for any target. input: fp32 (the fp32 ONNX of the target's tower), npy (its inputs),
    target (the ONNX at the target's precision: the fp16 ONNX for fp16 and Ascend targets, the fp32 one
    for fp32 ones; for int8 ones none is given and the pair is rebuilt here, see quantised_pair; or an
    ais_bench --output folder holding a --dump_npy dump), manifest (optional: an Ascend target's compiled
    model, whose NPU tensors ais_bench dumps for the first input), similarity (optional: the target's
    similarity.json; when every gate in it was met and params.always is not set, the job only writes
    gates_met()'s record); output: csv, chart, json; params: precision, and optionally always, options
    (the backend's), k, floor, atol, chunk, max_inputs, threads."""

    from backends.base import model_inputs

    p = smk.params
    if "similarity" in smk.input.keys() and not p.get("always"):
        record = gates_met(smk.input.similarity)
        if record is not None:
            log.info("%s", record["reason"])
            write_outputs([], record, smk.output.csv, smk.output.chart, smk.output.json,
                          title=record["reason"])
            return
    opts = {key: type(v)(p.get(key, v)) for key, v in DEFAULTS.items()}
    opts["threads"] = int(p.get("threads", 1))
    npy = model_input_files(smk.input.npy)
    inputs = load_inputs(npy, p.get("max_inputs"))
    name = model_inputs(smk.input.fp32)[0].name
    with tempfile.TemporaryDirectory(dir=Path(smk.output.json).parent, prefix=".locate-") as scratch:
        if "manifest" in smk.input.keys():  # an Ascend target with locate_npu_dump: the NPU's own tensors
            from backends import ascend
            from pipeline.common import read_json

            folder = ascend.dump(read_json(smk.input.manifest)["model"], sorted(npy)[0],
                                 Path(scratch) / "dump", dict(p.get("options") or {}))
            rows, summary = locate_dump(smk.input.fp32, folder, inputs[0], input_name=name, **opts)
            summary["source"] = "ais_bench dump (the NPU's tensors, first input)"
        elif "target" not in smk.input.keys():
            reference, target = quantised_pair(smk.input.fp32, p.precision, npy, scratch,
                                               dict(p.get("options") or {}))
            rows, summary = locate(reference, target, inputs, input_name=name, **opts)
        elif Path(smk.input.target).is_dir():
            rows, summary = locate_dump(smk.input.fp32, smk.input.target, inputs[0], **opts)
        else:
            rows, summary = locate(smk.input.fp32, smk.input.target, inputs, input_name=name, **opts)
    summary["located"] = True
    summary.setdefault("source", "ONNX Runtime" + (" with fp16 storage" if summary.get("fp16_storage") else ""))
    jump = summary["first_jump"]
    log.info("first jump: %s", f"{jump['node']} ({jump['op_type']}, depth {jump['depth']})" if jump else "none")
    write_outputs(rows, summary, smk.output.csv, smk.output.chart, smk.output.json)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
