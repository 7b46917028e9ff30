"""The registry of backends. Every module (or package) in this folder that sets NAME is a backend, and it is
its whole plan (base.py says what a plan declares): a new backend is one new module here, its config keys
in config/schema.yaml, and its tests. Nothing outside this folder names a backend; the rules, paths,
accuracy tools, report and profiles ask here. reference() is the plan that declares the reference role."""

import functools
import importlib
import pkgutil
from pathlib import Path

from .base import PreflightError  # the error every plan's preflight raises

__all__ = ["PreflightError", "accelerator_count", "accelerators", "batch_models", "get", "names", "reference",
           "takes_pixels"]

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


@functools.cache
def reference():
    """The plan whose runtime computes the reference stages and runs the accuracy tools' graphs: the one
    that declares REFERENCE (base.py)."""
    found = [n for n in names() if get(n).REFERENCE]
    if len(found) != 1:
        raise RuntimeError(f"exactly one backend must declare REFERENCE = True; found {found or 'none'}")
    return get(found[0])


def accelerators() -> tuple[str, ...]:
    """The resources some backend's jobs hold (e.g. "npu"): a rule declares each, 0 or 1 per job."""
    return tuple(sorted({get(n).ACCELERATOR for n in names() if get(n).ACCELERATOR}))


def batch_models(plan, config: dict) -> tuple[str, ...]:
    """The models a plan builds for a target's batch sizes (base.py, batch_models): ("static",) where it
    declares none. ValueError naming the config key when the run's batch sizes cannot make them."""
    return plan.batch_models(config) if hasattr(plan, "batch_models") else ("static",)


def accelerator_count(plan, config: dict, job: str) -> int:
    """How many of its ACCELERATOR one job of a plan uses (base.py, accelerators): 1 where it declares no
    count, 0 for a plan that holds none."""
    if not plan.ACCELERATOR:
        return 0
    return plan.accelerators(config, job) if hasattr(plan, "accelerators") else 1


def takes_pixels(plan, config: dict) -> bool:
    """Whether a plan's image targets take uint8 pixels (base.py, takes_pixels): False where it declares none."""
    return bool(plan.takes_pixels(config)) if hasattr(plan, "takes_pixels") else False
