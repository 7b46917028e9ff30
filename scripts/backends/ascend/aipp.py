"""AIPP: the NPU's image pre-processing unit, given to ATC as a static configuration (`--insert_op_conf`), so
the .om takes uint8 pixels and converts and normalises them on the device (config `aipp: true`).

What it can and cannot do (CANN ATC documentation, "AIPP configuration", "Configuration File Template"
atlasatc_16_0025, and the aclAippInfo / aclmdlSetAIPP* API pages):
- input: uint8 images (RGB888_U8 here), laid out NHWC [N, src_image_size_h, src_image_size_w, 3]: a quarter of
  the bytes of a float32 NCHW tensor. The ONNX model's input stays NCHW: AIPP feeds it.
- per channel c: out = (in - mean_chn_c - min_chn_c) * var_reci_chn_c, with mean_chn an integer in [0, 255],
  min_chn a float in [0, 255], var_reci_chn a float in [-65504, 65504]; its output is fp16.
- it cannot resize: cn_clip's bicubic resize to R x R (and its RGB conversion) stays on the host
  (preprocess writes those pixels); cn_clip's transform has no centre crop, so AIPP's crop stays off.

cn_clip normalises x = (p / 255 - mean) / std, i.e. (p - 255 mean) * 1 / (255 std): mean_chn is the integer
part of 255 mean, min_chn the rest, var_reci_chn 1 / (255 std).

emulate() is the proxy of that arithmetic on this host (fp16 after each step, the parameters as fp16, as the
unit holds them); to_pixels() recovers the uint8 pixels from cn_clip's float tensor exactly (their error is
about 1e-5 of a pixel level), so the workflow's float inputs can stand for the pixels where it needs them."""

from __future__ import annotations

import functools
import re

import numpy as np

INPUT_FORMAT = "RGB888_U8"
# field -> (kind, low, high): the ranges the CANN documentation gives
FIELDS = {
    "aipp_mode": ("enum", ("static", "dynamic"), None),
    "related_input_rank": ("int", 0, None),
    "input_format": ("enum", ("YUV420SP_U8", "XRGB8888_U8", "RGB888_U8", "YUV400_U8"), None),
    "src_image_size_w": ("int", 0, 4096),
    "src_image_size_h": ("int", 0, 4096),
    "crop": ("bool", None, None),
    "csc_switch": ("bool", None, None),
    "rbuv_swap_switch": ("bool", None, None),
    **{f"mean_chn_{c}": ("int", 0, 255) for c in range(4)},
    **{f"min_chn_{c}": ("float", 0.0, 255.0) for c in range(4)},
    **{f"var_reci_chn_{c}": ("float", -65504.0, 65504.0) for c in range(4)},
}
REQUIRED = ("aipp_mode", "input_format")


@functools.cache
def cn_clip_normalisation() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of cn_clip's own image transform (its Normalize step), read from cn_clip."""
    from cn_clip.clip.utils import image_transform
    from torchvision.transforms import Normalize

    (norm,) = [t for t in image_transform(224).transforms if isinstance(t, Normalize)]
    return tuple(float(v) for v in norm.mean), tuple(float(v) for v in norm.std)


def parameters(mean, std) -> dict:
    """AIPP's normalisation fields for out = (p / 255 - mean) / std."""
    out = {}
    for c, (m, s) in enumerate(zip(mean, std)):
        scaled = 255.0 * m
        out[f"mean_chn_{c}"] = int(np.floor(scaled))
        out[f"min_chn_{c}"] = scaled - int(np.floor(scaled))
        out[f"var_reci_chn_{c}"] = 1.0 / (255.0 * s)
    return out


