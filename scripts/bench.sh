#!/usr/bin/env bash
# make bench: the lesson's own Python code (bench/lesson/lesson.py) and hybridd, on the same
# machine, in the same run, on the same sizes, and for sort on the same array: lesson.py saves
# the array it sorts on one thread (--save-sort-input) and hybridd sorts that file (--input).
#
# Interleaved rounds: this VM's figures drift by tens of percent from one minute to the next,
# so one run of each side measures the machine as much as the code. Every comparison runs in
# BENCH_ROUNDS rounds (default 7), and each round runs the lesson's side, then hybridd's side
# (A B A B ...), once each with --repeat BENCH_REPEAT (default 3) timed runs after a warm-up.
# compare.py reports per row the median over the rounds and its min-max, and per ratio the
# median of the per-round ratios: both sides of a ratio were measured minutes apart, never
# half an hour. Each round also times CPython's pure-Python threads under the distribution's
# own interpreter (/usr/bin/python3: lesson.py --pure-only, numpy or not),
# Highway's vqsort on the same arrays where bench/vqsort-ref was built (a reference row), a
# sort sweep (hybridd serial against numpy's sort on one thread, over the other element types,
# orders and sizes: bench/lesson/sort_sweep.py), and the f64 array sorted from file to file:
# numpy's np.save(np.sort(np.load())) against `hybridctl sort --input --output`
# (bench/e2e-time.py, on a hybridd it starts, so that the first job after start is timed too),
# with the read-and-write floor.
# Starts hybridd on a temporary socket with its built-in defaults (stopped by a trap, also when
# a step fails), writes every result as JSON to a temporary directory, and hands that to
# bench/lesson/compare.py, which prints one table and rewrites the generated section of
# docs/benchmarks.md (between its "make bench" marker lines) and docs/benchmarks-lesson.svg.
#
# numpy's sort is timed in place (ndarray.sort on a fresh copy made before the clock starts,
# lesson.py and sort_sweep.py say why), as hybridd's sort time is its sort alone.
# The reference is the newest numpy and numba from pip (build/lesson-venv). The sort part also
# runs under numpy 1.24 (build/lesson-venv-numpy124), the numpy that ../shared/FACTS.md measured
# and the sort targets were set from; when pip cannot install it, those rows are skipped and
# the report says so.
# Usage: scripts/bench.sh [BUILD_DIR]
#   BENCH_ROUNDS=N    rounds per comparison (default 7; at least 1)
#   BENCH_REPEAT=N    timed runs per side within a round (default 3)
#   BENCH_REPEAT_SLOW=N  the same for the steps whose one run takes about a second or more,
#                     the lesson's pi at 10^8 and numpy 1.24's sort (default 1: the rounds
#                     give their median)
#   BENCH_QUICK=1     small sizes and 3 rounds, for developing this script: the report goes to
#                     BUILD_DIR/bench-quick.md and .svg, never to docs/
#   BENCH_NUMPY124=0  skip the numpy 1.24 rows (noted in the report)
#   BENCH_SWEEP=0     skip the sort sweep (noted in the report)
#   BENCH_NOTE=TEXT   a sentence for the report (e.g. "the machine was shared")
#   BENCH_NUMPY_PATH=auto|installed|avx2  numpy's sort path on the reference side (default
#                     auto: the faster of the two on this machine, measured first)
#   BENCH_KEEP=1      keep the JSON directory
set -u
build=${1:-build}
quick=${BENCH_QUICK:-0}
if [[ $quick == 1 ]]; then
  rounds=${BENCH_ROUNDS:-3} pi1=1000000 pi2=10000000 pure=100000 sortn=1000000
  sweep_sizes="1000 10000 100000"
  report=$build/bench-quick.md chart=$build/bench-quick.svg
else
  rounds=${BENCH_ROUNDS:-7} pi1=10000000 pi2=100000000 pure=1000000 sortn=10000000
  sweep_sizes="1000 10000 100000 1000000"
  report=docs/benchmarks.md chart=docs/benchmarks-lesson.svg
