"""reference: features of one image from the ground truth (cn_clip PyTorch model, fp32) and from
the fp32 and fp16 ONNX models on ONNX Runtime (the seed's online reference)."""

import numpy as np

from common import log
from preprocess import write_npy


def torch_features(model, inputs: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model.encode_image(torch.from_numpy(inputs)).float().numpy()


def onnx_features(onnx_path: str, inputs: np.ndarray, threads: int = 0) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, sess_options=so, providers=["CPUExecutionProvider"])
    return sess.run(["unnorm_image_features"], {"image": inputs})[0].astype(np.float32, copy=False)


def reference_features(stage: str, arch: str, npy: str, model_file: str) -> np.ndarray:
    inputs = np.load(npy)
    if stage == "torch_fp32":
        from clip_model import load_model

        return torch_features(load_model(model_file, arch), inputs)
    return onnx_features(model_file, inputs)


def main(smk) -> None:
    features = reference_features(smk.wildcards.stage, smk.wildcards.arch, smk.input.npy, smk.input.model)
    write_npy(features, smk.output[0])
    log.info("%s %s: features %s", smk.wildcards.stage, smk.wildcards.stem, features.shape)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
