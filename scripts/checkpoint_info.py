"""checkpoint_info: the provenance record (sha256, synthetic or not) every later step and the report
rely on, written after checking the checkpoint holds every tensor of the architecture."""
from pathlib import Path

from pipeline.common import log, sha256, write_json


def describe(path: str | Path, arch: str, source: str) -> dict:
    """Provenance of a checkpoint after checking it holds every tensor of `arch` with the right
    shape (ConfigError naming the first mismatch otherwise)."""
    from model.clip import check_architecture, load_state_dict
    from model.synthetic import is_synthetic

    check_architecture(load_state_dict(path), arch, path)
    log.info("hashing %s", path)
    return {
        "arch": arch,
        "checkpoint": source,
        "path": str(path),
        "bytes": Path(path).stat().st_size,
        "checkpoint_sha256": sha256(path),
        "synthetic": is_synthetic(path),
    }


def main(smk) -> None:
    write_json(smk.output[0], describe(smk.input.ckpt, smk.wildcards.arch, smk.params.source))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
