#!/usr/bin/env bash
# CI step (.ci/run), runnable by hand after `make install`: the GPU check's install step and its commands
# (benchmarks/gpu_check.sh runs them on the lent GPU machine), here on the CPU with this machine's Python:
# 1. benchmarks/device_wheels.sh collects the wheels for this Python (fairseq-fixed, which has no wheel
#    for every Python, is built against the project's torch, or taken from pip's wheel cache);
# 2. a clean venv gets only what the device machine's image holds that the commands import (torch at
#    the Makefile's CPU pin, numpy, Pillow, tokenizers, PyYAML, packaging, tqdm, sacrebleu,
#    scikit-learn), downloaded first and installed with --no-index;
# 3. through benchmarks/check_parts.sh as on the device: install_wheels (--no-index, into a folder),
#    benchmarks/device_versions.py, the demo data, fairseq-train with --amp (bf16 autocast on a CPU)
#    for 2 updates, run_scripts/scst.sh for 2 updates and fairseq-generate, with ofa_demo at 96 px.
# It prints the report's summary and fails unless every part passed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
TORCH_VERSION=$(sed -n 's/^TORCH_VERSION ?= //p' "$ROOT/Makefile")
IMAGE=("torch==$TORCH_VERSION" numpy pillow tokenizers pyyaml packaging tqdm sacrebleu scikit-learn)
started=$SECONDS

PYTHON=$PYTHON bash "$ROOT/benchmarks/device_wheels.sh" \
  --python-version "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" "$WORK/wheels"
"$PYTHON" -m pip download --quiet --disable-pip-version-check -d "$WORK/image" "${IMAGE[@]}"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-index --find-links "$WORK/image" "${IMAGE[@]}"
echo "wheels and clean venv ready in $((SECONDS - started)) s"

export PATH="$WORK/venv/bin:$PATH"
source "$ROOT/benchmarks/device_env.sh"
source "$ROOT/benchmarks/device_commands.sh"
source "$ROOT/benchmarks/check_parts.sh"
DATA_DIR=$WORK/check
export ARCH=ofa_demo PATCH_IMAGE_SIZE=96 DEVICE_ARGS=--cpu NUM_WORKERS=1 WORK DATA_DIR
export EVAL_ARGS='{"beam":2,"max_len_b":8}'  # validation's beam search, kept short on the CPU
export DEVICE_ENV_ROOT DEVICE_COMMANDS_ROOT
stage1_amp() { PRECISION=amp train_stage1 "$DATA_DIR" "$WORK/ce" 2 8; }
# SCST without validation here: train_amp's validation runs the same code, and on the CPU it costs half a minute.
scst_fp32() { PRECISION=fp32 train_scst "$DATA_DIR" "$WORK/ce/checkpoint_best.pt" "$WORK/scst" 2 4 --no-save --disable-validation; }
generate_fp32() { PRECISION=fp32 generate_test "$DATA_DIR" "$WORK/ce/checkpoint_best.pt" "$WORK/generate/test.txt"; }
export -f install_wheels make_check_data train_stage1 train_scst generate_test stage1_amp scst_fp32 generate_fp32

start_parts "$WORK" "$WORK/report.json" 900
install_started=$SECONDS
run_part install plain 120 install_wheels "$WORK/wheels" "$WORK/site"
echo "install step: $((SECONDS - install_started)) s"
use_wheels "$WORK/site"
run_part versions versions 60 python3 "$ROOT/benchmarks/device_versions.py" "$WORK/wheels" "$WORK/site"
run_part data plain 120 make_check_data "$DATA_DIR" 32
run_part train_amp train 300 stage1_amp
run_part scst_fp32 train 300 scst_fp32
run_part generate_fp32 generate 120 generate_fp32
finish_parts
echo "device install check: $((SECONDS - started)) s"
