"""Shared fixtures. Expensive artifacts (the synthetic checkpoint, the exported ONNX models) are
built once per test session by running the real workflow once (`e2e_workflow`); tests that need
more targets run Snakemake again in the same copy, so those artifacts are reused."""
import hashlib
import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import paths

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
STANDINS = REPO / "tests" / "standins"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
WORKFLOW_FILES = ("Snakefile", "config", "rules", "scripts", "patches", "profiles", "envs", "report")
# cn_clip's own model code on a few-layer ViT (config/model_configs/ViT-Toy-16.json): every end-to-end test
# but the contract's runs the real workflow on it, in seconds a job instead of a minute
E2E_ARCH = "ViT-Toy-16"
E2E_RESOLUTION, E2E_EMBED = 64, 64  # its image_resolution and embed_dim
# the smallest real architecture: the contract tests run the default run's chain on it (contract_workflow)
CONTRACT_ARCH = "ViT-B-16"
E2E_IMAGES = ("chelsea.png", "rocket.jpg")  # two of the bundled sample photographs
# the default run's one target (onnxruntime fp32 on the CPU) of the image tower, and its text twin
E2E_TARGET = paths.Target(E2E_ARCH, "image", "onnxruntime", "cpu", "fp32")
E2E_TEXT_TARGET = E2E_TARGET.twin("text")
CONTRACT_TARGET = paths.Target(CONTRACT_ARCH, "image", "onnxruntime", "cpu", "fp32")


# config every test run passes (a run's own config overrides it)
TEST_CONFIG = {"ceiling_matmul_size": 512}


def copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow (its own results/, logs/, .snakemake/)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def _link_or_copy(src, dst):
    """A hard link, except ONNX external data (onnx.load refuses a data file with several links)."""
    if str(src).endswith((".extra_file", ".data")):
        shutil.copy2(src, dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def private_copy(wf: "Workflow", dest: Path) -> Path:
    """A workflow copy's tree with its results (big files hard-linked: every job replaces its outputs,
    never writes into them) and its own .snakemake/ (Snakemake rewrites its metadata in place)."""
    for entry in wf.root.iterdir():
        if entry.is_dir():
            big = entry.name in ("results", "resources")
            shutil.copytree(entry, dest / entry.name, symlinks=True, copy_function=_link_or_copy if big else shutil.copy2)
        else:
            shutil.copy2(entry, dest / entry.name)
    return dest


class Workflow:
    """Runs Snakemake in a workflow copy; `config` is passed as --config KEY=VALUE pairs."""

    def __init__(self, root: Path, config: dict, env: dict | None = None):
        self.root, self.config, self.env = root, dict(config), dict(env or {})

    def args(self, config: dict | None = None) -> list[str]:
        # a small ceiling matmul: each benchmark job times 20 of them, 4096^3 would cost ~25 s a job here
        merged = {**TEST_CONFIG, **self.config, **(config or {})}
        return ["--config"] + [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in merged.items()]

    def run(self, *extra: str, config: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env}
        cmd = [SNAKEMAKE, "-c2", *extra, *self.args(config)]
        result = subprocess.run(cmd, cwd=self.root, env=env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}")
        return result

    def plan(self, *targets: str, config: dict | None = None) -> dict[str, int]:
        """{rule: job count} of a dry run (what `snakemake -n` would do)."""
        result = self.run("-n", *targets, config=config)
        counts, in_table = {}, False
        for line in (result.stdout + result.stderr).splitlines():
            parts = line.split()
            if parts[:2] == ["job", "count"]:
                in_table = True
                continue
            if in_table and len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif in_table and parts and not set(line.strip()) <= {"-", " "}:
                break
        return counts

    def report(self) -> dict:
        return json.loads((self.root / "results" / "report.json").read_text())


def standin_env(log: Path) -> dict[str, str]:
    """The environment that puts the stand-in atc, ais_bench and npu-smi (tests/standins) where the real
    ones would be; every call they get is appended to `log` as a JSON line."""
    venv_bin = str(Path(sys.executable).parent)
    return {"PATH": os.pathsep.join([venv_bin, str(STANDINS), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(STANDINS), os.environ.get("PYTHONPATH")])),
            "STANDIN_LOG": str(log)}


# What a dry run may write (Snakemake's own run log and file-inventory cache); nothing else.
TREE_HASH_ASIDE = (".snakemake/log", ".snakemake/iocache")


