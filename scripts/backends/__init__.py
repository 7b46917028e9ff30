"""The registry of backends. Every module in this folder that sets NAME is a backend, and the module is
its whole plan (base.py says what a plan declares): a new backend is one new module here, its config keys
in config/schema.yaml, and its tests. Nothing outside this folder names a backend; the rules, paths,
accuracy tools, report and profiles ask here.

REFERENCE_RUNTIME is the runtime of the seed's online reference (the onnx_fp32 and onnx_fp16 stages) and of
the accuracy tools' ONNX-level measurements: ONNX Runtime's one session factory."""

import functools
import importlib
import pkgutil
from pathlib import Path

from .base import PreflightError  # the error every plan's preflight raises

__all__ = ["PreflightError", "accelerators", "get", "names", "reference"]

# The backend whose runtime computes the onnx_* reference stages (the seed's `clip_onnx_infer.py` ran them
# on ONNX Runtime) and runs ONNX graphs for the accuracy tools.
REFERENCE_RUNTIME = "onnxruntime"


@functools.cache
def names() -> tuple[str, ...]:
    """Every backend's NAME, found in this folder (modules that set NAME)."""
    found = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if isinstance(getattr(module, "NAME", None), str):
            found.append(module.NAME)
    return tuple(sorted(found))


def get(name: str):
    """The plan (module) of backend `name`."""
    if name not in names():
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{name}")


def reference():
    """The runtime of the reference stages and of the accuracy tools' graph runs (REFERENCE_RUNTIME)."""
    return get(REFERENCE_RUNTIME)


def accelerators() -> tuple[str, ...]:
    """The resources some backend's jobs hold (e.g. "npu"): a rule declares each, 0 or 1 per job."""
    return tuple(sorted({get(n).ACCELERATOR for n in names() if get(n).ACCELERATOR}))
