# shellcheck shell=bash
# Sourced by benchmarks/gpu_check.sh and tests/device_install_check.sh: the project's own commands on
# demo data made on the spot. `ofa-sic` and the run scripts' `fairseq-train` / `fairseq-generate` are
# whatever PATH holds (benchmarks/device_env.sh puts the installed console scripts first). The model and
# the device come from the run scripts' own variables, which the caller exports: ARCH,
# PATCH_IMAGE_SIZE, PRECISION (fp16, amp or fp32), DEVICE_ARGS (--cpu or empty) and NUM_WORKERS.
#   make_check_data DIR N_TRAIN                 ofa-sic demo-data (96 px images) + prepare-pcap -> DIR/raw, DIR/data
#   train_stage1 DIR SAVE_DIR UPDATES BATCH ... run_scripts/train_caption.sh from random weights, loss logged every
#                                               update; SAVE_DIR/checkpoint_best.pt without optimizer state
#   train_scst DIR RESTORE SAVE_DIR UPDATES BATCH ...   run_scripts/scst.sh (K=5 beam hypotheses) from a stage-1 checkpoint
#   generate_test DIR CHECKPOINT OUTPUT ...     run_scripts/evaluate.sh (beam 5) on the test split, scored by
#                                               sacrebleu (coco_caption needs pycocoevalcap and Java), then
#                                               fairseq-generate's log and "hypotheses: N" (the H- lines of OUTPUT)
# Extra options after the listed arguments go to fairseq-train / fairseq-generate.
DEVICE_COMMANDS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

make_check_data() {
  local dir=$1 n_train=$2
  ofa-sic demo-data --out "$dir/raw" --n-train "$n_train" --n-valid 16 --n-test 16 &&
    ofa-sic prepare-pcap --pcap-dir "$dir/raw/personality_captions" --image-dir "$dir/raw/yfcc_images" \
      --out "$dir/data" --workers "$NUM_WORKERS"
}

train_stage1() {
  local dir=$1 save_dir=$2 updates=$3 batch=$4
  shift 4
  DATA=$dir/data BPE_DIR=$dir/raw/bpe SAVE_DIR=$save_dir RESTORE_FILE='' BATCH_SIZE=$batch UPDATE_FREQ=1 \
    SAVE_INTERVAL_UPDATES=0 bash "$DEVICE_COMMANDS_ROOT/run_scripts/train_caption.sh" \
    --max-update "$updates" --log-interval 1 --no-last-checkpoints --no-save-optimizer-state "$@"
}

train_scst() {
  local dir=$1 restore=$2 save_dir=$3 updates=$4 batch=$5
  shift 5
  DATA=$dir/data BPE_DIR=$dir/raw/bpe RESTORE_FILE=$restore SAVE_DIR=$save_dir MAX_UPDATE=$updates \
    BATCH_SIZE=$batch UPDATE_FREQ=1 bash "$DEVICE_COMMANDS_ROOT/run_scripts/scst.sh" --log-interval 1 "$@"
}

generate_test() {
  local dir=$1 checkpoint=$2 output=$3
  shift 3
  DATA=$dir/data BPE_DIR=$dir/raw/bpe CKPT=$checkpoint GENERATE_OUTPUT=$output SPLIT=test \
    bash "$DEVICE_COMMANDS_ROOT/run_scripts/evaluate.sh" --scoring sacrebleu "$@" || return
  cat "${output%.txt}.log"  # fairseq-generate's log: its speed line
  echo "hypotheses: $(grep -c '^H-' "$output")"
}
