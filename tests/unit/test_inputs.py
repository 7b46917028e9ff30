"""Hostile inputs: odd images are processed exactly as cn_clip does; bad files and bad config stop
the run at parse time with every problem named."""
import io

import numpy as np
import pytest
import yaml
from cn_clip.clip.utils import image_transform
from PIL import Image

from pipeline.config_check import check_config, check_images, usable_images
from pipeline.paths import ConfigError, discover_images
from preprocess import preprocess_image

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]
SCHEMA = REPO / "config" / "schema.yaml"


def odd_images(folder):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    made = {}
    made["gray.png"] = rgb.convert("L")
    made["palette_transparent.PNG"] = rgb.convert("P")
    made["palette_transparent.PNG"].info["transparency"] = 0
    made["cmyk.jpg"] = rgb.convert("CMYK")
    made["sixteen bit.png"] = Image.fromarray((rng.integers(0, 65535, (40, 30))).astype(np.uint16))
    made["one.png"] = Image.new("RGB", (1, 1), (200, 10, 10))
    made["中文 猫.jpeg"] = rgb
    made["$(touch pwned).jpg"] = rgb
    made["a;b.png"] = rgb
    made["'q'.jpg"] = rgb
    for name, image in made.items():
        image.save(folder / name)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: cn_clip's transform ignores EXIF orientation, and so do we
    rgb.save(folder / "rotated.JPG", exif=exif)
    return sorted(p.name for p in folder.iterdir())


def test_odd_images_are_preprocessed_exactly_like_cn_clip(tmp_path):
    names = odd_images(tmp_path)
    images = discover_images(str(tmp_path))
    assert len(images) == len(names)
    assert check_images(images) == {}
    for path in images.values():
        got = preprocess_image(path, 224)
        expected = image_transform(224)(Image.open(path)).unsqueeze(0).numpy()
        assert got.shape == (1, 3, 224, 224) and got.dtype == np.float32
        assert np.array_equal(got, expected), path
    assert not (tmp_path / "pwned").exists() and not (REPO / "pwned").exists()


def test_exif_orientation_is_ignored_like_cn_clip(tmp_path):
    odd_images(tmp_path)
    rotated = preprocess_image(tmp_path / "rotated.JPG", 224)
    plain = image_transform(224)(Image.open(tmp_path / "rotated.JPG")).unsqueeze(0).numpy()
    assert np.array_equal(rotated, plain)


def test_very_large_image(tmp_path):
    Image.new("RGB", (8000, 6000), (1, 2, 3)).save(tmp_path / "big.png")
    assert check_images({"big": str(tmp_path / "big.png")}) == {}
    assert preprocess_image(tmp_path / "big.png", 224).shape == (1, 3, 224, 224)


def bad_folder(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "good.png")
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (9, 9, 9)).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "zero.jpg").write_bytes(b"")
    (tmp_path / "page.png").write_text("<html><body>not an image</body></html>")
    (tmp_path / "notes.txt").write_text("hello")
    return tmp_path


def test_bad_files_stop_the_run_with_every_file_and_reason(tmp_path):
    folder = bad_folder(tmp_path)
    with pytest.raises(ConfigError) as err:
        usable_images(discover_images(str(folder)), str(folder), skip_bad=False)
    message = str(err.value)
    for name, why in (("truncated.jpg", "truncated"), ("zero.jpg", "empty"), ("page.png", "not an image"),
                      ("notes.txt", "not an image")):
        line = next(row for row in message.splitlines() if name in row)
        assert why in line, line
    assert "good.png" not in message and "skip_bad_images" in message


def test_bad_files_skipped_on_request_are_returned_for_the_report(tmp_path):
    folder = bad_folder(tmp_path)
    good, skipped = usable_images(discover_images(str(folder)), str(folder), skip_bad=True)
    assert list(good) == ["good"] and len(skipped) == 4


def test_the_parse_time_check_reads_no_pixels_of_a_jpeg_or_png(tmp_path, monkeypatch):
    """Headers and trailers only (a dry run of 1,000 photographs decodes none): a JPEG cut short anywhere
    misses its end-of-image marker; corrupt pixels in the middle pass here and stop preprocess, naming the
    file."""
    from PIL import ImageFile

    import preprocess

    buf = io.BytesIO()
    Image.new("RGB", (300, 200), (9, 9, 9)).save(buf, "JPEG")
    data = buf.getvalue()
    (tmp_path / "ok.jpg").write_bytes(data)
    (tmp_path / "cut.jpg").write_bytes(data[:-100])
    Image.new("RGB", (20, 20)).save(tmp_path / "ok.png")
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or None)
    assert check_images({"ok": str(tmp_path / "ok.jpg"), "png": str(tmp_path / "ok.png")}) == {}
    assert "end-of-image" in check_images({"cut": str(tmp_path / "cut.jpg")})[str(tmp_path / "cut.jpg")]
    assert loads == [], "no image decoded"
    monkeypatch.undo()
    png = (tmp_path / "ok.png").read_bytes()
    idat = png.index(b"IDAT") + 8
    (tmp_path / "mid.png").write_bytes(png[:idat] + bytes(b ^ 0x5A for b in png[idat:idat + 8]) + png[idat + 8:])
    assert check_images({"mid": str(tmp_path / "mid.png")}) == {}, "its trailer is there"
    with pytest.raises(RuntimeError, match=r"mid\.png cannot be decoded .*remove or replace it"):
        preprocess.preprocess_images([str(tmp_path / "mid.png")], [str(tmp_path / "mid.npy")], 64)


def default_config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("key,value,expected", [
    ("loop", "many", "config key 'loop'"),
    ("batch_sizes", [0], "config key 'batch_sizes[0]'"),
    ("model_arch", "ViT-Q", "config key 'model_arch'"),
    ("soc_version", "Ascend999", "config key 'soc_version'"),
    ("colour", "blue", "unknown config key 'colour'"),
    ("gates", {"offline_vs_onnx_fp16": 2}, "config key 'gates.offline_vs_onnx_fp16'"),
])
def test_bad_config_names_the_key(key, value, expected):
    config = {**default_config(), key: value}
    with pytest.raises(ConfigError, match=__import__("re").escape(expected)):
        check_config(config, SCHEMA)


def test_command_line_strings_are_coerced():
    config = {**default_config(), "batch_sizes": ["1", "8"], "skip_bad_images": "true", "loop": "20"}
    checked = check_config(config, SCHEMA)
    assert checked["batch_sizes"] == [1, 8] and checked["skip_bad_images"] is True and checked["loop"] == 20
