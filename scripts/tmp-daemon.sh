# shellcheck shell=bash
# Sourced by scripts/demo.sh and scripts/bench.sh: starts the built hybridd on a temporary
# socket with its built-in defaults and stops it on exit, also when a step fails.
#   tmp_daemon_start NAME BUILD   sets dir, sock, log, pid and hybridctl; exits 1 if it
#                                 does not come up (printing its log)
#   tmp_daemon_cleanup            optional: a function the caller defines, run on exit
#                                 before the temporary directory goes (default: nothing)
tmp_daemon_start() {
  local name=$1 build=$2 bin
  hybridctl=$build/client/hybridctl
  for bin in "$build/daemon/hybridd" "$hybridctl"; do
    [[ -x $bin ]] || { echo "$name: $bin is missing: run make build first" >&2; exit 1; }
  done
  dir=$(mktemp -d "/tmp/hybridd-$name.XXXXXX") || exit 1
  sock=$dir/hybridd.sock
  log=$dir/hybridd.log
  # PoCL compiles kernels once and keeps them here, so the next run starts faster.
  export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$PWD/$build/pocl-cache}
  mkdir -p "$POCL_CACHE_DIR"
  "$build/daemon/hybridd" --foreground --socket "$sock" 2>"$log" &
  pid=$!
  trap tmp_daemon_stop EXIT
  trap 'exit 130' INT TERM
  # Ready when it answers a ping (the OpenCL kernels build first: seconds on a cold cache).
  for _ in $(seq 1 600); do
    "$hybridctl" -s "$sock" --quiet ping >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name: hybridd did not start; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "$name: hybridd did not answer within 60 s; its log:" >&2
  cat "$log" >&2
  exit 1
}

tmp_daemon_stop() {
  kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  if declare -F tmp_daemon_cleanup >/dev/null; then
    tmp_daemon_cleanup
  else
    rm -rf "$dir"
  fi
}
