"""Parse-time checks, before any job runs: the config against config/schema.yaml (every problem
listed with its key), and the input images (every file that is not a readable image listed with
the reason). Used by the Snakefile and the run's matrix; cheap enough for every dry run."""
import os
from pathlib import Path

import yaml

from pipeline.paths import ConfigError


def coerce_cli_types(value, schema: dict):
    """`--config batch_sizes=[1,4]`, `gates={...: 0.99}` or `skip_bad_images=true` reach the workflow
    with numbers and booleans as strings; convert them where the schema asks for a number, so validation judges the value, not
    how the command line spelt it. Anything that is not a clean number is left for the schema to reject."""
    kind = schema.get("type")
    for branch in schema.get("oneOf", []):  # e.g. `true` or "both": the first branch that converts it
        converted = coerce_cli_types(value, branch)
        if converted is not value:
            return converted
    if isinstance(value, dict) and "properties" in schema:
        return {k: coerce_cli_types(v, schema["properties"].get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and "items" in schema:
        return [coerce_cli_types(v, schema["items"]) for v in value]
    if isinstance(value, str) and kind == "boolean" and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    if isinstance(value, str) and kind in ("integer", "number"):
        try:
            return float(value) if kind == "number" else int(value)
        except ValueError:
            return value
    return value


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def config_errors(config: dict, schema: dict) -> list[str]:
    """One line per problem, each naming the config key."""
    from jsonschema import Draft202012Validator

    lines = []
    for error in sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.path))):
        if error.validator == "additionalProperties":
            where = _key(error.path)
            known = ", ".join(sorted(error.schema.get("properties", {})))
            for key in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
                name = f"{where}.{key}" if error.path else key
                lines.append(f"unknown config key '{name}' (known: {known})")
            continue
        spec = error.schema if isinstance(error.schema, dict) else {}
        hint = f" ({spec['description']})" if spec.get("description") else ""
        lines.append(f"config key '{_key(error.path)}': {error.message}{hint}")
    return lines


SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"


def with_defaults(config: dict, schema_path: str | os.PathLike = SCHEMA) -> dict:
    """A copy of `config` with every key the schema gives a default filled in (top level and nested
    mappings), as Snakemake's validation fills them: for code that reads a config not made by a run."""
    schema = yaml.safe_load(Path(schema_path).read_text())

    def fill(value: dict, spec: dict) -> dict:
        out = dict(value)
        for key, sub in spec.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
            if isinstance(out.get(key), dict) and "properties" in sub:
                out[key] = fill(out[key], sub)
        return out

    return fill(config, schema)


def check_config(config: dict, schema_path: str | os.PathLike) -> dict:
    """Coerce command-line numbers, then validate; raises ConfigError listing every bad key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    config.update(coerce_cli_types(dict(config), schema))
    errors = config_errors(config, schema)
    if errors:
        raise ConfigError("invalid configuration (config/config.yaml or --config):\n  " + "\n  ".join(errors))
    return config


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

# What a complete file of each format ends with (its trailer, within the last TAIL bytes: a JPEG may carry
# a little data after its end-of-image marker): a file cut short ends elsewhere
TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b";"}
TAIL = 1 << 16


def image_problem(path: str | os.PathLike) -> str | None:
    """Why `path` is not a usable image, or None, without decoding it where the format allows (a dry run of
    1,000 photographs reads their headers and last bytes, not their pixels): empty, not an image PIL can
    read, too large to decode safely, or cut short (no end-of-image trailer: JPEG, PNG, GIF); any other
    format is decoded in full. A file whose pixels are corrupt in the middle passes here and stops its
    preprocess job, which names it."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            trailer = TRAILERS.get(image.format)
            if trailer is None:
                image.load()
    except UnidentifiedImageError:
        return "not an image PIL can read (wrong extension, or another kind of file)"
    except Image.DecompressionBombError as exc:
        return f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot be decoded ({str(exc).strip() or type(exc).__name__}): truncated or corrupt?"
    if trailer is not None:
        with open(path, "rb") as f:
            f.seek(max(0, size - TAIL))
            if trailer not in f.read():
                return "truncated: the file ends before its end-of-image marker (a download or copy cut short?)"
    return None


def check_images(images: dict[str, str]) -> dict[str, str]:
    """{path: problem} for every bad image (image_problem)."""
    return {path: problem for path in images.values() if (problem := image_problem(path))}


def usable_images(images: dict[str, str], folder: str, skip_bad: bool) -> tuple[dict, dict]:
    """(images to process, {path: reason} skipped). Unless `skip_bad`, any bad file stops the run
    here, before any job, with one message listing every bad file and why."""
    from pipeline.paths import non_image_files

    bad = {**non_image_files(folder), **check_images(images)}
    if bad and not skip_bad:
        raise ConfigError(
            f"{len(bad)} file(s) in images folder '{folder}' cannot be used (remove them, or set "
            f"skip_bad_images: true to skip them and list them in the report):\n  "
            + "\n  ".join(f"{path}: {why}" for path, why in sorted(bad.items())))
    good = {stem: path for stem, path in images.items() if path not in bad}
    if not good:
        raise ConfigError(f"images folder '{folder}' holds no usable image; skipped: {sorted(bad)}")
    return good, bad
