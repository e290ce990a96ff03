# shellcheck shell=bash
# Sourced by benchmarks/gpu_check.sh and tests/device_install_check.sh: installs the wheels that
# benchmarks/device_wheels.sh collected, without a network, into a folder of its own, and puts that
# folder and this checkout on the paths of the `python3` found on PATH.
#   install_wheels WHEELS TARGET   pip install --no-index --no-deps of WHEELS/requirements.txt into TARGET;
#                                  fairseq's console scripts (fairseq-train, fairseq-generate, ...) land
#                                  in TARGET/bin, and an `ofa-sic` script is written beside them
#   use_wheels TARGET              PATH and PYTHONPATH for TARGET and this checkout, in the calling shell
DEVICE_ENV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

install_wheels() {
  local wheels=$1 target=$2 python
  if [ ! -f "$wheels/requirements.txt" ]; then
    echo "$wheels/requirements.txt not found: run bash benchmarks/device_wheels.sh and carry its folder" >&2
    return 2
  fi
  python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check \
    --find-links "$wheels" --target "$target" -r "$wheels/requirements.txt" || return
  # ofa-sic is this checkout's console script (setup.py: ofa_sic.cli.main:main), not a wheel: the same
  # call as the script pip writes for an entry point, run by the python that runs fairseq's scripts.
  python=$(python3 -c 'import sys; print(sys.executable)')
  printf '#!%s\nimport sys\nfrom ofa_sic.cli.main import main\nsys.exit(main())\n' "$python" > "$target/bin/ofa-sic"
  chmod +x "$target/bin/ofa-sic"
}

use_wheels() {
  export PATH="$1/bin:$PATH" PYTHONPATH="$1:$DEVICE_ENV_ROOT${PYTHONPATH:+:$PYTHONPATH}"
}
