# shellcheck shell=bash
# Sourced by benchmarks/gpu_check.sh and tests/device_install_check.sh: runs a check as parts, each under
# its own time limit, so that one slow or broken part cannot take the others' results with it.
#   start_parts WORK REPORT SECONDS   logs go to WORK/logs/, the report (benchmarks/check_report.py) to
#                                     REPORT; no part starts or runs past SECONDS from now
#   run_part NAME KIND LIMIT COMMAND...   runs COMMAND (a program or an exported function) for at most
#                                     LIMIT seconds (less when the deadline is nearer), output to
#                                     WORK/logs/NAME.log; records its exit status and time, rewrites REPORT
#   finish_parts                      rewrites REPORT, prints its summary; fails unless every part passed
# KIND tells check_report.py what to read from the log: versions, train, generate, bench or plain.
CHECK_PARTS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

start_parts() {
  CHECK_WORK=$1 CHECK_REPORT=$2 CHECK_DEADLINE=$((SECONDS + $3))
  mkdir -p "$CHECK_WORK/logs" "$(dirname "$CHECK_REPORT")"
  : > "$CHECK_WORK/parts.tsv"
}

run_part() {
  local name=$1 kind=$2 limit=$3 start=$SECONDS rc=0
  shift 3
  local left=$((CHECK_DEADLINE - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 0 ]; then
    rc=skipped  # the check's deadline had passed: recorded, not run
  else
    echo "== $name (at most ${limit} s): $*"
    # timeout signals the whole process group (data-loader workers too); -k: KILL 10 s after TERM.
    timeout -k 10 "$limit" bash -c '"$@"' "$name" "$@" > "$CHECK_WORK/logs/$name.log" 2>&1 || rc=$?
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "$rc" "$((SECONDS - start))" "$limit" "$*" >> "$CHECK_WORK/parts.tsv"
  python3 "$CHECK_PARTS_ROOT/benchmarks/check_report.py" "$CHECK_WORK" "$CHECK_REPORT" --quiet || true
}

finish_parts() {
  python3 "$CHECK_PARTS_ROOT/benchmarks/check_report.py" "$CHECK_WORK" "$CHECK_REPORT"
}
