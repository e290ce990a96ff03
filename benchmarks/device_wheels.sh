#!/usr/bin/env bash
# The wheels that the lent GPU machine lacks, for benchmarks/gpu_check.sh to install there without a
# network. That machine starts bare each time with CPython 3.12 (x86_64), torch + CUDA, numpy, Pillow,
# tokenizers, regex, sacrebleu, scikit-learn, PyYAML and tqdm, but no fairseq; only the working tree
# and the paths named in the call's `carry` travel to it (64 MiB in all). Run here, from any folder:
#   bash benchmarks/device_wheels.sh                             # CPython 3.12 manylinux wheels into .device_wheels/
#   bash benchmarks/device_wheels.sh --python-version 3.11 DIR   # for this machine's Python (tests/device_install_check.sh)
# It empties DEST (default: .device_wheels/ in the repository, ignored by git), fills it, writes
# DEST/requirements.txt (the pinned list that benchmarks/device_env.sh installs, with --no-deps) and
# prints the wheels with their sizes, then the total of the wheels and of the rest of the working
# tree; it fails when the two together exceed the 64 MiB that may travel.
#
# Not carried: pycocoevalcap (a 104 MB wheel: Stanford CoreNLP and METEOR jars), which only
# `ofa-sic evaluate`, `compare`, `score-generate` and `fairseq-generate --scoring coco_caption` import,
# and those need Java, which the device machine lacks; nor cffi or torchaudio, which fairseq lists
# but does not import on the paths the check runs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}  # the project's environment (make install): it builds fairseq-fixed for its own Python
PYTHON_VERSION=3.12
if [ "${1:-}" = --python-version ]; then PYTHON_VERSION=$2; shift 2; fi
DEST=${1:-$ROOT/.device_wheels}
LIMIT_BYTES=$((64 * 1024 * 1024))

pinned() {  # pinned NAME FILE: the first NAME==VERSION in FILE (the project's pin), or an error naming both
  grep -o -m1 -E "$1==[0-9][0-9.]*[0-9]" "$2" || { echo "no $1==VERSION pin in $2" >&2; exit 2; }
}
# Pure Python (py3-none-any): one wheel fits every Python 3. antlr4-python3-runtime is an sdist only on
# the index; pip builds its wheel here. 4.9.3 is the one release that omegaconf 2.3.0 and hydra-core 1.3.2 accept.
# SCST names its reward with SacreEOS, which imports NLTK (and NLTK defusedxml, which the device lacks).
PURE=("$(pinned hydra-core "$ROOT/requirements.txt")" "$(pinned omegaconf "$ROOT/requirements.txt")"
      antlr4-python3-runtime==4.9.3 "$(pinned sacreeos "$ROOT/Makefile")" "$(pinned nltk "$ROOT/requirements.txt")"
      defusedxml==0.7.1)
# Compiled, one wheel per Python version. requirements.txt leaves bitarray open: this is the version
# `make install` resolves today.
COMPILED=("$(pinned fairseq-fixed "$ROOT/Makefile")" bitarray==3.12.3)

rm -rf "$DEST"
mkdir -p "$DEST"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$DEST" "${PURE[@]}"
if [ "$PYTHON_VERSION" = "$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" ]; then
  # This machine's Python: fairseq-fixed has no wheel for every version (none for 3.11), so pip builds it
  # against this environment's torch (about 3 minutes, or at once from pip's wheel cache after make install).
  "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation -w "$DEST" "${COMPILED[@]}"
else
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
    --python-version "$PYTHON_VERSION" --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST" "${COMPILED[@]}"
fi
printf '%s\n' "${PURE[@]}" "${COMPILED[@]}" > "$DEST/requirements.txt"

for file in "$DEST"/*; do
  awk -v bytes="$(stat -c %s "$file")" -v name="${file##*/}" 'BEGIN {printf "%8.2f MiB  %s\n", bytes / 2^20, name}'
done
wheel_bytes=$(du -cb "$DEST"/*.whl | tail -n 1 | cut -f1)
# What travels besides: tracked files and untracked files that git does not ignore.
tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -n 1 | cut -f1)
awk -v w="$wheel_bytes" -v t="$tree_bytes" 'BEGIN {
  printf "wheels %.1f MiB + working tree %.1f MiB = %.1f MiB (limit 64 MiB)\n", w / 2^20, t / 2^20, (w + t) / 2^20 }'
if [ $((wheel_bytes + tree_bytes)) -gt "$LIMIT_BYTES" ]; then
  echo "over the 64 MiB that may travel to the device machine" >&2; exit 1
fi
