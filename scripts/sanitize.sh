#!/usr/bin/env bash
# The test suite under the sanitizers (`make sanitize`; CI runs it after `make test`):
#
#   address  AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer): the whole tree
#            built in $ASAN_BUILD with -DHY_SANITIZE=address, and every ctest there except the
#            fuzz label (the fuzzer is built by clang with its own sanitizers), the
#            cl_variant label (the same host code as the plain cl suites) and the mpi label
#            (Open MPI's own allocations and threads, not hybridd's, fill the reports).
#   thread   ThreadSanitizer. Criterion cannot start under TSan (Snaipe/Criterion#274), so only
#            hybridd, hybridctl and the engine's plain-C stress program are built with
#            -DHY_SANITIZE=thread in $TSAN_BUILD; the normal build's (uninstrumented) daemon
#            suites, the short load test and the hybridctl end-to-end test then drive those
#            binaries (HYBRIDD_TEST_BINARY, --hybridd, --hybridctl).
#
# Usage: scripts/sanitize.sh [address|thread|all]      (default all)
# Environment: BUILD (the normal build, default build), ASAN_BUILD (build-asan), TSAN_BUILD
# (build-tsan), JOBS, CMAKE_FLAGS (extra cmake flags, e.g. -DHY_WERROR=ON), POCL_CACHE_DIR
# (reused when set, so one run compiles each kernel once; else a temporary one), CTEST_ARGS
# (added to both ctest runs, e.g. CTEST_ARGS='-R test_daemon_jobs').
#
# Every sanitizer writes its reports to files in one directory, never only to stderr: the
# daemon suites check hybridd's exit in Criterion's .fini, where a failure is not reported,
# so a report at the daemon's exit would otherwise pass unseen. Any report file fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

what=${1:-all}
case "$what" in
address | thread | all) ;;
*)
  echo "usage: $0 [address|thread|all]" >&2
  exit 2
  ;;
esac

