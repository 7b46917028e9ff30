"""The text tower's export and references (config towers: [image, text]), beside the image tower's
scripts and built on them, so that adding the text tower leaves every image job as it was:

export_text_onnx / fp16_text_onnx: the same patched upstream exporter with --convert-text (input `text`,
int64 token ids, 1 x 52 with a symbolic batch axis; output `unnorm_text_features`); it writes
<prefix>.txt.fp32.onnx + .txt.fp32.onnx.extra_file, then <prefix>.txt.fp16.onnx (one file).
text_reference: features of every label prompt by one stage: torch_fp32 (cn_clip's encode_text, fp32),
onnx_fp32 and onnx_fp16 (ONNX Runtime on the CPU), one prompt at a time as images are."""

from pathlib import Path

import numpy as np

from common import log, remove_stale_scratch
from export_onnx import exporter_command, run_logged
from preprocess import write_npy

INPUT_NAME, OUTPUT_NAME = "text", "unnorm_text_features"
SUFFIXES = (".txt.fp32.onnx", ".txt.fp16.onnx")


def text_exporter_command(exporter: str | Path, stage: str, arch: str, checkpoint: str | Path | None,
                          onnx_prefix: str | Path, opset: int) -> list[str]:
    """The image tower's exporter command line with --convert-text in place of --convert-vision."""
    command = exporter_command(exporter, stage, arch, checkpoint, onnx_prefix, opset)
    return ["--convert-text" if arg == "--convert-vision" else arg for arg in command]


def text_onnx_prefix(onnx_path: str | Path) -> str:
    """results/X/text/onnx/vit-h-14.txt.fp32.onnx -> results/X/text/onnx/vit-h-14 (--save-onnx-path)."""
    name = str(onnx_path)
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    raise ValueError(f"not a text exporter output name: {onnx_path}")


def torch_text_features(model, tokens: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.encode_text(torch.from_numpy(tokens)).float().numpy()


def onnx_text_session(onnx_path: str | Path, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])


def text_features(stage: str, arch: str, token_files: list[str | Path], model_file: str | Path) -> list[np.ndarray]:
    """Features of every prompt (one token file each) by one stage."""
    tokens = [np.load(f) for f in token_files]
    if stage == "torch_fp32":
        from clip_model import load_model

        model = load_model(model_file, arch, text_tower=True)
        return [torch_text_features(model, t) for t in tokens]
    sess = onnx_text_session(model_file)
    return [sess.run([OUTPUT_NAME], {INPUT_NAME: t})[0].astype(np.float32, copy=False) for t in tokens]


def main(smk) -> None:
    if smk.rule == "text_reference":
        features = text_features(smk.wildcards.stage, smk.wildcards.arch, list(smk.input.tokens), smk.input.model)
        for f, out in zip(features, smk.output):
            write_npy(f, out)
        log.info("%s: text features of %d prompts, %s each", smk.wildcards.stage, len(features), features[0].shape)
        return
    stage = "fp32" if smk.rule == "export_text_onnx" else "fp16"
    if stage == "fp32":
        remove_stale_scratch(Path(smk.output.onnx).parent, ".export-")
    checkpoint = smk.input.get("ckpt") if stage == "fp32" else None
    run_logged(text_exporter_command(smk.input.exporter, stage, smk.wildcards.arch, checkpoint,
                                     text_onnx_prefix(smk.output.onnx), smk.params.get("opset", 14)))


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
