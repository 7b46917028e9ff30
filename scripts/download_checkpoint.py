"""download_checkpoint: the official Chinese-CLIP checkpoint of an architecture (resumable, checked)."""
from pathlib import Path


def fetch_official(arch: str, dest: str | Path) -> None:
    from model.download import download
    from pipeline.paths import CHECKPOINT_FILES, CHECKPOINT_URL

    download(CHECKPOINT_URL.format(filename=CHECKPOINT_FILES[arch]), str(dest))


def arch_of(filename: str) -> str:
    """clip_cn_vit-h-14 -> ViT-H-14 (the architecture whose official file this is)."""
    from pipeline.paths import CHECKPOINT_FILES

    return {Path(f).stem: a for a, f in CHECKPOINT_FILES.items()}[filename]


def main(smk) -> None:
    fetch_official(arch_of(smk.wildcards.filename), smk.output[0])


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
