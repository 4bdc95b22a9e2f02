#!/usr/bin/env bash
# Installs, from Debian's packages, what hybridd needs to build, test and run; does nothing
# (and needs no privileges) when everything is already present.
#
# Usage: scripts/install-deps.sh [--check]
#   --check   only report what is missing; exit 1 if anything is.
# Works as root on a fresh Debian 12 machine, and for a normal user through sudo.
set -euo pipefail

# One package per need; the comment says which part of hybridd needs it.
packages=(
  build-essential      # gcc, make
  cmake                # the build (>= 3.25; Debian 12 ships 3.25.1)
  pkg-config           # finds libconfig and libsystemd
  ocl-icd-opencl-dev   # OpenCL ICD loader (libOpenCL.so)
  opencl-c-headers     # CL/cl.h
  pocl-opencl-icd      # an OpenCL CPU device, so the opencl backend runs without a GPU
  clinfo               # to see which OpenCL devices a machine has
  oclgrind             # tests/cl/oclgrind.sh: the GPU kernels under race and uninitialized checks
  libconfig-dev        # hybridd's configuration file
  libcriterion-dev     # the unit and integration tests
  libsystemd-dev       # sd_notify and socket activation
  systemd              # systemd-analyze, systemd-sysusers, systemd-tmpfiles for tests/systemd
  python3              # the client's end-to-end tests (standard library only: json, xml, csv)
  python3-numpy        # the Python client (python/): its one dependency, for its tests
  python3-pytest       # the Python client's tests (python/tests, ctest's python_client)
  clang                # libFuzzer targets
  libclang-rt-dev      # clang's sanitizer and libFuzzer runtimes (only recommended by clang)
  llvm                 # llvm-symbolizer: function names in the fuzzers' sanitizer reports (only
                       # recommended by clang; the tests pass without it, the reports are unreadable)
  libopenmpi-dev       # mpi/: hybridd --mpi, ranks under mpirun or srun (mpicc, mpi.h, libmpi)
  openmpi-bin          # mpirun, for the mpi-labelled tests (ranks on one machine)
  man-db               # man and groff, for tests/docs (renders the man pages and checks warnings;
                       # not in a minimal Debian)
)

missing=()
for p in "${packages[@]}"; do
  # dpkg-query prints "install ok installed" only for a fully installed package.
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "${1:-}" = "--check" ]; then
  echo "missing packages: ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: not root and sudo is not available; as root run: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  as_root=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
# A fresh machine's package lists may be empty or stale: refresh them once before installing.
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
