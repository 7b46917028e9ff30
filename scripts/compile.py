"""compile: the offline model of one target for one batch size, by the target's backend, and a
manifest (files with size and sha256) that infer, benchmark and the report read."""


import backends
from pipeline import paths as P
from pipeline.common import artifact, log, model_input_files, write_json


def compile_target(backend: str, onnx_model: str, out_dir: str, manifest: str, batch_size,
                   resolution: int, options: dict) -> dict:
    """batch_size: an int, or (a tuple) the batch sizes of one dynamic-batch model, recorded as
    `dynamic_batch` (its `batch_size` is then None): infer and benchmark pass them to the backend."""
    module = backends.get(backend)
    files = module.compile(onnx_model, out_dir, batch_size, resolution, options)
    dynamic = None if isinstance(batch_size, int) else sorted(int(b) for b in batch_size)
    record = {
        "backend": backend,
        "batch_size": batch_size if dynamic is None else None,
        "dynamic_batch": dynamic,
        "source": str(onnx_model),
        "model": files[0],
        # the tool command line, for backends that run one; the report prints it under "Reproduce"
        "command": module.compile_command(onnx_model, out_dir, batch_size, resolution, options),
        # a dynamic-batch model's artifacts: its largest batch, and its gears
        "artifacts": [artifact(f, batch_size=batch_size) if dynamic is None else
                      artifact(f, batch_size=max(dynamic), dynamic_batch=dynamic) for f in files],
        "options": {k: v for k, v in options.items() if k != "threads"},
        "input": input_record(module, onnx_model, options),
    }
    write_json(manifest, record)
    for a in record["artifacts"]:
        log.info("compiled %s (%.1f MB, sha256 %s)", a["path"], a["bytes"] / 1e6, a["sha256"][:12])
    return record


def input_record(module, onnx_model: str, options: dict) -> dict:
    """What one item costs to send: the ONNX's input, and what the compiled model takes (the same, or where its
    device preprocesses, e.g. uint8 pixels: its plan's device_input), each with its bytes per item."""
    import numpy as np

    from backends.base import model_inputs

    (spec,) = model_inputs(onnx_model)
    shape = [1, *(int(d) for d in spec.shape[1:])]
    onnx_input = {"shape": shape, "dtype": spec.dtype,
                  "bytes_per_item": int(np.prod(shape)) * np.dtype(spec.dtype).itemsize}
    device = module.device_input(spec, options) if hasattr(module, "device_input") else None
    return {"onnx": onnx_input, "device": device or onnx_input}


def resolution_of(onnx_model: str) -> int:
    """The image side the ONNX takes (its input's last axis: Nx3xRxR), 0 for the text tower's token ids. Read
    from the ONNX itself: cn_clip's model code (and torch) need not load for a compile job."""
    from backends.base import model_inputs

    (spec,) = model_inputs(onnx_model)
    return int(spec.shape[-1]) if len(spec.shape) == 4 else 0


def main(smk) -> None:
    resolution = resolution_of(smk.input.onnx)
    options = dict(smk.params.options)
    if "calibration" in smk.input.keys():  # static int8: the run's own inputs
        options["calibration"] = model_input_files(smk.input.calibration)
    # the dynamic-batch model's batch sizes come in its options (rules/common.smk backend_options)
    batch = tuple(options.pop("dynamic_batch")) if smk.wildcards.bs == P.DYNAMIC else int(smk.wildcards.bs)
    compile_target(smk.wildcards.backend, smk.input.onnx, smk.output.model, smk.output.manifest, batch,
                   resolution, options)


if __name__ == "__main__" and "snakemake" in globals():
    from pipeline.common import run_entry

    run_entry(main, snakemake)  # noqa: F821
