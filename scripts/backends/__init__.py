"""One module per backend, each implementing scripts/backends/base.py's Backend interface (the
same functions and signatures): compile, compile_command, infer, benchmark, versions, and
RUNS_ON_HOST_CPU. A new accelerator is one new module here and one config value, with no new rules."""

import importlib


def get(name: str):
    """The backend module `name` (scripts/backends/<name>.py)."""
    return importlib.import_module(f"backends.{name}")
