"""Shared by the stand-in `atc` and `ais_bench` (tests only, never the product).

The stand-in .om: a magic line, one JSON line (how ATC was called), then the ONNX model with the
batch fixed by --input_shape; the stand-in ais_bench runs it with ONNX Runtime on the CPU. A real
.om (magic "IMOD") is refused by the stand-in ais_bench, and the stand-in .om by the real one.

The JSON header the stand-in atc writes (a .om written by a test may hold any subset; a missing key reads
as null):
- "soc_version", "input_shape", "input_format", "precision_mode", "precision_mode_v2", "op_select_implmode",
  "optypelist_for_implmode", "model": the ATC flags as given (null when not given). ais_bench emulates
  precision_mode_v2 "cube_fp16in_fp32out" (and precision_mode "cube_fp16in_fp32out" / "force_fp32",
  documented as the same mode); the other values are recorded only.
- "dynamic_batch_size": the gears of --dynamic_batch_size as a list of ints, e.g. [1, 2, 4] (null for a
  static model); the ONNX's batch axis is then symbolic and ais_bench needs --dymBatch with one of them.
- "aipp": null, or the one static aipp_op of --insert_op_conf with its sizes resolved and defaults filled:
  {"aipp_mode": "static", "input_format": "RGB888_U8", "related_input_rank": 0, "input": <ONNX input name>,
  "src_image_size_w": W, "src_image_size_h": H, "csc_switch": false, "rbuv_swap_switch": bool,
  "mean_chn_0".."mean_chn_2": int, "min_chn_0".."min_chn_2": float, "var_reci_chn_0".."var_reci_chn_2":
  float} (floats are the float32 values protobuf parsed). ais_bench then takes uint8 NHWC [N, H, W, 3] for
  that input.
"""
import json
import os
import sys

MAGIC = b"STANDIN-OM 1\n"


def record(tool: str) -> None:
    """Append {"tool", "argv", "cwd", "pid"} to the JSONL file named by STANDIN_LOG, if set."""
    path = os.environ.get("STANDIN_LOG")
    if not path:
        return
    line = json.dumps({"tool": tool, "argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid()}) + "\n"
    with open(path, "a", encoding="utf-8") as f:  # one small O_APPEND write per call
        f.write(line)


def write_om(path: str, header: dict, onnx_bytes: bytes) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(json.dumps(header).encode() + b"\n")
        f.write(onnx_bytes)
    os.replace(tmp, path)


def read_om(path: str) -> tuple[dict, bytes]:
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not an offline model the stand-in can run")
    header_end = data.index(b"\n", len(MAGIC))
    return json.loads(data[len(MAGIC):header_end]), data[header_end + 1:]