fi
repeat=${BENCH_REPEAT:-3}
slow=${BENCH_REPEAT_SLOW:-1}
if ! [[ $rounds =~ ^[1-9][0-9]*$ && $repeat =~ ^[1-9][0-9]*$ && $slow =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: BENCH_ROUNDS, BENCH_REPEAT and BENCH_REPEAT_SLOW must be positive integers" >&2
  exit 2
fi
# The reference side's virtual environment (numpy and numba); created once.
LESSON_VENV=${LESSON_VENV:-$PWD/$build/lesson-venv}
LESSON_VENV_NUMPY124=${LESSON_VENV_NUMPY124:-$PWD/$build/lesson-venv-numpy124}
export LESSON_VENV LESSON_VENV_NUMPY124
scripts/lesson-venv.sh >&2 || { echo "bench: no Python environment for the lesson" >&2; exit 1; }
py=$LESSON_VENV/bin/python
# numpy 2 picks its sort's SIMD path from the CPU it finds, and the path it picks is not always
# its fastest: on AMD Zen 4 its AVX-512 sort (compress-stores) runs ~6x slower than its own
# AVX2 one. The reference is numpy at its best on this machine, so both paths sort 10^6 f64
# (5 runs each, interleaved) and the faster one runs every step of the reference venv.
# BENCH_NUMPY_PATH=installed or avx2 chooses instead of measuring.
npy_avx2="AVX512_ICL X86_V4"
npy_probe() {
  "$py" - "$npy_avx2" <<'PY'
import json, os, subprocess, sys, time
code = ("import numpy as np, time; a = np.random.default_rng(5).random(10**6); t = []\n"
        "for _ in range(4):\n"
        "    b = a.copy(); s = time.perf_counter_ns(); b.sort(); t.append(time.perf_counter_ns() - s)\n"
        "print(min(t[1:]))")
env_avx2 = dict(os.environ, NPY_DISABLE_CPU_FEATURES=sys.argv[1])
runs = {"installed": [], "avx2": []}
for _ in range(5):
    for k, env in (("installed", os.environ), ("avx2", env_avx2)):
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True).stdout
        runs[k].append(int(out) / 1e6)
med = {k: sorted(v)[len(v) // 2] for k, v in runs.items()}
print(json.dumps({"installed_ms": med["installed"], "avx2_ms": med["avx2"],
                  "chosen": "avx2" if med["avx2"] < 0.9 * med["installed"] else "installed"}))
PY
}
case ${BENCH_NUMPY_PATH:-auto} in
  auto) npy_path=$(npy_probe) || { echo "bench: the numpy path probe failed" >&2; exit 1; } ;;
  installed | avx2) npy_path="{\"chosen\": \"${BENCH_NUMPY_PATH}\"}" ;;
  *) echo "bench: BENCH_NUMPY_PATH must be auto, installed or avx2" >&2; exit 2 ;;
esac
echo "bench: numpy's sort path: $npy_path" >&2
if [[ $npy_path == *'"chosen": "avx2"'* ]]; then
  py=(env NPY_DISABLE_CPU_FEATURES="$npy_avx2" "$py")
else
  py=("$py")
fi
# The second reference, numpy 1.24: optional.
skipped=()
if [[ ${BENCH_NUMPY124:-1} == 0 ]]; then
  py124=
  skipped+=("numpy 1.24 reference: BENCH_NUMPY124=0")
elif scripts/lesson-venv.sh --numpy124 >&2; then
  py124=$LESSON_VENV_NUMPY124/bin/python
else
  py124=
  skipped+=("numpy 1.24 reference: scripts/lesson-venv.sh --numpy124 could not install numpy<1.25 with pip")
  echo "bench: no numpy 1.24; its rows are skipped" >&2
fi
# The distribution's interpreter, for model fidelity: CPython's threads as Debian ships them.
syspy=/usr/bin/python3
if [[ ! -x $syspy ]]; then
  syspy=
  skipped+=("Debian's /usr/bin/python3 rows: there is no /usr/bin/python3")
fi
# The sort sweep (issue 16): hybridd serial against numpy.sort on one thread, for the other
# element types (uniform), the other orders (f64), i32 with a -1 sentinel (missing) and i64
# by Zipf's law at the main size, and smaller f64 sizes (and repeats and Zipf's law at 10^5,
# the small path's dictionary).
sweep=()
if [[ ${BENCH_SWEEP:-1} == 0 ]]; then
  skipped+=("sort sweep: BENCH_SWEEP=0")
