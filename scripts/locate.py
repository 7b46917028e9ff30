"""locate: why a reduced-precision target loses accuracy (accuracy.locate does the work)."""
import tempfile
from pathlib import Path

import backends
from accuracy.locate import gates_met, localise, write_outputs
from pipeline.common import log, model_input_files, read_json


def main(smk) -> None:
    """input: model (the fp32 ONNX of the target's tower) and data, npy (the first shard's inputs),
    reference (their torch_fp32 features), similarity (when every gate in it was met and params.always is
    not set, the job only writes gates_met()'s record), manifest (optional: the compiled model, whose own
    tensors the plan reads); output: csv, chart, json; params: always, max_inputs, gate, options."""
    p, inp, out = smk.params, smk.input, smk.output
    if not p.always:
        record = gates_met(inp.similarity)
        if record is not None:
            log.info("%s", record["reason"])
            write_outputs([], record, out.csv, out.chart, out.json, title=record["reason"])
            return
    plan = backends.get(smk.wildcards.backend)
    options = dict(p.options)
    npy = model_input_files(inp.npy)
    if smk.wildcards.precision in plan.CALIBRATED:
        options["calibration"] = npy
    device_model = None
    if "manifest" in inp.keys():  # the device's own tensors: its compiled model (a dynamic-batch one's gears too)
        compiled = read_json(inp.manifest)
        device_model = compiled["model"]
        if compiled.get("dynamic_batch"):
            options["dynamic_batch"] = compiled["dynamic_batch"]
    with tempfile.TemporaryDirectory(dir=Path(out.json).parent, prefix=".locate-") as scratch:
        rows, summary = localise(plan, inp.model, smk.wildcards.precision, npy, list(inp.reference), float(p.gate),
                                 options, scratch, int(p.max_inputs), device_model)
    write_outputs(rows, summary, out.csv, out.chart, out.json)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
