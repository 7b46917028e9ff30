"""preprocess: one float32 1x3xRxR .npy per image of a shard, exactly cn_clip's image_transform(R); and where a
target takes them, its uint8 1xRxRx3 pixels after that transform's resize and RGB conversion."""

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


def image_pixels(image_path: str | Path, resolution: int) -> np.ndarray:
    """uint8 1xRxRx3: the image after cn_clip's own transform up to its ToTensor (the bicubic resize, the RGB
    conversion), i.e. the pixels a device that converts and normalises them itself takes (a plan's takes_pixels)."""
    from PIL import Image
    from torchvision.transforms import Compose, ToTensor

    steps = _transform(resolution).transforms
    before_tensor = Compose(steps[:next(i for i, t in enumerate(steps) if isinstance(t, ToTensor))])
    with Image.open(image_path) as image:
        pixels = np.asarray(before_tensor(image), dtype=np.uint8)
    if pixels.shape != (resolution, resolution, 3):
        raise ValueError(f"{image_path}: cn_clip's resize gave {pixels.shape}, not {resolution}x{resolution}x3")
    return pixels[None]


def preprocess_images(images: list[str], outputs: list[str], resolution: int,
                      pixel_outputs: list[str] | None = None) -> None:
    """Each image to its npy (outputs in the same order), and with pixel_outputs to its uint8 pixels too."""
    from pipeline.common import Progress

    progress = Progress("preprocess", len(images))
    for i, (image, out) in enumerate(zip(images, outputs, strict=True)):
        try:
            array = preprocess_image(image, resolution)
            pixels = image_pixels(image, resolution) if pixel_outputs else None
        except (OSError, SyntaxError, ValueError) as exc:  # corrupt pixels the parse-time check cannot see
            raise RuntimeError(f"image {image} cannot be decoded ({str(exc).strip() or type(exc).__name__}): "
                               f"remove or replace it and run again") from exc
        write_npy(array, out)
        if pixels is not None:
            write_npy(pixels, pixel_outputs[i])
        progress.step()


def main(smk) -> None:
    from model.clip import model_info
    from pipeline.common import write_shard_list

    _, resolution = model_info(smk.params.arch)
    npy = list(smk.output.npy)
    pixels = list(smk.output.pixels) or None  # empty unless a target of the run takes pixels
    preprocess_images(list(smk.input), npy, resolution, pixels)
    if pixels:
        write_shard_list(smk.output.pixels_shard, [Path(f).stem for f in pixels], pixels)
    write_shard_list(smk.output.shard, [Path(f).stem for f in npy], npy)  # last: it stands for the npy files
    log.info("%d images at %dx%d -> %s", len(npy), resolution, resolution, Path(npy[0]).parent)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
