# The demo's stage 1: cross-entropy training of ofa_demo from scratch on the 96-pixel demo data, with the
# demo's settings. Sourced (not run) by run_scripts/demo.sh and benchmarks/stage1_seeds.sh, so that both
# train alike. Each setting can be overridden from the environment.
EPOCHS=${EPOCHS:-20}  # 16 left the shape of the picture half-learned in some seeds (BENCHMARKS.md, "Stage 1 over seeds")
BATCH_SIZE=${BATCH_SIZE:-32}
LR=${LR:-1e-3}
WORKERS=${WORKERS:-2}

# demo_stage1 CHECKOUT DATA BPE_DIR SAVE_DIR [fairseq-train options]: CHECKOUT's run_scripts/train_caption.sh
# with the demo's settings (CHECKOUT: this repository, or another checkout of it to compare with).
demo_stage1() {
  (cd "$1" && DATA="$2" BPE_DIR="$3" SAVE_DIR="$4" ARCH=ofa_demo RESTORE_FILE= \
    PATCH_IMAGE_SIZE=96 MAX_EPOCH="$EPOCHS" BATCH_SIZE="$BATCH_SIZE" UPDATE_FREQ=1 LR="$LR" \
    LABEL_SMOOTHING=0.1 DROP_WORST_RATIO=0 DROPOUT=0.0 DROP_PATH_RATE=0.0 WEIGHT_DECAY=0.01 \
    FREEZE_EMBEDDINGS=0 NUM_WORKERS="$WORKERS" SAVE_INTERVAL_UPDATES=0 DEVICE_ARGS=--cpu \
    bash run_scripts/train_caption.sh "${@:5}")
}
