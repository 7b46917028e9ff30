"""The NPU's own tensors, for locate's node-by-node view (`locate_npu_dump: true`): ais_bench's dump of one
run, read back by the ONNX node each operator is named after."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from pipeline.common import log

from .commands import ais_bench_dump_command, failure, run_tool
from .scratch import output_folder, private_scratch, stage_inputs, stage_model

def dump(model: str | os.PathLike, npy_file: str | os.PathLike, dump_dir: str | os.PathLike,
         options: dict) -> Path:
    """The NPU's tensors of the model run on one input, as ais_bench dumps and converts them: its
    <output>/dump/ folder copied to `dump_dir` (read by scripts/locate.py read_ais_bench_dump). Raises
    ToolError when ais_bench fails or converts nothing (msaccucmp missing: CANN's toolkit is needed)."""
    path = Path(npy_file)
    if path.suffix != ".npy" or not path.is_file():
        raise ValueError(f"ais_bench dump input {path} is not an .npy file")
    dump_dir = Path(dump_dir)
    python = options.get("ais_bench_python", "python3")
    with private_scratch("ais_bench-dump-") as scratch:
        names = stage_inputs([path], scratch / "input")
        om = stage_model(model, scratch)
        out = output_folder(scratch)
        cmd = ais_bench_dump_command(om, scratch / "input" / next(iter(names)), out, options.get("device_id", 0),
                                     python, dym_batch=1 if options.get("dynamic_batch") else None)
        code, output = run_tool(cmd, scratch, "ais_bench")
        converted = sorted((out / "dump").glob("*_npy"))
        if code != 0 or not converted or not any(converted[-1].rglob("*.npy")):
            reason = f"exit code {code}" if code != 0 else (
                "no converted dump under <output>/dump/*_npy (ais_bench converts with CANN's msaccucmp: is the "
                "toolkit installed and set up, e.g. `source /usr/local/Ascend/ascend-toolkit/set_env.sh`?)")
            raise failure("ais_bench", cmd, scratch, output, reason)
        shutil.rmtree(dump_dir, ignore_errors=True)
        shutil.copytree(out / "dump", dump_dir)
    log.info("ais_bench dumped %d tensors of %s into %s", sum(1 for _ in dump_dir.rglob("*.npy")), path.name,
             dump_dir)
    return dump_dir



# Layout, from ais_bench's source (Ascend/tools ais-bench_workload/tool/ais_bench, read in the mirror
# Yanguan619/aclruntime: ais_bench/infer/common/miscellaneous.py get_acl_json_path, common/utils.py
# create_tmp_acl_json / move_subdir / convert_helper) and CANN's msaccucmp docs ("Data Format
# Requirements", "Converting Dump File Formats"):
#   `--dump 1 --output OUT` writes OUT/acl.json with dump_path OUT/dump, dump_mode "all"; CANN writes
#   OUT/dump/{timestamp}/{device_id}/{model_name}/{model_id}/{data_index}/
#       {op_type}.{op_name}.{task_id}.{stream_id}.{timestamp}           (binary, CANN's own format)
#   (newer CANN: {op_type}.{op_name}.({stream_id}.){task_id}.{timestamp}.{task_type}.{context_id}.{thread_id}.{device_id}).
#   With `--dump_npy 1` ais_bench runs msaccucmp.py convert into OUT/dump/{timestamp}_npy/<same relative dirs>/
#       <dump file name>.output.{index}.{shape}.npy   and   .input.{index}.{shape}.npy   (shape like 1x3x224x224)
#   op_type/op_name have '.', '/', '\\' and spaces replaced by '_'. For an ONNX model ATC names its ops
#   after the ONNX nodes, so the ONNX node name with those characters replaced is the op_name (fused ops
#   keep one of the names; a node without a dump row is skipped). Only the npy form is read here: the
#   binary form needs CANN's msaccucmp.

def dump_op_name(onnx_node_name: str) -> str:
    """How an ONNX node name appears in a CANN dump file name."""
    return re.sub(r"[./\\ ]", "_", onnx_node_name)


def read_ais_bench_dump(folder: str | Path, data_index: int | None = None) -> dict[str, dict]:
    """{op_name: {"op_type", "outputs": {index: path}, "inputs": {index: path}}} from the npy files of an
    ais_bench `--dump 1 --dump_npy 1` run: `folder` is ais_bench's --output folder (or its dump/ or a
    {timestamp}_npy/ below it). The newest {timestamp}_npy folder is read; `data_index` picks the
    inference (default: the lowest)."""
    folder = Path(folder)
    roots = sorted(p for p in list(folder.glob("*_npy")) + list(folder.glob("dump/*_npy")) if p.is_dir())
    root = roots[-1] if roots else folder
    files = sorted(root.rglob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no dump .npy files under {folder} (run ais_bench with --dump 1 --dump_npy 1)")
    by_index: dict[str, list[Path]] = {}
    for f in files:
        parent = f.parent.name
        by_index.setdefault(parent if parent.isdigit() else "0", []).append(f)
    pick = str(data_index) if data_index is not None else min(by_index, key=lambda s: int(s) if s.isdigit() else 0)
    out: dict[str, dict] = {}
    for f in by_index[pick]:
        tokens = f.name[: -len(".npy")].split(".")
        kinds = [i for i, t in enumerate(tokens) if t in ("input", "output")]
        if len(tokens) < 4 or not kinds or kinds[-1] + 1 >= len(tokens) or not tokens[kinds[-1] + 1].isdigit():
            log.info("not a dump file name, skipped: %s", f.name)
            continue
        kind, index = tokens[kinds[-1]], int(tokens[kinds[-1] + 1])
        entry = out.setdefault(tokens[1], {"op_type": tokens[0], "outputs": {}, "inputs": {}})
        entry["outputs" if kind == "output" else "inputs"][index] = f
    return out


class DumpTarget:
    """A target whose tensors come from an NPU dump: run(feed) yields the dumped output of each wanted
    tensor's producer node (output index of that tensor). The feed is ignored: the dump is of one run."""

    def __init__(self, dump: dict[str, dict], reference_graph, groups: list[list[str]]):
        self.groups = groups
        self.where = {}
        for n in reference_graph.graph.node:
            for i, o in enumerate(n.output):
                entry = dump.get(dump_op_name(n.name))
                if entry and i in entry["outputs"]:
                    self.where[o] = entry["outputs"][i]

    def run(self, feed):
        import numpy as np

        for want in self.groups:
            yield {t: np.load(self.where[t]) for t in want if t in self.where}


def node_tensors(model: str | os.PathLike, npy_file: str | os.PathLike, reference_graph, out_dir: str | os.PathLike,
                 options: dict) -> dict:
    """{ONNX tensor name of `reference_graph`: its value on the NPU} for the model run on one input:
    ais_bench's dump (dump()) read back by the ONNX node each op is named after."""
    import numpy as np

    if options.get("aipp") and options.get("tower", "image") == "image":  # the .om takes the image's pixels
        from . import aipp

        pixels = Path(out_dir) / "pixels" / Path(npy_file).name
        pixels.parent.mkdir(parents=True, exist_ok=True)
        np.save(pixels, aipp.to_pixels(np.load(npy_file), *aipp.cn_clip_normalisation()))
        npy_file = pixels
    folder = dump(model, npy_file, Path(out_dir) / "dump", options)
    where = DumpTarget(read_ais_bench_dump(folder), reference_graph, []).where
    return {tensor: np.load(path) for tensor, path in where.items()}
