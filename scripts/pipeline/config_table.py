"""The README's configuration reference, generated from config/schema.yaml (a test keeps them equal).
Usage: .venv/bin/python scripts/pipeline/config_table.py [--write README.md]   (print, or rewrite the README's block)"""
import json
import re
import sys
from pathlib import Path

import yaml

if not __package__:  # run as a script: scripts/ on the path, for the pipeline package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.config_check import SCHEMA  # noqa: E402


DEFS = yaml.safe_load(SCHEMA.read_text()).get("$defs", {})


def _type(spec: dict) -> str:
    if "$ref" in spec:
        spec = DEFS[spec["$ref"].rsplit("/", 1)[-1]]
        if "enum" not in spec:
            return spec.get("type", "string")
    if "oneOf" in spec:
        return " or ".join(_type(branch) for branch in spec["oneOf"])
    if "enum" in spec:
        return " \\| ".join(f"`{v}`" if v != "" else '`""`' for v in spec["enum"])
    t = spec.get("type", "object")
    if t == "array":
        return f"list of {_type(spec['items'])}"
    return " or ".join(t) if isinstance(t, list) else t


def rows(properties: dict, prefix: str = "") -> list[str]:
    out = []
    for key, spec in properties.items():
        default = json.dumps(spec.get("default"), ensure_ascii=False)
        if spec.get("type") == "object" and "properties" in spec:
            out.append(f"| `{prefix}{key}` | mapping | | {spec.get('description', '')} |")
            out += rows(spec["properties"], prefix=f"{prefix}{key}.")
        else:
            out.append(f"| `{prefix}{key}` | {_type(spec)} | `{default}` | {spec.get('description', '')} |")
    return out


def config_table(schema_path: Path = SCHEMA) -> str:
    schema = yaml.safe_load(schema_path.read_text())
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *rows(schema["properties"])])


def write_readme(readme: Path) -> None:
    text = readme.read_text()
    block = re.compile(r"(<!-- config-table:start[^>]*-->\n).*?(\n<!-- config-table:end -->)", re.S)
    readme.write_text(block.sub(lambda m: m.group(1) + config_table() + m.group(2), text))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write_readme(Path(sys.argv[2]))
    else:
        print(config_table())
