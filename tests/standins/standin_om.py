"""Shared by the stand-in `atc` and `ais_bench` (tests only, never the product).

The stand-in .om: a magic line, one JSON line (how ATC was called), then the ONNX model with the
batch fixed by --input_shape; the stand-in ais_bench runs it with ONNX Runtime on the CPU. A real
.om (magic "IMOD") is refused by the stand-in ais_bench, and the stand-in .om by the real one.
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
