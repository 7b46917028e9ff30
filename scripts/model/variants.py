"""Synthetic checkpoint variants with a known defect, in the official cn_clip layout, made on top of the
ordinary synthetic checkpoint (model.synthetic.make_synthetic): cases the accuracy tools must find
and fix. Each is planted in one residual block of the image tower (`block`, default the middle one),
changes only that block's tensors (the others are shared with the source), keeps the fp32 model accurate
(the fp32 ONNX on the reference runtime matches cn_clip's PyTorch fp32 model of the same checkpoint) and breaks one
reduced precision, each in its own way. Every factor is a power of two, so scaling fp16 checkpoint tensors
is exact (but where a divided weight falls below fp16's normal range, 6.1e-5: it loses bits there, in the
checkpoint itself, so every stage computes with the same weights); nothing is random beyond the source
checkpoint. `VARIANTS` maps each kind to its function(state_dict, arch, block, **parameters);
write_variant_checkpoint writes one, recording {"kind", "block", <parameters>, "source"}.

fp16_overflow (make_overflow; scale=2**16): the block's MLP hidden activations pass fp16's largest value
(65504). The block's `mlp.c_fc` weight and bias are multiplied by `scale` and its `mlp.c_proj` weight
divided by it. cn_clip's MLP is c_proj(QuickGELU(c_fc(x))) and QuickGELU(s z) / s -> ReLU(z) for large s,
so in fp32 the block's output keeps its usual size and nothing after it changes scale; but c_fc's output
is `scale` times larger: with the default, every hidden value whose unscaled size is above 1 is out of
fp16's range, so fp16 storage (the proxy of fp16 hardware, locate.SegmentRunner) gets inf there, then
NaN (inf x sigmoid(-inf) = inf x 0) and NaN features. Keeping that block's c_fc MatMul, its bias Add,
the QuickGELU nodes and c_proj's MatMul in fp32 repairs it.

int8_activation_outliers (make_activation_outliers; scale=2**8, channels=4, site="attn"): a few channels
of the activation one weight matrix of the block reads become outliers. site "attn": ln_1's output, read
by `attn.in_proj` (queries, keys and values in one MatMul); "mlp": ln_2's output, read by `mlp.c_fc`.
The LayerNorm's weight and bias of `channels` evenly spaced channels (0, 32, 64, 96 at width 128) are
multiplied by `scale`, the matrix's matching input columns divided by it. fp32: (s y)(w / s) = y w (powers
of two), so the fp32 model computes what the ordinary one does (up to the divided weights' fp16 rounding
above). int8 breaks: the workflow's static int8 quantises the matrix's input per tensor (uint8, MinMax
range calibrated on real inputs), and that range is now set by the few large channels: on ViT-Toy-16
block 2, three photographs, the step grows from 0.026 to 4.5 while the ordinary channels' values are of
size 1, so nearly all of them round to zero. Simulated on that MatMul: 94 % relative error from the
activation rounding alone, 18 % from the per-channel int8 weights alone (their step, set by the
undivided columns, is `scale` times too coarse for the outlier channels), 0.8 % and 0.4 % on the ordinary
checkpoint. fp16 is unaffected (values of a few hundred). Excluding the block's in_proj MatMul
(`.../attn/MatMul`; c_fc's for site "mlp") from quantisation repairs it. 2**6 is too weak to fail the 0.99
gate on ViT-Toy-16 (lowest cosine 0.998 at site attn), 2**8 fails it clearly; at site mlp 2**8 reaches
0.976-0.982 and even 2**10 only 0.974-0.982 (the block's whole MLP weighs less than its attention there).

int8_weight_outliers (make_weight_outliers; outlier=2**6, channel=0, site="attn"): one weight matrix of
the block (site "attn": `attn.in_proj`, "mlp": `mlp.c_fc`) gets an outlier in every output channel: input
column `channel` of every row is set to +-`outlier` (sign alternating by row), some 600 times the rows'
ordinary largest entry (about 0.1 on a synthetic ViT). The outlier multiplies an input that is exactly
zero: the LayerNorm's (ln_1's, ln_2's) weight and bias of that channel are set to 0, so in fp32 (and fp16)
the outlier adds exactly nothing; the model loses that one input channel of the matrix, the same in every
stage. int8 breaks: the workflow's static int8 quantises weights symmetrically per output channel, step
max |row| / 127 = `outlier` / 127 (0.5): every ordinary weight of the row rounds to zero, so the matrix's
output is its bias alone (at site attn: queries, keys and values all constant, so the attention adds one
and the same vector to every token). Activation ranges hardly change (one input channel is now 0).
Excluding the block's in_proj MatMul (c_fc's for site "mlp") from quantisation repairs it. At site mlp
the failure is milder (lowest cosine 0.974-0.982 on ViT-Toy-16).

fp16_attention (make_attention; bias=2**9, scale=4): fp16 rounding of the block's attention scores
changes the softmax. In every head one pair of query/key dimensions (the head's last) is replaced by
constants: the rows of `attn.in_proj_weight` for that query and key dimension are set to 0 and their
biases to `bias`, so every score q.k / sqrt(head_dim) gains the same constant bias**2 / sqrt(head_dim)
(32768 at head_dim 64). The other query and key rows (weight and bias) are multiplied by `scale`,
sharpening the attention (scores x scale**2, spread about +-30 on a synthetic ViT), so that a lost
softmax shows in the features. fp32: a constant added to a softmax's row changes nothing, and fp32's step
at 32768 is 2**-8, so the fp32 model is accurate. fp16 storage breaks: the scores are stored in fp16,
whose step at 32768 is 32, so their differences (which the softmax reads) are rounded to multiples of 32:
most scores of a row become equal, and each query attends to the wrong keys; the values stay finite (a
different failure from fp16_overflow's NaN). A CPU runtime's own run of the fp16 graph does not show
it (cosine 1.0: it runs that MatMul -> Softmax chain in fp32, docs/accuracy.md), as it does not show
the overflow. Keeping the block's scores MatMul and its Softmax (`.../attn/MatMul_1`, `.../attn/Softmax`,
with the edge between them) in fp32 repairs it. Measured
on ViT-Toy-16: bias 2**8 (step 8) with scale 2 fails only narrowly (0.964-0.975) and with scale 4 less
(the spread outgrows the step); with `bias` 2**10 the constant passes 65504 and the scores overflow
(inf, then NaN features) instead.

Cosines on ViT-Toy-16 (per image against cn_clip's PyTorch fp32 model of the same checkpoint): see
tests/unit/test_synthetic_variants.py's docstring."""