BUILD=${BUILD:-build}
ASAN_BUILD=${ASAN_BUILD:-build-asan}
TSAN_BUILD=${TSAN_BUILD:-build-tsan}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
read -r -a cmake_flags <<<"${CMAKE_FLAGS:-}"
read -r -a ctest_args <<<"${CTEST_ARGS:-}"
supp=$root/tests/sanitizers
abs() { case $1 in /*) echo "$1" ;; *) echo "$root/$1" ;; esac }

own_cache=
if [ -z "${POCL_CACHE_DIR:-}" ]; then
  POCL_CACHE_DIR=$(mktemp -d /tmp/hybridd-pocl.XXXXXX)
  own_cache=$POCL_CACHE_DIR
fi
export POCL_CACHE_DIR
reports=$(mktemp -d /tmp/hybridd-sanitize.XXXXXX)
cleanup() {
  [ -n "$own_cache" ] && rm -rf "$own_cache"
  rm -rf "$reports"
}
trap cleanup EXIT

failed=()
phase_start=0
phase() { # phase NAME: starts timing a phase
  phase_name=$1
  phase_start=$(date +%s)
  echo "== sanitize: $phase_name" >&2
}
phase_end() { # phase_end RC
  local rc=$1 took=$(($(date +%s) - phase_start))
  echo "== sanitize: $phase_name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED ($rc)") in ${took}s" >&2
  [ "$rc" -eq 0 ] || failed+=("$phase_name")
}

# Sanitizer settings for every process started from here on. A report goes to a file named
# <tool>.<program>.<pid> in $reports; halting on the first ASan/UBSan error keeps a broken
# process from running on corrupted memory, while TSan goes on to report every race.
export ASAN_OPTIONS="log_path=$reports/asan:log_exe_name=1:halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:log_exe_name=1:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
# gcc's UBSan beside ASan writes to stderr whatever log_path says: the daemon harness keeps
# a daemon log holding a report in this directory (tests/daemon/harness.c).
export HYBRIDD_SANITIZER_REPORTS=$reports
export TSAN_OPTIONS="log_path=$reports/tsan:log_exe_name=1:halt_on_error=0:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0"

build() { # build DIR SANITIZER [targets...]
  local dir=$1 san=$2
  shift 2
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake -S . -B "$dir" -DHY_SANITIZE="$san" "${cmake_flags[@]}" >/dev/null &&
    cmake --build "$dir" -j "$JOBS" "${targets[@]}" >"$dir/sanitize-build.log" 2>&1 ||
    {
      tail -n 60 "$dir/sanitize-build.log" >&2
      return 1
    }
}

if [ "$what" = address ] || [ "$what" = all ]; then
  phase "address: build $ASAN_BUILD"
  build "$ASAN_BUILD" address
  rc=$?
  phase_end $rc
  if [ $rc -eq 0 ]; then
    phase "address: ctest (ASan+UBSan+LSan, all but the fuzz, cl_variant and mpi labels)"
    # HYBRIDD_TEST_SMALL: the 10^7-element sort cases, checked against qsort, would take
    # many minutes under ASan; the sizes below them (up to 2^20 + 3) reach the same code.
    # cl_variant: the same host code with the other kernel variant or capped work-groups,
    # already run by make test; under ASan they would only add minutes.
    # mpi: Open MPI (4.1.4) leaves its own memory behind at MPI_Finalize: a program that only
    # calls MPI_Init_thread and MPI_Finalize has LeakSanitizer report ~120 KB in ~3350
    # allocations per rank, so every rank would fail on libmpi's memory, not hybridd's; the
    # daemon code the ranks run is what the daemon suites run here.
    HYBRIDD_SANITIZER=address HYBRIDD_TEST_SMALL=1 \
      ctest --test-dir "$ASAN_BUILD" --output-on-failure -LE 'fuzz|cl_variant|mpi' \
      "${ctest_args[@]}"
    phase_end $?
  fi
fi

if [ "$what" = thread ] || [ "$what" = all ]; then
  phase "thread: build $TSAN_BUILD and the daemon suites in $BUILD"
  # The normal build's HY_SANITIZE stays as it is ('' unless someone chose otherwise).
  build "$TSAN_BUILD" thread hybridd hybridctl stress_engine &&
    cmake -S . -B "$BUILD" "${cmake_flags[@]}" >/dev/null &&
    cmake --build "$BUILD" -j "$JOBS" >"$BUILD/sanitize-build.log" 2>&1 ||
    { tail -n 60 "$BUILD/sanitize-build.log" >&2 2>/dev/null; false; }
  rc=$?
  phase_end $rc
  if [ $rc -eq 0 ]; then
    export HYBRIDD_SANITIZER=thread
    phase "thread: stress_engine"
    "$TSAN_BUILD/tests/host/stress_engine" 1
    phase_end $?

    phase "thread: daemon suites and the short load test against the TSan hybridd"
    HYBRIDD_TEST_BINARY=$(abs "$TSAN_BUILD")/daemon/hybridd \
      ctest --test-dir "$BUILD" --output-on-failure -R '^(test_daemon_|load_short$)' \
      "${ctest_args[@]}"
    phase_end $?

    phase "thread: hybridctl end to end with the TSan hybridd and hybridctl"
    python3 tests/client/test_hybridctl.py --hybridd "$TSAN_BUILD/daemon/hybridd" \
      --hybridctl "$TSAN_BUILD/client/hybridctl"
    phase_end $?
    unset HYBRIDD_SANITIZER
  fi
fi

shopt -s nullglob
found=("$reports"/*)
if [ ${#found[@]} -gt 0 ]; then
  echo "== sanitize: ${#found[@]} sanitizer report file(s):" >&2
  for f in "${found[@]}"; do
    echo "---- ${f##*/} ----" >&2
    # A runaway TSan log may be long: its first reports say enough.
    head -n 400 "$f" >&2
    n=$(wc -l <"$f")
    [ "$n" -gt 400 ] && echo "[... $((n - 400)) more lines]" >&2
  done
  failed+=("sanitizer reports")
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf '== sanitize: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "== sanitize: no sanitizer reports, every test passed" >&2
