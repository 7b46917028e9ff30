"""reference: the features of one item (an image, or a label's prompt) by one stage: the ground truth
(cn_clip's PyTorch model, fp32: encode_image or encode_text), and the fp32 and fp16 ONNX of that tower
on ONNX Runtime (the seed's online reference), run through the CPU backend's one session factory."""
import numpy as np

from common import log
from preprocess import write_npy


def torch_features(model, inputs: np.ndarray, tower: str = "image") -> np.ndarray:
    import torch

    encode = model.encode_image if tower == "image" else model.encode_text
    with torch.inference_mode():
        return encode(torch.from_numpy(inputs)).float().numpy()


def onnx_features(onnx_path: str, inputs: np.ndarray, threads: int = 0) -> np.ndarray:
    """The ONNX model's one output for its one input (names read from the model)."""
    from backends.onnxruntime import session

    sess = session(onnx_path, threads, optimize=True, level="all")  # ONNX Runtime's defaults, as the seed ran it
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    return sess.run([out.name], {inp.name: inputs})[0].astype(np.float32, copy=False)


def reference_features(stage: str, arch: str, tower: str, npy: str, model_file: str) -> np.ndarray:
    inputs = np.load(npy)
    if stage == "torch_fp32":
        from clip_model import load_model

        return torch_features(load_model(model_file, arch, text_tower=tower == "text"), inputs, tower)
    return onnx_features(model_file, inputs)


def main(smk) -> None:
    w = smk.wildcards
    features = reference_features(w.stage, w.arch, w.tower, smk.input.npy, smk.input.model)
    write_npy(features, smk.output[0])
    log.info("%s %s %s: features %s", w.stage, w.tower, w.item, features.shape)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
