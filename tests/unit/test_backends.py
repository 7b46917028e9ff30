"""Every backend module declares its whole plan (scripts/backends/base.py) with the same signatures, the
registry finds each by its NAME, and a model's inputs are read from the ONNX itself."""
import inspect

import numpy as np
import pytest

import backends
from backends.base import Backend, TensorSpec, model_inputs

NAMES = backends.names()
PLAN_FUNCTIONS = ("devices", "options", "preflight", "compile", "compile_command", "infer", "benchmark", "versions",
                  "reduced_graph", "build_reduced", "load_reduced", "write_kept")


def test_the_registry_finds_every_backend_module_by_its_name():
    assert {"onnxruntime", "ascend"} <= set(NAMES)
    assert backends.reference().NAME in NAMES
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        backends.get("tpu")


@pytest.mark.parametrize("name", NAMES)
def test_each_backend_declares_its_whole_plan_with_the_same_signatures(name):
    import yaml

    from conftest import REPO

    plan = backends.get(name)
    assert isinstance(plan, Backend) and plan.NAME == name
    for member in PLAN_FUNCTIONS:
        expected = [p for p in inspect.signature(getattr(Backend, member)).parameters if p != "self"]
        assert list(inspect.signature(getattr(plan, member)).parameters) == expected, (name, member)
    assert isinstance(plan.RUNS_ON_HOST_CPU, bool)
    assert plan.DEFAULT_PRECISION in plan.PRECISIONS
    assert set(plan.PRECISIONS.values()) <= {"fp32", "fp16"}, "each precision starts from an exported ONNX"
    assert set(plan.CALIBRATED) <= set(plan.PRECISIONS) and set(plan.REDUCED) <= set(plan.PRECISIONS)
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert set(plan.CONFIG_KEYS) <= set(schema["properties"]), "its config keys are in the schema"
    assert name in schema["$defs"]["backend"]["enum"]
    assert set(plan.PRECISIONS) <= set(schema["properties"]["precision"]["enum"])
    assert set(plan.PRECISIONS) <= set(schema["properties"]["precisions"]["oneOf"][0]["items"]["enum"])
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert plan.devices(config) and isinstance(plan.options(config, plan.DEFAULT_PRECISION), dict)


@pytest.mark.parametrize("name", NAMES)
def test_precisions_auto_is_each_plans_own_choice(name):
    """`precisions: auto` builds what the plan names (fp32, then reduced precisions the run locates, repairs and
    chooses among), and config/schema.yaml accepts each in `precision` and `precisions`."""
    from pipeline.matrix import backend_precisions
    from test_ascend_paths import schema_errors

    plan = backends.get(name)
    auto = backend_precisions(plan, {"precisions": "auto", "precision": ""})
    assert auto == list(plan.AUTO_PRECISIONS) and auto[0] == "fp32" and len(set(auto)) == len(auto)
    assert set(auto) <= set(plan.PRECISIONS) and set(auto[1:]) <= set(plan.REDUCED)
    assert schema_errors(precisions=auto) == [] and all(schema_errors(precision=p) == [] for p in auto)


def test_auto_weighs_cube_fp16in_fp32out_against_fp16_and_fp32_on_ascend():
    from pipeline.matrix import backend_precisions

    assert backend_precisions(backends.get("ascend"), {"precisions": "auto", "precision": ""}) == \
        ["fp32", "fp16", "cube_fp16in_fp32out"]
    assert backend_precisions(backends.get("onnxruntime"), {"precisions": "auto", "precision": ""}) == \
        ["fp32", "fp16", "int8"]


def test_no_two_backends_own_one_config_key():
    owned = [k for n in NAMES for k in backends.get(n).CONFIG_KEYS]
    assert len(owned) == len(set(owned))


def test_model_inputs_come_from_the_onnx(tiny_onnx):
    (spec,) = model_inputs(tiny_onnx["fp32"])
    assert spec == TensorSpec("image", ("batch", 3, 16, 16), "float32")
    assert model_inputs(tiny_onnx["fp16"])[0].dtype == "float32", "fp16 ONNX keeps float32 inputs"
    assert np.dtype(spec.dtype) == np.float32


def test_atc_takes_the_input_name_and_shape_from_the_onnx(tiny_onnx, tmp_path):
    from backends import ascend

    cmd = ascend.compile_command(tiny_onnx["fp16"], tmp_path / "model_bs4", 4, 16, {"device": "Ascend910B4"})
    assert "--input_format=NCHW" in cmd and "--input_shape=image:4,3,16,16" in cmd
