#!/bin/sh
# Create the Python virtual environment that runs the lesson's reference code
# (bench/lesson/lesson.py) with the newest numpy and numba that pip installs.
#
#   scripts/lesson-venv.sh            create build/lesson-venv if needed, print versions
#   PYTHON=/usr/bin/python3 scripts/lesson-venv.sh   choose the interpreter
#   LESSON_VENV=dir scripts/lesson-venv.sh           choose the location
#   LESSON_VENV_UPGRADE=1 scripts/lesson-venv.sh     re-run pip even if already installed
#
# Idempotent: when the venv exists and imports numpy and numba, pip is not run.
# pip honours PIP_FIND_LINKS / PIP_INDEX_URL etc. from the environment.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${LESSON_VENV:-$here/build/lesson-venv}
python=${PYTHON:-python3}
upgrade=${LESSON_VENV_UPGRADE:-0}

if ! command -v "$python" >/dev/null 2>&1; then
    echo "lesson-venv: $python not found; install Python 3 (Debian: apt-get install python3)" >&2
    exit 1
fi

vpy=$venv/bin/python

if [ ! -x "$vpy" ]; then
    echo "lesson-venv: creating $venv with $($python --version 2>&1)"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv"; then
        rm -rf "$venv"
        echo "lesson-venv: '$python -m venv' failed." >&2
        echo "  On Debian/Ubuntu install the venv module:  sudo apt-get install python3-venv" >&2
        echo "  (or point PYTHON at an interpreter that has venv and ensurepip)" >&2
        exit 1
    fi
fi

have() {
    "$vpy" -c 'import numpy, numba' >/dev/null 2>&1
}

if [ "$upgrade" = 1 ] || ! have; then
    echo "lesson-venv: installing numpy and numba with pip"
    "$vpy" -m pip install --quiet --upgrade pip || true
    if ! "$vpy" -m pip install --upgrade numpy numba; then
        echo "lesson-venv: pip could not install numpy and numba." >&2
        # Fallback: Debian's python3-numpy and python3-numba, seen through a
        # venv made with --system-site-packages by the system interpreter.
        sys_py=/usr/bin/python3
        if [ -x "$sys_py" ] && "$sys_py" -c 'import numpy, numba' >/dev/null 2>&1; then
            echo "lesson-venv: falling back to the system's numpy and numba ($sys_py)" >&2
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
    echo "lesson-venv: $venv already has numpy and numba (LESSON_VENV_UPGRADE=1 to upgrade)"
fi

"$vpy" - <<'EOF'
import platform, numpy, numba
print("python", platform.python_version())
print("numpy ", numpy.__version__)
print("numba ", numba.__version__)
EOF
