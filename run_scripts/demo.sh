#!/usr/bin/env bash
# The demo, end to end on a CPU: install, synthetic PCap-format data, prepare-pcap, stage-1 (CE)
# training of ofa_demo, generation on the test split and COCO metrics. Everything goes under
# $DEMO_DIR (default demo_out/); $DEMO_DIR/metrics.json holds the test metrics of each stage.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO_DIR=${DEMO_DIR:-demo_out}
EPOCHS=${EPOCHS:-8}
BATCH_SIZE=${BATCH_SIZE:-32}
LR=${LR:-1e-3}
WORKERS=${WORKERS:-2}

make install
PATH="$ROOT/.venv/bin:$PATH"
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)

echo "== 1/4 demo data (Personality-Captions layout) =="
ofa-sic demo-data --out "$DEMO_DIR/raw"
ofa-sic prepare-pcap --pcap-dir "$DEMO_DIR/raw/personality_captions" --image-dir "$DEMO_DIR/raw/yfcc_images" \
  --out "$DEMO_DIR/data" --image-size 96 --workers "$WORKERS"

echo "== 2/4 stage 1: cross-entropy training of ofa_demo =="
DATA="$DEMO_DIR/data" BPE_DIR="$DEMO_DIR/raw/bpe" SAVE_DIR="$DEMO_DIR/ce" ARCH=ofa_demo RESTORE_FILE= \
  PATCH_IMAGE_SIZE=96 MAX_EPOCH="$EPOCHS" BATCH_SIZE="$BATCH_SIZE" UPDATE_FREQ=1 LR="$LR" \
  LABEL_SMOOTHING=0.1 DROP_WORST_RATIO=0 DROPOUT=0.0 DROP_PATH_RATE=0.0 WEIGHT_DECAY=0.01 \
  FREEZE_EMBEDDINGS=0 NUM_WORKERS="$WORKERS" SAVE_INTERVAL_UPDATES=0 DEVICE_ARGS=--cpu \
  EVAL_ARGS='{"beam":3,"max_len_b":20,"no_repeat_ngram_size":3}' \
  bash run_scripts/train_caption.sh 2>&1 | tee "$DEMO_DIR/ce/train.log" | grep -E "valid on|end of epoch|done training" || true
test -f "$DEMO_DIR/ce/checkpoint_best.pt"

echo "== 3/4 generation on the test split =="
fairseq-generate "$DEMO_DIR/data" --user-dir "$ROOT/ofa_sic" --task style_caption --bpe-dir "$DEMO_DIR/raw/bpe" \
  --patch-image-size 96 --path "$DEMO_DIR/ce/checkpoint_best.pt" --gen-subset test --beam 5 --max-len-b 16 \
  --no-repeat-ngram-size 3 --batch-size 32 --cpu > "$DEMO_DIR/ce/generate-test.txt" 2> "$DEMO_DIR/ce/generate-test.log"

echo "== 4/4 metrics =="
ofa-sic score-generate --generate-output "$DEMO_DIR/ce/generate-test.txt" --data "$DEMO_DIR/data" --split test \
  --metrics "$DEMO_DIR/metrics.json" --stage ce
python - "$DEMO_DIR" <<'PY'
import sys
from ofa_sic.cli.score_generate import read_hypotheses, read_references
demo = sys.argv[1]
hyps = read_hypotheses(f"{demo}/ce/generate-test.txt")
styles = {}
with open(f"{demo}/data/test.tsv") as f:
    for i, line in enumerate(l for l in f if l.strip()):
        style = line.split("\t")[2]
        styles.setdefault(style, i)
for style, i in styles.items():
    print(f"  {style:>14}: {hyps[i]}")
PY
echo "results: $DEMO_DIR/metrics.json (test metrics per stage), captions: $DEMO_DIR/ce/generate-test.txt"
