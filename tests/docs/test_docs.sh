#!/usr/bin/env bash
# test_docs.sh MODE SRCDIR [ARGS]: checks the man pages and hybridctl's bash completion.
#   man SRCDIR VERSION         every page in docs/man renders without a warning (man-db, else
#                              groff), has the project's .TH line, and hybridd.conf(5) documents
#                              every section and key of systemd/hybridd.conf
#   completion SRCDIR BINDIR   the completion loads in bash and completes commands, options,
#                              backends (also in comma lists), dtypes and compare's job, with
#                              BINDIR's hybridctl on PATH; every word list it offers is the one
#                              `hybridctl --list` prints (a fake hybridctl's extra words show),
#                              and with no runnable hybridctl it offers nothing and says nothing
#   install SRCDIR BINDIR      docs/'s install rules put the pages and the completion under a
#                              staging directory (DESTDIR), where GNUInstallDirs says
# Exit 0 pass, 1 fail, 77 skip (a tool it needs is missing).
set -u
mode=${1:?mode}
src=$(cd "${2:?source dir}" && pwd) || exit 1
man_dir=$src/docs/man
pages=("$man_dir/hybridctl.1" "$man_dir/hybridd.8" "$man_dir/hybridd.conf.5")
completion=$src/client/hybridctl.bash-completion
fail=0
nbad=0 # FAILs so far, so a group of checks says ok only when none of its own failed

say() { printf '%s\n' "$*"; }
bad() { say "FAIL: $*"; fail=1; nbad=$((nbad + 1)); }

# A UTF-8 locale when the system has one; else C (man-db complains about a locale it cannot set).
if locale -a 2>/dev/null | grep -qix 'c\.utf-\?8'; then
    export LC_ALL=C.UTF-8
else
    export LC_ALL=C
fi