else
  for t in i64 i32 u64 u32; do sweep+=("$sortn:$t:uniform"); done
  for o in normal sorted reversed few-unique missing counts repeats; do sweep+=("$sortn:f64:$o"); done
  sweep+=("$sortn:i32:missing" "$sortn:i64:zipf" "100000:f64:repeats" "100000:i64:zipf")
  for n in $sweep_sizes; do sweep+=("$n:f64:uniform"); done
fi
vqsort=$build/bench/vqsort-ref
if [[ ! -x $vqsort ]]; then
  vqsort=
  skipped+=("Highway vqsort reference: $build/bench/vqsort-ref was not built (no libhwy-dev when CMake ran)")
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
# run FILE CMD...: runs one step, its stdout (one JSON document) into FILE.
run() {
  local file=$1
  shift
  echo "bench: $*" >&2
  if ! "$@" >"$file"; then
    echo "bench: step failed: $*" >&2
    rm -f "$file"
    failed=1
  fi
}
# optional FILE CMD...: the same for a step whose failure skips its rows, noted in the report
# (once, however many rounds it fails in).
optional() {
  local file=$1
  shift
  echo "bench: $*" >&2
  if ! "$@" >"$file"; then
    echo "bench: optional step failed, its rows are skipped: $*" >&2
    rm -f "$file"
    local cmd="$*"
    local note="${file##*/}: the step failed: ${cmd//"$dir"\//}"
    [[ " ${skipped[*]} " == *" $note "* ]] || skipped+=("$note")
  fi
}
ctl() { "$hybridctl" -s "$sock" --json "$@"; }
# lesson FILE REPEAT ARGS...: one lesson.py run of the reference venv.
lesson() { run "$1" "${py[@]}" bench/lesson/lesson.py "${@:3}" --repeat "$2" --json; }

run "$out/hybridd-devices.json" ctl devices
run "$out/hybridd-status.json" ctl status

# sort_pair DTYPE ROUND_DIR: hybridd, then the references, sort the array the lesson saved.
sort_pair() {
  local dt=$1 rd=$2 npy=$dir/sort-$1.npy
  if [[ ! -f $npy ]]; then
    echo "bench: $npy is missing (the lesson's $dt step failed)" >&2
    failed=1
    return
  fi
  # The default backends, with the process backend's both transports (issue 9's rows).
  run "$rd/hybridd-sort-$dt.json" ctl compare sort --input "$npy" --threads 1,2 \
    --transport pipe,shm --repeat "$repeat"
  [[ -z $vqsort ]] || optional "$rd/vqsort-$dt.json" "$vqsort" --input "$npy" --repeat "$repeat"
  # numpy 1.24: the sort part only (the same seed draws the same arrays; compare.py checks
  # the SHA-256 of each side's array).
  [[ -z $py124 ]] || optional "$rd/lesson-numpy124-sort-$dt.json" "$py124" \
    bench/lesson/lesson.py --no-pi --sort-n "$sortn" --dtype "$dt" --repeat "$slow" --json
}

# e2e_pair ROUND_DIR: a file sorted into a file, numpy's way (np.save(np.sort(np.load())),
# a fresh interpreter per run, timed inside it), then hybridctl's (sort --input --output,
# timed from outside), with the floor under both, in turns with hybridctl: the file read and
# written once by a process of its own (issue 16's end-to-end targets).
e2e_pair() {
  local rd=$1 npy=$dir/sort-f64.npy
  [[ -f $npy ]] || return 0   # sort_pair has said so
  lesson "$rd/lesson-e2e-f64.json" "$repeat" --no-pi --no-sort --e2e-input "$npy" \
    --e2e-output "$dir/e2e-numpy-out.npy"
  # Its own hybridd, started for the step, so that the first job after start is timed too.
  run "$rd/hybridd-e2e-f64.json" python3 bench/e2e-time.py --hybridctl "$hybridctl" \
    --hybridd "$build/daemon/hybridd" --input "$npy" --output "$dir/e2e-hybridd-out.npy" \
    --repeat "$repeat"
}

