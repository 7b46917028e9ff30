import pytest
import yaml
from snakemake.utils import validate

from pipeline import paths
from pipeline.config_check import coerce_cli_types
from pipeline.paths import ConfigError, discover_images

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


def test_colliding_stems_rejected_and_dotted_stems_kept(tmp_path):
    """ais_bench cuts names at the first dot, but it only ever sees the workflow's own names
    (in_000000.npy...): a dot in an image's name is the user's business."""
    for name in ("a.jpg", "a.png", "x.y.jpg"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ConfigError) as err:
        discover_images(str(tmp_path))
    assert "a.jpg" in str(err.value) and "a.png" in str(err.value) and "x.y" not in str(err.value)
    (tmp_path / "a.png").unlink()
    assert sorted(discover_images(str(tmp_path))) == ["a", "x.y"]


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
    t = paths.Target("ViT-H-14", "image", "ascend", "Ascend910B4", "fp16")
    assert t.dir == "results/ViT-H-14/image/ascend/Ascend910B4/fp16"
    assert t.dst("cat") == f"{t.dir}/dst/cat_0.npy" and t.manifest(4) == f"{t.dir}/compile_bs4.json"
    assert paths.onnx("ViT-H-14", "image", "fp16") == "results/ViT-H-14/onnx/vit-h-14.img.fp16.onnx"
    assert paths.onnx_data("ViT-H-14", "text") == "results/ViT-H-14/onnx/vit-h-14.txt.fp32.onnx.extra_file"


def test_rule_patterns_and_values_come_from_the_same_function():
    """Called without coordinates a path function gives the rule's output pattern; formatting the
    pattern with a target's coordinates gives that target's path."""
    pattern, t = paths.Target(), paths.Target("ViT-B-16", "text", "onnxruntime", "cpu", "int8")
    assert pattern.dir == "results/{arch}/{tower}/{backend}/{device}/{precision}"
    assert pattern.similarity().format(**t.coordinates()) == t.similarity()
    assert pattern.benchmark().format(**t.coordinates(), bs=2) == t.benchmark(2)
    assert paths.onnx(dtype="fp32") == "results/{arch}/onnx/{prefix}.{part}.fp32.onnx"
    assert paths.onnx(dtype="fp32").format(arch="ViT-B-16", prefix="vit-b-16", part="txt") == \
        paths.onnx("ViT-B-16", "text", "fp32")
    assert paths.reference().format(arch="A", tower="image", stage="onnx_fp16", item="x") == \
        paths.reference("A", "image", "onnx_fp16", "x")


def test_logs_and_cost_records_sit_at_the_path_of_the_jobs_output():
    t = paths.Target("ViT-B-16", "image", "onnxruntime", "cpu", "fp32")
    assert t.log("compile_bs1") == "logs/ViT-B-16/image/onnxruntime/cpu/fp32/compile_bs1.log"
    assert t.cost("infer") == "benchmarks/ViT-B-16/image/onnxruntime/cpu/fp32/infer.tsv"
    assert paths.log(paths.npy("A", "x")) == "logs/A/npy/x.log"
    assert paths.cost(paths.onnx("A", "image", "fp32")) == "benchmarks/A/onnx/a.img.fp32.tsv"


def test_zero_shot_belongs_to_the_image_target_of_a_pair():
    text = paths.Target("A", "text", "ascend", "Ascend310P3", "fp16")
    assert text.zero_shot() == text.twin("image").dir + "/zero_shot.json"


def test_command_line_numbers_are_coerced_where_the_schema_wants_numbers():
    schema = yaml.safe_load((REPO_CONFIG / "schema.yaml").read_text())
    config = coerce_cli_types({"batch_sizes": ["1", "4"], "gates": {"vs_torch_fp32": "0.5"}, "loop": 3,
                                     "model_arch": "ViT-B-16", "images": "1"}, schema)
    assert config == {"batch_sizes": [1, 4], "gates": {"vs_torch_fp32": 0.5}, "loop": 3, "model_arch": "ViT-B-16",
                      "images": "1"}
    assert coerce_cli_types({"batch_sizes": ["x"]}, schema) == {"batch_sizes": ["x"]}


def test_items_fit_one_shard_named_as_the_rule_until_they_outgrow_it():
    (one,) = paths.shards([f"img{i}" for i in range(128)], 128)
    assert (one.count, len(one.items), one.rule("reference"), one.label) == (1, 128, "reference", "shard1of1")
    many = paths.shards([f"img{i}" for i in range(1000)], 128)
    assert {s.count for s in many} == {8} and sum(len(s.items) for s in many) == 1000
    assert max(len(s.items) for s in many) < 2 * 128, "shards stay about shard_size long"
    assert many[2].rule("reference") == "reference_3of8" and many[2].label == "shard3of8"


def test_adding_an_item_changes_only_its_own_shard():
    stems = [f"photo_{i:04d}" for i in range(900)]
    before = {s.index: s.items for s in paths.shards(stems, 128)}
    after = {s.index: s.items for s in paths.shards(stems + ["new photo"], 128)}
    changed = [i for i in after if after[i] != before.get(i)]
    assert len(changed) == 1 and "new photo" in after[changed[0]]
    assert set(after[changed[0]]) - {"new photo"} == set(before[changed[0]])


def test_a_shards_files_are_named_by_its_items_so_two_image_sets_never_share_one():
    """A results folder sees several image sets (another `images` folder, a single npy asked for by
    name from a second config): each set's shard1of1 list and stacked features must be files of their
    own, or one run overwrites the other's and reruns it (or worse, feeds it the other's images)."""
    (a,) = paths.shards(["astronaut", "cat"], 128)
    (b,) = paths.shards(["astronaut", "dog"], 128)
    (a2,) = paths.shards(["astronaut", "cat"], 128)
    assert a.label == b.label == "shard1of1" and a.name != b.name and a.name == a2.name
    assert a.name.startswith("shard1of1.")
    t = paths.Target("A", "image", "onnxruntime", "cpu", "fp32")
    for path in (lambda s: paths.npy_shard("A", s.name), lambda s: paths.reference_features("A", "image", "onnx_fp32", s.name),
                 lambda s: t.features(s.name)):
        assert path(a) != path(b) and path(a) == path(a2)


def test_doubling_the_shard_count_splits_each_shard_in_two():
    stems = [f"photo_{i:04d}" for i in range(1000)]
    coarse = {item: s.index for s in paths.shards(stems, 256) for item in s.items}
    fine = {item: s.index for s in paths.shards(stems, 128) for item in s.items}
    assert {fine[x] % 4 == coarse[x] for x in stems} == {True}
