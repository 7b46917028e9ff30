"""repair_step and repair: the nodes kept in fp32 that bring a target back over its gate
(accuracy.repair does the work)."""
from accuracy.repair import finish, run_step
from pipeline.common import model_input_files


def main(smk) -> None:
    """Rules repair_step and repair (and repair_ascend). repair_step - input: fp32 (the fp32 ONNX), csv and
    json (locate's), npy (inputs), reference (torch_fp32 features, same stems), target (optional: the
    target's model as deployed today), prev_json and prev_model (step > 0); output: json, model; params:
    step, precision (fp16, int8, int8_dynamic, ascend), gate, mode (nodes|op_types), threads, options (the
    backend's: int8 rebuilds quantise as it does).
    repair - input: first_model, json and model (the chain's first model and its last step), npy; output: json,
    model, keep_dtype (Ascend: ATC's file); params: threads."""
    p, inp, out = smk.params, smk.input, smk.output
    if "step" in p.keys():
        reduce_range = False
        if p.precision.startswith("int8"):
            from backends.onnxruntime import use_reduce_range

            reduce_range = use_reduce_range(dict(p.get("options") or {}))
        run_step(int(p.step), inp.fp32, inp.csv, inp.json, model_input_files(inp.npy), list(inp.reference), p.precision,
                 p.gate, out.json, out.model, inp.get("prev_json"), inp.get("prev_model"), inp.get("target"),
                 p.get("mode", "nodes"), int(p.get("threads", 1)), reduce_range)
    else:
        finish(inp.json, inp.model, model_input_files(inp.npy), out.json, out.model, out.get("keep_dtype"),
               int(p.get("threads", 1)))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
