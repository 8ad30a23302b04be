#!/usr/bin/env bash
# Create (or refresh) the Python 3.10 environment that runs Lava 0.10 and lava-dl 0.6 (netx) for
# the rsnnc Lava backend.
#
#   scripts/setup_lava.sh            # creates <repo>/.venv-lava
#   RSNNC_LAVA_ENV=/path/env scripts/setup_lava.sh
#   RSNNC_PYTHON310=/usr/bin/python3.10 scripts/setup_lava.sh
#   RSNNC_LAVA_TORCH_INDEX=https://download.pytorch.org/whl/cpu scripts/setup_lava.sh  # CPU torch
#
# Idempotent: an existing environment whose `import lava` works and whose requirements are
# satisfied is left alone (pip only checks). Exit codes: 0 ok, 3 no Python 3.10, 1 other failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${RSNNC_LAVA_ENV:-$repo/.venv-lava}"
reqs="$repo/backends/lava/requirements.txt"
reqs_nodeps="$repo/backends/lava/requirements-nodeps.txt"

is_py310() {  # $1: interpreter path -> success if it is CPython 3.10
    [ -n "$1" ] && [ -x "$1" ] && \
        "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null
}

find_python310() {
    local cand tried=()
    if [ -n "${RSNNC_PYTHON310:-}" ]; then
        if is_py310 "$RSNNC_PYTHON310"; then echo "$RSNNC_PYTHON310"; return 0; fi
        echo "error: RSNNC_PYTHON310=$RSNNC_PYTHON310 is not an executable Python 3.10" >&2
        return 3
    fi
    if command -v pyenv >/dev/null 2>&1; then
        cand="$(pyenv prefix 3.10 2>/dev/null | head -n1 || true)"
        if [ -n "$cand" ] && is_py310 "$cand/bin/python"; then echo "$cand/bin/python"; return 0; fi
        tried+=("pyenv prefix 3.10")
    fi
    for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10.*/bin/python /root/.pyenv/versions/3.10.*/bin/python; do
        if is_py310 "$cand"; then echo "$cand"; return 0; fi
    done
    tried+=("${PYENV_ROOT:-$HOME/.pyenv}/versions/3.10.*/bin/python")
    cand="$(command -v python3.10 || true)"
    if is_py310 "$cand"; then echo "$cand"; return 0; fi
    tried+=("python3.10 on PATH")
    {
        echo "error: no Python 3.10 interpreter found (lava-nc 0.10.0 requires Python >=3.10,<3.11)."
        local IFS=";"
        echo "  looked at: RSNNC_PYTHON310 (unset); ${tried[*]}"
        echo "  fix: install one, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv',"
        echo "       or point RSNNC_PYTHON310 at an existing python3.10, then rerun $0"
    } >&2
    return 3
}

py310="$(find_python310)" || exit $?
echo "python 3.10: $py310"

if [ ! -x "$env_dir/bin/python" ] || ! is_py310 "$env_dir/bin/python"; then
    if [ -e "$env_dir" ]; then
        echo "removing unusable environment at $env_dir"
        rm -rf "$env_dir"
    fi
    echo "creating environment $env_dir"
    "$py310" -m venv "$env_dir"
fi

env_py="$env_dir/bin/python"
# the installer's own messages (deprecations, resolver notes) go to a log shown only on failure
pip_q() {
    local log
    log="$(mktemp)"
    if "$env_py" -m pip install --disable-pip-version-check -q "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        echo "error: pip install $* into $env_dir failed; the installer's last lines:" >&2
        tail -n 30 "$log" >&2
        rm -f "$log"
        exit 1
    fi
}
if [ -n "${RSNNC_LAVA_TORCH_INDEX:-}" ]; then
    pip_q --index-url "$RSNNC_LAVA_TORCH_INDEX" torch==2.3.1 torchvision==0.18.1
fi
pip_q -r "$reqs"
pip_q --no-deps -r "$reqs_nodeps"

if ! version="$("$env_py" -c 'import lava, importlib.metadata as m
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401
import lava.lib.dl.netx  # noqa: F401  (lava-dl: imports torch, h5py)
print(m.version("lava-nc"), m.version("lava-dl"), m.version("torch"))' 2>&1 | tail -n1)" \
        || [ "$(echo "$version" | wc -w)" -ne 3 ]; then
    echo "error: 'import lava' or 'import lava.lib.dl.netx' fails in $env_dir:" >&2
    "$env_py" -c 'import lava.lib.dl.netx' >&2 || true
    exit 1
fi
set -- $version
echo "lava-nc $1, lava-dl $2 (torch $3) ready: $env_py"
