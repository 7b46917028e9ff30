"""infer: the compiled batch-1 model over a shard's npy inputs (every input while they make one
shard), into dst/{stem}_0.npy (ais_bench's layout, so similarity is one code path for every
backend). The target's backend is the manifest's: a sharded rule has no wildcards."""

from pathlib import Path

import backends
from common import log, read_json, unnamed_inputs


def run_infer(backend: str, manifest: str, npy_files: list[str], dst_dir: str, options: dict) -> None:
    model = read_json(manifest)["model"]
    log.info("%s: %s over %d inputs -> %s", backend, model, len(npy_files), dst_dir)
    backends.get(backend).infer(model, npy_files, dst_dir, options)
    missing = [f for f in npy_files if not (Path(dst_dir) / f"{Path(f).stem}_0.npy").exists()]
    if missing:
        raise RuntimeError(f"{backend} wrote no output for {len(missing)} inputs, e.g. {missing[0]}")


def main(smk) -> None:
    # ais_bench's records beside dst/ are named after params.record: one pair per shard
    options = {**smk.params.options, "record": smk.params.record}
    run_infer(read_json(smk.input.manifest)["backend"], smk.input.manifest, unnamed_inputs(smk.input),
              str(Path(smk.output[0]).parent), options)


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
