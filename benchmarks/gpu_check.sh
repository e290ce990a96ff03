#!/usr/bin/env bash
# The GPU check, in one call on the lent device machine (one H200; it starts bare: Python 3.12 with
# torch + CUDA, no fairseq, no network). Here, first: `bash benchmarks/device_wheels.sh` (fills
# .device_wheels/); the call then carries .device_wheels and runs, from the repository root,
#   bash benchmarks/gpu_check.sh
# It installs those wheels with --no-index into a folder of its own (benchmarks/device_env.sh), checks
# the versions it runs with, and runs the project's real commands (benchmarks/device_commands.sh) on
# random-initialised ofa_base at 480 px and on demo data made on the spot:
#   gpu, install, versions   nvidia-smi; the wheels; benchmarks/device_versions.py (torch against the CPU pin)
#   data           ofa-sic demo-data (256 train images) + ofa-sic prepare-pcap
#   train_fp16     fairseq-train stage 1 (run_scripts/train_caption.sh) with --fp16, 30 updates of 8 images
#   train_amp      the same with --amp
#   scst_fp16      run_scripts/scst.sh with --fp16 from train_fp16's checkpoint, 6 updates of 4 images x 5 hypotheses
#   generate_fp16  fairseq-generate --fp16 (run_scripts/evaluate.sh), beam 5, the 16 test images
#   bench          benchmarks/gpu_check.py: step time, peak memory and MFU of CE, SCST and beam search,
#                  ofa_base then ofa_large, fp32 / bf16 / fp16 autocast, the median (mean) of 2 timed steps
# Each part stops at its own time limit, and none runs past 8 minutes from the start
# (benchmarks/check_parts.sh). The report, $OUT/gpu_check.json (benchmarks/check_report.py: status, time,
# figures and the end of the log of every part), is rewritten after each part; its summary is printed
# last. The exit status is 0 when every part passed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:?set OUT to the folder for the report (the device machine sets it)}
WHEELS=$ROOT/.device_wheels
source "$ROOT/benchmarks/device_env.sh"
source "$ROOT/benchmarks/device_commands.sh"
source "$ROOT/benchmarks/check_parts.sh"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT  # checkpoints and data (a few GB); the report is in $OUT
DATA_DIR=$WORK/check
export ARCH=ofa_base PATCH_IMAGE_SIZE=480 DEVICE_ARGS="" NUM_WORKERS=6 PYTHONUNBUFFERED=1 WORK DATA_DIR
export DEVICE_ENV_ROOT DEVICE_COMMANDS_ROOT
stage1_fp16() { PRECISION=fp16 train_stage1 "$DATA_DIR" "$WORK/ce_fp16" 30 8; }
stage1_amp() { PRECISION=amp train_stage1 "$DATA_DIR" "$WORK/ce_amp" 30 8 --no-save; }
scst_fp16() { PRECISION=fp16 train_scst "$DATA_DIR" "$WORK/ce_fp16/checkpoint_best.pt" "$WORK/scst_fp16" 6 4 --no-save; }
generate_fp16() { PRECISION=fp16 generate_test "$DATA_DIR" "$WORK/ce_fp16/checkpoint_best.pt" "$WORK/generate/test.txt"; }
export -f install_wheels make_check_data train_stage1 train_scst generate_test stage1_fp16 stage1_amp scst_fp16 generate_fp16

start_parts "$WORK" "$OUT/gpu_check.json" 480
run_part gpu plain 20 nvidia-smi
run_part install plain 90 install_wheels "$WHEELS" "$WORK/site"
use_wheels "$WORK/site"
run_part versions versions 60 python3 "$ROOT/benchmarks/device_versions.py" "$WHEELS" "$WORK/site"
run_part data plain 60 make_check_data "$DATA_DIR" 256
run_part train_fp16 train 120 stage1_fp16
run_part train_amp train 100 stage1_amp
run_part scst_fp16 train 100 scst_fp16
run_part generate_fp16 generate 60 generate_fp16
run_part bench bench 300 python3 "$ROOT/benchmarks/gpu_check.py" --repeats 2
finish_parts
