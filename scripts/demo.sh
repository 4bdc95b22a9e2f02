#!/usr/bin/env bash
# make demo: starts hybridd on a temporary socket with its built-in defaults, shows the devices
# and two comparisons (pi, then sort) with their SVG plots, and stops the daemon again — also
# when a step fails. Usage: scripts/demo.sh [BUILD_DIR]
set -u
build=${1:-build}
# shellcheck source=scripts/tmp-daemon.sh
. "$(dirname "$0")/tmp-daemon.sh"
tmp_daemon_start demo "$build"

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
step compare sort -n 10M --dtype f64 --transport pipe,shm --repeat 3 --plot "$build/demo-sort.svg"
echo
if ((failed)); then
  echo "demo: a step failed; the daemon's log:" >&2
  cat "$log" >&2
  exit 1
fi
echo "The plots are $build/demo-pi.svg and $build/demo-sort.svg: open them in a browser."
