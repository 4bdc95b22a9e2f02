#!/usr/bin/env bash
# tests/cl: the GPU kernel variant under Oclgrind, which interprets every work-item and reports
# data races, reads of uninitialized memory, out-of-bounds accesses and misused API calls that
# a CPU device (PoCL) lets pass. Runs tests/cl/cl_cases (given as $1) with HYBRIDD_CL_VARIANT=gpu
# on Oclgrind's own platform; fails on a wrong answer or on any report. Exits 77 (skipped)
# when oclgrind is not installed (scripts/install-deps.sh installs it).
set -euo pipefail

cases=${1:?usage: oclgrind.sh PATH/TO/cl_cases}
if ! command -v oclgrind >/dev/null 2>&1; then
  echo "oclgrind is not installed: skipped (scripts/install-deps.sh installs it)"
  exit 77
fi
# A sanitizer's runtime must be the first library loaded, and the oclgrind wrapper preloads
# its own before it. What is checked here is the kernels, which no host sanitizer sees: the
# plain build's run covers them.
if ldd "$cases" 2>/dev/null | grep -Eq 'lib(a|t|ub|l)san'; then
  echo "cl_cases is built with a sanitizer, which cannot run under oclgrind's preload: skipped"
  exit 77
fi

dir=$(mktemp -d /tmp/hybridd-oclgrind.XXXXXX)
trap 'rm -rf "$dir"' EXIT
# Reports go to stderr, which cl_cases itself writes only on a failure. (Not --log FILE:
# Oclgrind opens that file anew for each OpenCL context, and cl_cases makes one per job, so
# it would keep the last job's reports only.)
status=0
HYBRIDD_CL_VARIANT=gpu oclgrind --data-races --uninitialized --check-api \
  "$cases" >"$dir/out" 2>"$dir/log" || status=$?
cat "$dir/out"

# The oclgrind wrapper preloads its own OpenCL library, so its device is the only one; a run
# that saw another device, or the CPU kernels, proved nothing about the GPU variant.
if ! grep -q '^device [0-9]*: .*(Oclgrind, GPU kernels, forced by HYBRIDD_CL_VARIANT): runs$' \
     "$dir/out" || grep -v '(Oclgrind, ' "$dir/out" | grep -q '^device '; then
  echo "FAIL: the cases did not run on Oclgrind's device alone with the GPU kernels"
  exit 1
fi
if [ -s "$dir/log" ]; then
  echo "FAIL: Oclgrind (or cl_cases) reported, first 60 lines:"
  head -n 60 "$dir/log"
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "FAIL: cl_cases exited with status $status under Oclgrind"
  exit 1
fi
echo "Oclgrind: no data race, uninitialized read or API error reported"
