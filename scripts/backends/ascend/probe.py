"""Is the toolchain here, and which versions: atc on PATH, ais_bench in the configured Python, CANN's version
from its install records, and the NPU's facts from npu-smi (what a support ticket needs)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from .commands import AIS_BENCH_FIX, ATC, CANN_FIX, MissingToolError

_PROBE = r"""
import importlib.util, json, os, sys
from importlib import metadata
spec = importlib.util.find_spec("ais_bench")
out = {"found": spec is not None, "front_end": None}
# which command line it parses, read from its files (nothing imported): the argparse front end of
# gitee ascend/tools (ais_bench/infer/__main__.py, the seed's) or the Typer one of a later refactor
for root in (spec.submodule_search_locations or []) if spec else []:
    if os.path.exists(os.path.join(root, "infer", "__main__.py")):
        out["front_end"] = "argparse"
    else:
        try:
            with open(os.path.join(root, "__init__.py"), encoding="utf-8", errors="replace") as f:
                out["front_end"] = "typer" if "import typer" in f.read() else None
        except OSError:
            pass
    break
for dist in ("ais_bench", "aclruntime"):
    try:
        out[dist] = metadata.version(dist)
    except Exception:
        out[dist] = None
if out["found"] and out["ais_bench"] is None:
    try:
        import ais_bench
        out["ais_bench"] = getattr(ais_bench, "__version__", None)
    except Exception:
        pass
