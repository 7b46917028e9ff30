"""ais_bench's path rules, and the private scratch folder every run works in so that ais_bench never sees the
user's names, folders or umask: copies of the inputs named in_000000.npy..., the .om hard-linked when already
safe (else a 0600 copy), an --output folder made 0750 (the package's docstring says where each rule comes from)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from backends.base import PreflightError

# ais_bench's rules (see the module docstring for where each comes from)
AIS_PATH_ILLEGAL = re.compile(r"[^_A-Za-z0-9/.-]")  # PATH_WHITE_LIST_REGEX
AIS_CHARS = "A-Z a-z 0-9 _ - / ."
AIS_MAX_PATH = 1024  # the C++ runtime's limit (File::CheckFile); the Python front end allows 4096
AIS_MAX_NAME = 255
AIS_MAX_DEPTH = 32
AIS_UNSAFE_READ = stat.S_IWGRP | stat.S_IWOTH  # an input or .om with these bits is refused
# the deepest path a run hands to ais_bench, below the scratch folder (an output file)
SCRATCH_TAIL = "ais_bench-infer-xxxxxxxx/out/dst/in_000000_0.npy"



class UnsafePathError(PreflightError):
    """A path ais_bench would refuse that the workflow cannot make safe; the message names the path, the
    rule it breaks and the fix."""


def check_inputs(npy_files: list[str | os.PathLike]) -> list[Path]:
    """Every input: an .npy file, its stem unique, one batch-1 tensor (float32 1xCxHxW images, or int64 1xL
    token ids of the text tower), all the same shape. Any stem is fine (ais_bench sees in_000000.npy ...)."""
    import numpy as np

    paths = [Path(f) for f in npy_files]
    if not paths:
        raise ValueError("no npy inputs for ais_bench")
    seen: dict[str, Path] = {}
    for p in paths:
        if p.suffix != ".npy":
            raise ValueError(f"ais_bench input {p} is not an .npy file")
        if p.stem in seen:
            raise ValueError(f"two inputs share the stem '{p.stem}': {seen[p.stem]} and {p}")
        seen[p.stem] = p
    shapes = set()
    for p in paths:
        arr = np.load(p, mmap_mode="r")
        image = arr.dtype == np.float32 and arr.ndim == 4
        pixels = arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3  # AIPP's uint8 NHWC input
        tokens = arr.dtype == np.int64 and arr.ndim == 2
        if not (image or pixels or tokens) or arr.shape[0] != 1:
            # ais_bench groups files by byte size: a float16 or batch-2 file would silently be paired.
            raise ValueError(f"{p}: {arr.dtype} {tuple(arr.shape)}; ais_bench needs each input to be one float32 "
                             f"1xCxHxW tensor (uint8 1xHxWx3 pixels for a model with AIPP; for the text tower, "
                             f"one int64 1xL tensor of token ids)")
        shapes.add(tuple(arr.shape))
    if len(shapes) > 1:
        raise ValueError(f"inputs have different shapes {sorted(shapes)}")
    return paths


def ais_path_problem(path: str | os.PathLike) -> str | None:
    """Which of ais_bench's rules for a path string `path` breaks (as ais_bench sees it: made absolute, not
    resolved), or None."""
    full = os.path.abspath(path)
    bad = sorted(set(AIS_PATH_ILLEGAL.findall(full)))
    if bad:
        return f"holds {''.join(bad)!r}: ais_bench accepts only the characters {AIS_CHARS} in a path"
    if len(full) > AIS_MAX_PATH:
        return f"is {len(full)} characters long: ais_bench's runtime accepts at most {AIS_MAX_PATH}"
    parts = [p for p in full.split("/") if p]
    if len(parts) > AIS_MAX_DEPTH:
        return f"is {len(parts)} levels deep: ais_bench accepts at most {AIS_MAX_DEPTH}"
    if any(len(p) > AIS_MAX_NAME for p in parts):
        return f"has a name longer than {AIS_MAX_NAME} characters"
    return None


def check_scratch() -> None:
    """Raise UnsafePathError when no safe scratch folder can be made for ais_bench: the temporary folder
    (TMPDIR, else /tmp) must have a path ais_bench accepts and be a writable folder. Call before any job."""
    tmp = tempfile.gettempdir()
    fix = ("fix: point TMPDIR at a folder whose path holds only those characters, e.g. "
           "`mkdir -p /tmp/ais && export TMPDIR=/tmp/ais`, then run again")
    problem = ais_path_problem(os.path.join(tmp, SCRATCH_TAIL))
    if problem:
        where = "TMPDIR" if os.environ.get("TMPDIR") else "the temporary folder"
        raise UnsafePathError(f"backend ascend: ais_bench would refuse every file of its private scratch folder, "
                              f"because {where} {tmp} (scratch paths like {os.path.join(tmp, SCRATCH_TAIL)}) "
                              f"{problem}; {fix}")
    if not (os.path.isdir(tmp) and os.access(tmp, os.W_OK | os.X_OK)):
        raise UnsafePathError(f"backend ascend: the temporary folder {tmp} (TMPDIR) is not a writable folder; {fix}")


@contextmanager
def private_scratch(prefix: str):
    """A fresh folder under TMPDIR, mode 0700, ASCII name: ais_bench's working directory. Removed afterwards."""
    check_scratch()
    folder = Path(tempfile.mkdtemp(prefix=prefix))  # mkdtemp: 0700, [a-z0-9_] suffix
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def safe_to_link(st: os.stat_result) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    return st.st_uid == os.geteuid() and not mode & AIS_UNSAFE_READ and bool(mode & stat.S_IRUSR)


def stage_model(om: str | os.PathLike, scratch: Path) -> Path:
    """The .om as ais_bench gets it: <scratch>/model.om. A hard link when the file is ours and not group- or
    other-writable (a link shares the file's mode, so it is never chmod-ed through the link: that would
    change the user's file too), else a private 0600 copy."""
    src = Path(om).resolve()
    dst = scratch / "model.om"
    if safe_to_link(src.stat()):
        try:
            os.link(src, dst)
            return dst
        except OSError:  # another file system, or links not allowed: copy
            pass
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o600)
    return dst


def stage_inputs(paths: list[Path], folder: Path) -> dict[str, Path]:
    """A private 0700 folder of 0600 copies named in_000000.npy ... (ASCII, no dot before .npy, in
    ais_bench's natural order); returns {safe name: source}. Copies, not hard links: a link keeps the source's
    mode (group-writable under umask 002), and chmod through it would change the user's file."""
    folder.mkdir()
    os.chmod(folder, 0o700)
    names = {}
    for i, p in enumerate(paths):
        name = f"in_{i:06d}.npy"
        shutil.copyfile(p, folder / name)
        os.chmod(folder / name, 0o600)
        names[name] = p
    return names


def output_folder(scratch: Path) -> Path:
    """ais_bench's --output: made 0750 (what the 2025 front end demands; the 2024 one sets it itself)."""
    out = scratch / "out"
    out.mkdir()
    os.chmod(out, 0o750)
    return out


def write_atomically(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.partial")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
