"""Used from another workflow, the Snakemake way: `module cnclip: snakefile: ...` with its own config
and `use rule * from cnclip as cnclip_*`. Paths that belong to this workflow (its scripts, schema and
patches) resolve against its own folder, outputs against the calling workflow's directory."""
import json

import pytest

from pipeline import paths as P
from conftest import E2E_ARCH, REPO, SNAKEMAKE

pytestmark = pytest.mark.e2e


def test_the_workflow_runs_as_a_module_of_another(tmp_path, e2e_images):
    import subprocess

    caller = tmp_path / "caller"
    caller.mkdir()
    config = {"model_arch": E2E_ARCH, "images": str(e2e_images), "loop": 3, "warmup": 1}
    (caller / "Snakefile").write_text(
        f"module cnclip:\n    snakefile:\n        {str(REPO / 'Snakefile')!r}\n    config:\n        {config!r}\n\n\n"
        "use rule * from cnclip as cnclip_*\n")
    dry = subprocess.run([SNAKEMAKE, "-n", "cnclip_report"], cwd=caller, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    for rule in ("cnclip_export_onnx", "cnclip_compile", "cnclip_benchmark", "cnclip_report"):
        assert rule in dry.stdout + dry.stderr
    target = P.checkpoint_info(E2E_ARCH)
    done = subprocess.run([SNAKEMAKE, "-c1", target], cwd=caller, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((caller / target).read_text())
    assert record["arch"] == E2E_ARCH and record["synthetic"] is True
