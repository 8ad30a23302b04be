#!/usr/bin/env bash
# Create (or refresh) the Python 3.10 environment that runs Lava 0.10 for the rsnnc Lava backend.
#
#   scripts/setup_lava.sh            # creates <repo>/.venv-lava
#   RSNNC_LAVA_ENV=/path/env scripts/setup_lava.sh
#   RSNNC_PYTHON310=/usr/bin/python3.10 scripts/setup_lava.sh
#
# Idempotent: an existing environment whose `import lava` works and whose requirements are
# satisfied is left alone (pip only checks). Exit codes: 0 ok, 3 no Python 3.10, 1 other failure.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${RSNNC_LAVA_ENV:-$repo/.venv-lava}"
reqs="$repo/backends/lava/requirements.txt"

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
log="$(mktemp)"
if "$env_py" -m pip install --disable-pip-version-check -q -r "$reqs" >"$log" 2>&1; then
    rm -f "$log"
else
    echo "error: pip install -r $reqs into $env_dir failed; the installer's last lines:" >&2
    tail -n 30 "$log" >&2
    rm -f "$log"
    exit 1
fi

if ! version="$("$env_py" -c 'import lava, importlib.metadata as m
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: F401
print(m.version("lava-nc"))' 2>&1)"; then
    echo "error: 'import lava' fails in $env_dir:" >&2
    echo "$version" >&2
    exit 1
fi
echo "lava-nc $version ready: $env_py"