# What the completion offers for WORDS (eval'd into COMP_WORDS; the last is the word being
# completed) with PATH set to $1, a word a line; the completion's stderr passes through.
complete_line() # PATH WORDS
{
    bash --norc --noprofile -c '
        PATH=$1
        source "$2"
        eval "COMP_WORDS=($3)"
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
        COMPREPLY=()
        _hybridctl hybridctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        ((${#COMPREPLY[@]} == 0)) || printf "%s\n" "${COMPREPLY[@]}"' _ "$1" "$completion" "$2"
}

# The completion keeps no list of its own: each list it offers is what `hybridctl --list`
# prints, a hybridctl that lists more gets more offered, and no hybridctl gets nothing.
lists_follow_the_code()
{
    local c what words got w list n=0 at=$nbad
    # Each: the --list words, then the line whose completion must offer every word listed.
    for c in 'commands|""' 'globals|-' 'job-backends|pi --backend ""' \
             'backends|compare pi --backends ""' 'transports|sort --backend process --transport ""' \
             'dtypes|sort --dtype ""' 'dists|sort -n 1M --dist ""' 'jobs compare|compare ""' \
             'options pi|pi -' 'options sort|sort -' 'options compare pi|compare pi -' \
             'options compare sort|compare sort -'; do
        what=${c%%|*}; words="hybridctl ${c#*|}"
        # shellcheck disable=SC2086 # WHAT is one or more words
        list=$(hybridctl --list $what) || { bad "hybridctl --list $what failed"; continue; }
        [[ -n $list ]] || { bad "hybridctl --list $what is empty"; continue; }
        got=$(complete_line "$PATH" "$words" 2>&1)
        for w in $list; do
            grep -qxF -- "$w" <<<"$got" || bad "[$words] lacks $w of --list $what (got: ${got//$'\n'/ })"
            n=$((n + 1))
        done
    done
    # The word after an option that takes a value is that value, never the command.
    for w in $(hybridctl --list takes-value); do
        got=$(complete_line "$PATH" "hybridctl $w x \"\"" 2>&1)
        grep -qxF ping <<<"$got" || bad "[hybridctl $w x \"\"] does not take x as $w's value"
        n=$((n + 1))
    done
    ((nbad > at)) || say "ok: the completion offers each of the $n words hybridctl --list prints"
    at=$nbad

    # A hybridctl that lists one more of everything: the completion must offer it too.
    mkdir "$tmp/fake" "$tmp/empty" "$tmp/home" "$tmp/home/bin" || exit 1
    cat >"$tmp/fake/hybridctl" <<EOF
#!/usr/bin/env bash
"$bindir/hybridctl" "\$@" || exit
case "\$*" in
    "--list commands" | "--list backends" | "--list job-backends" | "--list transports" | \\
    "--list dtypes" | \\
    "--list dists" | "--list jobs compare") echo zz ;;
    "--list globals" | "--list options pi" | "--list takes-value") echo --zz ;;
esac
EOF
    chmod +x "$tmp/fake/hybridctl" && cp "$tmp/fake/hybridctl" "$tmp/home/bin/hybridctl" || exit 1
    local fake=(
        'hybridctl ""|zz ping'
        'hybridctl -|--zz --json'
        'hybridctl pi --backend ""|zz native'
        'hybridctl compare pi --backends native,""|native,zz'
        'hybridctl sort --backend process --transport ""|zz pipe'
        'hybridctl compare sort --transport pipe,""|pipe,zz'
        'hybridctl sort --dtype ""|zz f64'
        'hybridctl sort -n 1M --dist ""|zz normal'
        'hybridctl compare ""|zz pi'
        'hybridctl pi -|--zz -n'
        'hybridctl --zz 1 ""|ping'
    )
    for c in "${fake[@]}"; do
        words=${c%%|*}
        got=$(complete_line "$tmp/fake:$PATH" "$words" 2>&1)
        for w in ${c#*|}; do
            grep -qxF -- "$w" <<<"$got" || bad "fake hybridctl first on PATH: [$words] lacks $w (got: ${got//$'\n'/ })"
        done
    done
    # The program on the line is the one asked, before PATH's; ~ is the home directory.
    got=$(complete_line "$PATH" "'$tmp/fake/hybridctl' pi --backend \"\"" 2>&1)
    grep -qxF zz <<<"$got" || bad "[$tmp/fake/hybridctl pi --backend] asks PATH's hybridctl"
    got=$(HOME=$tmp/home complete_line "$PATH" "'~/bin/hybridctl' sort --dtype \"\"" 2>&1)
    grep -qxF zz <<<"$got" || bad "[~/bin/hybridctl sort --dtype] does not ask ~/bin/hybridctl"
    ((nbad > at)) || say "ok: a hybridctl that lists more gets more offered (first on PATH, or on the line)"
    at=$nbad

    # No hybridctl that runs (none on PATH, one that is not there, one that fails): nothing
    # offered, nothing said.
    printf '#!/bin/sh\necho "no such option" >&2; exit 2\n' >"$tmp/empty/broken"
    chmod +x "$tmp/empty/broken" || exit 1
    for c in "$tmp/empty|hybridctl" "$tmp/empty|$tmp/none/hybridctl" "$tmp/empty|$tmp/empty/broken"; do
        for words in '""' '-' 'pi --backend ""' 'sort --input ""' 'compare ""'; do
            got=$(cd "$tmp" && complete_line "${c%%|*}" "'${c#*|}' $words" 2>&1)
            [[ -z $got ]] || bad "no runnable hybridctl (${c#*|}): [$words] gives: $got"
        done
    done
    ((nbad > at)) || say "ok: with no runnable hybridctl the completion offers nothing and says nothing"
}

case $mode in
man)
    version=${3:?version}
    if command -v man >/dev/null 2>&1 && man --help 2>&1 | grep -q -- '--warnings'; then
        # Only the warnings (stderr) are kept; the page itself goes to /dev/null.
        # shellcheck disable=SC2069
        render() { MANWIDTH=80 man --warnings -E UTF-8 -l "$1" 2>&1 >/dev/null; }
        tool="man --warnings"
    elif command -v groff >/dev/null 2>&1; then
        render() { groff -man -ww -z "$1" 2>&1; }
        tool="groff -ww"
    else
        say "SKIP: neither man (man-db) nor groff is installed"
        exit 77
    fi
    for p in "${pages[@]}"; do
        [[ -f $p ]] || { bad "$p is missing"; continue; }
        out=$(render "$p")
        if [[ -n $out ]]; then
            bad "$(basename "$p") renders with warnings ($tool):"
            say "$out"
        else
            say "ok: $(basename "$p") renders cleanly ($tool)"
        fi
        # Also through groff directly when man-db was the renderer: -ww catches what man hides.
        if [[ $tool == man* ]] && command -v groff >/dev/null 2>&1; then
            out=$(groff -man -ww -z "$p" 2>&1)
            [[ -z $out ]] || { bad "$(basename "$p"): groff -ww: $out"; }
        fi
        name=$(basename "$p"); section=${name##*.}; title=${name%.*}
        th='^\.TH '"${title^^}"' '"$section"' [0-9]{4}-[0-9]{2}-[0-9]{2} "hybridd '"${version//./\\.}"'" "hybridd manual"$'
        grep -Eq "$th" "$p" || bad "$name: no .TH line for ${title^^} $section, hybridd $version"
        for sh in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
            grep -q "^\.SH \"\?$sh\"\?\$" "$p" || bad "$name: no $sh section"
        done
    done
    # hybridd.conf(5) against the documented example configuration: every section, every key.
    conf=$src/systemd/hybridd.conf
    if [[ -f $conf ]]; then
        n=0
        while read -r sec; do
            grep -q "^\.SH SECTION $sec\$" "$man_dir/hybridd.conf.5" ||
                bad "hybridd.conf.5 has no section $sec"
        done < <(sed -n 's/^\([a-z_]*\) = {.*/\1/p' "$conf")
        while read -r key; do
            n=$((n + 1))
            grep -q "^\.BR $key \"" "$man_dir/hybridd.conf.5" ||
                bad "hybridd.conf.5 does not document the key $key"
        done < <(sed -n 's/^  \([a-z_]*\) = .*/\1/p' "$conf")
        say "ok: hybridd.conf.5 checked against the $n keys of systemd/hybridd.conf"
    fi
    ;;
completion)
    [[ -f $completion ]] || { say "FAIL: $completion is missing"; exit 1; }
    bindir=${3:-}
    if [[ -z $bindir || ! -x $bindir/hybridctl ]]; then
        say "SKIP: no built hybridctl (the completion asks it for its word lists)"
        exit 77
    fi
    bindir=$(cd "$bindir" && pwd) || exit 1
    export PATH="$bindir:$PATH"
    # A fresh bash with no rc files: the script must stand on its own.
    out=$(bash --norc --noprofile -c 'source "$1" && complete -p hybridctl' _ "$completion" 2>&1)
    if [[ $out != *"-F _hybridctl hybridctl"* ]]; then
        bad "the completion does not register for hybridctl: $out"
    else
        say "ok: loads: $out"
    fi
    # Each case: the words (the last is the one being completed), then what COMPREPLY must hold
    # (space-separated, all of them) and, after '!', what it must not.
    cases=(
        'hybridctl ""|ping status devices cancel pi sort compare'
        'hybridctl p|ping pi!status sort'
        'hybridctl -|-s --socket --json --quiet'
        'hybridctl --|--help --version!-s'
        'hybridctl -s /tmp/h.sock --json ""|ping status devices cancel pi sort compare'
        'hybridctl pi --backend ""|opencl native locked serial process'
        'hybridctl sort --backend pr|process!native'
        'hybridctl pi --backend process --transport ""|pipe shm!process'
        'hybridctl sort -n 1M --dtype f64 --transport s|shm!pipe'
        'hybridctl compare sort --transport pipe,""|pipe,shm!pipe,pipe'
        'hybridctl compare pi --backends native,""|native,process'
        'hybridctl pi -n 1e6 --transport pipe -|--backend!--transport'
        'hybridctl sort --backend l|locked!native'
        'hybridctl pi --backend = n|native'
        'hybridctl compare ""|pi sort!ping'
        'hybridctl compare pi --backends native,""|native,opencl native,locked native,serial!native,native'
        'hybridctl compare pi --backends ""|opencl native locked serial process'
        'hybridctl compare sort -|--backends --threads --transport --csv --plot --input --dtype --replicate!--output --backend'
        'hybridctl pi -|-n --backend --threads --transport --replicate --seed --device --nogil --hold-lock --switch-interval --repeat'
        'hybridctl sort -|--input --dtype -n --dist --output --raw --check --backend --transport'
        'hybridctl pi -n 1e9 -|--backend!-n'
        'hybridctl sort --dtype ""|i32 u32 i64 u64 f32 f64'
        'hybridctl sort -n 10M --dist ""|uniform normal sorted reversed few-unique'
        'hybridctl status -|--json --socket --help!--backend'
        'hybridctl pi -n 1e6 -|--json --quiet --verbose --socket --help --backend!-n'
        'hybridctl --json pi -|--backend --verbose!--json'
        'hybridctl sort -n 1M --dtype f64 --backend locked -|--switch-interval --hold-lock'
        'hybridctl compare pi --backends = n|native'
    )
    for c in "${cases[@]}"; do
        words=${c%%|*}; want=${c#*|}; not=""
        if [[ $want == *'!'* ]]; then not=${want#*!}; want=${want%%!*}; fi
        got=$(bash --norc --noprofile -c '
            source "$1"; shift
            eval "COMP_WORDS=($1)"
            COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
            COMPREPLY=()
            _hybridctl hybridctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
            printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$words" 2>/dev/null)
        ok=1
        for w in $want; do
            grep -qxF -- "$w" <<<"$got" || { ok=0; bad "[$words] lacks $w (got: ${got//$'\n'/ })"; }
        done
        for w in $not; do
            grep -qxF -- "$w" <<<"$got" && { ok=0; bad "[$words] offers $w"; }
        done
        ((ok)) && say "ok: [$words] -> ${got//$'\n'/ }"
    done
    # Files: --input offers .npy files and directories, --plot .svg files.
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/dir" && touch "$tmp/a.npy" "$tmp/b.svg" "$tmp/c.txt"
    for c in '--input|a.npy dir|b.svg c.txt' '--plot|b.svg dir|a.npy c.txt'; do
        opt=${c%%|*}; rest=${c#*|}; want=${rest%%|*}; not=${rest#*|}
        got=$(cd "$tmp" && bash --norc --noprofile -c '
            source "$1"
            COMP_WORDS=(hybridctl compare sort "$2" ""); COMP_CWORD=4; COMPREPLY=()
            _hybridctl
            printf "%s\n" "${COMPREPLY[@]}"' _ "$completion" "$opt" 2>/dev/null)
        for w in $want; do grep -qxF "$w" <<<"$got" || bad "$opt lacks $w (got: ${got//$'\n'/ })"; done
        for w in $not; do grep -qxF "$w" <<<"$got" && bad "$opt offers $w"; done
    done
    say "ok: file completion checked"
    lists_follow_the_code
    ;;
install)
    bin=${3:?binary dir}
    script=$bin/docs/cmake_install.cmake
    [[ -f $script ]] || { say "FAIL: $script is missing (configure first)"; exit 1; }
    command -v cmake >/dev/null 2>&1 || { say "SKIP: no cmake"; exit 77; }
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT
    prefix=/opt/hybridd-test
    # Only docs/'s rules: the rest of the tree's targets need not be built for this.
    if ! out=$(DESTDIR=$tmp/stage cmake -DCMAKE_INSTALL_PREFIX=$prefix -P "$script" 2>&1); then
        say "$out"
        bad "cmake -P docs/cmake_install.cmake failed"
        exit 1
    fi
    # mandir and bcdir, as docs/CMakeLists.txt resolved them (GNUInstallDirs, pkg-config).
    mandir=""; bcdir=""
    # shellcheck source=/dev/null
    source "$bin/docs/install-dirs.sh" || { bad "no $bin/docs/install-dirs.sh"; exit 1; }
    [[ -n $mandir && -n $bcdir ]] || { bad "install-dirs.sh names no mandir or bcdir"; exit 1; }
    under() { if [[ $1 == /* ]]; then printf '%s' "$tmp/stage$1"; else printf '%s' "$tmp/stage$prefix/$1"; fi; }
    for f in "$(under "$mandir")/man1/hybridctl.1" "$(under "$mandir")/man8/hybridd.8" \
             "$(under "$mandir")/man5/hybridd.conf.5" "$(under "$bcdir")/hybridctl"; do
        if [[ -f $f ]]; then say "ok: installed ${f#"$tmp/stage"}"; else bad "not installed: ${f#"$tmp/stage"}"; fi
    done
    cmp -s "$(under "$bcdir")/hybridctl" "$completion" || bad "the installed completion differs"
    extra=$(cd "$tmp/stage" && find . -type f | wc -l)
    [[ $extra -eq 4 ]] || bad "expected 4 files installed, found $extra: $(cd "$tmp/stage" && find . -type f)"
    ;;
*)
    say "usage: test_docs.sh man|completion|install SRCDIR [...]"
    exit 2
    ;;
esac
exit $fail