print(json.dumps(out))
"""


def _probe_ais_bench(ais_bench_python: str) -> dict | None:
    """{"found", "front_end", "ais_bench", "aclruntime"} from the given Python, or None when that Python is
    missing. front_end: "argparse", "typer" or None (not told by its files)."""
    exe = shutil.which(ais_bench_python)
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {"found": False, "ais_bench": None, "aclruntime": None}


def check_tools(ais_bench_python: str = "python3") -> None:
    """Raise MissingToolError naming every missing tool and its fix; call before any work."""
    problems = []
    if shutil.which(ATC) is None:
        problems.append(f"`atc` (Huawei ATC, compiles the ONNX model for the NPU) is not on PATH: {CANN_FIX}")
    probe = _probe_ais_bench(ais_bench_python)
    if probe is None:
        problems.append(f"`{ais_bench_python}` (config `ais_bench_python`, the Python that runs ais_bench) was "
                        f"not found: {AIS_BENCH_FIX}")
    elif not probe["found"]:
        problems.append(f"`ais_bench` is not installed in `{ais_bench_python}` (`{ais_bench_python} -m ais_bench` "
                        f"would fail): {AIS_BENCH_FIX}")
    elif probe.get("front_end") == "typer":
        problems.append(f"`ais_bench` in `{ais_bench_python}` is the Typer front end of a later refactor (it spells "
                        f"options `--output-dirname`, `--warmup-count` and takes switches without values): the "
                        f"workflow writes the command lines of the argparse front end (ais_bench/infer/__main__.py, "
                        f"the seed's `--output_dirname dst`), which that one refuses: {AIS_BENCH_FIX}")
    if problems:
        raise MissingToolError("backend ascend cannot run on this machine:\n- " + "\n- ".join(problems))


def _cann_version_from_home() -> str | None:
    return _cann_version(None)


def _cann_version(atc_path: str | None) -> str | None:
    """CANN's version from the install's own records near atc or in ASCEND_TOOLKIT_HOME (never by running atc)."""
    candidates = []
    home = os.environ.get("ASCEND_TOOLKIT_HOME")
    if home:
        candidates.append(Path(home))
    if atc_path:
        candidates += list(Path(atc_path).resolve().parents)[:4]
    for folder in candidates:
        files = [folder / "version.info", folder / "ascend_toolkit_install.info",
                 *sorted(folder.glob("*/ascend_toolkit_install.info"))]
        for f in files:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            m = re.search(r"^\s*version\s*=\s*(\S+)", text, re.IGNORECASE | re.MULTILINE)
            if m:
                return m.group(1)
    return None


def _npu_smi(args: list[str]) -> tuple[str | None, str]:
    """(stdout, "") of `npu-smi <args>`, or (None, why it gave nothing)."""
    exe = shutil.which("npu-smi")
    if exe is None:
        return None, "absent: npu-smi not on PATH (it comes with the NPU driver; is this an Ascend host?)"
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, errors="replace", timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"absent: `npu-smi {' '.join(args)}` could not run ({exc})"
    if done.returncode != 0:
        first = (done.stdout + done.stderr).strip().splitlines()[:1]
        return None, f"absent: `npu-smi {' '.join(args)}` exited {done.returncode}" + (f": {first[0]}" if first else "")
    return done.stdout, ""


def npu_smi_facts(info: str, board: str | None) -> dict:
    """Parse `npu-smi info` (its banner `npu-smi <tool version>  Version: <driver>` and the first NPU row,
    `| <id>  <Name> | <Health> | ...`) and `npu-smi info -t board -i <id>` (`Firmware Version : ...`)."""
    facts = {}
    banner = re.search(r"npu-smi\s+(\S+)\s+Version:\s*(\S+)", info)
    if banner:
        facts["npu_smi"], facts["npu_driver"] = banner.group(1), banner.group(2)
    row = re.search(r"^\|\s*\d+\s+(\S+)\s*\|\s*(\S+)\s*\|", info, re.MULTILINE)
    if row:
        facts["npu_chip"], facts["npu_health"] = row.group(1), row.group(2)
    if board:
        firmware = re.search(r"Firmware Version\s*:\s*(\S+)", board)
        if firmware:
            facts["npu_firmware"] = firmware.group(1)
        software = re.search(r"Software Version\s*:\s*(\S+)", board)
        if software and "npu_driver" not in facts:
            facts["npu_driver"] = software.group(1)
    return facts


def versions(options: dict) -> dict:
    """What a support ticket needs (options: ais_bench_python, device_id, as options() gives them), every
    value a string: npu_smi (tool version), npu_chip, npu_health, npu_driver, npu_firmware (from
    `npu-smi info` and `npu-smi info -t board -i <device_id>`), cann (the CANN toolkit's version, read
    from its install records, never by running atc), atc (its path), ais_bench, aclruntime and
    ais_bench_python. A value that could not be found says why, starting "absent: "."""
    ais_bench_python = options.get("ais_bench_python", "python3")
    npu_device = options.get("device_id", 0)
    out: dict[str, str] = {}
    info, why = _npu_smi(["info"])
    board, board_why = _npu_smi(["info", "-t", "board", "-i", str(int(npu_device))]) if info else (None, why)
    facts = npu_smi_facts(info, board) if info else {}
    for key in ("npu_smi", "npu_chip", "npu_health", "npu_driver"):
        out[key] = facts.get(key) or (why or "absent: not in the output of `npu-smi info`")
    out["npu_firmware"] = facts.get("npu_firmware") or (
        board_why or "absent: no `Firmware Version` in `npu-smi info -t board`")

    atc_path = shutil.which(ATC)
    out["atc"] = atc_path or f"absent: atc not on PATH ({CANN_FIX})"
    cann = _cann_version(atc_path) if atc_path else _cann_version_from_home()
    out["cann"] = cann or ("absent: no version.info or ascend_toolkit_install.info near atc or in "
                           "ASCEND_TOOLKIT_HOME" if atc_path or os.environ.get("ASCEND_TOOLKIT_HOME")
                           else "absent: atc not on PATH and ASCEND_TOOLKIT_HOME not set (CANN's set_env.sh "
                                "not loaded?)")
    exe = shutil.which(ais_bench_python)
    out["ais_bench_python"] = exe or f"absent: {ais_bench_python} (config ais_bench_python) not found"
    probe = _probe_ais_bench(ais_bench_python)
    if probe is None:
        out["ais_bench"] = out["aclruntime"] = f"absent: {ais_bench_python} (config ais_bench_python) not found"
    else:
        out["ais_bench"] = ((probe.get("ais_bench") or "unknown (installed, no version recorded)")
                            if probe.get("found") else f"absent: ais_bench is not installed in {ais_bench_python}")
        out["aclruntime"] = probe.get("aclruntime") or f"absent: no aclruntime distribution in {ais_bench_python}"
    return out
