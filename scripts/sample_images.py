"""The bundled sample set: real photographs shipped inside scikit-image's wheel (no network)."""

import shutil
from importlib.resources import files
from pathlib import Path

from pipeline.common import log
from pipeline.paths import SAMPLE_IMAGES


def sample_image_source(name: str) -> Path:
    return Path(str(files("skimage") / "data" / name))


def materialise(out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SAMPLE_IMAGES.values():
        shutil.copyfile(sample_image_source(name), out_dir / name)
        written.append(out_dir / name)
        log.info("sample image %s", out_dir / name)
    return written


def main(smk) -> None:
    materialise(Path(smk.output[0]).parent)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
