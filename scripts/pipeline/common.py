"""Small helpers every rule script uses: logging to the rule's log and the terminal, hashing,
JSON output, and the thin `snakemake` entry."""

import hashlib
import json
import logging
import os
import sys
import time
from pathlib import Path

log = logging.getLogger("cnclip-deploy")


def setup_logging(log_file: str | None = None) -> logging.Logger:
    """Log to the rule's log file and to stderr (so long steps show progress in the terminal)."""
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    handlers = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(fmt)
        log.addHandler(handler)
    log.propagate = False
    return log


def sha256(path: str | os.PathLike, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def artifact(path: str | os.PathLike, **extra) -> dict:
    """The report's description of one file: path, bytes, sha256 (+ extra keys)."""
    path = Path(path)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256(path), **extra}


def write_json(path: str | os.PathLike, data) -> None:
    """Write atomically: a reader never sees half a file, a crash leaves no partial output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def unnamed_inputs(files) -> list[str]:
    """A job's input files that have no name (a shard's model inputs: rules/common.smk shard_inputs)."""
    named = set()
    for key in files.keys():
        value = files[key]
        named.update([value] if isinstance(value, str) else value)
    return [str(f) for f in files if f not in named]


def write_shard_list(path: str | os.PathLike, items: list[str], files: list[str]) -> None:
    """A shard's model input files, by item (paths.npy_shard): what model_input_files expands."""
    if len(items) != len(files):
        raise ValueError(f"{path}: {len(items)} items but {len(files)} files")
    write_json(path, {"items": list(items), "files": [str(f) for f in files]})


def model_input_files(paths) -> list[str]:
    """A job's model input files: each path as given, except a shard's list (write_shard_list), which
    stands for the files it lists, in its order. A listed file that is gone (deleted by hand after its
    shard was made) is an error that names it and the command that remakes it."""
    out = []
    for path in map(str, paths):
        if not path.endswith(".json"):
            out.append(path)
            continue
        listed = read_json(path)["files"]
        missing = [f for f in listed if not Path(f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} file(s) listed in {path} are gone, e.g. {missing[0]}: remake them with "
                f"`snakemake -c1 {' '.join(missing[:3])}` (or delete {path} to rerun the shard)")
        out.extend(listed)
    return out


def write_npy(array, out: str | os.PathLike) -> None:
    """One array to `out` (.npy), written under another name and renamed: a reader never sees half a file."""
    import numpy as np

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, out)


def write_features(path: str | os.PathLike, items: list[str], rows: list) -> None:
    """One shard's features by one stage in one file: `items` (names) and `features` (a row per item, in
    that order). Similarity and zero-shot read these instead of a file per item, so their plan looks up
    a file per shard, not per item (the per-item files stay, for users and the device tool's layout)."""
    import numpy as np

    if len(items) != len(rows):
        raise ValueError(f"{path}: {len(items)} items but {len(rows)} feature rows")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object: np.savez would add .npz to a name without it
        np.savez(f, items=np.array(items, dtype=str), features=np.stack([np.ravel(r) for r in rows]))


def read_features(paths) -> dict:
    """{item: features row} of one stage's shard files (write_features), in the files' order; an item
    found twice is an error (two shards claiming one item)."""
    import numpy as np

    out = {}
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            for item, row in zip(data["items"].tolist(), data["features"], strict=True):
                if item in out:
                    raise ValueError(f"{path}: item '{item}' is in another shard's features too")
                out[item] = row
    return out


def remove_stale_scratch(parent: str | os.PathLike, prefix: str) -> None:
    """Remove scratch folders `prefix*` in `parent` left by a killed earlier run of the same job.
    Prefixes are per job (e.g. per batch size), so a concurrent job's scratch is never touched."""
    import shutil

    parent = Path(parent)
    if parent.is_dir():
        for stale in parent.glob(f"{prefix}*"):
            if stale.is_dir():
                log.info("removing scratch left by an interrupted run: %s", stale)
                shutil.rmtree(stale, ignore_errors=True)


class Progress:
    """Logs `done/total` at most every `every` seconds, and at the end."""

    def __init__(self, what: str, total: int, every: float = 10.0):
        self.what, self.total, self.every = what, total, every
        self.start = self.last = time.perf_counter()
        self.done = 0

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            log.info("%s: %d/%d (%.1f s)", self.what, self.done, self.total, now - self.start)


def run_entry(main, smk) -> None:
    """Thin entry for `script:` rules: logging to snakemake.log[0], errors as one clear line."""
    setup_logging(smk.log[0] if smk.log else None)
    if os.environ.get("SLURM_JOB_ID"): log.info("SLURM_JOB_ID=%s", os.environ["SLURM_JOB_ID"])  # noqa: E701
    try:
        main(smk)
    except Exception as exc:  # noqa: BLE001 - logged with traceback, then re-raised for Snakemake
        log.exception("%s failed: %s", smk.rule, exc)
        raise
