"""The commands that rebuild each artifact of a report, pinned to the run's configuration."""

import shlex

from .model import Report

SNAKEMAKE = ".venv/bin/snakemake"


def yaml_flow(value) -> str:
    """A config value as `--config KEY=VALUE` accepts it (YAML flow style for lists and mappings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {yaml_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_flow(v) for v in value) + "]"
    return str(value)


def config_args(config: dict) -> list[str]:
    """`--config` pairs that pin every setting of this run that matters for its backend: empty values
    (meaning the default) and the keys of backends not in the run are left out."""
    import backends

    run = config.get("backends") or [config.get("backend")]
    others = {key for name in backends.names() if name not in run for key in backends.get(name).CONFIG_KEYS}
    args = []
    for key, value in config.items():
        if key in others:
            continue
        if config.get(f"{key}s"):  # a list key replaces its single one (model_archs, backends, precisions, ...)
            continue
        if key == "seed" and config.get("checkpoint") != "synthetic":
            continue
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if v not in ("", None)}
        if value in ("", None) or value == [] or value == {}:
            continue
        args.append(f"{key}={yaml_flow(value)}")
    return args


def snakemake_command(targets: list[str], config: dict) -> str:
    return shlex.join([SNAKEMAKE, "-c1", *targets, "--config", *config_args(config)])


def reproduce(report: Report) -> dict:
    """{"report": the command that rebuilds everything, "steps": [{"what", "artifacts", "command",
    "tool_command"}]}: one step per artifact group, from a fresh clone (add `--forcerun RULE` to
    redo one that exists)."""
    config = report.get("config") or {}
    steps = []
    onnx = [a["path"] for a in report.get("onnx", []) if not a["path"].endswith(".extra_file")]
    if onnx:
        steps.append({"what": "fp32 and fp16 ONNX (rules export_onnx, fp16_onnx)", "artifacts": onnx,
                      "command": snakemake_command(onnx, config)})

    def step(what: str, record: str, tool_command: str | None = None) -> dict:
        return {"what": what, "artifacts": [record], "command": snakemake_command([record], config),
                "tool_command": tool_command}

    for t in report["targets"]:
        name = t["name"]
        for c in t.get("compiled", []):
            steps.append(step(f"{name}: compiled model, batch {c['batch_size']} (rule compile)", c["manifest"],
                              c.get("command")))
        if t.get("similarity_record"):
            steps.append(step(f"{name}: outputs and accuracy (rules infer, similarity)", t["similarity_record"]))
        for p in t["performance"]:
            if p.get("record"):
                steps.append(step(f"{name}: benchmark, batch {p['batch_size']} (rule benchmark)", p["record"],
                                  p.get("command")))
    return {"report": snakemake_command(["report"], config), "steps": steps}
