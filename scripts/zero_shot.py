"""zero_shot: does a deployed pair of towers still classify and retrieve like PyTorch (accuracy.zero_shot)."""
from accuracy.zero_shot import STAGES, evaluate, load_stack
from pipeline.common import write_json


def main(smk) -> None:
    image, text, stems, labels = {}, {}, None, None
    for stage in STAGES:
        s, image[stage] = load_stack(smk.input[f"image_{stage}"], sort=True)
        labels_found, text[stage] = load_stack(smk.input[f"text_{stage}"])
        if stems is not None and (s != stems or labels_found != labels):
            raise ValueError(f"stage {stage} covers other images or labels than torch_fp32")
        stems, labels = s, labels_found
    write_json(smk.output[0], evaluate(image, text, stems, labels, float(smk.params.max_prob_change)))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
