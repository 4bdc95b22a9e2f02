#!/usr/bin/env bash
# make bench: the lesson's own Python code (bench/lesson/lesson.py) and hybridd, on the same
# machine, in the same run, on the same sizes. Starts hybridd on a temporary socket with its
# built-in defaults (stopped by a trap, also when a step fails), writes every result as JSON to
# a temporary directory, and hands that to bench/lesson/compare.py, which prints one table and
# writes docs/lesson-comparison.md and $BUILD/bench-lesson.svg.
# Usage: scripts/bench.sh [BUILD_DIR]     (BENCH_KEEP=1 keeps the JSON directory)
set -u
build=${1:-build}
# The reference side's virtual environment (numpy and numba); created once.
LESSON_VENV=${LESSON_VENV:-$PWD/$build/lesson-venv}
export LESSON_VENV
scripts/lesson-venv.sh >&2 || { echo "bench: no Python environment for the lesson" >&2; exit 1; }
py=$LESSON_VENV/bin/python

# shellcheck source=scripts/tmp-daemon.sh
. "$(dirname "$0")/tmp-daemon.sh"
tmp_daemon_cleanup() {
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "bench: the JSON is kept in $out" >&2
  else
    rm -rf "$dir"
  fi
}
tmp_daemon_start bench "$build"
out=$dir/json
mkdir -p "$out"

failed=0
# run FILE CMD...: runs one step, its stdout (one JSON document) into $out/FILE.
run() {
  local file=$1
  shift
  echo "bench: $*" >&2
  if ! "$@" >"$out/$file"; then
    echo "bench: step failed: $*" >&2
    rm -f "$out/$file"
    failed=1
  fi
}
ctl() { "$hybridctl" -s "$sock" --json "$@"; }

run hybridd-devices.json ctl devices
run hybridd-status.json ctl status
# The lesson's side (lesson.py takes plain integers).
run lesson-1e7-f64.json "$py" bench/lesson/lesson.py --pi-n 10000000 --sort-n 10000000 \
  --dtype f64 --repeat 5 --json
run lesson-pi-1e8.json "$py" bench/lesson/lesson.py --pi-n 100000000 --pure-n 1000000 \
  --no-sort --repeat 5 --json
run lesson-sort-f32.json "$py" bench/lesson/lesson.py --no-pi --sort-n 10000000 \
  --dtype f32 --repeat 5 --json
# hybridd's side, through the daemon.
run hybridd-pi-1e7.json ctl compare pi -n 1e7 --threads 1,2 --repeat 5
run hybridd-pi-1e8.json ctl compare pi -n 1e8 --threads 1,2 --repeat 5
run hybridd-sort-f64.json ctl compare sort -n 1e7 --dtype f64 --dist uniform --threads 1,2 --repeat 5
run hybridd-sort-f32.json ctl compare sort -n 1e7 --dtype f32 --dist uniform --threads 1,2 --repeat 5

python3 bench/lesson/compare.py "$out" --svg "$build/bench-lesson.svg" \
  --md docs/lesson-comparison.md --command "make bench" || failed=1

if ((failed)); then
  echo "bench: a step failed; the daemon's log:" >&2
  cat "$log" >&2
  exit 1
fi
