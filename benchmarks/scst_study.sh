#!/usr/bin/env bash
# Does stage 2 help? Every arm starts from the same stage-1 (CE) checkpoint of ofa_demo (the demo's stage 1:
# $CE_EPOCHS epochs at lr $CE_LR decaying to 0, on demo data with $TRAIN_REFERENCES caption(s) per training
# image, as PCap has one) and runs the same number of updates at the same lr:
#   control        continued CE (label-smoothed cross-entropy)
#   beams_loo      SCST, OFA's 5 beams, leave-one-out baseline
#   samples_loo    SCST, 5 independent samples (temperature 1), leave-one-out baseline
#   samples_greedy SCST, 5 independent samples, the greedy caption as baseline
# each with every seed of $SEEDS. SCST rewards each hypothesis against all the training captions of its
# image (with TRAIN_REFERENCES=5, five; CE then needs fewer epochs, e.g. CE_EPOCHS=5). Each arm's last checkpoint (no selection on the 1-reference valid split) is evaluated on the test
# split (`ofa-sic evaluate --attributes`, content accuracy too) and compared with the control of the same
# seed (`ofa-sic compare`, paired bootstrap over the test images). Writes $OUT/table.md (test CIDEr mean ±
# sd over seeds, each seed's paired 95% CI against the control, content accuracy) and $OUT/curves.svg
# (train reward and valid CIDEr-D against updates).
#   bash benchmarks/scst_study.sh     # the full study (see BENCHMARKS.md for how long it took)
#   TRAIN_REFERENCES=5 CE_EPOCHS=5 OUT=study_5ref bash benchmarks/scst_study.sh   # five captions per image
#   CE_EPOCHS=1 ARM_UPDATES=4 ARM_VALIDATE=2 SEEDS=1 N_TRAIN=40 N_VALID=6 N_TEST=10 SCST_BATCH_SIZE=4 \
#     OUT=study_smoke bash benchmarks/scst_study.sh   # smoke test (minutes)
#   PROFILE=pcap CE_EPOCHS=20 OUT=study_pcap bash benchmarks/scst_study.sh   # on the PCap-like data (issue 21)
# A finished step is not redone: delete its folder under $OUT to rerun it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATH="$ROOT/.venv/bin:$PATH"

OUT=${OUT:-study_out}
N_TRAIN=${N_TRAIN:-2000}
N_VALID=${N_VALID:-100}
N_TEST=${N_TEST:-500}
TRAIN_REFERENCES=${TRAIN_REFERENCES:-1}
PROFILE=${PROFILE:-template}              # pcap: the PCap-like demo data (ofa-sic demo-data --profile pcap)
CE_LR=${CE_LR:-1e-3}
CE_EPOCHS=${CE_EPOCHS:-16}
ARM_UPDATES=${ARM_UPDATES:-150}
ARM_VALIDATE=${ARM_VALIDATE:-50}
LR=${LR:-5e-5}                           # every arm's peak lr (warmup 6%, linear decay to 0)
SCST_BATCH_SIZE=${SCST_BATCH_SIZE:-16}
SEEDS=${SEEDS:-1 2 3}
ARMS=${ARMS:-control beams_loo samples_loo samples_greedy}
WORKERS=${WORKERS:-1}
EVAL='{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'
BEAMS='{"beam":5,"max_len_b":16,"no_repeat_ngram_size":3}'
SAMPLES='{"sampling":true,"beam":5,"temperature":1.0,"max_len_b":16}'

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
DATA="$OUT/data"
BPE="$OUT/raw/bpe"
start=$(date +%s)

if [ ! -f "$DATA/test.tsv" ]; then
  echo "== demo data ($PROFILE profile): $N_TRAIN train images ($TRAIN_REFERENCES references each), $N_VALID valid, $N_TEST test =="
  ofa-sic demo-data --out "$OUT/raw" --n-train "$N_TRAIN" --n-valid "$N_VALID" --n-test "$N_TEST" \
    --train-references "$TRAIN_REFERENCES" --profile "$PROFILE"
  ofa-sic prepare-pcap --pcap-dir "$OUT/raw/personality_captions" --image-dir "$OUT/raw/yfcc_images" --out "$DATA" \
    --image-size 96 --workers "$WORKERS" > "$OUT/prepare.log"
fi

