#!/usr/bin/env bash
# Create .venv (Python 3.11) and install rsnnc with its pinned dependencies from this checkout.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${RSNNC_PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
    for cand in python3.11 "$(command -v pyenv >/dev/null && pyenv prefix 3.11 2>/dev/null)/bin/python"; do
        if [ -n "$cand" ] && "$cand" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
            PY="$cand"; break
        fi
    done
fi
"$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
    echo "rsnnc setup: Python 3.11 is required (set RSNNC_PYTHON to its path)" >&2; exit 2; }

if [ ! -x .venv/bin/python ]; then
    echo "rsnnc setup: creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
fi
# torch is pinned (2.13.0) in pyproject.toml. From the public index alone that pin is, on Linux,
# the CUDA build (~530 MB plus the nvidia-* wheels); the CPU wheel comes from PyTorch's CPU index,
# so install torch from there first whenever that index answers.
TORCH_PIN="torch==2.13.0"
TORCH_CPU_INDEX="${RSNNC_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
if ! .venv/bin/python -c 'import torch, sys; sys.exit(0 if torch.__version__.startswith("2.13.0") else 1)' 2>/dev/null; then
    if .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/torch/", timeout=5)' \
            "$TORCH_CPU_INDEX" 2>/dev/null; then
        echo "rsnnc setup: installing $TORCH_PIN (CPU wheel) from $TORCH_CPU_INDEX"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check "$TORCH_PIN" --index-url "$TORCH_CPU_INDEX"
    else
        echo "rsnnc setup: PyTorch's CPU index ($TORCH_CPU_INDEX) does not answer; installing $TORCH_PIN from the" \
             "configured index: a local CPU wheel if your pip configuration has one, else (public index, Linux) the CUDA build"
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]' 2>&1 \
    | grep -v "WARNING: Location" || true
# Peer SNN libraries for the differential tests, without their dependencies (see the file).
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r scripts/peers-nodeps.txt 2>&1 \
    | grep -v "WARNING: Location" || true
.venv/bin/python -c 'import rsnn_compiler, torch; assert torch.__version__.startswith("2.13.0"), torch.__version__'
echo "rsnnc setup: .venv ready ($(.venv/bin/rsnnc --version))"
# The training split of the bundled mnist1d model (fine-tuning and calibration data; ~2 MB, so it
# is generated locally instead of committed). Deterministic, about 10 s.
if [ ! -f models/rleaky_mnist1d/train.npz ]; then
    echo "rsnnc setup: writing models/rleaky_mnist1d/train.npz (mnist1d training split, generated locally)"
    .venv/bin/python -m models.rleaky_mnist1d.make_train_set >/dev/null
fi

# optional_env SKIP_VARIABLE SCRIPT WHAT: run a setup script for a side environment; its failure
# is fatal only in CI (locally the tests that need it skip and say why).
optional_env() {
    [ "${!1:-0}" = "1" ] && return 0
    local status=0
    bash "$2" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "rsnnc setup: $3 is not available (exit $status)" >&2
        [ "${CI:-}" = "true" ] && exit "$status"
    fi
    return 0
}

# Sinabs' and Rockpool's NIR exporters need nir <= 1.0.4: their own environment (.venv-peers).
optional_env RSNNC_SKIP_PEERS scripts/setup_peers.sh ".venv-peers (old-nir export tests)"

# Lava 0.10 needs Python 3.10: it gets its own environment (.venv-lava), which the compiler calls.
# Without Python 3.10 the compiler still works; `rsnnc validate` then says exactly what is missing.
optional_env RSNNC_SKIP_LAVA scripts/setup_lava.sh "the Lava environment (the lava target cannot run here)"
