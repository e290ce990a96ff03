#!/usr/bin/env bash
# Ablation of the style-token masked-LM auxiliary task on the demo data: two stage-1 runs of ofa_demo
# with identical settings and the same number of updates, without and with --mlm-ratio 1, each
# evaluated on the valid split (1 reference per image, as PCap's val) and the test split (5 references),
# overall and per style, with `ofa-sic evaluate`.
# Needs the demo data (run_scripts/demo.sh, or ofa-sic demo-data + prepare-pcap) under $DEMO_DIR.
#   DEMO_DIR=demo_out UPDATES=252 bash benchmarks/ablation_mlm.sh
# Results: $OUT/{no_mlm,mlm}/eval-{valid,test}/metrics.json and a summary in $OUT/summary.json.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH="$ROOT/.venv/bin:$PATH"
DEMO_DIR=${DEMO_DIR:-demo_out}
OUT=${OUT:-$DEMO_DIR/ablation_mlm}
UPDATES=${UPDATES:-252}
SEED=${SEED:-1}
RUNS=${RUNS:-no_mlm mlm}  # which of the two runs to make (both by default, in parallel)

run() {  # run NAME EXTRA_ARGS...
  local name=$1; shift
  mkdir -p "$OUT/$name"
  DATA="$DEMO_DIR/data" BPE_DIR="$DEMO_DIR/raw/bpe" SAVE_DIR="$OUT/$name" ARCH=ofa_demo RESTORE_FILE= \
    PATCH_IMAGE_SIZE=96 MAX_EPOCH=100 BATCH_SIZE=32 UPDATE_FREQ=1 LR=1e-3 LABEL_SMOOTHING=0.1 DROP_WORST_RATIO=0 \
    DROPOUT=0.0 DROP_PATH_RATE=0.0 WEIGHT_DECAY=0.01 FREEZE_EMBEDDINGS=0 NUM_WORKERS=1 SAVE_INTERVAL_UPDATES=0 \
    DEVICE_ARGS=--cpu bash "$ROOT/run_scripts/train_caption.sh" --max-update "$UPDATES" --seed "$SEED" \
    --disable-validation "$@" > "$OUT/$name/train.log" 2>&1
  for split in valid test; do
    ofa-sic evaluate --path "$OUT/$name/checkpoint_last.pt" --data "$DEMO_DIR/data" --bpe-dir "$DEMO_DIR/raw/bpe" \
      --split "$split" --out "$OUT/$name/eval-$split" --batch-size 32 --cpu --no-meteor > "$OUT/$name/evaluate-$split.log" 2>&1
  done
}

[[ " $RUNS " == *" no_mlm "* ]] && run no_mlm &
[[ " $RUNS " == *" mlm "* ]] && run mlm --mlm-ratio 1 --mlm-weight 1 &
wait
python - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
summary = {}
import os
for name in ("no_mlm", "mlm"):
    if not os.path.exists(f"{out}/{name}/eval-test/metrics.json"):
        continue
    for split in ("valid", "test"):
        metrics = json.load(open(f"{out}/{name}/eval-{split}/metrics.json"))
        summary.setdefault(name, {})[split] = {
            "CIDEr": round(metrics["overall"]["CIDEr"], 1),
            "per_style_CIDEr": {s: round(m["CIDEr"], 1) for s, m in metrics["per_style"].items()},
        }
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(json.dumps(summary, indent=2))
PY
