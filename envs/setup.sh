#!/usr/bin/env bash
# Build or refresh .venv/ from the pinned envs/requirements.txt. Idempotent: does nothing when
# .venv already matches the pins (a stamp holds the hash of the requirements it was built from).
# Usage: bash envs/setup.sh            (then .venv/bin/snakemake works from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=envs/requirements.txt
stamp=.venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)

if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then python=$candidate; break; fi
    done
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)
if [ "$version" != "3.11" ]; then
    echo "envs/setup.sh: Python 3.11 is needed (found '${python:-none}' = '${version:-nothing}'); set PYTHON=/path/to/python3.11" >&2
    exit 1
fi

echo "envs/setup.sh: installing $requirements into .venv/ (torch is large: a few minutes the first time)" >&2
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" > "$stamp"
echo "envs/setup.sh: .venv/ is ready" >&2
