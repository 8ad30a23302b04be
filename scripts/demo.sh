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
    --calib "$MODEL/data.npz" --holdout "$MODEL/test.npz" -o "$OUT"
echo
echo "== validate: every integer executor against the fixed-point interpreter, and against float"
$RSNNC validate "$OUT" --data "$MODEL/data.npz" --max-accuracy-drop 1.0
echo
echo "== plots: spike raster, activity, accuracy vs time steps, float vs fixed membrane, quantization, cores"
$RSNNC plot "$OUT" --data "$MODEL/data.npz" -o "$OUT-plots"
echo "lava populations: $(.venv/bin/python -c 'import json,sys; print(json.load(open(sys.argv[1]))["targets"]["lava"]["summary"].split(";")[0])' "$OUT/manifest.json" 2>/dev/null || echo "(no lava target)")"

# Loihi 2 without custom neuron microcode: zero-reset LIFs with one decay per population,
# fine-tuned on mnist1d training samples; every population then runs on Lava's stock LIF, and
# the build exports to lava-dl netx. RSNNC_DEMO_STOCK=0 skips this part.
if [ "${RSNNC_DEMO_STOCK:-1}" != "0" ] && [[ "$TARGETS" == *lava* ]]; then
    STOCK="$OUT-stock"
    TRAIN=out/rleaky_mnist1d/train1000.npz
    [ -f "$TRAIN" ] || .venv/bin/python -m models.rleaky_mnist1d.make_train_set "$TRAIN" 1000
    echo
    echo "== build on stock neurons: --stock-neurons netx (fine-tune 4 epochs on 1000 training samples) -> $STOCK"
    $RSNNC build "models.rleaky_mnist1d.model:build" --weights "$MODEL/weights.pt" --target lava,c \
        --calib "$MODEL/data.npz" --stock-neurons netx --stock-data "$TRAIN" --stock-finetune 4 \
        --accept-accuracy-loss -o "$STOCK" -q
    .venv/bin/python - "$STOCK/manifest.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("lava populations:", m["targets"]["lava"]["summary"].split(";")[0])
for line in m["targets"]["lava"].get("details", []):
    print("  ", line)
r = next(p for p in m["passes"] if p["name"] == "retarget_stock")
print("retarget_stock:", r["reason"])
PY
    $RSNNC validate "$STOCK" --data "$MODEL/data.npz"
    $RSNNC export "$STOCK" --format netx -o "$STOCK.net"
fi
echo
echo "Build in $OUT, pictures in $OUT-plots. Next: $RSNNC report $OUT | $RSNNC inspect $OUT |" \
     "$RSNNC run $OUT --inputs $MODEL/data.npz --out y.npz --executor c"
