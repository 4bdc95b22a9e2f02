#!/usr/bin/env bash
# Checks hybridd's systemd integration: the installed units pass `systemd-analyze verify`, the
# sysusers.d/tmpfiles.d snippets make the account and directories the units expect, and
# `hybridd --check-config` accepts good files and names file and line for bad ones.
#
# Usage: test_units.sh MODE HYBRIDD SRCDIR BINDIR
#   MODE     verify | snippets | check-config
#   HYBRIDD  the built hybridd binary ("" when the build has no hybridd target)
#   SRCDIR   the source tree's systemd/ (the units' .in files, hybridd.conf, the snippets)
#   BINDIR   the build tree (verify installs it, with cmake --install, into scratch DESTDIRs)
# Exit: 0 pass, 1 fail, 77 skipped (a tool or the binary is missing; ctest shows it as skipped).
set -uo pipefail

mode=${1:?mode}
hybridd=${2-}
srcdir=${3:?source systemd/ dir}
bindir=${4:?build dir}

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

# (a) The units as `cmake --install BUILD --prefix P` installs them, for P = /usr and /usr/local,
# each into its own DESTDIR: they lie in a directory systemd reads; ExecStart= names the hybridd
# that was installed (executable, under P) and, with -c, the example configuration where it was
# installed (/etc for /usr, P/etc otherwise); the socket unit names the same file;
# systemd-sysusers and systemd-tmpfiles find the snippets; and `systemd-analyze verify --root=DESTDIR`
# accepts both units, so every path it checks (ExecStart's binary first) is looked up in DESTDIR.
# The root gets only what the host gives every unit: the host's targets and ExecReload's /bin/kill.
install_and_check() { # PREFIX
  local prefix=$1 root out rc f
  root="$tmp/root${prefix//\//_}"
  echo "== cmake --install --prefix $prefix, DESTDIR=$root"
  if ! out=$(DESTDIR="$root" cmake --install "$bindir" --prefix "$prefix" 2>&1); then
    printf '%s\n' "$out"
    fail "$prefix: cmake --install failed"
    return
  fi
  local units
  units=$(cd "$root" && find . -name 'hybridd.s*' -type f | sed 's|^\.||' | sort)
  echo "units: ${units//$'\n'/ }"
  local svc sock dir
  svc=$(grep '/hybridd\.service$' <<<"$units")
  sock=$(grep '/hybridd\.socket$' <<<"$units")
  if [ "$(wc -l <<<"$svc")" -ne 1 ] || [ -z "$svc" ] || [ "$(wc -l <<<"$sock")" -ne 1 ] || [ -z "$sock" ]; then
    fail "$prefix: want one hybridd.service and one hybridd.socket, found: ${units//$'\n'/ }"
    return
  fi
  dir=${svc%/*}
  [ "${sock%/*}" = "$dir" ] || fail "$prefix: the units are in two directories ($dir, ${sock%/*})"
  grep -qxF "$dir" <<<"$unit_paths" ||
    fail "$prefix: the units are in $dir, which systemd does not read (systemd-analyze unit-paths)"
  if grep -n '@[A-Za-z_]*@' "$root$svc" "$root$sock"; then
    fail "$prefix: unconfigured @VAR@ left in the units"
  fi

  local line argv=() bin conf="" i
  line=$(sed -n 's/^ExecStart=//p' "$root$svc")
  read -r -a argv <<<"$line"
  bin=${argv[0]-}
  for ((i = 1; i < ${#argv[@]}; i++)); do
    [ "${argv[i]}" = "-c" ] && conf=${argv[i + 1]-}
  done
  echo "ExecStart: $line"
  case $bin in
    "$prefix"/*) ;;
    *) fail "$prefix: ExecStart's $bin is not under the prefix $prefix" ;;
  esac
  if [ -f "$root$bin" ] && [ -x "$root$bin" ]; then
    "$root$bin" --version >/dev/null 2>&1 || fail "$prefix: $bin --version failed"
  else
    fail "$prefix: ExecStart's $bin was not installed (no executable $root$bin)"
  fi
  local want=$prefix/etc/hybridd/hybridd.conf
  [ "$prefix" = /usr ] && want=/etc/hybridd/hybridd.conf
  [ "$conf" = "$want" ] || fail "$prefix: ExecStart's -c is '$conf', want $want"
  if [ -f "$root$conf" ]; then
    cmp -s "$root$conf" "$srcdir/hybridd.conf" || fail "$prefix: $conf is not the example configuration"
  else
    fail "$prefix: -c's $conf was not installed (no $root$conf)"
  fi
  [ ! -e "$root/usr/etc" ] || fail "$prefix: something was installed in /usr/etc"
  grep -qF "socket.path in $want." "$root$sock" || fail "$prefix: hybridd.socket does not name $want"

  # systemd finds the snippets in the root (--cat-config lists the files it would read).
  for f in sysusers tmpfiles; do
    command -v "systemd-$f" >/dev/null 2>&1 || continue
    out=$("systemd-$f" --root="$root" --cat-config 2>&1 | sed -n 's|^# \(/.*/hybridd\.conf\)$|\1|p')
    [ -n "$out" ] && echo "systemd-$f reads ${out#"$root"}" ||
      fail "$prefix: systemd-$f --root does not find hybridd's $f.d snippet"
  done

  # What the host gives every unit, and nothing of hybridd's: its targets, and the commands the
  # units run that hybridd does not install (/bin/kill).
  mkdir -p "$root/etc/systemd/system"
  local d
  while read -r d; do
    [ -d "$d" ] && find "$d" -maxdepth 1 -name '*.target' -exec cp -n {} "$root/etc/systemd/system/" \;
  done <<<"$unit_paths"
  local cmd
  for cmd in $(sed -n 's/^Exec[A-Za-z]*=[-@+!:]*\(\/[^ ]*\).*/\1/p' "$root$svc" | sort -u); do
    [ "$cmd" = "$bin" ] && continue
    if [ -x "$cmd" ]; then
      mkdir -p "$root${cmd%/*}" && cp -n "$cmd" "$root$cmd"
    else
      fail "$prefix: hybridd.service runs $cmd, which this machine does not have"
    fi
  done
  out=$(cd "$tmp" && systemd-analyze verify --root="$root" hybridd.service hybridd.socket 2>&1)
  rc=$?
  [ -n "$out" ] && printf 'systemd-analyze verify --root said:\n%s\n' "$out"
  [ "$rc" -eq 0 ] && [ -z "$out" ] || fail "$prefix: systemd-analyze verify rejected the installed units"

  # The exposure score is a report, not a gate, except for a jump into the unsafe range: that only
  # happens when the hardening lines are lost. --offline needs systemd >= 250.
  if systemd-analyze --help 2>/dev/null | grep -q -- '--offline'; then
    out=$(cd "$root$dir" && systemd-analyze security --offline=yes --root="$root" --no-pager hybridd.service 2>&1)
    printf '%s\n' "$out" | grep 'Overall exposure level'
    if ! printf '%s\n' "$out" | grep -Eq 'Overall exposure level for hybridd.service: [0-3]\.[0-9] '; then
      fail "$prefix: systemd-analyze security rates hybridd.service above 3.9 (or could not rate it)"
    fi
  fi
}

