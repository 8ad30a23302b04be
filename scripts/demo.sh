#!/usr/bin/env bash
# One command from a fresh clone: set everything up, compile the bundled example network,
# run it, and print what was built.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RSNNC=.venv/bin/rsnnc
OUT="${1:-out/demo}"
$RSNNC build models/example/recurrent.rsnn -o "$OUT"
$RSNNC run "$OUT" --inputs models/example/data.npz --out "$OUT/outputs.npz"
echo
echo "Build written to $OUT — inspect it with: $RSNNC report $OUT   /   $RSNNC inspect $OUT"
