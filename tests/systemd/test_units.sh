#!/usr/bin/env bash
# Checks hybridd's systemd integration: the configured units pass `systemd-analyze verify`, the
# sysusers.d/tmpfiles.d snippets make the account and directories the units expect, and
# `hybridd --check-config` accepts good files and names file and line for bad ones.
#
# Usage: test_units.sh MODE HYBRIDD SRCDIR UNITDIR
#   MODE     verify | snippets | check-config
#   HYBRIDD  the built hybridd binary ("" when the build has no hybridd target)
#   SRCDIR   the source tree's systemd/ (hybridd.conf, hybridd.sysusers, hybridd.tmpfiles)
#   UNITDIR  the build tree's systemd/ (the configured hybridd.service and hybridd.socket)
# Exit: 0 pass, 1 fail, 77 skipped (a tool or the binary is missing; ctest shows it as skipped).
set -uo pipefail

mode=${1:?mode}
hybridd=${2-}
srcdir=${3:?source systemd/ dir}
unitdir=${4:?build systemd/ dir}

fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
skip() { echo "SKIP: $*" >&2; exit 77; }
finish() { if [ "$fails" -ne 0 ]; then echo "$fails check(s) failed" >&2; exit 1; fi; echo "ok"; exit 0; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/hybridd-systemd-test.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

need_hybridd() {
  [ -n "$hybridd" ] || skip "the build has no hybridd target"
  [ -x "$hybridd" ] || { echo "FAIL: $hybridd is not built" >&2; exit 1; }
}

# (a) systemd-analyze verify on copies of the configured units whose ExecStart names the built
# binary (verify checks that it exists and is executable); any message naming a hybridd unit fails.
# Messages about the host's own units are not ours and are only shown.
test_verify() {
  command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze is not installed"
  need_hybridd
  sed "s|^ExecStart=[^ ]*|ExecStart=$hybridd|" "$unitdir/hybridd.service" >"$tmp/hybridd.service"
  cp "$unitdir/hybridd.socket" "$tmp/hybridd.socket"
  grep -q "^ExecStart=$hybridd " "$tmp/hybridd.service" || fail "ExecStart= was not rewritten"
  if grep -n '@[A-Z_]*@' "$tmp/hybridd.service" "$tmp/hybridd.socket"; then
    fail "unconfigured @VAR@ left in the units"
  fi

  local out rc
  out=$(cd "$tmp" && systemd-analyze verify ./hybridd.service ./hybridd.socket 2>&1)
  rc=$?
  [ -n "$out" ] && printf 'systemd-analyze verify said:\n%s\n' "$out"
  if printf '%s\n' "$out" | grep -q 'hybridd'; then
    fail "systemd-analyze verify complained about the hybridd units"
  elif [ "$rc" -ne 0 ]; then
    echo "note: systemd-analyze verify exited $rc, about nothing naming hybridd (host units)"
  fi

  # The exposure score is a report, not a gate, except for a jump into the unsafe range: that only
  # happens when the hardening lines are lost. --offline needs systemd >= 250.
  if systemd-analyze security --help 2>/dev/null | grep -q -- '--offline' ||
     systemd-analyze --help 2>/dev/null | grep -q -- '--offline'; then
    out=$(cd "$tmp" && systemd-analyze security --offline=yes --no-pager ./hybridd.service 2>&1)
    printf '%s\n' "$out" | grep 'Overall exposure level'
    if ! printf '%s\n' "$out" | grep -Eq 'Overall exposure level for hybridd.service: [0-3]\.[0-9] '; then
      fail "systemd-analyze security rates hybridd.service above 3.9 (or could not rate it)"
    fi
  fi
  finish
}

# (c) The snippets, applied to an empty root: sysusers makes hybridd (and render), tmpfiles makes
# /run/hybridd and /var/cache/hybridd owned by hybridd with the modes the units use.
test_snippets() {
  command -v systemd-sysusers >/dev/null 2>&1 || skip "systemd-sysusers is not installed"
  command -v systemd-tmpfiles >/dev/null 2>&1 || skip "systemd-tmpfiles is not installed"
  local root="$tmp/root" out f
  for f in "$srcdir/hybridd.sysusers" "$srcdir/hybridd.tmpfiles" "$unitdir/hybridd.service" \
           "$unitdir/hybridd.socket"; do
    [ -f "$f" ] || { echo "FAIL: $f is missing" >&2; exit 1; }
  done
  mkdir -p "$root/etc"

  # --dry-run on the host parses the file and changes nothing.
  out=$(systemd-sysusers --dry-run "$srcdir/hybridd.sysusers" 2>&1) ||
    fail "systemd-sysusers --dry-run rejected hybridd.sysusers: $out"
  printf '%s\n' "$out" | grep -F "hybridd.sysusers:" && fail "systemd-sysusers --dry-run warned"

  if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, so the snippets are only parsed, not applied to a scratch root"
    finish
  fi

  out=$(systemd-sysusers --root="$root" "$srcdir/hybridd.sysusers" 2>&1) ||
    fail "systemd-sysusers --root failed: $out"
  [ -n "$out" ] && echo "systemd-sysusers: $out"
  local uid gid
  uid=$(awk -F: '$1 == "hybridd" { print $3 }' "$root/etc/passwd" 2>/dev/null)
  gid=$(awk -F: '$1 == "hybridd" { print $3 }' "$root/etc/group" 2>/dev/null)
  [ -n "$uid" ] || fail "no user hybridd in the scratch root's /etc/passwd"
  [ -n "$gid" ] || fail "no group hybridd in the scratch root's /etc/group"
  grep -q '^render:' "$root/etc/group" 2>/dev/null || fail "no group render in the scratch root's /etc/group"
  [ -z "$uid" ] || awk -F: '$1 == "hybridd" && $7 !~ /nologin$/ { exit 1 }' "$root/etc/passwd" ||
    fail "hybridd has a login shell"

  out=$(systemd-tmpfiles --root="$root" --create "$srcdir/hybridd.tmpfiles" 2>&1) ||
    fail "systemd-tmpfiles --create failed"
  [ -n "$out" ] && { echo "systemd-tmpfiles said: $out"; fail "systemd-tmpfiles warned"; }
  local d want got
  for d in "run/hybridd 755" "var/cache/hybridd 750"; do
    want="${d#* } $uid:$gid"
    got=$(stat -c '%a %u:%g' "$root/${d% *}" 2>/dev/null)
    [ "$got" = "$want" ] || fail "/${d% *} is '${got:-missing}', want '$want'"
  done

  # The units agree with the snippets: the account, the socket's directory, the cache's mode.
  local svc="$unitdir/hybridd.service" sock="$unitdir/hybridd.socket"
  grep -qx 'User=hybridd' "$svc" || fail "hybridd.service does not run as hybridd"
  grep -qx 'SocketGroup=hybridd' "$sock" || fail "hybridd.socket's group is not hybridd"
  grep -qx 'ListenStream=/run/hybridd/hybridd.sock' "$sock" || fail "socket not in /run/hybridd"
  grep -qx 'CacheDirectoryMode=0750' "$svc" || fail "CacheDirectoryMode differs from the tmpfiles mode"
  grep -qx 'RuntimeDirectoryMode=0755' "$svc" || fail "RuntimeDirectoryMode differs from the tmpfiles mode"
  finish
}

# (b) --check-config: exit 0 for the example and an empty file; exit 2 for a bad file, with
# "hybridd: FILE:LINE: ..." on stderr.
check_ok() { # FILE
  local err
  err=$("$hybridd" --check-config -c "$1" 2>&1 >/dev/null)
  local rc=$?
  [ "$rc" -eq 0 ] || fail "--check-config $1 exited $rc, want 0: $err"
}
check_bad() { # WHAT FILE LINE WORD
  local what=$1 file=$2 line=$3 word=$4 err rc
  err=$("$hybridd" --check-config -c "$file" 2>&1 >/dev/null)
  rc=$?
  echo "$what -> exit $rc: $err"
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, want 2"
  printf '%s\n' "$err" | awk -v p="hybridd: $file:$line:" 'index($0, p) == 1 { f = 1 } END { exit !f }' ||
    fail "$what: stderr does not start a line with 'hybridd: $file:$line:'"
  [ -z "$word" ] || printf '%s\n' "$err" | grep -qF "$word" || fail "$what: stderr does not name '$word'"
}
# A start-up check that fails for everyone: exit 2, "hybridd: FILE: ..." naming WORD.
check_env_bad() { # WHAT FILE WORD
  local what=$1 file=$2 word=$3 err rc
  err=$("$hybridd" --check-config -c "$file" 2>&1 >/dev/null)
  rc=$?
  echo "$what -> exit $rc: $err"
  [ "$rc" -eq 2 ] || fail "$what: exit $rc, want 2"
  printf '%s\n' "$err" | grep -qF "hybridd: $file: " || fail "$what: stderr does not name $file"
  printf '%s\n' "$err" | grep -qF "$word" || fail "$what: stderr does not name '$word'"
}
test_check_config() {
  need_hybridd
  # The example as installed: its socket group is hybridd, which systemd-sysusers makes. Where
  # that group exists it passes as it is; elsewhere --check-config must say what start-up would
  # say, and the same file with a group that exists (and a socket directory this test may
  # create, three levels deep) passes.
  if getent group hybridd >/dev/null 2>&1; then
    check_ok "$srcdir/hybridd.conf"
  else
    check_env_bad "example without a hybridd group" "$srcdir/hybridd.conf" "socket group hybridd: no such group"
  fi
  sed -e "s|^  group = \"hybridd\";|  group = \"$(id -gn)\";|" \
      -e "s|^  path = \"/run/hybridd/hybridd.sock\";|  path = \"$tmp/run/a/b/hybridd.sock\";|" \
      "$srcdir/hybridd.conf" >"$tmp/example.conf"
  grep -q "^  group = \"$(id -gn)\";" "$tmp/example.conf" || fail "the example's socket group was not rewritten"
  grep -q "^  path = \"$tmp/run/a/b/hybridd.sock\";" "$tmp/example.conf" || fail "the example's socket path was not rewritten"
  check_ok "$tmp/example.conf"
  [ ! -e "$tmp/run" ] || fail "--check-config created the socket's directory"
  printf 'socket = {\n  group = "hybridd-test-no-such-group";\n};\n' >"$tmp/group.conf"
  check_env_bad "socket group that does not exist" "$tmp/group.conf" "hybridd-test-no-such-group: no such group"
  : >"$tmp/empty.conf"
  check_ok "$tmp/empty.conf"

  printf 'limits = {\n  clients = 8;\n  frame_bytes = ;\n};\n' >"$tmp/syntax.conf"
  check_bad "syntax error" "$tmp/syntax.conf" 3 ""
  printf '# a comment\nlimits = {\n  clients = 8;\n  no_such_key = 1;\n};\n' >"$tmp/unknown.conf"
  check_bad "unknown key" "$tmp/unknown.conf" 4 "no_such_key"
  printf 'cpu = {\n  native_threads = 2;\n};\n\nlimits = {\n  clients = 0;\n};\n' >"$tmp/range.conf"
  check_bad "out of range" "$tmp/range.conf" 6 "clients"
  finish
}

case "$mode" in
  verify) test_verify ;;
  snippets) test_snippets ;;
  check-config) test_check_config ;;
  *) echo "unknown mode '$mode'" >&2; exit 1 ;;
esac
