"""similarity: every pair of stages of a target, per image, the ranking each stage keeps, and the gates
(accuracy.similarity does the work)."""
from accuracy.similarity import evaluate
from pipeline.common import write_json


def main(smk) -> None:
    from pipeline.common import read_features

    stages = ("offline", "torch_fp32", "onnx_fp32", "onnx_fp16")
    outputs = {stage: read_features(smk.input[stage]) for stage in stages}  # a file per shard
    text, labels = None, None
    if "text_torch_fp32" in smk.input.keys():  # optional: label features of every stage, for image-to-label ranking
        text = {st: read_features(smk.input[f"text_{st}"]) for st in stages}
        labels = list(text["torch_fp32"])
    write_json(smk.output[0], evaluate(outputs, dict(smk.params.gates), text, labels))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
