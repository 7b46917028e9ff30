"""preprocess: one float32 1x3xRxR .npy per image, exactly cn_clip's image_transform(R)."""

import os
from pathlib import Path

import numpy as np

from common import log


def preprocess_image(image_path: str | Path, resolution: int) -> np.ndarray:
    from cn_clip.clip.utils import image_transform
    from PIL import Image

    with Image.open(image_path) as image:
        tensor = image_transform(resolution)(image)
    return tensor.unsqueeze(0).numpy().astype(np.float32, copy=False)


def write_npy(array: np.ndarray, out: str | Path) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, out)


def main(smk) -> None:
    from clip_model import model_info

    _, resolution = model_info(smk.wildcards.arch)
    array = preprocess_image(smk.input[0], resolution)
    write_npy(array, smk.output[0])
    log.info("%s -> %s %s", smk.input[0], smk.output[0], array.shape)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
