"""Synthetic checkpoint variants with a known defect, in the official cn_clip layout, made on top of the
ordinary synthetic checkpoint (checkpoint.make_synthetic): cases the accuracy tools must find and fix.

make_overflow: one residual block of the image tower whose MLP hidden activations pass fp16's largest
value (65504), while the fp32 model stays well behaved. The block's `mlp.c_fc` weight and bias are
multiplied by `scale` and its `mlp.c_proj` weight divided by it. cn_clip's MLP is
c_proj(QuickGELU(c_fc(x))) and QuickGELU(s z) / s -> ReLU(z) for large s, so in fp32 the block's output
keeps its usual size and nothing after it changes scale; but c_fc's output is `scale` times larger:
with the default 2**16, every hidden value whose unscaled size is above 1 is out of fp16's range, so the
fp16 model gets inf there, then NaN (inf x sigmoid(-inf) = inf x 0) and NaN features. Keeping that
block's c_fc MatMul, its bias Add, the QuickGELU nodes and c_proj's MatMul in fp32 repairs it.

The scale is a power of two, so scaling the fp16 tensors is exact (no rounding), except where c_proj's
divided weights fall below fp16's normal range (6.1e-5): they lose bits there, in the checkpoint itself,
so every stage (PyTorch, fp32 and fp16 ONNX) computes with the same coarse c_proj weights."""

import math
import os
from pathlib import Path

from pipeline.common import log

DEFAULT_SCALE = 2.0 ** 16
VARIANT_KEY = "synthetic_variant"


def _prefix(state_dict: dict) -> str:
    return "module." if any(k.startswith("module.") for k in state_dict) else ""


def image_blocks(state_dict: dict) -> int:
    """Number of residual blocks of the image tower (ViT archs; RN50 has none)."""
    p = _prefix(state_dict) + "visual.transformer.resblocks."
    ids = {int(k[len(p):].split(".")[0]) for k in state_dict if k.startswith(p)}
    return max(ids) + 1 if ids else 0


def make_overflow(state_dict: dict, arch: str, block: int | None = None, scale: float = DEFAULT_SCALE) -> dict:
    """A copy of `state_dict` (official layout, with or without the `module.` prefix) whose image-tower
    block `block` (default: the middle one) overflows fp16 in its MLP; tensors not touched are shared."""
    import torch

    layers = image_blocks(state_dict)
    if layers == 0:
        raise ValueError(f"{arch}: no image-tower transformer blocks (only the ViT architectures have them)")
    block = layers // 2 if block is None else block
    if not 0 <= block < layers:
        raise ValueError(f"{arch} has image blocks 0..{layers - 1}, not {block}")
    if scale <= 1 or math.log2(scale) != int(math.log2(scale)):
        raise ValueError(f"scale must be a power of two above 1 (exact in fp16), not {scale}")
    p = f"{_prefix(state_dict)}visual.transformer.resblocks.{block}.mlp."
    out = dict(state_dict)
    for name, factor in ((f"{p}c_fc.weight", scale), (f"{p}c_fc.bias", scale), (f"{p}c_proj.weight", 1 / scale)):
        t = state_dict[name]
        scaled = (t.to(torch.float32) * factor).to(t.dtype)
        if not torch.isfinite(scaled).all():
            raise ValueError(f"{name} x {factor} does not fit {t.dtype}; use a smaller scale")
        out[name] = scaled
    log.info("%s: image block %d's MLP scaled by %g (c_fc) and 1/%g (c_proj)", arch, block, scale, scale)
    return out


def write_overflow_checkpoint(src: str | Path, out: str | Path, arch: str, block: int | None = None,
                              scale: float = DEFAULT_SCALE) -> dict:
    """The overflow variant of checkpoint `src` (e.g. the ordinary synthetic one) saved to `out` in the
    same layout, recording {"kind", "block", "scale", "source"} under `synthetic_variant`. Returns that record."""
    import torch

    checkpoint = torch.load(src, map_location="cpu", weights_only=True, mmap=True)
    sd = checkpoint["state_dict"]
    block = image_blocks(sd) // 2 if block is None else block
    record = {"kind": "fp16_overflow", "block": block, "scale": scale, "source": str(src)}
    new = {**checkpoint, "state_dict": make_overflow(sd, arch, block, scale), VARIANT_KEY: record}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(new, tmp)
    os.replace(tmp, out)
    return record


def variant_of(path: str | Path) -> dict | None:
    """The variant record of a checkpoint, or None for an ordinary one."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get(VARIANT_KEY)


def main(smk) -> None:
    """Helper rule (e.g. `overflow_checkpoint`): input ckpt (the ordinary synthetic checkpoint), output the
    variant; params block (optional), scale (optional)."""
    block = smk.params.get("block")
    write_overflow_checkpoint(smk.input.ckpt, smk.output[0], smk.wildcards.arch,
                              None if block in (None, "") else int(block), float(smk.params.get("scale", DEFAULT_SCALE)))


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
