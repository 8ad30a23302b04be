#!/usr/bin/env bash
# Create (or refresh) .venv-peers: Python 3.11 with Sinabs 3.1.3 and Rockpool 3.1.0, whose NIR
# exporters pin nir <= 1.0.4 (rsnnc uses nir 1.0.8). The tests run tests/peers/export_old_nir.py
# in it to write NIR files plus each library's own outputs, and import those files in .venv.
#
#   scripts/setup_peers.sh                      # creates <repo>/.venv-peers
#   RSNNC_PEERS_ENV=/path/env scripts/setup_peers.sh
#
# Idempotent: an existing environment only gets pip's check. Exit 0 ok, 1 failure.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${RSNNC_PEERS_ENV:-$repo/.venv-peers}"
PY="${RSNNC_PYTHON:-$repo/.venv/bin/python}"
if [ -x "$repo/.venv/bin/python" ] && [ -z "${RSNNC_PYTHON:-}" ]; then
    PY="$("$repo/.venv/bin/python" -c 'import sys; print(sys._base_executable)')"
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
    echo "rsnnc setup_peers: Python 3.11 is required (set RSNNC_PYTHON)" >&2; exit 1; }
if [ ! -x "$env_dir/bin/python" ]; then
    echo "rsnnc setup_peers: creating $env_dir"
    "$PY" -m venv "$env_dir"
fi
pip=("$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r "$repo/scripts/peers-oldnir.txt" 2>&1 | grep -v "WARNING: Location" || true
"${pip[@]}" --no-deps -r "$repo/scripts/peers-oldnir-nodeps.txt" 2>&1 | grep -v "WARNING: Location" || true
"$env_dir/bin/python" - <<'PY'
import importlib.metadata as m
import torch, nir, sinabs, rockpool  # noqa: F401
from rockpool.nn.modules.torch.nir import to_nir  # noqa: F401
assert torch.__version__.startswith("2.13.0"), torch.__version__
print("rsnnc setup_peers: .venv-peers ready (nir", m.version("nir"), "nirtorch", m.version("nirtorch"),
      "sinabs", m.version("sinabs"), "rockpool", m.version("rockpool") + ")")
PY