import functools
import inspect
import math
import os
from pathlib import Path

from pipeline.common import log

DEFAULT_SCALE = 2.0 ** 16
ACTIVATION_SCALE = 2.0 ** 8
ACTIVATION_CHANNELS = 4
WEIGHT_OUTLIER = 2.0 ** 6
ACTIVATION_SITE = "attn"
WEIGHT_SITE = "attn"
ATTENTION_BIAS = 2.0 ** 9
ATTENTION_SCALE = 4.0
LN_OVERFLOW_SCALE = 2.0 ** 16
VALUE_OVERFLOW_SCALE = 2.0 ** 18
VARIANT_KEY = "synthetic_variant"


def _prefix(state_dict: dict) -> str:
    return "module." if any(k.startswith("module.") for k in state_dict) else ""


def image_blocks(state_dict: dict) -> int:
    """Number of residual blocks of the image tower (ViT archs; RN50 has none)."""
    p = _prefix(state_dict) + "visual.transformer.resblocks."
    ids = {int(k[len(p):].split(".")[0]) for k in state_dict if k.startswith(p)}
    return max(ids) + 1 if ids else 0


def text_blocks(state_dict: dict) -> int:
    """Number of layers of the text tower (cn_clip's BERT)."""
    p = _prefix(state_dict) + "bert.encoder.layer."
    ids = {int(k[len(p):].split(".")[0]) for k in state_dict if k.startswith(p)}
    return max(ids) + 1 if ids else 0


def _block(state_dict: dict, arch: str, block: int | None, tower: str = "image") -> tuple[int, str]:
    """The block index (default: the middle one), checked, and the prefix of its tensors' names: an image
    tower's residual block, or a text tower's BERT layer."""
    if tower == "text":
        layers, what, path = text_blocks(state_dict), "text layers", "bert.encoder.layer"
    else:
        layers, what, path = image_blocks(state_dict), "image blocks", "visual.transformer.resblocks"
    if layers == 0:
        raise ValueError(f"{arch}: no image-tower transformer blocks (only the ViT architectures have them)"
                         if tower == "image" else f"{arch}: no text-tower layers")
    block = layers // 2 if block is None else block
    if not 0 <= block < layers:
        raise ValueError(f"{arch} has {what} 0..{layers - 1}, not {block}")
    return block, f"{_prefix(state_dict)}{path}.{block}."


