"""zero_shot: does a deployed pair of towers still classify and retrieve like PyTorch (accuracy.zero_shot)."""
from accuracy.zero_shot import evaluate_stages
from pipeline.paths import ZERO_SHOT_STAGES
from pipeline.common import read_features, write_json


def main(smk) -> None:
    image = {stage: read_features(smk.input[f"image_{stage}"]) for stage in ZERO_SHOT_STAGES}
    text = {stage: read_features(smk.input[f"text_{stage}"]) for stage in ZERO_SHOT_STAGES}
    write_json(smk.output[0], evaluate_stages(image, text, float(smk.params.max_prob_change)))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
