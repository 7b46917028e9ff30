import pytest
import yaml
from snakemake.utils import validate

import paths
from config_check import coerce_cli_types
from paths import ConfigError, discover_images

REPO_CONFIG = paths.Path(__file__).resolve().parents[2] / "config"


def test_discovers_images_case_insensitively_and_skips_other_files(tmp_path):
    for name in ("a.JPG", "b c.png", "中文.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert sorted(discover_images(str(tmp_path))) == ["a", "b c", "中文"]


def test_missing_and_empty_folder_name_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="does-not-exist.*does not exist"):
        discover_images(str(tmp_path / "does-not-exist"))
    with pytest.raises(ConfigError, match="holds no images"):
        discover_images(str(tmp_path))


def test_colliding_stems_and_dotted_stems_rejected(tmp_path):
    for name in ("a.jpg", "a.png", "x.y.jpg"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ConfigError) as err:
        discover_images(str(tmp_path))
    assert "a.jpg" in str(err.value) and "a.png" in str(err.value) and "x.y.jpg" in str(err.value)


def load_config():
    return yaml.safe_load((REPO_CONFIG / "config.yaml").read_text())


def test_default_config_is_valid_and_has_the_contract_keys():
    config = load_config()
    validate(config, str(REPO_CONFIG / "schema.yaml"))
    assert config["model_arch"] == "ViT-H-14" and config["checkpoint"] == "synthetic"
    assert config["backend"] == "onnxruntime" and config["soc_version"] == "Ascend910B4"
    assert config["batch_sizes"] == [1] and config["loop"] == 100 and not config["images"]


@pytest.mark.parametrize("key,value", [("model_arch", "ViT-X"), ("batch_sizes", [0]), ("loop", "many"),
                                       ("soc_version", "GTX1080"), ("backend", "tpu"), ("unknown_key", 1)])
def test_bad_config_rejected(key, value):
    config = load_config()
    config[key] = value
    with pytest.raises(Exception):
        validate(config, str(REPO_CONFIG / "schema.yaml"))


def test_paths_follow_the_contract():
    assert paths.npy("ViT-H-14", "cat") == "results/ViT-H-14/npy/cat.npy"
    assert paths.dst("ViT-H-14", "ascend", "Ascend910B4", "cat") == "results/ViT-H-14/ascend/Ascend910B4/dst/cat_0.npy"
    assert paths.onnx_fp16("ViT-H-14").startswith("results/ViT-H-14/onnx/")
    assert paths.devices("onnxruntime", "Ascend910B4", []) == ["cpu"]
    assert paths.devices("ascend", "Ascend910B4", ["Ascend310P3", "Ascend910B4"]) == ["Ascend310P3", "Ascend910B4"]


def test_command_line_numbers_are_coerced_where_the_schema_wants_numbers():
    schema = yaml.safe_load((REPO_CONFIG / "schema.yaml").read_text())
    config = coerce_cli_types({"batch_sizes": ["1", "4"], "gates": {"vs_torch_fp32": "0.5"}, "loop": 3,
                                     "model_arch": "ViT-B-16", "images": "1"}, schema)
    assert config == {"batch_sizes": [1, 4], "gates": {"vs_torch_fp32": 0.5}, "loop": 3, "model_arch": "ViT-B-16",
                      "images": "1"}
    assert coerce_cli_types({"batch_sizes": ["x"]}, schema) == {"batch_sizes": ["x"]}