def _power_of_two(name: str, value: float, above_one: bool = True) -> None:
    if value <= (1 if above_one else 0) or math.log2(value) != int(math.log2(value)):
        raise ValueError(f"{name} must be a power of two{' above 1' if above_one else ''} (exact in fp16), "
                         f"not {value}")


def _fits(name: str, t) -> None:
    import torch

    if not torch.isfinite(t).all():
        raise ValueError(f"{name} does not fit {t.dtype}; use a smaller factor")


def make_overflow(state_dict: dict, arch: str, block: int | None = None, scale: float = DEFAULT_SCALE) -> dict:
    """A copy of `state_dict` (official layout, with or without the `module.` prefix) whose image-tower
    block `block` (default: the middle one) overflows fp16 in its MLP; tensors not touched are shared."""
    import torch

    block, p = _block(state_dict, arch, block)
    _power_of_two("scale", scale)
    p += "mlp."
    out = dict(state_dict)
    for name, factor in ((f"{p}c_fc.weight", scale), (f"{p}c_fc.bias", scale), (f"{p}c_proj.weight", 1 / scale)):
        t = state_dict[name]
        scaled = (t.to(torch.float32) * factor).to(t.dtype)
        if not torch.isfinite(scaled).all():
            raise ValueError(f"{name} x {factor} does not fit {t.dtype}; use a smaller scale")
        out[name] = scaled
    log.info("%s: image block %d's MLP scaled by %g (c_fc) and 1/%g (c_proj)", arch, block, scale, scale)
    return out