# sweep_pair ROUND_DIR ROUND: numpy.sort on every sweep case (the first round saves the
# arrays), then hybridd serial on each file. Into ROUND_DIR/sweep/, which compare.py reads as
# the sweep's own table.
sweep_pair() {
  local sd=$1/sweep c n t o f save=()
  ((${#sweep[@]})) || return 0
  mkdir -p "$sd"
  (($2 == 1)) && save=(--save)
  run "$sd/numpy.json" "${py[@]}" bench/lesson/sort_sweep.py --cases "$(IFS=,; echo "${sweep[*]}")" \
    --dir "$dir" "${save[@]}" --repeat "$repeat" --json
  for c in "${sweep[@]}"; do
    IFS=: read -r n t o <<<"$c"
    f=$dir/sweep-$n-$t-$o.npy
    if [[ ! -f $f ]]; then
      echo "bench: $f is missing (the sweep's numpy step failed)" >&2
      failed=1
      continue
    fi
    run "$sd/hybridd-$n-$t-$o.json" ctl compare sort --input "$f" --backends serial \
      --repeat "$repeat"
  done
}

# A B A B ...: in every round each comparison runs the lesson's side, then hybridd's. The
# lesson draws the same arrays from the same seed in every round; the first round saves them.
for ((r = 1; r <= rounds; r++)); do
  rd=$out/round-$(printf %02d "$r")
  mkdir -p "$rd"
  echo "bench: round $r of $rounds" >&2
  save64=() save32=()
  if ((r == 1)); then
    save64=(--save-sort-input "$dir/sort-f64.npy")
    save32=(--save-sort-input "$dir/sort-f32.npy")
  fi
  lesson "$rd/lesson-pi$pi1-f64.json" "$repeat" --pi-n "$pi1" --pure-n "$pure" --sort-n "$sortn" \
    --dtype f64 "${save64[@]}"
  # CPython's pure-Python threads under Debian's own interpreter (pure Python only: it may
  # lack numpy, and its numpy, if any, is not the reference).
  [[ -z $syspy ]] || optional "$rd/system-python-pi.json" "$syspy" bench/lesson/lesson.py \
    --pi-n "$pi1" --pure-n "$pure" --pure-only --label "Debian's $syspy" --repeat "$repeat" \
    --json
  run "$rd/hybridd-pi$pi1.json" ctl compare pi -n "$pi1" --threads 1,2 --repeat "$repeat"
  sort_pair f64 "$rd"
  e2e_pair "$rd"
  lesson "$rd/lesson-pi$pi2.json" "$slow" --pi-n "$pi2" --pure-n "$pure" --no-sort
  run "$rd/hybridd-pi$pi2.json" ctl compare pi -n "$pi2" --threads 1,2 --repeat "$repeat"
  lesson "$rd/lesson-sort-f32.json" "$repeat" --no-pi --sort-n "$sortn" --dtype f32 "${save32[@]}"
  sort_pair f32 "$rd"
  sweep_pair "$rd" "$r"
done

# How the run was made, and the steps skipped on purpose, for the report.
printf '%s\n' "${skipped[@]}" | BENCH_ROUNDS=$rounds BENCH_REPEAT=$repeat \
  BENCH_REPEAT_SLOW=$slow BENCH_QUICK=$quick BENCH_NUMPY_PATH_JSON=$npy_path \
  python3 -c 'import json, os, sys
json.dump({"tool": "scripts/bench.sh", "skipped": [x for x in sys.stdin.read().splitlines() if x],
           "rounds": int(os.environ["BENCH_ROUNDS"]), "repeat": int(os.environ["BENCH_REPEAT"]),
           "repeat_slow": int(os.environ["BENCH_REPEAT_SLOW"]),
           "quick": os.environ["BENCH_QUICK"] == "1", "note": os.environ.get("BENCH_NOTE", ""),
           "numpy_path": json.loads(os.environ["BENCH_NUMPY_PATH_JSON"]),
           "order": "per round: lesson pi+sort f64, /usr/bin/python3 pure pi, hybridd pi, "
                    "hybridd sort f64, vqsort f64, numpy 1.24 f64, numpy file to file, "
                    "hybridctl file to file, lesson pi (large n), "
                    "hybridd pi (large n), lesson sort f32, hybridd sort f32, vqsort f32, "
                    "numpy 1.24 f32, numpy sweep, hybridd serial sweep"}, sys.stdout)' \
  >"$out/bench-notes.json"

cmd="make bench"
[[ $quick != 1 ]] || cmd="BENCH_QUICK=1 make bench"
python3 bench/lesson/compare.py "$out" --svg "$chart" --md "$report" --command "$cmd" || failed=1

if ((failed)); then
  echo "bench: a step failed; the daemon's log:" >&2
  cat "$log" >&2
  exit 1
fi
