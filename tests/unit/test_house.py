"""The house is kept clean by the test suite (and so by CI): Snakemake's own linter, its formatter
and the Python linter (ruff.toml) pass on the workflow as committed."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("command", [
    ["snakemake", "--lint"],
    ["snakefmt", "--check", "Snakefile", "rules/"],
    ["ruff", "check", "."],
], ids=["snakemake-lint", "snakefmt", "ruff"])
def test_house_checks_pass(command):
    done = subprocess.run([str(BIN / command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"`{' '.join(command)}` failed:\n{out[-4000:]}"
    if command[0] == "snakemake":
        assert "Congratulations" in out, out[-2000:]
