#!/usr/bin/env bash
# One command from a fresh clone: set everything up, compile the bundled trained recurrent SNN
# (models/rleaky_mnist1d: snnTorch RLeaky on mnist1d) for every target, prove the integer
# executors agree bit for bit, and draw the pictures (the build prints the pass table once).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RSNNC=.venv/bin/rsnnc
OUT="${1:-out/demo}"
MODEL=models/rleaky_mnist1d
TARGETS=lava,c,gpu
if ! .venv/bin/python -c 'from rsnn_compiler.backends.lava.env import lava_status; import sys; sys.exit(0 if lava_status().found else 1)'; then
    echo "rsnnc demo: no Lava environment here (needs Python 3.10); building for c,gpu only" >&2
    TARGETS=c,gpu
fi

echo "== build: $MODEL (snnTorch factory + trained weights) -> $OUT, targets $TARGETS"
$RSNNC build "models.rleaky_mnist1d.model:build" --weights "$MODEL/weights.pt" --target "$TARGETS" \
    --calib "$MODEL/data.npz" -o "$OUT"
echo
echo "== validate: every integer executor against the fixed-point interpreter, and against float"
$RSNNC validate "$OUT" --data "$MODEL/data.npz" --max-accuracy-drop 1.0
echo
echo "== plots: spike raster, activity, accuracy vs time steps, float vs fixed membrane, quantization, cores"
$RSNNC plot "$OUT" --data "$MODEL/data.npz" -o "$OUT-plots"
echo
echo "Build in $OUT, pictures in $OUT-plots. Next: $RSNNC report $OUT | $RSNNC inspect $OUT |" \
     "$RSNNC run $OUT --inputs $MODEL/data.npz --out y.npz --executor c"
