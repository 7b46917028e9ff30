"""synthetic_checkpoint: deterministic random weights in the official layout, so that every later
step runs exactly as with a real checkpoint (and the report says the weights are synthetic)."""
from model.synthetic import make_synthetic


def main(smk) -> None:
    make_synthetic(smk.wildcards.arch, int(smk.params.seed), smk.output[0])


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
