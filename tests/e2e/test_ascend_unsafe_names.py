"""Issue 12 end to end: the Ascend path through the real workflow with the stand-in atc and ais_bench, the
latter enforcing the real front end's path and permission rules. A checkout whose path holds a space and
'+', images named with spaces, Chinese characters and shell metacharacters, the default Chinese labels of
the text tower, and umask 002 (the .om and inputs group-writable) - all pass; dst/{stem}_0.npy keeps the
user's stems and dst_names.json records what ais_bench saw. An unsafe TMPDIR stops the run before any job.

Runs in a copy of the session's workflow (reusing its checkpoint and ONNX exports)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import E2E_ARCH, E2E_EMBED, E2E_IMAGES, SNAKEMAKE, STANDINS, Workflow, private_copy

pytestmark = pytest.mark.e2e

VENV_BIN = str(Path(sys.executable).parent)
# image stem -> the bundled photograph it is a copy of
USER_IMAGES = {"猫 咪": E2E_IMAGES[0], "rocket;$(touch PWNED)&'x'": E2E_IMAGES[1]}


def standin_env(log: Path, **extra) -> dict:
    return {"PATH": os.pathsep.join([VENV_BIN, str(STANDINS), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])),
            "STANDIN_LOG": str(log), **extra}


def run(wf: Workflow, *extra, umask: int, check=True, config=None):
    cmd = [SNAKEMAKE, "-c2", *extra, *wf.args(config)]
    result = subprocess.run(cmd, cwd=wf.root, env={**os.environ, **wf.env}, capture_output=True, text=True,
                            preexec_fn=lambda: os.umask(umask))
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def ascend_targets(report: dict, tower: str = "image") -> list[dict]:
    """The report's ascend targets of one tower: a text target is its own target (tower "text"); a report
    from before the tower was a coordinate nested it in its image target under "text"."""
    own = [t for t in report["targets"] if t["backend"] == "ascend" and t.get("tower", "image") == tower]
    if own or tower == "image":
        return own
    return [t["text"] for t in report["targets"] if t["backend"] == "ascend" and isinstance(t.get("text"), dict)]


@pytest.fixture(scope="module")
def unsafe_checkout(e2e_workflow, e2e_images, tmp_path_factory):
    """A copy of the session's workflow (results, checkpoint and all) at a path with a space and '+', and an
    image folder whose names hold a space, Chinese characters and shell metacharacters."""
    base = tmp_path_factory.mktemp("unsafe")
    root = base / "my checkout+dev"
    root.mkdir()
    private_copy(e2e_workflow, root)
    images = base / "photos 图片"
    images.mkdir()
    for stem, name in USER_IMAGES.items():
        shutil.copyfile(e2e_images / name, images / f"{stem}{Path(name).suffix}")
    return root, images


def test_unsafe_names_checkout_and_umask_002_pass_with_the_text_tower(unsafe_checkout, tmp_path):
    root, images = unsafe_checkout
    log = tmp_path / "calls.jsonl"
    wf = Workflow(root, {"model_arch": E2E_ARCH, "images": str(images), "loop": 3, "warmup": 1,
                         "backend": "ascend", "towers": ["image", "text"]}, env=standin_env(log))
    run(wf, "report", umask=0o002)
    r = wf.report()
    (target,) = ascend_targets(r)
    (text,) = ascend_targets(r, "text")
    assert r["verdict"] == "PASS"
    assert all(g["passed"] for g in target["accuracy"]["gates"])
    assert all(g["passed"] for g in text["accuracy"]["gates"])
    target_dir = root / target["dir"]
    for stem in USER_IMAGES:
        assert np.load(target_dir / "dst" / f"{stem}_0.npy").shape == (1, E2E_EMBED), "the user's own stem"
    names = json.loads((target_dir / "dst_names.json").read_text())["inputs"]
    assert sorted(v["stem"] for v in names.values()) == sorted(USER_IMAGES)
    # the text tower: outputs named after the default Chinese labels
    text_dst = [d for d in root.glob("results/**/dst") if "text" in d.relative_to(root).parts]
    assert text_dst and all((d / "猫_0.npy").is_file() for d in text_dst)
    # ais_bench never saw an unsafe path
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    ais = [c for c in calls if c["tool"] == "ais_bench"]
    assert ais and all(arg.isascii() and " " not in arg and "+" not in arg for c in ais for arg in c["argv"])
    assert not list(root.rglob("PWNED")) and not (Path.cwd() / "PWNED").exists()


def test_the_mid_2024_ais_bench_and_umask_027_pass_too(unsafe_checkout, tmp_path):
    root, images = unsafe_checkout
    log = tmp_path / "calls.jsonl"
    wf = Workflow(root, {"model_arch": E2E_ARCH, "images": str(images), "loop": 3, "warmup": 1,
                         "backend": "ascend", "soc_version": "Ascend310P3"},
                  env=standin_env(log, STANDIN_AIS_BENCH_VERSION="2024"))
    run(wf, "report", umask=0o027)
    r = wf.report()
    (target,) = ascend_targets(r)
    assert r["verdict"] == "PASS" and target["device"] == "Ascend310P3"
    for stem in USER_IMAGES:
        assert (root / target["dir"] / "dst" / f"{stem}_0.npy").is_file()


def test_an_unsafe_tmpdir_stops_the_run_before_any_job(unsafe_checkout, tmp_path):
    root, images = unsafe_checkout
    bad_tmp = tmp_path / "tmp dir"
    bad_tmp.mkdir()
    wf = Workflow(root, {"model_arch": E2E_ARCH, "images": str(images), "backend": "ascend",
                         "soc_version": "Ascend910B1"}, env=standin_env(tmp_path / "calls.jsonl", TMPDIR=str(bad_tmp)))
    result = run(wf, "report", umask=0o022, check=False)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert str(bad_tmp) in out and "A-Z a-z 0-9 _ - / ." in out and "export TMPDIR=" in out
    assert not list(root.glob("results/**/Ascend910B1")), "no job ran"
