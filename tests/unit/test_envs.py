from pathlib import Path

import yaml

ENVS = Path(__file__).resolve().parents[2] / "envs"


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_conda_env_pins_the_same_versions_as_requirements():
    requirements = [line.strip() for line in (ENVS / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    conda = yaml.safe_load((ENVS / "cnclip.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins(requirements)
    assert "python=3.11" in conda["dependencies"]


def test_requirements_pin_the_stack_the_workflow_is_tested_on():
    p = pins((ENVS / "requirements.txt").read_text().splitlines())
    assert p["torch"] == "2.14.1" and p["torchvision"] == "0.29.1" and p["cn-clip"] == "1.6.0"
    assert p["snakemake"].startswith("9.")
    lines = (ENVS / "requirements.txt").read_text().splitlines()
    assert all("==" in line for line in lines if line and not line.startswith("#"))
