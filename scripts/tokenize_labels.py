"""tokenize_labels: the prompt of every label (config `label_template` with `{}` replaced by the label) as
cn_clip's own tokenizer makes it (`cn_clip.clip.tokenize`, BERT ids with [CLS]/[SEP], zero-padded):
int64, shape 1 x context_length, one file per label (the text tower's inputs, as npy/ is the image's)."""

import numpy as np

from pipeline.common import log, write_npy
from pipeline.paths import CONTEXT_LENGTH


def prompts(labels: list[str], template: str) -> list[str]:
    """`template` with `{}` replaced by each label (str.replace: other braces in it stay as they are)."""
    return [template.replace("{}", label) for label in labels]


def tokenize(texts: list[str], context_length: int = CONTEXT_LENGTH) -> np.ndarray:
    from cn_clip.clip import tokenize as cn_tokenize

    return cn_tokenize(list(texts), context_length=context_length).numpy().astype(np.int64, copy=False)


def write_tokens(labels: list[str], template: str, outputs: list[str], context_length: int = CONTEXT_LENGTH
                 ) -> np.ndarray:
    if len(labels) != len(outputs):
        raise ValueError(f"{len(labels)} labels but {len(outputs)} output files")
    ids = tokenize(prompts(labels, template), context_length)
    for row, out in zip(ids, outputs):
        write_npy(row[None, :], out)
    return ids


def main(smk) -> None:
    ids = write_tokens(list(smk.params.labels), smk.params.template, list(smk.output), smk.params.context_length)
    for label, row in zip(smk.params.labels, ids):
        log.info("%s: %s", smk.params.template.replace("{}", label), row[row > 0].tolist())


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
