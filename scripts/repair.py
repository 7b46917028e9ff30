"""repair: the smallest set of nodes kept in fp32 that brings a target back over its gate (accuracy.repair
does the work); the target's plan builds and runs each candidate."""
import backends
from accuracy.repair import repair
from pipeline.common import model_input_files, read_features, read_json, write_json


def main(smk) -> None:
    """input: model and data (the fp32 ONNX), npy (every input), calibration (the first shard's), reference
    (their torch_fp32 features), onnx_fp16 (its features), similarity (the target's similarity.json), locate
    (locate.json: its measured ranking); output: json, model (a folder), kept (the kept nodes and their
    closure, in the backend's tool's form); params: gate, max_builds, options."""
    p, inp, out = smk.params, smk.input, smk.output
    plan = backends.get(smk.wildcards.backend)
    options = dict(p.options)
    if smk.wildcards.precision in plan.CALIBRATED:
        options["calibration"] = model_input_files(inp.calibration)
    record = repair(plan, inp.model, smk.wildcards.precision, model_input_files(inp.npy), list(inp.reference),
                    float(p.gate), options, read_json(inp.locate), out.model, int(p.max_builds),
                    similarity=read_json(inp.similarity), references={"onnx_fp16": read_features(inp.onnx_fp16)})
    plan.write_kept(out.kept, record["kept"] + record["closure"])
    record["kept_file"] = out.kept
    if record["repaired"]:
        record["kept_command"] = plan.kept_command(inp.model, out.kept, out.model, options)
    write_json(out.json, record)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
