#!/usr/bin/env bash
# Stage 1: cross-entropy fine-tuning with style prompts (OFA's caption recipe, docs/ofa-spec.md §9.1,
# with the values the ModelScope prototype measured better on PCap: warmup 0.06, weight decay 0.001,
# batch 24, 3 epochs). Every path and size can be overridden by an environment variable, e.g.
#   DATA=pcap_data BPE_DIR=OFA/utils/BPE RESTORE_FILE=checkpoints/ofa_base.pt ARCH=ofa_base LR=2e-5 \
#     bash run_scripts/train_caption.sh
# Extra fairseq-train options can follow on the command line. Multi-GPU: prefix with
#   torchrun --nproc_per_node=N $(which fairseq-train) ...  (see README).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

DATA=${DATA:?set DATA to the prepare-pcap output directory}
BPE_DIR=${BPE_DIR:?set BPE_DIR to a folder with encoder.json, vocab.bpe, dict.txt}
ARCH=${ARCH:-ofa_base}
RESTORE_FILE=${RESTORE_FILE-checkpoints/${ARCH}.pt}
SAVE_DIR=${SAVE_DIR:-checkpoints/stage1_${ARCH}}
PATCH_IMAGE_SIZE=${PATCH_IMAGE_SIZE:-480}
LR=${LR:-2e-5}
MAX_EPOCH=${MAX_EPOCH:-3}
BATCH_SIZE=${BATCH_SIZE:-24}
UPDATE_FREQ=${UPDATE_FREQ:-1}
WARMUP_RATIO=${WARMUP_RATIO:-0.06}
WEIGHT_DECAY=${WEIGHT_DECAY:-0.001}
LABEL_SMOOTHING=${LABEL_SMOOTHING:-0.1}
DROP_WORST_RATIO=${DROP_WORST_RATIO:-0.2}
DROP_WORST_AFTER=${DROP_WORST_AFTER:-2500}
DROPOUT=${DROPOUT:-0.1}
DROP_PATH_RATE=${DROP_PATH_RATE:-0.1}
MAX_SRC_LENGTH=${MAX_SRC_LENGTH:-80}
MAX_TGT_LENGTH=${MAX_TGT_LENGTH:-20}
FREEZE_EMBEDDINGS=${FREEZE_EMBEDDINGS:-1}
NUM_WORKERS=${NUM_WORKERS:-2}
SAVE_INTERVAL_UPDATES=${SAVE_INTERVAL_UPDATES:-500}
KEEP_INTERVAL_UPDATES=${KEEP_INTERVAL_UPDATES:-3}
EVAL_ARGS=${EVAL_ARGS:-}  # JSON generation options; default: OFA's (beam 5, max_len_b 16, no-repeat 3)
DEVICE_ARGS=${DEVICE_ARGS:-}

args=()
source "$ROOT/run_scripts/precision.sh"  # PRECISION=fp16|amp|fp32; fp16 on a GPU, fp32 on the CPU
[ -n "$EVAL_ARGS" ] && args+=(--eval-args "$EVAL_ARGS")
# Resume: fairseq loads $SAVE_DIR/checkpoint_last.pt when it exists (a rerun continues where a crash
# stopped); only without it does it start from RESTORE_FILE, with optimizer, schedule and meters reset.
[ -n "$RESTORE_FILE" ] && args+=(--finetune-from-model "$RESTORE_FILE")
[ "$FREEZE_EMBEDDINGS" = 1 ] && args+=(--freeze-encoder-embedding --freeze-decoder-embedding)
[ "$SAVE_INTERVAL_UPDATES" -gt 0 ] && args+=(--save-interval-updates "$SAVE_INTERVAL_UPDATES"
  --validate-interval-updates "$SAVE_INTERVAL_UPDATES" --keep-interval-updates "$KEEP_INTERVAL_UPDATES")

mkdir -p "$SAVE_DIR"
# FAIRSEQ_TRAIN may be a launcher command line, e.g. "torchrun --nproc_per_node=4 $(which fairseq-train)".
read -r -a launcher <<< "${FAIRSEQ_TRAIN:-fairseq-train}"
exec "${launcher[@]}" "$DATA" --user-dir "$ROOT/ofa_sic" --task style_caption --arch "$ARCH" \
  --bpe-dir "$BPE_DIR" --patch-image-size "$PATCH_IMAGE_SIZE" \
  --max-src-length "$MAX_SRC_LENGTH" --max-tgt-length "$MAX_TGT_LENGTH" \
  --encoder-normalize-before --decoder-normalize-before \
  --layernorm-embedding --patch-layernorm-embedding --code-layernorm-embedding --add-type-embedding \
  --scale-attn --scale-fc --scale-heads --disable-entangle \
  --dropout "$DROPOUT" --attention-dropout 0.0 --resnet-drop-path-rate 0.0 \
  --encoder-drop-path-rate "$DROP_PATH_RATE" --decoder-drop-path-rate "$DROP_PATH_RATE" \
  --criterion adjust_label_smoothed_cross_entropy --label-smoothing "$LABEL_SMOOTHING" \
  --drop-worst-ratio "$DROP_WORST_RATIO" --drop-worst-after "$DROP_WORST_AFTER" --report-accuracy \
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-08 --weight-decay "$WEIGHT_DECAY" --clip-norm 1.0 \
  --lr-scheduler ofa_polynomial_decay --lr "$LR" --warmup-ratio "$WARMUP_RATIO" --max-epoch "$MAX_EPOCH" \
  --batch-size "$BATCH_SIZE" --update-freq "$UPDATE_FREQ" --num-workers "$NUM_WORKERS" \
  --eval-cider --best-checkpoint-metric cider --maximize-best-checkpoint-metric \
  --no-epoch-checkpoints --keep-best-checkpoints 1 --fixed-validation-seed 7 \
  --save-dir "$SAVE_DIR" --log-format simple --log-interval 10 \
  "${args[@]}" $DEVICE_ARGS "$@"
