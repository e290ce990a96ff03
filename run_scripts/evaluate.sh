#!/usr/bin/env bash
# COCO caption metrics of a style_caption checkpoint: fairseq-generate with OFA's caption evaluation
# settings (beam 5, max_len_b 16, no-repeat 3) and the plugin's `--scoring coco_caption` scorer
# (BLEU-1..4, METEOR, ROUGE-L, CIDEr x100; SPICE when pycocoevalcap's CoreNLP jars are installed).
# Every path and setting is an environment variable, e.g.
#   DATA=pcap_data BPE_DIR=OFA/utils/BPE CKPT=checkpoints/stage1_ofa_base/checkpoint_best.pt \
#     bash run_scripts/evaluate.sh
# The image size, prompt template, style format and caption cleaning are taken from the checkpoint
# (the settings it was trained with) unless given. PROMPT_TEMPLATE sets another prompt: OFA's own
# style-free caption prompt evaluates a released caption checkpoint as a style-free baseline:
#   DATA=pcap_data BPE_DIR=OFA/utils/BPE CKPT=checkpoints/caption_base_best.pt \
#     PROMPT_TEMPLATE=" what does the image describe?" bash run_scripts/evaluate.sh
# Extra fairseq-generate options can follow on the command line. The generate output (S-/T-/H-/D- lines and the
# metrics) goes to $GENERATE_OUTPUT, its log next to it; the metrics are printed at the end.
# For per-style metrics and a gallery, use `ofa-sic evaluate` (README).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

DATA=${DATA:?set DATA to the prepare-pcap output directory}
BPE_DIR=${BPE_DIR:?set BPE_DIR to a folder with encoder.json, vocab.bpe, dict.txt}
CKPT=${CKPT:?set CKPT to the checkpoint to evaluate}
SPLIT=${SPLIT:-test}
PATCH_IMAGE_SIZE=${PATCH_IMAGE_SIZE:-}
PROMPT_TEMPLATE=${PROMPT_TEMPLATE:-}
BEAM=${BEAM:-5}
MAX_LEN_B=${MAX_LEN_B:-16}
NO_REPEAT_NGRAM_SIZE=${NO_REPEAT_NGRAM_SIZE:-3}
BATCH_SIZE=${BATCH_SIZE:-16}
GENERATE_OUTPUT=${GENERATE_OUTPUT:-$(dirname "$CKPT")/generate-$SPLIT.txt}
DEVICE_ARGS=${DEVICE_ARGS:-}
LOG=${GENERATE_OUTPUT%.txt}.log

args=()
[ -n "$PATCH_IMAGE_SIZE" ] && args+=(--patch-image-size "$PATCH_IMAGE_SIZE")
[ -n "$PROMPT_TEMPLATE" ] && args+=(--prompt-template "$PROMPT_TEMPLATE")

mkdir -p "$(dirname "$GENERATE_OUTPUT")"
if ! "${FAIRSEQ_GENERATE:-fairseq-generate}" "$DATA" --user-dir "$ROOT/ofa_sic" --task style_caption \
    --bpe-dir "$BPE_DIR" --path "$CKPT" --gen-subset "$SPLIT" "${args[@]}" \
    --beam "$BEAM" --max-len-b "$MAX_LEN_B" --no-repeat-ngram-size "$NO_REPEAT_NGRAM_SIZE" \
    --batch-size "$BATCH_SIZE" --scoring coco_caption $DEVICE_ARGS "$@" > "$GENERATE_OUTPUT" 2> "$LOG"; then
  echo "fairseq-generate failed; the end of its log ($LOG):" >&2
  tail -n 20 "$LOG" >&2
  exit 1
fi
echo "captions: $GENERATE_OUTPUT (D- lines), log: $LOG"
sed -n '/^Generate /,$p' "$GENERATE_OUTPUT"
