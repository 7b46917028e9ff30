import numpy as np
import pytest
import torch
from cn_clip.clip.utils import image_transform
from PIL import Image

from preprocess import preprocess_image
from sample_images import sample_image_source


@pytest.mark.parametrize("name", ["chelsea.png", "rocket.jpg", "hubble_deep_field.jpg"])
@pytest.mark.parametrize("resolution", [224, 336])
def test_bit_identical_to_cn_clip_image_transform(name, resolution):
    path = sample_image_source(name)
    got = preprocess_image(path, resolution)
    expected = image_transform(resolution)(Image.open(path)).unsqueeze(0).numpy()
    assert got.dtype == np.float32 and got.shape == (1, 3, resolution, resolution)
    assert np.array_equal(got, expected)


def test_grayscale_and_rgba_become_three_channels(tmp_path):
    Image.new("L", (40, 30), 128).save(tmp_path / "g.png")
    Image.new("RGBA", (30, 40), (10, 20, 30, 0)).save(tmp_path / "t.png")
    for name in ("g.png", "t.png"):
        got = preprocess_image(tmp_path / name, 224)
        expected = image_transform(224)(Image.open(tmp_path / name)).unsqueeze(0)
        assert got.shape == (1, 3, 224, 224)
        assert torch.equal(torch.from_numpy(got), expected)
