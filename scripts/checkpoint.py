"""Checkpoint rules: a deterministic synthetic checkpoint, the official download, and the
provenance record (sha256, synthetic or not) every later step and the report rely on."""

import os
from pathlib import Path

from common import log, read_json, sha256, write_json

SYNTHETIC_MARKER = "synthetic_seed"


def make_synthetic(arch: str, seed: int, out: str | Path) -> None:
    """Seeded random weights for cn_clip's full CLIP model of `arch` (both towers, fp16 as
    published), saved in the official layout {"state_dict": {"module.<name>": tensor}} so the
    loading code is the same for real and synthetic weights. Same (arch, seed): same bytes."""
    import torch

    from clip_model import new_model

    torch.manual_seed(seed)
    log.info("building %s with random weights (seed %d)", arch, seed)
    model = new_model(arch)
    state = {f"module.{k}": v.contiguous() for k, v in model.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save({"state_dict": state, SYNTHETIC_MARKER: seed, "arch": arch}, tmp)
    os.replace(tmp, out)
    log.info("wrote %s (%.2f GB, %d tensors)", out, out.stat().st_size / 1e9, len(state))


def is_synthetic(path: str | Path) -> bool:
    import torch

    checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    return SYNTHETIC_MARKER in checkpoint


def describe(path: str | Path, arch: str, source: str) -> dict:
    """Provenance of a checkpoint after checking it holds every tensor of `arch` with the right
    shape (ConfigError naming the first mismatch otherwise)."""
    from clip_model import check_architecture, load_state_dict

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


def fetch_official(arch: str, dest: str | Path) -> None:
    from download import download
    from paths import CHECKPOINT_FILES, CHECKPOINT_URL

    download(CHECKPOINT_URL.format(filename=CHECKPOINT_FILES[arch]), str(dest))


def main(smk) -> None:
    if smk.rule == "synthetic_checkpoint":
        make_synthetic(smk.wildcards.arch, int(smk.params.seed), smk.output[0])
    elif smk.rule == "download_checkpoint":
        fetch_official(smk.wildcards.arch, smk.output[0])
    else:
        write_json(smk.output[0], describe(smk.input.ckpt, smk.wildcards.arch, smk.params.source))


if __name__ == "__main__" and "snakemake" in globals():
    from common import run_entry

    run_entry(main, snakemake)  # noqa: F821
