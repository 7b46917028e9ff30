import re

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


def test_a_shard_list_stands_for_its_npy_files_and_names_a_missing_one(tmp_path):
    """A shard's image jobs take its list (one input, not one per image): expanded in the list's order,
    other inputs passed through, and a listed file deleted by hand named with the command that remakes
    it, not a numpy error."""
    from pipeline.common import model_input_files, write_shard_list

    files = [tmp_path / "npy" / f"{stem}.npy" for stem in ("b img", "a")]
    for f in files:
        f.parent.mkdir(exist_ok=True)
        np.save(f, np.zeros((1, 3, 2, 2), np.float32))
    shard = tmp_path / "npy" / "shards" / "shard1of1.json"
    write_shard_list(shard, ["b img", "a"], [str(f) for f in files])
    tokens = str(tmp_path / "tokens.npy")
    assert model_input_files([str(shard), tokens]) == [str(files[0]), str(files[1]), tokens]
    files[1].unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(files[1])) + ".*snakemake -c1"):
        model_input_files([shard])
