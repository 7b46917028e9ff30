"""export_onnx (fp32) and fp16_onnx: the patched upstream exporter (patch_exporter), run for one
tower and one dtype; the two rules differ only by their params (`dtype`) and inputs.

fp32: <prefix>.<img|txt>.fp32.onnx with every weight in one <name>.extra_file; fp16: one file with
float32 inputs and outputs. The image tower takes `image` (float32 Nx3xRxR) and gives
`unnorm_image_features`; the text tower takes `text` (int64 Nx52 token ids) and gives
`unnorm_text_features`; the batch axis is symbolic."""
import os
import subprocess
import sys
from pathlib import Path

from pipeline.common import log, remove_stale_scratch
from pipeline.paths import DTYPES, PART, WORKFLOW_ARCHS

CONVERT = {"image": "--convert-vision", "text": "--convert-text"}


def exporter_command(exporter: str | Path, dtype: str, arch: str, checkpoint: str | Path | None,
                     onnx_prefix: str | Path, opset: int, tower: str = "image") -> list[str]:
    """The patched upstream exporter's command line for one dtype (fp32 or fp16: its --stage) of one tower."""
    command = [sys.executable, str(exporter), "--model-arch", arch, "--save-onnx-path", str(onnx_prefix),
               CONVERT[tower], "--stage", dtype, "--opset-version", str(opset)]
    if dtype == "fp32":
        command += ["--pytorch-ckpt-path", str(checkpoint)]
    if arch in WORKFLOW_ARCHS:  # an architecture cn_clip does not ship (patches/0003-architectures-from-a-model-config-file.patch)
        command += ["--model-config", str(WORKFLOW_ARCHS[arch])]
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
    for p in PART.values():
        for dtype in DTYPES:
            if name.endswith(f".{p}.{dtype}.onnx"):
                return name[: -len(f".{p}.{dtype}.onnx")]
    raise ValueError(f"not an exporter output name: {onnx_path}")


def export(exporter: str | Path, dtype: str, arch: str, tower: str, checkpoint: str | Path | None,
           onnx_out: str | Path, opset: int) -> None:
    if dtype == "fp32":
        # the exporter exports into .export-* beside its outputs; a killed run leaves one behind
        remove_stale_scratch(Path(onnx_out).parent, ".export-")
    run_logged(exporter_command(exporter, dtype, arch, checkpoint, onnx_prefix(onnx_out), opset, tower))


def main(smk) -> None:
    export(smk.input.exporter, smk.params.dtype, smk.wildcards.arch, smk.params.tower, smk.input.get("ckpt"),
           smk.output.onnx, smk.params.opset)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
