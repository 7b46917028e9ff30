"""The stand-in ais_bench's path and permission rules (tests only, never the product).

Modelled on the real front end's source (gitee Ascend/tools, ais-bench_workload/tool/ais_bench/ais_bench/,
read in the Yanguan619/aclruntime mirror):
- infer/common/path_security_check.py: FileStat(path) takes os.path.abspath(path) and refuses it when it is
  longer than 4096 characters, has a component longer than 255, or holds a character outside
  [_A-Za-z0-9/.-] (PATH_WHITE_LIST_REGEX) -> "path contains illegal char, legal chars include A-Z a-z 0-9 _ - / .".
  is_basically_legal(): a missing path is refused unless it is to be written; a symbolic link is refused
  ("is a soft link, not supported"); the user must own the path or be in its group;
  READ (the .om, --input and each input file): not group- or other-writable (READ_FILE_NOT_PERMITTED_STAT),
  readable by its owner; WRITE (--output, --output_dirname, when they exist): not group-writable, not
  other-writable/readable/executable (WRITE_FILE_NOT_PERMITTED_STAT: 0750 or stricter), writable.
- infer/args_check.py: argparse types; an illegal path ends parsing with
  "argument --output/-o: output path:<p> is illegal. Please check." (exit 2); --loop 1..100000
  (LOOP_MAX_SIZE, "is an invalid loop size value"), the .om must end in .om and be at most 10 GB.
- infer/utils.py (IntArgsMax): --warmup_count at most 10000, --batchsize at most 4096 ("--batchsize: N is
  over 4096", a ValueError after parsing).
- infer/infer_process.py: an absolute --output_dirname is refused; <output>/<output_dirname> is made with
  makedirs_safe(..., 0o750) when missing, else checked like an input folder (not group/other-writable).
- A path depth of at most 32 levels: the rule issue 12 reports for the December 2025 front end (not in the
  stored source versions read for this stand-in; kept, since it is the stricter reading).

STANDIN_AIS_BENCH_VERSION=2024 switches to the mid-2024 copy (Ascend/msit ait/components/benchmark): the same
FileStat string and owner checks, but --output only has to be not group/other-writable, and the tool
chmod-s an existing --output to 0750 itself (so a 0755 folder made under umask 022 passes).
"""
import os
import re
import stat

PATH_WHITE_LIST_REGEX = re.compile(r"[^_A-Za-z0-9/.-]")
MAX_PATH_LENGTH = 4096
MAX_NAME_LENGTH = 255
MAX_DEPTH = 32
READ_NOT_PERMITTED = stat.S_IWGRP | stat.S_IWOTH
WRITE_NOT_PERMITTED = stat.S_IWGRP | stat.S_IWOTH | stat.S_IROTH | stat.S_IXOTH
LOOP_MAX = 100000
WARMUP_MAX = 10000
BATCHSIZE_MAX = 4096
OM_MAX_BYTES = 10 * 1024 ** 3


def version() -> str:
    v = os.environ.get("STANDIN_AIS_BENCH_VERSION", "2025")
    if v not in ("2024", "2025"):
        raise SystemExit(f"STANDIN_AIS_BENCH_VERSION={v}: the stand-in models 2024 or 2025")
    return v


def string_problem(path: str) -> str | None:
    """FileStat's checks of the path string (abspath, not realpath)."""
    full = os.path.abspath(path)
    if len(full) > MAX_PATH_LENGTH:
        return f"file total path's length out of range ({MAX_PATH_LENGTH})"
    if any(len(part) > MAX_NAME_LENGTH for part in full.split("/")):
        return f"file base name length out of range ({MAX_NAME_LENGTH})"
    if len([p for p in full.split("/") if p]) > MAX_DEPTH:
        return f"path depth out of range ({MAX_DEPTH})"
    if PATH_WHITE_LIST_REGEX.search(full):
        return "path contains illegal char, legal chars include A-Z a-z 0-9 _ - / ."
    return None


def perm_problem(path: str, perm: str) -> str | None:
    """is_basically_legal(perm) on Linux; perm is "read" or "write"."""
    full = os.path.abspath(path)
    exists = os.path.exists(full)
    if not exists:
        return None if perm == "write" else f"path: {full} not exist, please check if file or dir is exist"
    if os.path.islink(full):
        return f"path :{full} is a soft link, not supported, please import file(or directory) directly"
    st = os.stat(full)
    if st.st_uid != os.geteuid() and st.st_gid not in os.getgroups():
        return f"current user isn't path:{full}'s owner or ownergroup"
    mode = stat.S_IMODE(st.st_mode)
    if perm == "read":
        if mode & READ_NOT_PERMITTED:
            return (f"The file {full} is group writable, or is others writable, as import file(or directory), "
                    f"permission should not be over 0o755(rwxr-xr-x)")
        if not os.access(full, os.R_OK) or not mode & stat.S_IRUSR:
            return f"Current user doesn't have read permission to the file {full}"
    else:
        not_permitted = WRITE_NOT_PERMITTED if version() == "2025" else READ_NOT_PERMITTED
        if mode & not_permitted:
            return (f"The file {full} is group writable, or is others writable, as export file(or directory), "
                    f"permission should not be over 0o750(rwxr-x---)")
        if not os.access(full, os.W_OK):
            return f"Current user doesn't have write permission to the file {full}"
    return None


def check_path(path: str, perm: str) -> str | None:
    return string_problem(path) or perm_problem(path, perm)


def makedirs_safe(path: str, mode: int = 0o750) -> None:
    """Every missing level made with `mode` (os.mkdir, so the umask still applies).
    The real one (path_security_check.makedirs_safe) raises "can not make dir: ..." when a level appears
    between its exists() and its mkdir(): with --device 0,1 the device processes can race on
    <output>/<output_dirname> that way. The stand-in lets the loser go on, so tests do not flake; a
    caller that makes <output>/<output_dirname> before a multi-device run avoids the real race."""
    current = ""
    for part in os.path.abspath(path).split("/"):
        if not part:
            continue
        current += "/" + part
        if not os.path.exists(current):
            try:
                os.mkdir(current, mode)
            except FileExistsError:
                pass


def open_for_write(path: str, mode: int = 0o640):
    """ms_open(path, "w"): an existing file is removed first, the new one made with 0o640 (minus the umask)."""
    if os.path.exists(path):
        os.remove(path)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb")
