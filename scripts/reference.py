"""reference: the features of each item of a shard (images, or labels' prompts) by one stage: the ground truth
(cn_clip's PyTorch model, fp32: encode_image or encode_text), and the fp32 and fp16 ONNX of that tower
on the reference runtime (the seed's online reference; backends.reference(), its graph_session)."""
from pathlib import Path

import numpy as np

from pipeline.common import log, model_input_files, unnamed_inputs, write_npy


def torch_features(model, inputs: np.ndarray, tower: str = "image") -> np.ndarray:
    import torch

    encode = model.encode_image if tower == "image" else model.encode_text
    with torch.inference_mode():
        return encode(torch.from_numpy(inputs)).float().numpy()


def reference_runner(stage: str, arch: str, tower: str, model_file: str, threads: int):
    """features(inputs) of one stage on `threads` threads, its model loaded once (a job runs it over a
    shard of items). torch is told its threads: it would take OMP_NUM_THREADS, which Snakemake sets to
    the job's scaled threads (1 under `-c1`), which the reference runtime ignores."""
    if stage == "torch_fp32":
        import torch

        from model.clip import load_model

        torch.set_num_threads(threads)
        model = load_model(model_file, arch, text_tower=tower == "text")
        return lambda inputs: torch_features(model, inputs, tower)
    import backends
    from backends.base import model_inputs
    from graph import load_graph

    # the reference runtime (backends.reference()) with all its optimisations, as the seed ran it
    sess = backends.reference().graph_session(model_file, threads, "all")
    (inp,), out = model_inputs(model_file), load_graph(model_file).graph.output[0].name
    return lambda inputs: sess.run([out], {inp.name: inputs})[0].astype(np.float32, copy=False)


def write_references(stage: str, arch: str, tower: str, model_file: str, inputs: list[str], outputs: list[str],
                     features_file: str | None, threads: int) -> None:
    """Each input's features to its output (same order), by one stage whose model is loaded once; all of
    them also to `features_file` (the shard's stack, named by the inputs' stems). `threads`: the
    workflow's (config `threads`, or the physical cores), as infer and benchmark use."""
    from pipeline.common import Progress, write_features

    features = reference_runner(stage, arch, tower, model_file, threads)
    progress = Progress(f"reference {stage} {tower}", len(inputs))
    rows = []
    for npy, out in zip(inputs, outputs, strict=True):
        rows.append(features(np.load(npy)))
        write_npy(rows[-1], out)
        progress.step()
    if features_file:
        write_features(features_file, [Path(f).stem for f in inputs], rows)


def main(smk) -> None:
    stage, p = smk.wildcards.stage, smk.params
    write_references(stage, p.arch, p.tower, smk.input.model,
                     model_input_files(unnamed_inputs(smk.input)), list(smk.output.per_item),
                     smk.output.features, threads=int(p.threads))
    log.info("%s %s: %d items -> %s", stage, p.tower, len(smk.output.per_item), Path(smk.output.per_item[0]).parent)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
