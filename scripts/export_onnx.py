"""export_onnx / fp16_onnx: cn_clip's own exporter (cn_clip/deploy/pytorch_to_onnx.py), copied from
the installed package and patched by patches/*.patch in order, as the seed does by hand."""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import log, remove_stale_scratch


def upstream_exporter() -> Path:
    """The exporter shipped inside the installed cn_clip (found without importing cn_clip)."""
    spec = importlib.util.find_spec("cn_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cn_clip is not installed in this environment: run the README's set-up command")
    return Path(list(spec.submodule_search_locations)[0]) / "deploy" / "pytorch_to_onnx.py"


def apply_patches(upstream: str | Path, patches: list[str | Path], out: str | Path) -> None:
    """Copy `upstream` and apply each patch with `patch`; a patch that does not apply cleanly fails
    the rule with patch's own message (no fuzz: a changed upstream must be looked at)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        work = Path(scratch) / "pytorch_to_onnx.py"
        shutil.copyfile(upstream, work)
        for patch in patches:
            result = subprocess.run(
                ["patch", "--forward", "--fuzz=0", "--no-backup-if-mismatch", str(work), "-i",
                 str(Path(patch).resolve())],
                capture_output=True, text=True,
            )
            log.info("patch %s: %s", patch, (result.stdout + result.stderr).strip())
            if result.returncode != 0:
                raise RuntimeError(f"{patch} does not apply to {upstream}:\n{result.stdout}{result.stderr}")
        os.replace(work, out)


def exporter_command(exporter: str | Path, stage: str, arch: str, checkpoint: str | Path | None,
                     onnx_prefix: str | Path, opset: int) -> list[str]:
    """The patched upstream exporter's command line for one stage (fp32 or fp16), vision tower."""
    command = [sys.executable, str(exporter), "--model-arch", arch, "--save-onnx-path", str(onnx_prefix),
               "--convert-vision", "--stage", stage, "--opset-version", str(opset)]
    if stage == "fp32":
        command += ["--pytorch-ckpt-path", str(checkpoint)]
    return command


def run_logged(command: list[str]) -> None:
    """Run a command, streaming its output line by line to the log (and so to the terminal)."""
    log.info("running: %s", " ".join(command))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        tail = []
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-40:]
            log.info("| %s", line)
    if proc.returncode != 0:
        raise RuntimeError(f"exit status {proc.returncode} from {command[1]}; last lines:\n" + "\n".join(tail))


def onnx_prefix(onnx_path: str | Path) -> str:
    """results/X/onnx/vit-h-14.img.fp32.onnx -> results/X/onnx/vit-h-14 (the exporter's --save-onnx-path)."""
    name = str(onnx_path)
    for suffix in (".img.fp32.onnx", ".img.fp16.onnx"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"not an exporter output name: {onnx_path}")


def main(smk) -> None:
    if smk.rule == "patch_exporter":
        apply_patches(upstream_exporter(), list(smk.input.patches), smk.output[0])
        return
    stage = "fp32" if smk.rule == "export_onnx" else "fp16"
    if stage == "fp32":
        # the exporter exports into .export-* beside its outputs; a killed run leaves one behind
        remove_stale_scratch(Path(smk.output.onnx).parent, ".export-")
    checkpoint = smk.input.get("ckpt") if stage == "fp32" else None
    run_logged(exporter_command(smk.input.exporter, stage, smk.wildcards.arch, checkpoint,
                                onnx_prefix(smk.output.onnx), smk.params.get("opset", 14)))


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
