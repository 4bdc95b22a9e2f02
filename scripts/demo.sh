#!/usr/bin/env bash
# make demo: starts hybridd on a temporary socket with its built-in defaults, shows the devices
# and two comparisons (pi, then sort) with their SVG plots, and stops the daemon again — also
# when a step fails. Usage: scripts/demo.sh [BUILD_DIR]
set -u
build=${1:-build}
hybridd=$build/daemon/hybridd
hybridctl=$build/client/hybridctl
for bin in "$hybridd" "$hybridctl"; do
  [[ -x $bin ]] || { echo "demo: $bin is missing: run make build first" >&2; exit 1; }
done

dir=$(mktemp -d /tmp/hybridd-demo.XXXXXX) || exit 1
sock=$dir/hybridd.sock
log=$dir/hybridd.log
# PoCL compiles kernels once and keeps them here, so a second demo starts faster.
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$PWD/$build/pocl-cache}
mkdir -p "$POCL_CACHE_DIR"

"$hybridd" --foreground --socket "$sock" 2>"$log" &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

# Ready when it answers a ping (the OpenCL kernels build first: seconds on a cold cache).
for _ in $(seq 1 600); do
  "$hybridctl" -s "$sock" --quiet ping >/dev/null 2>&1 && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: hybridd did not start; its log:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.1
done

ctl() { "$hybridctl" -s "$sock" "$@"; }
failed=0
step() {
  echo
  echo "\$ hybridctl $*"
  ctl "$@" || { echo "demo: hybridctl $* failed" >&2; failed=1; }
}
echo "hybridd is serving on $sock (pid $pid), on its built-in defaults"
step devices
step compare pi -n 2^28 --repeat 3 --plot "$build/demo-pi.svg"
step compare sort -n 10M --dtype f64 --repeat 3 --plot "$build/demo-sort.svg"
echo
if ((failed)); then
  echo "demo: a step failed; the daemon's log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "The plots are $build/demo-pi.svg and $build/demo-sort.svg: open them in a browser."
