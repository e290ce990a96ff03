#!/usr/bin/env bash
# GPU check of the fast path: ofa_base and ofa_large at 480 px in fp32 and bf16/fp16 autocast;
# step time, peak memory, images/s and MFU for a CE step, an SCST step (K=5) and beam search
# (beam 5, max_len_b 16). Sized for under 8 minutes on one H200; run from the repository root:
#   bash benchmarks/gpu_check.sh | tee gpu_check.txt
# Options of benchmarks/gpu_check.py can follow (e.g. --archs ofa_base --repeats 2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
exec timeout 480 "$PYTHON" "$ROOT/benchmarks/gpu_check.py" "$@"
