"""preprocess: one float32 1x3xRxR .npy per image of a shard, exactly cn_clip's image_transform(R)."""

import functools
from pathlib import Path

import numpy as np

from pipeline.common import log, write_npy


@functools.cache
def _transform(resolution: int):
    from cn_clip.clip.utils import image_transform

    return image_transform(resolution)


def preprocess_image(image_path: str | Path, resolution: int) -> np.ndarray:
    from PIL import Image

    with Image.open(image_path) as image:
        tensor = _transform(resolution)(image)
    return tensor.unsqueeze(0).numpy().astype(np.float32, copy=False)


def preprocess_images(images: list[str], outputs: list[str], resolution: int) -> None:
    """Each image to its npy (outputs in the same order)."""
    from pipeline.common import Progress

    progress = Progress("preprocess", len(images))
    for image, out in zip(images, outputs, strict=True):
        try:
            array = preprocess_image(image, resolution)
        except (OSError, SyntaxError, ValueError) as exc:  # corrupt pixels the parse-time check cannot see
            raise RuntimeError(f"image {image} cannot be decoded ({str(exc).strip() or type(exc).__name__}): "
                               f"remove or replace it and run again") from exc
        write_npy(array, out)
        progress.step()


def main(smk) -> None:
    from model.clip import model_info
    from pipeline.common import write_shard_list

    _, resolution = model_info(smk.params.arch)
    npy = list(smk.output.npy)
    preprocess_images(list(smk.input), npy, resolution)
    write_shard_list(smk.output.shard, [Path(f).stem for f in npy], npy)  # last: it stands for the npy files
    log.info("%d images at %dx%d -> %s", len(npy), resolution, resolution, Path(npy[0]).parent)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