def tree_hash(root: Path) -> dict[str, str]:
    """{path: sha256 and mode} of every file under `root`, .snakemake/ included, TREE_HASH_ASIDE aside.
    Folders are not files: Snakemake itself creates its empty .snakemake/ folders even in a dry run."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if any(rel == a or rel.startswith(a + "/") for a in TREE_HASH_ASIDE) or "__pycache__" in rel:
            continue
        if p.is_symlink():
            out[rel] = f"link to {os.readlink(p)}"
        elif p.is_file():
            out[rel] = f"{hashlib.sha256(p.read_bytes()).hexdigest()} {oct(p.stat().st_mode)}"
    return out


def start_run_until(wf, marker: str, log: str, *extra: str, config: dict | None = None,
                    timeout: float = 300.0) -> subprocess.Popen:
    """Start `snakemake -c1 report *extra` in its own process group and return once `marker` is in the
    job log `log` (relative to the workflow root)."""
    log_path = wf.root / log
    log_path.unlink(missing_ok=True)
    proc = subprocess.Popen([SNAKEMAKE, "-c1", "report", *extra, *wf.args(config)], cwd=wf.root,
                            env={**os.environ, **wf.env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + timeout
    while marker not in (log_path.read_text(errors="replace") if log_path.exists() else ""):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before '{marker}' appeared in {log}:\n{proc.stdout.read()[-3000:]}")
        if time.time() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"'{marker}' never appeared in {log}")
        time.sleep(0.2)
    return proc


def kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL the whole run (Snakemake and its job) and wait until it is gone."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def e2e_images(tmp_path_factory) -> Path:
    from sample_images import sample_image_source

    folder = tmp_path_factory.mktemp("images")
    for name in E2E_IMAGES:
        shutil.copyfile(sample_image_source(name), folder / name)
    return folder


@pytest.fixture(scope="session")
def e2e_workflow(tmp_path_factory, e2e_images) -> Workflow:
    """The real workflow, E2E_ARCH synthetic, two images, a short benchmark loop, run once."""
    root = copy_workflow(tmp_path_factory.mktemp("workflow"))
    wf = Workflow(root, {"model_arch": E2E_ARCH, "images": str(e2e_images), "loop": 3, "warmup": 1})
    wf.run("report")
    return wf


@pytest.fixture(scope="session")
def contract_workflow(tmp_path_factory, e2e_images) -> Workflow:
    """The default run's chain on a real architecture (CONTRACT_ARCH, synthetic weights), two images, run once."""
    root = copy_workflow(tmp_path_factory.mktemp("contract"))
    wf = Workflow(root, {"model_arch": CONTRACT_ARCH, "images": str(e2e_images), "loop": 3, "warmup": 1,
                         "baseline_loop": 2})
    wf.run("report")
    return wf


@pytest.fixture
def tiny_onnx(tmp_path) -> dict:
    """A tiny image model with cn_clip's I/O names and a symbolic batch axis: fp32 and fp16 ONNX."""
    import onnx
    import torch
    from onnxruntime.transformers.float16 import convert_float_to_float16

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.GELU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 4 * 4, 16)).eval()
    fp32 = tmp_path / "tiny.img.fp32.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 16, 16),), str(fp32), input_names=["image"],
                      output_names=["unnorm_image_features"], dynamic_axes={"image": {0: "batch"},
                      "unnorm_image_features": {0: "batch"}}, opset_version=14, dynamo=False)
    fp16 = tmp_path / "tiny.img.fp16.onnx"
    onnx.save(convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True, disable_shape_infer=True), str(fp16))
    npy_dir = tmp_path / "npy"
    npy_dir.mkdir()
    rng = np.random.default_rng(0)
    npys = []
    for stem in ("a", "b", "c"):
        np.save(npy_dir / f"{stem}.npy", rng.standard_normal((1, 3, 16, 16)).astype(np.float32))
        npys.append(str(npy_dir / f"{stem}.npy"))
    return {"torch": model, "fp32": str(fp32), "fp16": str(fp16), "npy": npys, "resolution": 16}


def image_spec(resolution: int):
    """cn_clip's exported image input as the plans read it from an ONNX (backends.base.model_inputs)."""
    from backends.base import TensorSpec

    return TensorSpec("image", ("batch", 3, resolution, resolution), "float32")
