import os

import pytest
import torch

from checkpoint_info import describe
from model.synthetic import make_synthetic
from model.clip import check_architecture, load_model, load_state_dict, new_model
from pipeline.common import sha256
from pipeline.paths import ConfigError


@pytest.fixture(scope="module")
def rn50_checkpoint(tmp_path_factory):
    """The smallest cn_clip architecture, synthetic, in the official layout."""
    path = tmp_path_factory.mktemp("ckpt") / "rn50.pt"
    make_synthetic("RN50", 0, path)
    return path


def test_synthetic_checkpoint_is_deterministic_and_official_layout(rn50_checkpoint, tmp_path):
    again = tmp_path / "rn50.pt"  # same name: torch.save records it inside the archive
    make_synthetic("RN50", 0, again)
    assert sha256(again) == sha256(rn50_checkpoint)
    raw = torch.load(rn50_checkpoint, map_location="cpu", weights_only=True)
    assert all(k.startswith("module.") for k in raw["state_dict"])
    other = tmp_path / "seed1" / "rn50.pt"
    make_synthetic("RN50", 1, other)
    assert sha256(other) != sha256(rn50_checkpoint)


def test_describe_records_sha256_and_synthetic(rn50_checkpoint):
    info = describe(rn50_checkpoint, "RN50", "synthetic")
    assert info["synthetic"] is True and info["checkpoint_sha256"] == sha256(rn50_checkpoint)


def test_loaded_model_equals_cn_clip_create_model(rn50_checkpoint):
    from cn_clip.clip.utils import create_model

    ours = load_model(rn50_checkpoint, "RN50")
    theirs = create_model("RN50@RBT3-chinese", torch.load(rn50_checkpoint, weights_only=True)).float().eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(ours.encode_image(x), theirs.encode_image(x))
    assert ours.bert is None, "the image path holds no copy of the text tower"
    both = load_model(rn50_checkpoint, "RN50", text_tower=True)
    text = torch.randint(1, 100, (1, 52))
    with torch.inference_mode():
        assert torch.equal(both.encode_text(text), theirs.encode_text(text))


def test_wrong_architecture_names_the_first_mismatched_tensor(rn50_checkpoint):
    with pytest.raises(ConfigError, match=r"not a ViT-B-16 checkpoint: tensor '.*'"):
        check_architecture(load_state_dict(rn50_checkpoint), "ViT-B-16", rn50_checkpoint)


def test_missing_truncated_and_non_checkpoint_files(tmp_path, rn50_checkpoint):
    with pytest.raises(ConfigError, match="does not exist"):
        load_state_dict(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ConfigError, match="not a PyTorch checkpoint"):
        load_state_dict(tmp_path / "text.pt")
    data = rn50_checkpoint.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="cut.pt"):
        load_state_dict(tmp_path / "cut.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="no 'state_dict'"):
        load_state_dict(tmp_path / "other.pt")


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {"module.x": RunsCode(marker)}}, tmp_path / "evil.pt")
    with pytest.raises(ConfigError, match="could run code: refused") as err:
        load_state_dict(tmp_path / "evil.pt")
    assert "posix.system" in str(err.value), "names what it refused"
    assert "weights_only` set to `False`" not in str(err.value), "never suggests the unsafe way out"
    assert not marker.exists()


def test_meta_model_builds_without_weights():
    model = new_model("ViT-B-16", meta=True)
    assert all(p.is_meta for p in model.parameters())
