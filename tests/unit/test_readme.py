import re
from pathlib import Path

from pipeline.config_table import config_table

REPO = Path(__file__).resolve().parents[2]


def test_readme_config_reference_equals_the_schema():
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- config-table:start[^>]*-->\n(.*?)\n<!-- config-table:end -->", readme, re.S)
    assert block, "README lost its config-table markers"
    assert block.group(1) == config_table(), \
        "README config table is stale: run .venv/bin/python scripts/pipeline/config_table.py --write README.md"


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    command = "bash envs/setup.sh && .venv/bin/python -m pytest"
    assert command in readme and command in ci
