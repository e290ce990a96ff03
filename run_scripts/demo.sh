#!/usr/bin/env bash
# The demo, end to end on a CPU: install, synthetic PCap-format data (one caption per training image, as
# PCap), prepare-pcap, stage-1 (CE) training of ofa_demo, stage-2 SCST from the stage-1 checkpoint (5
# samples per image with the leave-one-out baseline, the arm of benchmarks/scst_study.sh that beat
# continued CE in every seed; see BENCHMARKS.md), an evaluation report after each stage
# (per style, style accuracy and diversity, a gallery, and how often the captions state each image's
# colour, shape, count and background; for SCST also 5 styles per image), the paired bootstrap of SCST
# against CE on the 500 test images, and the training curves. Everything goes under $DEMO_DIR (default
# demo_out/); $DEMO_DIR/metrics.json holds the test metrics of each finished stage ("ce", "scst"),
# $DEMO_DIR/compare.json the SCST - CE differences with their 95% intervals.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

DEMO_DIR=${DEMO_DIR:-demo_out}
N_TEST=${N_TEST:-500}
TRAIN_REFERENCES=${TRAIN_REFERENCES:-1}
PROFILE=${PROFILE:-template}  # pcap: comments with Personality-Captions' statistics (README, Quick start)
SEED=${SEED:-1}  # the training seed of both stages (the data are the same at every seed)
SCST_UPDATES=${SCST_UPDATES:-150}
SCST_LR=${SCST_LR:-5e-5}
SCST_BATCH_SIZE=${SCST_BATCH_SIZE:-16}
SCST_SAMPLES='{"sampling":true,"beam":5,"temperature":1.0,"max_len_b":16}'  # 5 samples per image
source run_scripts/demo_stage1.sh  # EPOCHS, BATCH_SIZE, LR, WORKERS and demo_stage1

make install
PATH="$ROOT/.venv/bin:$PATH"
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)
DATA="$DEMO_DIR/data"
BPE="$DEMO_DIR/raw/bpe"
CLASSIFIER="$DEMO_DIR/style_classifier.npz"
rm -f "$DEMO_DIR/metrics.json"

test_metrics() {  # test_metrics STAGE CHECKPOINT [evaluate options]: evaluation report of the test split, into metrics.json
  ofa-sic evaluate --path "$2" --data "$DATA" --bpe-dir "$BPE" --split test --out "$DEMO_DIR/$1/eval" --overwrite \
    --batch-size 32 --cpu --attributes "$DEMO_DIR/raw/attributes.json" --style-classifier "$CLASSIFIER" "${@:3}" \
    > "$DEMO_DIR/$1/evaluate.log"
  python - "$DEMO_DIR" "$1" <<'PY'
import json, os, sys
demo, stage = sys.argv[1:]
path = f"{demo}/metrics.json"
metrics = json.load(open(path)) if os.path.exists(path) else {}
metrics[stage] = json.load(open(f"{demo}/{stage}/eval/metrics.json"))["overall"]
json.dump(metrics, open(path, "w"), indent=2)
PY
  grep "content stated correctly" "$DEMO_DIR/$1/evaluate.log" | sed "s/^/  $1 /"
}

echo "== 1/5 demo data in Personality-Captions' layout, converted with prepare-pcap; the style classifier =="
ofa-sic demo-data --out "$DEMO_DIR/raw" --n-test "$N_TEST" --train-references "$TRAIN_REFERENCES" --profile "$PROFILE"
ofa-sic prepare-pcap --pcap-dir "$DEMO_DIR/raw/personality_captions" --image-dir "$DEMO_DIR/raw/yfcc_images" \
  --out "$DATA" --image-size 96 --workers "$WORKERS"
ofa-sic style-classifier --data "$DATA" --out "$CLASSIFIER"

echo "== 2/5 stage 1: cross-entropy training of ofa_demo ($EPOCHS epochs) =="
mkdir -p "$DEMO_DIR/ce"
demo_stage1 "$ROOT" "$DATA" "$BPE" "$DEMO_DIR/ce" --seed "$SEED" > "$DEMO_DIR/ce/train.log" 2>&1 \
  || { tail -n 30 "$DEMO_DIR/ce/train.log" >&2; exit 1; }