def outlier_channels(width: int, channels: int) -> list[int]:
    """The `channels` channels of make_activation_outliers: evenly spaced over 0..width-1, from 0."""
    if not 0 < channels <= width:
        raise ValueError(f"channels must be 1..{width}, not {channels}")
    return [i * width // channels for i in range(channels)]


# where the int8 variants plant their defect: the LayerNorm whose output a weight matrix reads
SITES = {"attn": ("ln_1", "attn.in_proj_weight"), "mlp": ("ln_2", "mlp.c_fc.weight")}


def _site(site: str) -> tuple[str, str]:
    if site not in SITES:
        raise ValueError(f"site must be one of {', '.join(SITES)}, not {site!r}")
    return SITES[site]


def make_activation_outliers(state_dict: dict, arch: str, block: int | None = None, scale: float = ACTIVATION_SCALE,
                             channels: int = ACTIVATION_CHANNELS, site: str = ACTIVATION_SITE) -> dict:
    """A copy of `state_dict` whose image block `block` has `channels` channels of one LayerNorm's output
    (site "attn": ln_1, read by attn.in_proj; "mlp": ln_2, read by mlp.c_fc) `scale` times larger,
    compensated exactly by the matrix's matching input columns; tensors not touched are shared."""
    import torch

    block, p = _block(state_dict, arch, block)
    _power_of_two("scale", scale)
    ln, matrix = _site(site)
    width = state_dict[f"{p}{ln}.weight"].shape[0]
    idx = torch.tensor(outlier_channels(width, channels))
    out = dict(state_dict)
    for name, dim, factor in ((f"{p}{ln}.weight", 0, scale), (f"{p}{ln}.bias", 0, scale),
                              (f"{p}{matrix}", 1, 1 / scale)):
        t = state_dict[name]
        new = t.to(torch.float32, copy=True)  # never the source's own tensor
        new.index_copy_(dim, idx, new.index_select(dim, idx) * factor)
        new = new.to(t.dtype)
        _fits(f"{name} x {factor}", new)
        out[name] = new
    log.info("%s: image block %d's %s output channels %s x %g, %s's input columns / %g", arch, block, ln,
             idx.tolist(), scale, matrix, scale)
    return out


def make_weight_outliers(state_dict: dict, arch: str, block: int | None = None, outlier: float = WEIGHT_OUTLIER,
                         channel: int = 0, site: str = WEIGHT_SITE) -> dict:
    """A copy of `state_dict` whose image block `block` has an outlier (+-`outlier`) in input column
    `channel` of every row of one weight matrix (site "attn": attn.in_proj, "mlp": mlp.c_fc), multiplying a
    channel of its LayerNorm's output (ln_1, ln_2) made exactly zero; tensors not touched are shared."""
    import torch

    block, p = _block(state_dict, arch, block)
    _power_of_two("outlier", outlier, above_one=False)
    ln, matrix = _site(site)
    width = state_dict[f"{p}{ln}.weight"].shape[0]
    if not 0 <= channel < width:
        raise ValueError(f"channel must be 0..{width - 1}, not {channel}")
    out = dict(state_dict)
    for name in (f"{p}{ln}.weight", f"{p}{ln}.bias"):
        out[name] = state_dict[name].clone()
        out[name][channel] = 0
    name = f"{p}{matrix}"
    w = state_dict[name].clone()
    signs = 1 - 2 * (torch.arange(w.shape[0]) % 2)  # +1, -1, +1, ...
    w[:, channel] = (signs * outlier).to(w.dtype)
    _fits(f"{name} outlier {outlier}", w)
    out[name] = w
    log.info("%s: image block %d's %s has an outlier +-%g in input column %d (%s channel %d zeroed)",
             arch, block, matrix, outlier, channel, ln, channel)
    return out


def make_attention(state_dict: dict, arch: str, block: int | None = None, bias: float = ATTENTION_BIAS,
                   scale: float = ATTENTION_SCALE) -> dict:
    """A copy of `state_dict` whose image block `block` adds a constant bias**2 / sqrt(head_dim) to every
    attention score (the last query/key dimension of each head made constant `bias`) and sharpens the
    attention (the other query/key rows x `scale`); tensors not touched are shared."""
    import torch

    block, p = _block(state_dict, arch, block)
    _power_of_two("bias", bias, above_one=False)
    _power_of_two("scale", scale, above_one=False)
    w_name, b_name = f"{p}attn.in_proj_weight", f"{p}attn.in_proj_bias"
    width = state_dict[w_name].shape[1]
    heads = attention_heads(arch)
    head_dim = width // heads
    if head_dim * heads != width:
        raise ValueError(f"{arch}: image width {width} is not {heads} heads of equal width")
    const = [h * head_dim + head_dim - 1 for h in range(heads)]  # the last query dimension of each head
    qk = torch.zeros(3 * width, dtype=torch.bool)
    qk[:2 * width] = True
    rows = torch.tensor(const + [width + c for c in const])  # those query rows and the matching key rows
    w = state_dict[w_name].to(torch.float32, copy=True)
    b = state_dict[b_name].to(torch.float32, copy=True)
    w[qk] *= scale
    b[qk] *= scale
    w[rows] = 0
    b[rows] = bias
    out = dict(state_dict)
    for name, new in ((w_name, w.to(state_dict[w_name].dtype)), (b_name, b.to(state_dict[b_name].dtype))):
        _fits(f"{name} (bias {bias}, scale {scale})", new)
        out[name] = new
    log.info("%s: image block %d's attention scores offset by %g (query/key dimensions %s constant %g), "
             "query/key x %g", arch, block, bias * bias / math.sqrt(head_dim), const, bias, scale)
    return out


def make_ln_overflow(state_dict: dict, arch: str, block: int | None = None, scale: float = LN_OVERFLOW_SCALE,
                     channels: int = ACTIVATION_CHANNELS, site: str = ACTIVATION_SITE) -> dict:
    """A copy of `state_dict` whose image block `block` has `channels` channels of one LayerNorm's output
    (site "attn": ln_1, "mlp": ln_2) `scale` times larger, past fp16's range, compensated exactly by the input
    columns of the matrix that reads it (make_activation_outliers with an overflowing scale). In cn_clip's
    ONNX the LayerNorm's output reaches that MatMul through a Cast (cn_clip's LayerNorm casts back to the
    input's dtype), and the MatMul's weight through a Transpose: a kept set that stops at the compute nodes
    leaves both in fp16."""
    return make_activation_outliers(state_dict, arch, block, scale, channels, site)


def make_value_overflow(state_dict: dict, arch: str, block: int | None = None, scale: float = VALUE_OVERFLOW_SCALE,
                        channels: int = ACTIVATION_CHANNELS, tower: str = "image") -> dict:
    """A copy of `state_dict` whose block `block` computes `channels` channels of its attention's values
    `scale` times larger, past fp16's range, compensated exactly by the matching input columns of the
    attention's output projection (divided by `scale`): softmax(..) (s v) W / s = softmax(..) v W. On the way
    the values pass the attention's Reshape and Transpose nodes (split into heads, merged back) and its
    probabilities x values MatMul. tower "image": the ViT block's in_proj value rows (weight and bias) and
    out_proj; "text": the BERT layer's attention.self.value and attention.output.dense."""
    import torch

    block, p = _block(state_dict, arch, block, tower)
    _power_of_two("scale", scale)
    if tower == "text":
        w_in, b_in, w_out, first = (f"{p}attention.self.value.weight", f"{p}attention.self.value.bias",
                                    f"{p}attention.output.dense.weight", 0)
        width = state_dict[w_in].shape[0]
    else:
        w_in, b_in, w_out = f"{p}attn.in_proj_weight", f"{p}attn.in_proj_bias", f"{p}attn.out_proj.weight"
        width = state_dict[w_in].shape[1]
        first = 2 * width  # in_proj's rows: queries, keys, values
    idx = outlier_channels(width, channels)
    out = dict(state_dict)
    for name, dim, rows, factor in ((w_in, 0, [first + i for i in idx], scale), (b_in, 0, [first + i for i in idx], scale),
                                    (w_out, 1, idx, 1 / scale)):
        t = state_dict[name].to(torch.float32, copy=True)  # never the source's own tensor
        at = torch.tensor(rows)
        t.index_copy_(dim, at, t.index_select(dim, at) * factor)
        new = t.to(state_dict[name].dtype)
        _fits(f"{name} x {factor}", new)
        out[name] = new
    log.info("%s: %s block %d's attention value channels %s x %g, the output projection's inputs / %g", arch,
             tower, block, idx, scale, scale)
    return out


@functools.cache
def attention_heads(arch: str) -> int:
    """The image tower's attention heads of `arch`, from cn_clip's model built on the meta device
    (vision_width // vision_head_width: 64 wide heads but for ViT-H-14's 80)."""
    from model.clip import new_model

    return new_model(arch, meta=True).visual.transformer.resblocks[0].attn.num_heads


VARIANTS = {
    "fp16_overflow": make_overflow,
    "int8_activation_outliers": make_activation_outliers,
    "int8_weight_outliers": make_weight_outliers,
    "fp16_attention": make_attention,
    "fp16_ln_overflow": make_ln_overflow,
    "fp16_value_overflow": make_value_overflow,
}


def tower_of(kind: str, params: dict) -> str:
    """The tower a variant plants its defect in."""
    return params.get("tower", "image")


def variant_params(kind: str, **kw) -> dict:
    """The variant's parameters beyond (state_dict, arch, block): its defaults updated with `kw`."""
    if kind not in VARIANTS:
        raise ValueError(f"unknown variant {kind!r}; known: {', '.join(VARIANTS)}")
    params = {name: p.default for name, p in inspect.signature(VARIANTS[kind]).parameters.items()
              if name not in ("state_dict", "arch", "block")}
    unknown = sorted(set(kw) - set(params))
    if unknown:
        raise ValueError(f"variant {kind} takes {', '.join(params) or 'no parameters'}, not {', '.join(unknown)}")
    return {**params, **kw}


def write_variant_checkpoint(src: str | Path, out: str | Path, arch: str, kind: str, block: int | None = None,
                             **kw) -> dict:
    """The `kind` variant (VARIANTS) of checkpoint `src` (e.g. the ordinary synthetic one) saved to `out`
    in the same layout, recording {"kind", "block", <its parameters>, "source"} under `synthetic_variant`.
    Returns that record."""
    import torch

    params = variant_params(kind, **kw)
    checkpoint = torch.load(src, map_location="cpu", weights_only=True, mmap=True)
    sd = checkpoint["state_dict"]
    block, _ = _block(sd, arch, block, tower_of(kind, params))
    record = {"kind": kind, "block": block, **params, "source": str(src)}
    new = {**checkpoint, "state_dict": VARIANTS[kind](sd, arch, block, **params), VARIANT_KEY: record}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save(new, tmp)
    os.replace(tmp, out)
    return record
