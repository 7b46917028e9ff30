"""patch_exporter: cn_clip's own exporter (cn_clip/deploy/pytorch_to_onnx.py), copied from the
installed package and patched by patches/*.patch in order, as the seed does by hand."""
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.common import log


def upstream_exporter() -> Path:
    """The exporter shipped inside the installed cn_clip (found without importing cn_clip)."""
    spec = importlib.util.find_spec("cn_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("cn_clip is not installed in this environment: run the README's set-up command")
    return Path(list(spec.submodule_search_locations)[0]) / "deploy" / "pytorch_to_onnx.py"


def apply_patches(upstream: str | Path, patches: list[str | Path], out: str | Path) -> None:
    """Copy `upstream` and apply each patch with `patch`; a patch that does not apply cleanly fails
    the rule with patch's own message (no fuzz: a changed upstream must be looked at)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        work = Path(scratch) / "pytorch_to_onnx.py"
        shutil.copyfile(upstream, work)
        for patch in patches:
            result = subprocess.run(
                ["patch", "--forward", "--fuzz=0", "--no-backup-if-mismatch", str(work), "-i",
                 str(Path(patch).resolve())],
                capture_output=True, text=True,
            )
            log.info("patch %s: %s", patch, (result.stdout + result.stderr).strip())
            if result.returncode != 0:
                raise RuntimeError(f"{patch} does not apply to {upstream}:\n{result.stdout}{result.stderr}")
        os.replace(work, out)


def main(smk) -> None:
    apply_patches(upstream_exporter(), list(smk.input.patches), smk.output[0])


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
