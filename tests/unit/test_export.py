import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from export_onnx import exporter_command, onnx_prefix
from patch_exporter import apply_patches, upstream_exporter

PATCHES = sorted((Path(__file__).resolve().parents[2] / "patches").glob("*.patch"))


def test_patches_apply_cleanly_in_order_to_the_installed_upstream_exporter(tmp_path):
    out = tmp_path / "pytorch_to_onnx.py"
    apply_patches(upstream_exporter(), PATCHES, out)
    py_compile.compile(str(out), doraise=True)
    text = out.read_text()
    assert "dynamo=False" in text and "onnxmltools" not in text.split("# onnxmltools")[0]
    assert "from cn_clip.clip.utils import" in text and "weights_only=True" in text
    help_text = subprocess.run([sys.executable, str(out), "--help"], capture_output=True, text=True).stdout
    assert "--opset-version" in help_text and "--stage" in help_text


def test_a_patch_that_does_not_apply_fails_with_its_name(tmp_path):
    bad = tmp_path / "9999-bad.patch"
    bad.write_text("--- a/pytorch_to_onnx.py\n+++ b/pytorch_to_onnx.py\n@@ -1,1 +1,1 @@\n-no such line\n+x\n")
    with pytest.raises(RuntimeError, match="9999-bad.patch does not apply"):
        apply_patches(upstream_exporter(), [*PATCHES, bad], tmp_path / "out.py")
    assert not (tmp_path / "out.py").exists()


def test_exporter_commands():
    cmd = exporter_command("x.py", "fp32", "ViT-H-14", "c.pt", "results/ViT-H-14/onnx/vit-h-14", 14)
    assert cmd[1:] == ["x.py", "--model-arch", "ViT-H-14", "--save-onnx-path", "results/ViT-H-14/onnx/vit-h-14",
                       "--convert-vision", "--stage", "fp32", "--opset-version", "14", "--pytorch-ckpt-path", "c.pt"]
    assert "--pytorch-ckpt-path" not in exporter_command("x.py", "fp16", "ViT-H-14", None, "p", 14)
    assert onnx_prefix("results/A/onnx/vit-b-16.img.fp16.onnx") == "results/A/onnx/vit-b-16"
