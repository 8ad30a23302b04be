#!/usr/bin/env bash
# One command from a fresh clone: set everything up, then run the default test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow` for the long sweeps).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# loadgroup: tests marked xdist_group(NAME) share one worker (one Ray session for tests/test_scale_out.py)
exec .venv/bin/python -m pytest -n "${RSNNC_TEST_WORKERS:-2}" --dist loadgroup -q "$@"
