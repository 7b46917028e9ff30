"""The text tower on Ascend: ATC's command line for token ids (ND), and int64 inputs for ais_bench."""
import numpy as np
import pytest

from backends.base import TensorSpec
from conftest import image_spec
from tokenize_labels import write_tokens

LABELS = ["猫", "咖啡"]


def test_atc_command_of_the_text_tower_and_int64_inputs(tmp_path):
    from backends import ascend

    image = ascend.commands.atc_command("/m/a.img.fp16.onnx", "/r/model", 1, "Ascend910B4", image_spec(224))
    text = ascend.commands.atc_command("/m/a.txt.fp16.onnx", "/r/model", 4, "Ascend910B4",
                                       TensorSpec("text", ("batch", 52), "int64"), {"precision_mode": "force_fp32"})
    assert text == ["atc", "--framework=5", "--model=/m/a.txt.fp16.onnx", "--output=/r/model", "--input_format=ND",
                    "--input_shape=text:4,52", "--soc_version=Ascend910B4", "--log=error",
                    "--precision_mode=force_fp32"]
    assert image[4:6] == ["--input_format=NCHW", "--input_shape=image:1,3,224,224"]  # the image command as it was
    write_tokens(LABELS, "一张{}的照片", [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert len(ascend.scratch.check_inputs([tmp_path / "a.npy", tmp_path / "b.npy"])) == 2
    np.save(tmp_path / "c.npy", np.zeros((1, 52), np.int32))
    with pytest.raises(ValueError, match="int64 1xL"):
        ascend.scratch.check_inputs([tmp_path / "c.npy"])