ce_train() {  # ce_train SAVE_DIR LR MAX_EPOCH EXTRA...: cross-entropy training of ofa_demo (the demo's settings)
  local save=$1 lr=$2 epochs=$3; shift 3
  mkdir -p "$save"
  DATA="$DATA" BPE_DIR="$BPE" SAVE_DIR="$save" ARCH=ofa_demo PATCH_IMAGE_SIZE=96 MAX_EPOCH="$epochs" BATCH_SIZE=32 \
    UPDATE_FREQ=1 LR="$lr" LABEL_SMOOTHING=0.1 DROP_WORST_RATIO=0 DROPOUT=0.0 DROP_PATH_RATE=0.0 WEIGHT_DECAY=0.01 \
    FREEZE_EMBEDDINGS=0 NUM_WORKERS="$WORKERS" SAVE_INTERVAL_UPDATES=0 DEVICE_ARGS=--cpu EVAL_ARGS="$EVAL" \
    bash "$ROOT/run_scripts/train_caption.sh" "$@" > "$save/train.log" 2>&1 \
    || { tail -n 30 "$save/train.log" >&2; exit 1; }
}

evaluate() {  # evaluate RUN_DIR CHECKPOINT: test-split report of RUN_DIR/CHECKPOINT in RUN_DIR/test
  ofa-sic evaluate --path "$1/$2" --data "$DATA" --bpe-dir "$BPE" --split test --out "$1/test" \
    --batch-size 32 --cpu --no-meteor --no-spice --attributes "$OUT/raw/attributes.json" > "$1/evaluate.log" 2>&1 \
    || { tail -n 30 "$1/evaluate.log" >&2; exit 1; }
}

CE="$OUT/ce"
if [ ! -f "$CE/test/metrics.json" ]; then
  echo "== stage 1: CE, $CE_EPOCHS epochs (valid CIDEr-D after each) =="
  RESTORE_FILE= ce_train "$CE" "$CE_LR" "$CE_EPOCHS" --seed 1
  evaluate "$CE" checkpoint_best.pt
fi

for seed in $SEEDS; do
  for arm in $ARMS; do
    run="$OUT/$arm/seed$seed"
    [ -f "$run/test/metrics.json" ] && continue
    echo "== $arm, seed $seed: $ARM_UPDATES updates from the CE checkpoint =="
    mkdir -p "$run"
    case $arm in
      control)
        RESTORE_FILE="$CE/checkpoint_best.pt" ce_train "$run" "$LR" 0 --max-update "$ARM_UPDATES" \
          --save-interval-updates "$ARM_VALIDATE" --validate-interval-updates "$ARM_VALIDATE" --keep-interval-updates 1 \
          --validate-interval 1000000 --seed "$seed" ;;
      beams_loo|samples_loo|samples_greedy)
        case $arm in
          beams_loo) args="$BEAMS"; baseline=loo; extra=(--scst-greedy-every 10) ;;
          samples_loo) args="$SAMPLES"; baseline=loo; extra=(--scst-greedy-every 10) ;;
          samples_greedy) args="$SAMPLES"; baseline=greedy; extra=() ;;
        esac
        DEMO_DIR="$OUT" DATA="$DATA" BPE_DIR="$BPE" RESTORE_FILE="$CE/checkpoint_best.pt" SAVE_DIR="$run" \
          MAX_EPOCH=0 MAX_UPDATE="$ARM_UPDATES" LR="$LR" BATCH_SIZE="$SCST_BATCH_SIZE" UPDATE_FREQ=1 \
          NUM_WORKERS="$WORKERS" SCST_ARGS="$args" EVAL_ARGS="$EVAL" BASELINE="$baseline" \
          bash "$ROOT/run_scripts/scst.sh" --seed "$seed" --save-interval-updates "$ARM_VALIDATE" \
          --validate-interval-updates "$ARM_VALIDATE" --keep-interval-updates 1 --validate-interval 1000000 \
          --log-interval 1 "${extra[@]}" > "$run/train.log" 2>&1 || { tail -n 30 "$run/train.log" >&2; exit 1; } ;;
      *) echo "unknown arm $arm (known: control beams_loo samples_loo samples_greedy)" >&2; exit 2 ;;
    esac
    evaluate "$run" checkpoint_last.pt
  done
  for arm in $ARMS; do
    [ "$arm" = control ] && continue
    [ -f "$OUT/$arm/seed$seed/compare.json" ] || ofa-sic compare "$OUT/control/seed$seed/test" "$OUT/$arm/seed$seed/test" \
      --no-meteor --out "$OUT/$arm/seed$seed/compare.json" > "$OUT/$arm/seed$seed/compare.log"
  done
done

python "$ROOT/benchmarks/scst_study_report.py" "$OUT" $ARMS
echo "study took $(( ($(date +%s) - start) / 60 )) min; table: $OUT/table.md, curves: $OUT/curves.svg"
