#!/usr/bin/env bash
# Stage 2: self-critical sequence training on a CIDEr-D reward, continuing from a stage-1 checkpoint,
# with OFA's stage-2 settings (docs/ofa-spec.md §9.2): lr 1e-5 decaying to END_LR, warmup ratio 0.06,
# 3 epochs, no dropout or drop-path, beam 5 / max_len_b 16 / no-repeat 3 hypotheses, leave-one-out
# baseline, frozen token embeddings (--freeze-encoder-embedding --freeze-decoder-embedding).
# Where this script differs from OFA's stage-2 scripts, and why:
# - --freeze-resnet (FREEZE_RESNET=1; OFA's README remedy for unstable SCST, not its default): with
#   BatchNorm in train mode the teacher-forced pass would normalise with the statistics of a 2-image
#   batch and update the running statistics, so the model that is trained differs from the one that
#   generated the hypotheses. Frozen BN makes the two the same model.
# - BATCH_SIZE x UPDATE_FREQ defaults to 2 x 4 per process; OFA used 8 GPUs x 2 x 4 = 64 images per update.
# The defaults run on the demo output (run_scripts/demo.sh); every path and size is an environment
# variable, e.g. for PCap:
#   DATA=pcap_data BPE_DIR=OFA/utils/BPE ARCH=ofa_base RESTORE_FILE=checkpoints/stage1_ofa_base/checkpoint_best.pt \
#     PATCH_IMAGE_SIZE=480 DEVICE_ARGS= bash run_scripts/scst.sh
# Extra fairseq-train options can follow on the command line.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

DEMO_DIR=${DEMO_DIR:-demo_out}
DATA=${DATA:-$DEMO_DIR/data}
BPE_DIR=${BPE_DIR:-$DEMO_DIR/raw/bpe}
ARCH=${ARCH:-ofa_demo}
RESTORE_FILE=${RESTORE_FILE:-$DEMO_DIR/ce/checkpoint_best.pt}
SAVE_DIR=${SAVE_DIR:-$DEMO_DIR/scst}
CIDER_DF=${CIDER_DF:-$DATA/train-words.p}
PATCH_IMAGE_SIZE=${PATCH_IMAGE_SIZE:-96}
LR=${LR:-1e-5}
END_LR=${END_LR:-0}
MAX_EPOCH=${MAX_EPOCH:-3}
MAX_UPDATE=${MAX_UPDATE:-0}
BATCH_SIZE=${BATCH_SIZE:-2}
UPDATE_FREQ=${UPDATE_FREQ:-4}
WARMUP_RATIO=${WARMUP_RATIO:-0.06}
WEIGHT_DECAY=${WEIGHT_DECAY:-0.01}
BASELINE=${BASELINE:-loo}
SCST_ARGS=${SCST_ARGS:-}  # JSON generation options; default: OFA's (beam 5, max_len_b 16, no-repeat 3)
EVAL_ARGS=${EVAL_ARGS:-}  # JSON generation options; default: OFA's (beam 5, max_len_b 16, no-repeat 3)
NUM_WORKERS=${NUM_WORKERS:-2}
DEVICE_ARGS=${DEVICE_ARGS:---cpu}
FREEZE_RESNET=${FREEZE_RESNET:-1}
FREEZE_EMBEDDINGS=${FREEZE_EMBEDDINGS:-1}

if [ ! -f "$RESTORE_FILE" ] && [ ! -f "$SAVE_DIR/checkpoint_last.pt" ]; then
  echo "stage-1 checkpoint $RESTORE_FILE not found: run stage 1 first or set RESTORE_FILE" >&2; exit 2
fi
if [ ! -f "$CIDER_DF" ]; then
  echo "CIDEr-D document frequencies $CIDER_DF not found (--scst-cider-cached-tokens):" \
       "build them with: ofa-sic cider-df --tsv $DATA/train.tsv --out $CIDER_DF" >&2; exit 2
fi

# Resume: fairseq loads $SAVE_DIR/checkpoint_last.pt when it exists (a rerun continues where a crash
# stopped); only without it does it start from RESTORE_FILE, with optimizer, schedule and meters reset.
args=(--finetune-from-model "$RESTORE_FILE")
source "$ROOT/run_scripts/precision.sh"  # PRECISION=fp16|amp|fp32; fp16 on a GPU, fp32 on the CPU
[ -n "$EVAL_ARGS" ] && args+=(--eval-args "$EVAL_ARGS")
[ -n "$SCST_ARGS" ] && args+=(--scst-args "$SCST_ARGS")
[ "$FREEZE_RESNET" = 1 ] && args+=(--freeze-resnet)
[ "$FREEZE_EMBEDDINGS" = 1 ] && args+=(--freeze-encoder-embedding --freeze-decoder-embedding)
[ "$MAX_UPDATE" -gt 0 ] && args+=(--max-update "$MAX_UPDATE")

mkdir -p "$SAVE_DIR"
# FAIRSEQ_TRAIN may be a launcher command line, e.g. "torchrun --nproc_per_node=4 $(which fairseq-train)".
read -r -a launcher <<< "${FAIRSEQ_TRAIN:-fairseq-train}"
exec "${launcher[@]}" "$DATA" --user-dir "$ROOT/ofa_sic" --task style_caption --arch "$ARCH" \
  --bpe-dir "$BPE_DIR" --patch-image-size "$PATCH_IMAGE_SIZE" \
  --encoder-normalize-before --decoder-normalize-before \
  --layernorm-embedding --patch-layernorm-embedding --code-layernorm-embedding --add-type-embedding \
  --scale-attn --scale-fc --scale-heads --disable-entangle \
  --dropout 0.0 --attention-dropout 0.0 --resnet-drop-path-rate 0.0 --encoder-drop-path-rate 0.0 --decoder-drop-path-rate 0.0 \
  --criterion scst_reward_criterion --scst --scst-cider-cached-tokens "$CIDER_DF" \
  --scst-baseline "$BASELINE" \
  --optimizer adam --adam-betas "(0.9,0.999)" --adam-eps 1e-08 --weight-decay "$WEIGHT_DECAY" --clip-norm 1.0 \
  --lr-scheduler ofa_polynomial_decay --lr "$LR" --end-learning-rate "$END_LR" --warmup-ratio "$WARMUP_RATIO" \
  --max-epoch "$MAX_EPOCH" --batch-size "$BATCH_SIZE" --update-freq "$UPDATE_FREQ" --num-workers "$NUM_WORKERS" \
  --eval-cider --best-checkpoint-metric cider --maximize-best-checkpoint-metric \
  --no-epoch-checkpoints --keep-best-checkpoints 1 --fixed-validation-seed 7 \
  --save-dir "$SAVE_DIR" --log-format simple --log-interval 10 \
  "${args[@]}" $DEVICE_ARGS "$@"
