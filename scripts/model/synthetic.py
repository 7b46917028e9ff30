"""Synthetic checkpoints: deterministic random weights in the official layout, so that every later step runs
exactly as with a real checkpoint (and the report says the weights are synthetic)."""
import os
from pathlib import Path

from pipeline.common import log

SYNTHETIC_MARKER = "synthetic_seed"


def make_synthetic(arch: str, seed: int, out: str | Path) -> None:
    """Seeded random weights for cn_clip's full CLIP model of `arch` (both towers, fp16 as
    published), saved in the official layout {"state_dict": {"module.<name>": tensor}} so the
    loading code is the same for real and synthetic weights. Same (arch, seed): same bytes."""
    import torch

    from model.clip import new_model

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
