"""Every backend module implements scripts/backends/base.py's interface with the same signatures, and
a model's inputs are read from the ONNX itself."""
import inspect

import numpy as np
import pytest

import backends
from backends.base import Backend, TensorSpec, model_inputs

NAMES = ("onnxruntime", "ascend")


@pytest.mark.parametrize("name", NAMES)
def test_backend_modules_implement_the_interface_with_the_same_signatures(name):
    module = backends.get(name)
    assert isinstance(module, Backend)
    for member in ("compile", "compile_command", "infer", "benchmark", "versions"):
        expected = [p for p in inspect.signature(getattr(Backend, member)).parameters if p != "self"]
        assert list(inspect.signature(getattr(module, member)).parameters) == expected, (name, member)
    assert isinstance(module.RUNS_ON_HOST_CPU, bool)


def test_model_inputs_come_from_the_onnx(tiny_onnx):
    (spec,) = model_inputs(tiny_onnx["fp32"])
    assert spec == TensorSpec("image", ("batch", 3, 16, 16), "float32")
    assert model_inputs(tiny_onnx["fp16"])[0].dtype == "float32", "fp16 ONNX keeps float32 inputs"
    assert np.dtype(spec.dtype) == np.float32


def test_atc_takes_the_input_name_and_shape_from_the_onnx(tiny_onnx, tmp_path):
    from backends import ascend

    cmd = ascend.compile_command(tiny_onnx["fp16"], tmp_path / "model_bs4", 4, 16, {"device": "Ascend910B4"})
    assert "--input_format=NCHW" in cmd and "--input_shape=image:4,3,16,16" in cmd