def config_text(resolution: int, mean, std) -> str:
    """The static AIPP configuration (prototxt) for cn_clip's normalisation of R x R RGB pixels."""
    fields = {"aipp_mode": "static", "input_format": INPUT_FORMAT, "src_image_size_w": resolution,
              "src_image_size_h": resolution, "crop": False, "csc_switch": False, "rbuv_swap_switch": False,
              **parameters(mean, std)}
    body = "".join(f"    {k}: {_text(v)}\n" for k, v in fields.items())
    return ("# cn_clip's normalisation on the NPU (written by the workflow, scripts/backends/ascend/aipp.py):\n"
            "# out = (pixel - mean_chn - min_chn) * var_reci_chn = (pixel / 255 - mean) / std\n"
            f"aipp_op {{\n{body}}}\n")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def parse(text: str) -> dict:
    """The fields of one `aipp_op { key: value ... }` block, each checked against FIELDS (ValueError naming
    the field and its range)."""
    body = re.sub(r"#[^\n]*", "", text)
    match = re.fullmatch(r"\s*aipp_op\s*\{(?P<body>[^{}]*)\}\s*", body)
    if not match:
        raise ValueError("an AIPP configuration is one `aipp_op { ... }` block")
    fields = {}
    for line in filter(None, (x.strip() for x in match["body"].splitlines())):
        key, sep, value = (p.strip() for p in line.partition(":"))
        if not sep or key not in FIELDS:
            raise ValueError(f"AIPP field {key!r} is not one the workflow writes ({', '.join(FIELDS)})")
        fields[key] = _value(key, value)
    missing = [k for k in REQUIRED if k not in fields]
    if missing:
        raise ValueError(f"AIPP configuration misses {', '.join(missing)} (required)")
    return fields


def _value(key: str, text: str):
    kind, low, high = FIELDS[key]
    if kind == "enum":
        if text not in low:
            raise ValueError(f"AIPP {key}: {text!r}, not one of {', '.join(low)}")
        return text
    if kind == "bool":
        if text not in ("true", "false"):
            raise ValueError(f"AIPP {key}: {text!r}, not true or false")
        return text == "true"
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError:
        raise ValueError(f"AIPP {key}: {text!r} is not an {'integer' if kind == 'int' else 'number'}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"AIPP {key}: {value} outside [{low}, {high if high is not None else '...'}]")
    return value


def check(fields: dict, spec) -> None:
    """ValueError unless the configuration fits the model input `spec` (TensorSpec, NCHW with 3 channels) as
    static RGB888_U8 AIPP without crop: its source size is the input's H x W."""
    if len(spec.shape) != 4 or spec.shape[1] != 3:
        raise ValueError(f"AIPP needs a 4-d NCHW image input with 3 channels; {spec.name} is {spec.shape}")
    if fields.get("aipp_mode") != "static" or fields.get("input_format") != INPUT_FORMAT:
        raise ValueError(f"the workflow writes static {INPUT_FORMAT} AIPP only")
    if fields.get("crop"):
        raise ValueError("cn_clip's transform has no crop: AIPP's crop must stay off")
    size = (fields.get("src_image_size_h"), fields.get("src_image_size_w"))
    if size != tuple(spec.shape[2:]):
        raise ValueError(f"AIPP source size {size} is not the model input's {tuple(spec.shape[2:])}")


def pixel_bytes(spec) -> int:
    """Bytes of one image the device receives with AIPP: uint8 H x W x 3."""
    return int(spec.shape[2]) * int(spec.shape[3]) * 3


def emulate(pixels: np.ndarray, fields: dict) -> np.ndarray:
    """AIPP's arithmetic on uint8 NHWC pixels -> float16 NCHW: each step rounded to fp16, the parameters held
    as fp16 (its output type)."""
    x = np.asarray(pixels)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"AIPP takes uint8 NHWC pixels with 3 channels, not {x.dtype} {x.shape}")
    h = x.astype(np.float16)
    out = np.empty(h.shape, np.float16)
    for c in range(3):
        mean = np.float16(fields.get(f"mean_chn_{c}", 0))
        low = np.float16(fields.get(f"min_chn_{c}", 0.0))
        scale = np.float16(fields.get(f"var_reci_chn_{c}", 1.0))
        out[..., c] = ((h[..., c] - mean).astype(np.float16) - low).astype(np.float16) * scale
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def to_pixels(x: np.ndarray, mean, std) -> np.ndarray:
    """cn_clip's float NCHW tensor back to its uint8 NHWC pixels (p = round((x * std + mean) * 255)): exact for
    tensors cn_clip's transform made. ValueError when a value is off a pixel level by more than 0.01 (not
    such a tensor)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mean, dtype=np.float64).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float64).reshape(1, -1, 1, 1)
    levels = (x * s + m) * 255.0
    pixels = np.rint(levels)
    worst = float(np.abs(levels - pixels).max()) if levels.size else 0.0
    if worst > 0.01 or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"not cn_clip's normalised pixels (off a pixel level by up to {worst:.3g})")
    return np.ascontiguousarray(pixels.astype(np.uint8).transpose(0, 2, 3, 1))
