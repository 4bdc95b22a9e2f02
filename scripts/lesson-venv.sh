#!/bin/sh
# Create the Python virtual environments that run the lesson's reference code
# (bench/lesson/lesson.py).
#
#   scripts/lesson-venv.sh            build/lesson-venv: the newest numpy and numba that pip
#                                     installs (the reference); create if needed, print versions
#   scripts/lesson-venv.sh --numpy124 build/lesson-venv-numpy124: numpy 1.24 (pip's 'numpy<1.25'),
#                                     no numba; the numpy that ../shared/FACTS.md measured
#                                     (Debian 12's), before numpy's sort went to SIMD code
#   PYTHON=/usr/bin/python3 scripts/lesson-venv.sh   choose the interpreter
#   LESSON_VENV=dir scripts/lesson-venv.sh           choose the location
#   LESSON_VENV_NUMPY124=dir scripts/lesson-venv.sh --numpy124   (the same, for --numpy124)
#   LESSON_VENV_UPGRADE=1 scripts/lesson-venv.sh     re-run pip even if already installed
#
# Idempotent: when the venv exists and imports what it needs, pip is not run.
# pip honours PIP_FIND_LINKS / PIP_INDEX_URL etc. from the environment.
# Exit 1 when the environment cannot be made (for --numpy124, scripts/bench.sh then skips
# the numpy 1.24 rows and says so).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
upgrade=${LESSON_VENV_UPGRADE:-0}
mode=newest
case ${1:-} in
    "") ;;
    --numpy124) mode=numpy124 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "lesson-venv: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

if [ "$mode" = numpy124 ]; then
    venv=${LESSON_VENV_NUMPY124:-$here/build/lesson-venv-numpy124}
    name=lesson-venv-numpy124
else
    venv=${LESSON_VENV:-$here/build/lesson-venv}
    name=lesson-venv
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "$name: $python not found; install Python 3 (Debian: apt-get install python3)" >&2
    exit 1
fi

vpy=$venv/bin/python

if [ ! -x "$vpy" ]; then
    echo "$name: creating $venv with $($python --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "$name: '$python -m venv' failed." >&2
        echo "  On Debian/Ubuntu install the venv module:  sudo apt-get install python3-venv" >&2
        echo "  (or point PYTHON at an interpreter that has venv and ensurepip)" >&2
        exit 1
    fi
fi

if [ "$mode" = numpy124 ]; then
    have() {
        "$vpy" -c 'import numpy, sys; sys.exit(not numpy.__version__.startswith("1.24."))' \
            >/dev/null 2>&1
    }
    if [ "$upgrade" = 1 ] || ! have; then
        echo "$name: installing numpy 1.24 with pip ('numpy<1.25')"
        # numpy 1.24 has wheels for CPython 3.8 to 3.11; on a newer Python pip would have to
        # build it from source, which is not attempted (--only-binary).
        if ! "$vpy" -m pip install --upgrade --only-binary numpy 'numpy>=1.24,<1.25' || ! have; then
            echo "$name: pip could not install numpy 1.24 for $("$vpy" --version 2>&1)." >&2
            echo "  The numpy 1.24 rows of make bench are skipped." >&2
            exit 1
        fi
    else
        echo "$name: $venv already has numpy 1.24 (LESSON_VENV_UPGRADE=1 to re-run pip)"
    fi
    "$vpy" - <<'PYEOF'
import platform, numpy
print("python", platform.python_version())
print("numpy ", numpy.__version__)
PYEOF
    exit 0
fi

have() {
    "$vpy" -c 'import numpy, numba' >/dev/null 2>&1
}

if [ "$upgrade" = 1 ] || ! have; then
    echo "$name: installing numpy and numba with pip"
    "$vpy" -m pip install --quiet --upgrade pip || true
    if ! "$vpy" -m pip install --upgrade numpy numba; then
        echo "$name: pip could not install numpy and numba." >&2
        # Fallback: Debian's python3-numpy and python3-numba, seen through a
        # venv made with --system-site-packages by the system interpreter.
        sys_py=/usr/bin/python3
        if [ -x "$sys_py" ] && "$sys_py" -c 'import numpy, numba' >/dev/null 2>&1; then
            echo "$name: falling back to the system's numpy and numba ($sys_py)" >&2
            rm -rf "$venv"
            "$sys_py" -m venv --system-site-packages "$venv"
        else
            echo "  Install them from the distribution and run this again:" >&2
            echo "    sudo apt-get install python3-numpy python3-numba" >&2
            echo "  (the venv is then recreated with --system-site-packages)" >&2
            exit 1
        fi
    fi
else
    echo "$name: $venv already has numpy and numba (LESSON_VENV_UPGRADE=1 to upgrade)"
fi

"$vpy" - <<'EOF'
import platform, numpy, numba
print("python", platform.python_version())
print("numpy ", numpy.__version__)
print("numba ", numba.__version__)
EOF
