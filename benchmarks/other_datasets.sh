#!/usr/bin/env bash
# The demo data in the layouts of FlickrStyle10K, SentiCap and a captions file (`ofa-sic demo-data
# --layout`), each converted by its own command (prepare-flickrstyle, prepare-senticap,
# prepare-captions) and taken through the whole pipeline unchanged: the style classifier, stage-1
# cross-entropy training of ofa_demo, SCST from the stage-1 checkpoint, and `ofa-sic evaluate` of both
# stages on the test split. A run proves that the converted folders work with every command; at the
# default (tiny, CPU) scale the scores are not a result about the data sets.
# Everything goes under $OUT_DIR (default bench_other_datasets/); $OUT_DIR/summary.json holds, per
# layout and stage, the test metrics the papers report (BLEU-1/3/4, METEOR, CIDEr, style top-1).
#   bash benchmarks/other_datasets.sh                      # ~ a few minutes on 2 CPU cores
#   N_TRAIN=600 CE_UPDATES=400 SCST_UPDATES=100 bash benchmarks/other_datasets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=${OUT_DIR:-bench_other_datasets}
LAYOUTS=${LAYOUTS:-"flickrstyle senticap captions"}
N_TRAIN=${N_TRAIN:-60}
N_VALID=${N_VALID:-8}
N_TEST=${N_TEST:-20}
CE_UPDATES=${CE_UPDATES:-30}
SCST_UPDATES=${SCST_UPDATES:-6}
METEOR_ARGS=${METEOR_ARGS:---no-meteor}  # METEOR_ARGS= to score METEOR too (starts a Java process)
WORKERS=${WORKERS:-0}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

for layout in $LAYOUTS; do
  dir="$OUT_DIR/$layout"
  rm -rf "$dir"
  mkdir -p "$dir/ce" "$dir/scst"
  echo "== $layout: demo data, $(date +%T)"
  ofa-sic demo-data --out "$dir/raw" --layout "$layout" --n-train "$N_TRAIN" --n-valid "$N_VALID" --n-test "$N_TEST" \
    > "$dir/demo-data.log"
  # the converter command demo-data printed ("next: ofa-sic prepare-... --out DIR"), with our --out
  prepare=$(sed -n 's/^next: //p' "$dir/demo-data.log" | sed "s| --out .*| --out $dir/data|")
  eval "$prepare --image-size 96" > "$dir/prepare.log" 2>&1 || { cat "$dir/prepare.log" >&2; exit 1; }
  ofa-sic check-data "$dir/data" > /dev/null
  ofa-sic style-classifier --data "$dir/data" --out "$dir/style_classifier.npz" > "$dir/style_classifier.log"

  echo "== $layout: stage 1, $CE_UPDATES updates, $(date +%T)"
  DATA="$dir/data" BPE_DIR="$dir/raw/bpe" SAVE_DIR="$dir/ce" ARCH=ofa_demo RESTORE_FILE= PATCH_IMAGE_SIZE=96 \
    MAX_EPOCH=1000 BATCH_SIZE=16 LR=1e-3 DROP_WORST_RATIO=0 DROPOUT=0.0 DROP_PATH_RATE=0.0 FREEZE_EMBEDDINGS=0 \
    NUM_WORKERS="$WORKERS" SAVE_INTERVAL_UPDATES=0 DEVICE_ARGS=--cpu \
    EVAL_ARGS='{"beam":2,"max_len_b":16,"no_repeat_ngram_size":3}' \
    bash run_scripts/train_caption.sh --max-update "$CE_UPDATES" --seed 1 > "$dir/ce/train.log" 2>&1 \
    || { tail -n 30 "$dir/ce/train.log" >&2; exit 1; }

  echo "== $layout: SCST, $SCST_UPDATES updates, $(date +%T)"
  DATA="$dir/data" BPE_DIR="$dir/raw/bpe" RESTORE_FILE="$dir/ce/checkpoint_last.pt" SAVE_DIR="$dir/scst" \
    MAX_UPDATE="$SCST_UPDATES" LR=5e-5 BATCH_SIZE=8 UPDATE_FREQ=1 NUM_WORKERS="$WORKERS" \
    EVAL_ARGS='{"beam":2,"max_len_b":16,"no_repeat_ngram_size":3}' \
    bash run_scripts/scst.sh --seed 1 > "$dir/scst/train.log" 2>&1 \
    || { tail -n 30 "$dir/scst/train.log" >&2; exit 1; }

  for stage in ce scst; do
    echo "== $layout: evaluate $stage, $(date +%T)"
    ofa-sic evaluate --path "$dir/$stage/checkpoint_last.pt" --data "$dir/data" --bpe-dir "$dir/raw/bpe" --split test \
      --out "$dir/$stage/eval" --overwrite --batch-size 16 --cpu --style-classifier "$dir/style_classifier.npz" \
      --attributes "$dir/raw/attributes.json" $METEOR_ARGS > "$dir/$stage/evaluate.log"
  done
done

python - "$OUT_DIR" $LAYOUTS <<'PY'
import json, sys
out, layouts = sys.argv[1], sys.argv[2:]
names = ("BLEU-1", "BLEU-3", "BLEU-4", "METEOR", "CIDEr", "style_top1", "reference_style_top1")
summary = {}
print(f"{'layout':<12} {'stage':<5} {'rows':>5} " + " ".join(f"{n:>8}" for n in ("B-1", "B-3", "B-4", "METEOR", "CIDEr", "top1", "ref-top1")))
for layout in layouts:
    report = json.load(open(f"{out}/{layout}/data/report.json"))
    for stage in ("ce", "scst"):
        overall = json.load(open(f"{out}/{layout}/{stage}/eval/metrics.json"))["overall"]
        row = {n: overall.get(n) for n in names}
        row["test_rows"] = overall["num_samples"]
        summary.setdefault(layout, {"rows": {s: r["written"] for s, r in report["splits"].items()}})[stage] = row
        cells = " ".join(f"{row[n]:>8.1f}" if row[n] is not None else f"{'-':>8}" for n in names)
        print(f"{layout:<12} {stage:<5} {row['test_rows']:>5} {cells}")
json.dump(summary, open(f"{out}/summary.json", "w"), indent=2)
print(f"wrote {out}/summary.json")
PY