test_verify() {
  command -v systemd-analyze >/dev/null 2>&1 || skip "systemd-analyze is not installed"
  need_hybridd
  [ -f "$bindir/cmake_install.cmake" ] || { echo "FAIL: $bindir is not a configured build" >&2; exit 1; }
  unit_paths=$(systemd-analyze --system unit-paths 2>/dev/null)
  [ -n "$unit_paths" ] || { echo "FAIL: systemd-analyze unit-paths printed nothing" >&2; exit 1; }
  install_and_check /usr
  install_and_check /usr/local
  finish
}

# (c) The snippets, applied to an empty root: sysusers makes hybridd (and render), tmpfiles makes
# /run/hybridd and /var/cache/hybridd owned by hybridd with the modes the units use.
test_snippets() {
  command -v systemd-sysusers >/dev/null 2>&1 || skip "systemd-sysusers is not installed"
  command -v systemd-tmpfiles >/dev/null 2>&1 || skip "systemd-tmpfiles is not installed"
  local root="$tmp/root" out f
  for f in "$srcdir/hybridd.sysusers" "$srcdir/hybridd.tmpfiles" "$srcdir/hybridd.service.in" \
           "$srcdir/hybridd.socket.in"; do
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
  local svc="$srcdir/hybridd.service.in" sock="$srcdir/hybridd.socket.in"
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