grep -E "valid on 'valid'" "$DEMO_DIR/ce/train.log" | sed -E 's/.*\| (epoch [0-9]+) \|.*\| cider ([0-9.]+) \|.*/  \1: valid CIDEr-D (x1) \2/'
test_metrics ce "$DEMO_DIR/ce/checkpoint_best.pt"

echo "== 3/5 stage 2: SCST on CIDEr-D from the stage-1 checkpoint ($SCST_UPDATES updates) =="
mkdir -p "$DEMO_DIR/scst"
DEMO_DIR="$DEMO_DIR" SAVE_DIR="$DEMO_DIR/scst" MAX_UPDATE="$SCST_UPDATES" LR="$SCST_LR" \
  BATCH_SIZE="$SCST_BATCH_SIZE" UPDATE_FREQ=1 NUM_WORKERS="$WORKERS" SCST_ARGS="$SCST_SAMPLES" BASELINE=loo \
  bash run_scripts/scst.sh --seed "$SEED" > "$DEMO_DIR/scst/train.log" 2>&1 \
  || { tail -n 30 "$DEMO_DIR/scst/train.log" >&2; exit 1; }
grep -E "\| train \|" "$DEMO_DIR/scst/train.log" | sed -E 's/.*\| score ([0-9.]+) \|.*(share_generate [0-9.]+ \| share_reward [0-9.]+ \| share_forward [0-9.]+).*/  train: mean hypothesis CIDEr-D (x1) \1; time \2/'
test_metrics scst "$DEMO_DIR/scst/checkpoint_last.pt" --styles-per-image 5

echo "== 4/5 an example caption per style (SCST model, test split) =="
python - "$DEMO_DIR" <<'PY'
import json, sys
shown = set()
for p in json.load(open(f"{sys.argv[1]}/scst/eval/predictions.json")):
    if p["style"] not in shown:
        shown.add(p["style"])
        print(f"  {p['style']:>14}: {p['caption']}")
PY

echo "== 5/5 SCST against CE: paired bootstrap over the test images; training curves =="
ofa-sic compare "$DEMO_DIR/ce/eval" "$DEMO_DIR/scst/eval" --no-meteor --out "$DEMO_DIR/compare.json" \
  > "$DEMO_DIR/compare.log"
ofa-sic plot "$DEMO_DIR/ce/train.log" "$DEMO_DIR/scst/train.log" --out "$DEMO_DIR/training_curves.png"
echo "results: $DEMO_DIR/metrics.json (test metrics per stage), $DEMO_DIR/compare.log (all metrics, per style),"
echo "  galleries: $DEMO_DIR/ce/eval/gallery.html, $DEMO_DIR/scst/eval/gallery.html, curves: $DEMO_DIR/training_curves.png"
python - "$DEMO_DIR" <<'PY'
import json, sys
demo = sys.argv[1]
metrics = json.load(open(f"{demo}/metrics.json"))
print("style top-1 accuracy (%, the classifier on the human references: "
      f"{metrics['scst']['reference_style_top1']:.1f}): "
      + ", ".join(f"{stage} {m['style_top1']:.1f}" for stage, m in metrics.items()))
print("distinct-2 (%): " + ", ".join(f"{stage} {m['distinct-2']:.1f}" for stage, m in metrics.items()))
sensitivity = json.load(open(f"{demo}/scst/eval/metrics.json"))["style_sensitivity"]
print(f"style sensitivity (scst, 5 styles per image): captions differ for {sensitivity['images_with_differing_captions']:.1f}% "
      f"of the images; style top-1 in the requested styles {sensitivity['style_top1']:.1f}%")
c = json.load(open(f"{demo}/compare.json"))["overall"]["CIDEr"]
print(f"test CIDEr (x100, {c['num_images']} images): ce {c['a']:.1f}, scst {c['b']:.1f}; "
      f"scst - ce {c['difference']:+.1f}, 95% CI [{c['ci_low']:+.1f}, {c['ci_high']:+.1f}] (paired bootstrap)")
PY
echo "caption your own images with the SCST model, on a web page and a JSON API (README: Serving captions):"
echo "  ofa-sic serve --path $DEMO_DIR/scst/checkpoint_last.pt --cpu    # then open http://127.0.0.1:8000/"
