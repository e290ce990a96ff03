#!/usr/bin/env bash
# The demo's stage 1 (cross-entropy training of ofa_demo, run_scripts/demo_stage1.sh, as the demo runs it) over
# several seeds, each followed by the demo's test report (CIDEr and how often the captions state each
# image's colour, shape, count and background). It tells a change in stage 1 from run-to-run variance:
# run it on two checkouts of the project on the same data and compare the tables, e.g.
#   git worktree add ../before 020765a
#   CODE=../before OUT=seeds_before DEMO_DIR=demo_out bash benchmarks/stage1_seeds.sh
#   OUT=seeds_after DEMO_DIR=demo_out bash benchmarks/stage1_seeds.sh
# DEMO_DIR must hold a finished demo's data (data/, raw/, style_classifier.npz). CODE is the checkout
# whose ofa_sic, training script and evaluation run (default: this one); the virtual environment is
# this one's. The demo's EPOCHS, BATCH_SIZE, LR and WORKERS can be set as for the demo.
# Results: $OUT/seed_N/{train.log,eval/}, and $OUT/summary.json with one row per seed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CODE=$(cd "${CODE:-$ROOT}" && pwd)
DEMO_DIR=$(cd "${DEMO_DIR:?set DEMO_DIR to a finished demo folder}" && pwd)
OUT=${OUT:?set OUT to a new folder for the runs}
SEEDS=${SEEDS:-1 2 3}
source "$ROOT/run_scripts/demo_stage1.sh"  # EPOCHS, BATCH_SIZE, LR, WORKERS and demo_stage1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PATH="$ROOT/.venv/bin:$PATH" PYTHONPATH="$CODE${PYTHONPATH:+:$PYTHONPATH}"

for seed in $SEEDS; do
  run="$OUT/seed_$seed"
  mkdir -p "$run"
  if [ ! -f "$run/eval/metrics.json" ]; then
    demo_stage1 "$CODE" "$DEMO_DIR/data" "$DEMO_DIR/raw/bpe" "$run" --seed "$seed" > "$run/train.log" 2>&1 \
      || { tail -n 30 "$run/train.log" >&2; exit 1; }
    (cd "$CODE" && python -m ofa_sic.cli.main evaluate --path "$run/checkpoint_best.pt" --data "$DEMO_DIR/data" \
      --bpe-dir "$DEMO_DIR/raw/bpe" --split test --out "$run/eval" --overwrite --batch-size 32 --cpu \
      --attributes "$DEMO_DIR/raw/attributes.json" --style-classifier "$DEMO_DIR/style_classifier.npz" \
      > "$run/evaluate.log" 2>&1) || { tail -n 30 "$run/evaluate.log" >&2; exit 1; }
  fi
  rm -f "$run"/checkpoint*.pt
done

python - "$OUT" $SEEDS <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows = []
for seed in seeds:
    overall = json.load(open(f"{out}/seed_{seed}/eval/metrics.json"))["overall"]
    content = json.load(open(f"{out}/seed_{seed}/eval/content.json"))["accuracy"]
    rows.append({"seed": int(seed), "CIDEr": overall["CIDEr"], **{k: 100 * v for k, v in content.items()}})
json.dump(rows, open(f"{out}/summary.json", "w"), indent=2)
keys = [k for k in rows[0] if k != "seed"]
print("seed  " + "  ".join(f"{k:>10}" for k in keys))
for r in rows:
    print(f"{r['seed']:>4}  " + "  ".join(f"{r[k]:>10.1f}" for k in keys))
print("mean  " + "  ".join(f"{statistics.mean(r[k] for r in rows):>10.1f}" for k in keys))
PY
