#!/usr/bin/env bash
# make bench: the lesson's own Python code (bench/lesson/lesson.py) and hybridd, on the same
# machine, in the same run, on the same sizes, and for sort on the same array: lesson.py saves
# the array it sorts on one thread (--save-sort-input) and hybridd sorts that file (--input).
# Starts hybridd on a temporary socket with its built-in defaults (stopped by a trap, also when
# a step fails), writes every result as JSON to a temporary directory, and hands that to
# bench/lesson/compare.py, which prints one table and rewrites the generated section of
# docs/benchmarks.md (between its "make bench" marker lines) and docs/benchmarks-lesson.svg.
#
# The reference is the newest numpy and numba from pip (build/lesson-venv). The sort part also
# runs under numpy 1.24 (build/lesson-venv-numpy124), the numpy that ../shared/FACTS.md measured
# and the sort targets were set from; when pip cannot install it, those rows are skipped and
# the report says so.
# Usage: scripts/bench.sh [BUILD_DIR]     (BENCH_KEEP=1 keeps the JSON directory)
set -u
build=${1:-build}
report=docs/benchmarks.md
chart=docs/benchmarks-lesson.svg
# The reference side's virtual environment (numpy and numba); created once.
LESSON_VENV=${LESSON_VENV:-$PWD/$build/lesson-venv}
LESSON_VENV_NUMPY124=${LESSON_VENV_NUMPY124:-$PWD/$build/lesson-venv-numpy124}
export LESSON_VENV LESSON_VENV_NUMPY124
scripts/lesson-venv.sh >&2 || { echo "bench: no Python environment for the lesson" >&2; exit 1; }
py=$LESSON_VENV/bin/python
# The second reference, numpy 1.24: optional.
skipped=()
if scripts/lesson-venv.sh --numpy124 >&2; then
  py124=$LESSON_VENV_NUMPY124/bin/python
else
  py124=
  skipped+=("numpy 1.24 reference: scripts/lesson-venv.sh --numpy124 could not install numpy<1.25 with pip")
  echo "bench: no numpy 1.24; its rows are skipped" >&2
fi

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
# optional FILE CMD...: the same for a step whose failure skips its rows, noted in the report.
optional() {
  local file=$1
  shift
  echo "bench: $*" >&2
  if ! "$@" >"$out/$file"; then
    echo "bench: optional step failed, its rows are skipped: $*" >&2
    rm -f "$out/$file"
    skipped+=("$file: the step failed: $*")
  fi
}
ctl() { "$hybridctl" -s "$sock" --json "$@"; }

run hybridd-devices.json ctl devices
run hybridd-status.json ctl status
# The lesson's side (lesson.py takes plain integers). The f64 and f32 runs save the array
# they sort on one thread; hybridd sorts those files below.
run lesson-1e7-f64.json "$py" bench/lesson/lesson.py --pi-n 10000000 --sort-n 10000000 \
  --dtype f64 --repeat 5 --json --save-sort-input "$dir/sort-1e7-f64.npy"
run lesson-pi-1e8.json "$py" bench/lesson/lesson.py --pi-n 100000000 --pure-n 1000000 \
  --no-sort --repeat 5 --json
run lesson-sort-f32.json "$py" bench/lesson/lesson.py --no-pi --sort-n 10000000 \
  --dtype f32 --repeat 5 --json --save-sort-input "$dir/sort-1e7-f32.npy"
# numpy 1.24: the sort part only (the same seed draws the same arrays; compare.py checks the
# SHA-256 of each side's array).
if [[ -n $py124 ]]; then
  for dt in f64 f32; do
    optional "lesson-numpy124-sort-$dt.json" "$py124" bench/lesson/lesson.py --no-pi \
      --sort-n 10000000 --dtype "$dt" --repeat 5 --json
  done
fi
# hybridd's side, through the daemon.
run hybridd-pi-1e7.json ctl compare pi -n 1e7 --threads 1,2 --repeat 5
run hybridd-pi-1e8.json ctl compare pi -n 1e8 --threads 1,2 --repeat 5
for dt in f64 f32; do
  if [[ -f $dir/sort-1e7-$dt.npy ]]; then
    # The default backends, with the process backend's both transports (issue 9's rows).
    run "hybridd-sort-$dt.json" ctl compare sort --input "$dir/sort-1e7-$dt.npy" \
      --threads 1,2 --transport pipe,shm --repeat 5
  else
    echo "bench: $dir/sort-1e7-$dt.npy is missing (the lesson's $dt step failed)" >&2
    failed=1
  fi
done

# Steps skipped on purpose, for the report.
if ((${#skipped[@]})); then
  printf '%s\n' "${skipped[@]}" | python3 -c 'import json, sys
json.dump({"tool": "scripts/bench.sh", "skipped": sys.stdin.read().splitlines()}, sys.stdout)' \
    >"$out/bench-notes.json"
fi

python3 bench/lesson/compare.py "$out" --svg "$chart" --md "$report" \
  --command "make bench" || failed=1

if ((failed)); then
  echo "bench: a step failed; the daemon's log:" >&2
  cat "$log" >&2
  exit 1
fi
