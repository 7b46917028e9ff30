"""cn_clip's own model code: architecture facts, checkpoint loading (weights only), the image tower."""

import contextlib
import io
import json
import zipfile
from pathlib import Path

from pipeline.common import log
from pipeline.paths import WORKFLOW_ARCHS, ConfigError


def model_config(arch: str) -> Path | None:
    """The workflow's model config of an architecture cn_clip does not ship (paths.WORKFLOW_ARCHS), else None."""
    return WORKFLOW_ARCHS.get(arch)


def model_info(arch: str) -> tuple[str, int]:
    """(cn_clip model struct, or the workflow's model config file; input resolution) of an architecture."""
    from cn_clip.clip.utils import _MODEL_INFO

    if arch in _MODEL_INFO:
        return _MODEL_INFO[arch]["struct"], _MODEL_INFO[arch]["input_resolution"]
    if model_config(arch):
        return str(model_config(arch)), json.loads(model_config(arch).read_text())["image_resolution"]
    raise ConfigError(f"unknown model_arch '{arch}': cn_clip knows {', '.join(_MODEL_INFO)}; this workflow "
                      f"adds {', '.join(WORKFLOW_ARCHS) or 'none'} (config/model_configs/)")


def _create(arch: str):
    """cn_clip's CLIP of `arch`: cn_clip's own create_model, or for a workflow architecture the steps it takes
    (CLIP(**config), convert_weights) on that architecture's config file."""
    from cn_clip.clip.model import CLIP, convert_weights
    from cn_clip.clip.utils import create_model

    struct, _ = model_info(arch)
    if not model_config(arch):
        return create_model(struct)
    model = CLIP(**json.loads(model_config(arch).read_text()))
    convert_weights(model)
    return model


def new_model(arch: str, meta: bool = False):
    """cn_clip's CLIP for `arch` via cn_clip's own create_model (fp16 weights, as published).
    meta=True builds it without allocating or initialising weights (for loading or shape checks)."""
    import torch

    with contextlib.redirect_stdout(io.StringIO()):  # create_model prints the whole config
        if meta:
            with torch.device("meta"):
                return _create(arch)
        return _create(arch)


def load_state_dict(path: str | Path) -> dict:
    """The checkpoint's state dict with the `module.` prefix removed; data only (weights_only=True:
    a pickle that would run code is refused). Raises ConfigError naming the file and the problem."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"checkpoint '{path}' does not exist: set `checkpoint` to an official Chinese-CLIP .pt file, "
            f"`synthetic` or `download`"
        )
    if not zipfile.is_zipfile(path):
        raise ConfigError(
            f"checkpoint '{path}' is not a PyTorch checkpoint (not a zip archive; truncated or another "
            f"format?): re-download it or point `checkpoint` at the right file"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file and the reason
        text = str(exc).strip()
        if text.startswith("Weights only load failed"):
            # torch's own advice (load with weights_only=False) is exactly what must not be done here
            detail = next((line.strip() for line in text.splitlines()[1:] if line.strip() and
                           not line.startswith("Check the documentation")), "")
            raise ConfigError(
                f"checkpoint '{path}' holds Python objects besides tensors, and unpickling them could run "
                f"code: refused ({detail or 'not weights only'}). Use an official Chinese-CLIP checkpoint "
                f"from a trusted source"
            ) from exc
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ConfigError(
            f"checkpoint '{path}' cannot be loaded ({first}): it may be truncated; re-download it"
        ) from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ConfigError(
            f"checkpoint '{path}' has no 'state_dict' mapping: expected the official Chinese-CLIP layout "
            f"{{'state_dict': {{'module.<name>': tensor}}}}"
        )
    sd = checkpoint["state_dict"]
    return {k.removeprefix("module."): v for k, v in sd.items() if "bert.pooler" not in k}


def check_architecture(sd: dict, arch: str, path: str | Path = "checkpoint") -> None:
    """Every tensor the model of `arch` expects is present with the same shape, else ConfigError
    naming the first mismatch."""
    expected = new_model(arch, meta=True).state_dict()
    for name, tensor in expected.items():
        if name not in sd:
            raise ConfigError(f"checkpoint '{path}' is not a {arch} checkpoint: tensor '{name}' is missing")
        if tuple(sd[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"checkpoint '{path}' is not a {arch} checkpoint: tensor '{name}' has shape "
                f"{tuple(sd[name].shape)}, {arch} expects {tuple(tensor.shape)}"
            )
    extra = sorted(set(sd) - set(expected))
    if extra:
        raise ConfigError(f"checkpoint '{path}' is not a {arch} checkpoint: unexpected tensor '{extra[0]}'")


def load_model(path: str | Path, arch: str, text_tower: bool = False):
    """cn_clip CLIP for `arch` with the checkpoint's weights, fp32, eval mode. Built on the meta
    device and filled from the memory-mapped checkpoint, so no time goes into random init. Without
    `text_tower` the text encoder (cn_clip's `bert`, `text_projection`) is dropped before the fp32
    copy is made: encode_image needs none of it, and ViT-H-14's text tower is ~1.3 GB in fp32."""
    sd = load_state_dict(path)
    check_architecture(sd, arch, path)
    model = new_model(arch, meta=True)
    model.load_state_dict(sd, strict=True, assign=True)
    del sd
    if not text_tower:
        model.bert = None
        model.text_projection = None
    model = model.float().eval()
    meta = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if meta:
        raise RuntimeError(f"tensors left unset after loading {path}: {meta[:5]}")
    log.info("loaded %s weights from %s", arch, path)
    return model
