"""infer: the compiled batch-1 model over a shard's npy inputs (every input while they make one
shard), into dst/{stem}_0.npy (the device tool's layout, so similarity is one code path for every
backend). The target's backend is the manifest's: a sharded rule has no wildcards."""

from pathlib import Path

import numpy as np

import backends
from pipeline.common import log, model_input_files, read_json, unnamed_inputs, write_features


def run_infer(backend: str, manifest: str, npy_files: list[str], dst_dir: str, options: dict,
              features_file: str | None = None) -> None:
    """The backend's outputs to dst_dir/{stem}_0.npy, and all of them to `features_file` (the shard's
    stack, what similarity reads)."""
    compiled = read_json(manifest)
    model = compiled["model"]
    log.info("%s: %s over %d inputs -> %s", backend, model, len(npy_files), dst_dir)
    if compiled.get("dynamic_batch"):  # a dynamic-batch model: its gears
        options = {**options, "dynamic_batch": compiled["dynamic_batch"]}
    backends.get(backend).infer(model, npy_files, dst_dir, options)
    outputs = {f: Path(dst_dir) / f"{Path(f).stem}_0.npy" for f in npy_files}
    missing = [f for f, out in outputs.items() if not out.exists()]
    if missing:
        raise RuntimeError(f"{backend} wrote no output for {len(missing)} inputs, e.g. {missing[0]}")
    if features_file:
        write_features(features_file, [Path(f).stem for f in npy_files], [np.load(out) for out in outputs.values()])


def main(smk) -> None:
    # a tool's records beside dst/ are named after params.record: one pair per shard
    options = {**smk.params.options, "record": smk.params.record}
    run_infer(read_json(smk.input.manifest)["backend"], smk.input.manifest,
              model_input_files(unnamed_inputs(smk.input)),
              str(Path(smk.output.dst[0]).parent), options, smk.output.features)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
