#!/usr/bin/env bash
# Seconds per epoch of the demo's stage 1 (run_scripts/demo_stage1.sh, as the demo trains) for several
# checkouts of the project, side by side in one run: each round trains EPOCHS epochs with each checkout in
# turn, on the same data, and the table gives each epoch's `train_wall` (training only) and `wall`
# (training and validation) from fairseq's log. Compare a change with an earlier commit:
#   git worktree add ../before 0a12690
#   DEMO_DIR=demo_out OUT=bench_epoch CODES="../before ." EPOCHS=2 ROUNDS=2 bash benchmarks/bench_stage1_epoch.sh
# DEMO_DIR must hold a finished demo's data (data/, raw/bpe). The virtual environment is this checkout's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=$(cd "${DEMO_DIR:?set DEMO_DIR to a finished demo folder}" && pwd)
OUT=${OUT:?set OUT to a new folder for the runs}
CODES=${CODES:-.}
ROUNDS=${ROUNDS:-1}
EPOCHS=${EPOCHS:-2}
source "$ROOT/run_scripts/demo_stage1.sh"  # BATCH_SIZE, LR, WORKERS and demo_stage1
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export PATH="$ROOT/.venv/bin:$PATH"

for round in $(seq "$ROUNDS"); do
  for code in $CODES; do
    code=$(cd "$code" && pwd)
    run="$OUT/round$round/$(basename "$code")-$(git -C "$code" rev-parse --short HEAD)"
    rm -rf "$run" && mkdir -p "$run"
    PYTHONPATH="$code" demo_stage1 "$code" "$DEMO_DIR/data" "$DEMO_DIR/raw/bpe" "$run" --no-save > "$run/train.log" 2>&1 \
      || { tail -n 30 "$run/train.log" >&2; exit 1; }
    git -C "$code" diff --quiet HEAD -- . || echo "note: $code has uncommitted changes" >> "$run/train.log"
  done
done

python - "$OUT" <<'PY'
import pathlib, re, statistics, sys
out = pathlib.Path(sys.argv[1])
runs = {}
for log in sorted(out.glob("round*/*/train.log")):
    text = log.read_text()
    epochs = [(float(m[1]), float(m[2])) for m in re.finditer(r"\| train \| epoch \d+ \|.*\| train_wall (\d+) \| wall (\d+)", text)]
    name = log.parent.name + (" (uncommitted changes)" if "has uncommitted changes" in text else "")
    runs.setdefault(name, []).append(epochs)
print(f"{'checkout':<40} {'train_wall per epoch (s)':<28} {'wall of the run (s)':<20}")
for name, rounds in runs.items():
    epoch_walls = [train_wall for epochs in rounds for train_wall, _ in epochs]
    run_walls = [epochs[-1][1] for epochs in rounds if epochs]  # fairseq's wall is cumulative
    print(f"{name:<40} {' '.join(f'{w:.0f}' for w in epoch_walls):<28} {' '.join(f'{w:.0f}' for w in run_walls):<20}"
          f" median epoch {statistics.median(epoch_walls):.1f}")
PY
