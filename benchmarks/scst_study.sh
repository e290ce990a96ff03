#!/usr/bin/env bash
# What helps, in stage 1 and in stage 2? On demo data ($PROFILE: template or pcap), with $STAGE1_SEEDS seeds:
# Stage 1 (ofa_demo from scratch, $CE_EPOCHS epochs at lr $CE_LR decaying to 0, $TRAIN_REFERENCES caption(s) per
# training image, as PCap has one), arms $STAGE1_ARMS:
#   ce             label-smoothed cross-entropy (the demo's stage 1)
#   ce_mlm         the same with the style-token masked-LM task (--mlm-ratio 1 --mlm-weight 1; same epochs)
#   ce_punct       the same with --keep-punctuation
# Stage 2, arms $ARMS, each from the same stage-1 checkpoint (ce, seed 1, $STAGE1_CHECKPOINT), each
# $ARM_UPDATES updates at the same peak lr $LR, with every seed of $SEEDS:
#   control        continued CE (label-smoothed cross-entropy)
#   beams_loo      SCST, OFA's 5 beams, leave-one-out baseline
#   samples_loo    SCST, 5 independent samples (temperature 1), leave-one-out baseline
#   samples_greedy SCST, 5 independent samples, the greedy caption as baseline
#   style<L>       samples_loo plus the style reward: L * log p(requested style | hypothesis) from the style
#                  classifier of the training captions (--scst-style-reward-weight L), e.g. style0.3
# SCST rewards each hypothesis against all the training captions of its image. Every run's last checkpoint
# (no selection on the small valid split) is evaluated on the test split (`ofa-sic evaluate --attributes
# --style-classifier`), its style judged by a classifier trained on an independent draw of the same profile
# (not the reward's classifier), and compared (`ofa-sic compare`, paired bootstrap over the test images) with
# the control of the same seed: stage-1 arms with ce, stage-2 arms with control. Writes $OUT/table.md (per
# arm: test CIDEr mean ± sd, each seed's paired 95% CI, BLEU-4, style top-1 against the references' (the
# ceiling), distinct-2, content accuracy, length; the runs that went the other way), $OUT/curves.svg (train
# reward and valid CIDEr-D against updates) and $OUT/cider_style.svg (test CIDEr against style top-1, a point
# per run).
#   bash benchmarks/scst_study.sh     # the SCST study on the template demo (BENCHMARKS.md, "SCST study")
#   TRAIN_REFERENCES=5 CE_EPOCHS=5 OUT=study_5ref bash benchmarks/scst_study.sh   # five captions per image
#   CE_EPOCHS=1 ARM_UPDATES=4 ARM_VALIDATE=2 SEEDS=1 N_TRAIN=40 N_VALID=6 N_TEST=10 SCST_BATCH_SIZE=4 \
#     OUT=study_smoke bash benchmarks/scst_study.sh   # smoke test (minutes)
#   PROFILE=pcap OUT=study_pcap CE_EPOCHS=8 STAGE1_CHECKPOINT=checkpoint_last.pt STAGE1_ARMS="ce ce_mlm ce_punct" \
#     STAGE1_SEEDS="1 2 3" ARMS="control beams_loo samples_loo style0.1 style0.3 style1 style3" \
#     bash benchmarks/scst_study.sh   # issue 21's study on the PCap-like data (BENCHMARKS.md)
# A finished step is not redone: delete its folder under $OUT to rerun it. Two copies may run side by side on
# one $OUT once its data exist (a run's save dir is locked), e.g. one with ARMS="" for the stage-1 arms.
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
STAGE1_ARMS=${STAGE1_ARMS:-ce}
STAGE1_SEEDS=${STAGE1_SEEDS:-1}
STAGE1_CHECKPOINT=${STAGE1_CHECKPOINT:-checkpoint_best.pt}  # of ce/seed1, where every stage-2 arm starts
ARM_UPDATES=${ARM_UPDATES:-150}
ARM_VALIDATE=${ARM_VALIDATE:-50}
LR=${LR:-5e-5}                           # every arm's peak lr (warmup 6%, linear decay to 0)
SCST_BATCH_SIZE=${SCST_BATCH_SIZE:-16}
SEEDS=${SEEDS:-1 2 3}
ARMS=${ARMS-control beams_loo samples_loo samples_greedy}
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
# Two style classifiers: the reward's, from the training captions (what a user has), and the judge's, from an
# independent draw of the same profile (another seed), so that no arm is scored by the classifier it optimised.
REWARD_CLASSIFIER="$OUT/style_classifier.npz"
JUDGE="$OUT/judge/style_classifier.npz"
[ -f "$REWARD_CLASSIFIER" ] || ofa-sic style-classifier --data "$DATA" --out "$REWARD_CLASSIFIER" > "$OUT/style_classifier.log"
if [ ! -f "$JUDGE" ]; then
  echo "== the judge's style classifier: an independent draw of $N_TRAIN training captions (seed 1) =="
  ofa-sic demo-data --out "$OUT/judge/raw" --seed 1 --n-train "$N_TRAIN" --n-valid "$N_VALID" --n-test 10 \
    --train-references "$TRAIN_REFERENCES" --profile "$PROFILE"
  ofa-sic prepare-pcap --pcap-dir "$OUT/judge/raw/personality_captions" --image-dir "$OUT/judge/raw/yfcc_images" \
    --out "$OUT/judge/data" --image-size 96 --no-df --workers "$WORKERS" > "$OUT/judge/prepare.log"
  ofa-sic style-classifier --data "$OUT/judge/data" --out "$JUDGE" > "$OUT/judge/style_classifier.log"
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
  ofa-sic evaluate --path "$1/$2" --data "$DATA" --bpe-dir "$BPE" --split test --out "$1/test" --overwrite \
    --batch-size 32 --cpu --no-meteor --no-spice --attributes "$OUT/raw/attributes.json" --style-classifier "$JUDGE" \
    > "$1/evaluate.log" 2>&1 || { tail -n 30 "$1/evaluate.log" >&2; exit 1; }
}

compare() {  # compare CONTROL_RUN RUN: RUN's paired bootstrap against CONTROL_RUN (same seed) in RUN/compare.json
  [ -f "$2/compare.json" ] || ofa-sic compare "$1/test" "$2/test" --no-meteor --out "$2/compare.json" > "$2/compare.log"
}

for arm in $STAGE1_ARMS; do
  for seed in $STAGE1_SEEDS; do
    run="$OUT/$arm/seed$seed"
    if [ ! -f "$run/test/metrics.json" ]; then
      case $arm in
        ce) extra=() ;;
        ce_mlm) extra=(--mlm-ratio 1 --mlm-weight 1) ;;
        ce_punct) extra=(--keep-punctuation) ;;
        *) echo "unknown stage-1 arm $arm (known: ce ce_mlm ce_punct)" >&2; exit 2 ;;
      esac
      echo "== stage 1: $arm, seed $seed, $CE_EPOCHS epochs (valid CIDEr-D after each) =="
      RESTORE_FILE= ce_train "$run" "$CE_LR" "$CE_EPOCHS" --seed "$seed" "${extra[@]}"
      evaluate "$run" "$STAGE1_CHECKPOINT"
    fi
    [ "$arm" = ce ] || [ ! -f "$OUT/ce/seed$seed/test/metrics.json" ] || compare "$OUT/ce/seed$seed" "$run"
  done
done

START="$OUT/ce/seed1/$STAGE1_CHECKPOINT"
for seed in $SEEDS; do
  for arm in $ARMS; do
    run="$OUT/$arm/seed$seed"
    [ -f "$run/test/metrics.json" ] && continue
    [ -f "$START" ] || { echo "stage-2 arms start from $START: run the ce arm with seed 1 first" >&2; exit 2; }
    echo "== $arm, seed $seed: $ARM_UPDATES updates from $START =="
    mkdir -p "$run"
    case $arm in
      control)
        RESTORE_FILE="$START" ce_train "$run" "$LR" 0 --max-update "$ARM_UPDATES" \
          --save-interval-updates "$ARM_VALIDATE" --validate-interval-updates "$ARM_VALIDATE" --keep-interval-updates 1 \
          --validate-interval 1000000 --seed "$seed" ;;
      beams_loo|samples_loo|samples_greedy|style*)
        case $arm in
          beams_loo) args="$BEAMS"; baseline=loo; extra=(--scst-greedy-every 10) ;;
          samples_loo) args="$SAMPLES"; baseline=loo; extra=(--scst-greedy-every 10) ;;
          samples_greedy) args="$SAMPLES"; baseline=greedy; extra=() ;;
          style*) args="$SAMPLES"; baseline=loo; extra=(--scst-greedy-every 10
            --scst-style-reward-weight "${arm#style}" --scst-style-classifier "$REWARD_CLASSIFIER") ;;
        esac
        DEMO_DIR="$OUT" DATA="$DATA" BPE_DIR="$BPE" RESTORE_FILE="$START" SAVE_DIR="$run" \
          MAX_EPOCH=0 MAX_UPDATE="$ARM_UPDATES" LR="$LR" BATCH_SIZE="$SCST_BATCH_SIZE" UPDATE_FREQ=1 \
          NUM_WORKERS="$WORKERS" SCST_ARGS="$args" EVAL_ARGS="$EVAL" BASELINE="$baseline" \
          bash "$ROOT/run_scripts/scst.sh" --seed "$seed" --save-interval-updates "$ARM_VALIDATE" \
          --validate-interval-updates "$ARM_VALIDATE" --keep-interval-updates 1 --validate-interval 1000000 \
          --log-interval 1 "${extra[@]}" > "$run/train.log" 2>&1 || { tail -n 30 "$run/train.log" >&2; exit 1; } ;;
      *) echo "unknown arm $arm (known: control beams_loo samples_loo samples_greedy style<weight>)" >&2; exit 2 ;;
    esac
    evaluate "$run" checkpoint_last.pt
  done
  for arm in $ARMS; do
    [ "$arm" = control ] || [ ! -f "$OUT/control/seed$seed/test/metrics.json" ] \
      || compare "$OUT/control/seed$seed" "$OUT/$arm/seed$seed"
  done
done

python "$ROOT/benchmarks/scst_study_report.py" "$OUT" --stage1 $STAGE1_ARMS --stage2 $ARMS
echo "study took $(( ($(date +%s) - start) / 60 )) min; table: $OUT/table.md, plots: $OUT/curves.svg, $OUT/cider_style.svg"
