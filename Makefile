# hybridd's two front doors: `make demo` and `make test`. Both install what is missing from
# Debian's packages first (scripts/install-deps.sh), then build with CMake into $(BUILD).
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# CI turns warnings into errors; locally they stay warnings.
ifeq ($(CI),true)
CMAKE_FLAGS += -DHY_WERROR=ON
endif

.PHONY: all deps build demo test sanitize bench clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The main job: hybridd on a temporary socket, `hybridctl devices`, `compare pi` and
# `compare sort` with their SVG plots (about 15 s), and the daemon stopped again.
demo: build
	@scripts/demo.sh $(BUILD)

# The lesson's Python code (numpy, numba; a venv in $(BUILD)/lesson-venv, and numpy 1.24 in
# $(BUILD)/lesson-venv-numpy124) next to hybridd on the same sizes and the same sort arrays: one
# table, the generated section of docs/benchmarks.md and docs/benchmarks-lesson.svg (7 interleaved
# rounds, about 7 min; BENCH_ROUNDS=N to change, BENCH_QUICK=1 for a small trial run).
bench: build
	@scripts/bench.sh $(BUILD)

# Every test, through ctest. PoCL caches compiled kernels: one fresh cache per run, shared
# by all the suites of that run; a POCL_CACHE_DIR already in the environment (CI shares one
# between `make test` and `make sanitize`) is used as it is and kept.
test: build
	@if [ -n "$$POCL_CACHE_DIR" ]; then \
	  ctest --test-dir $(BUILD) --output-on-failure; \
	else \
	  dir=$$(mktemp -d /tmp/hybridd-pocl.XXXXXX) && \
	  POCL_CACHE_DIR=$$dir ctest --test-dir $(BUILD) --output-on-failure; \
	  rc=$$?; rm -rf "$$dir"; exit $$rc; \
	fi

# The tests again under AddressSanitizer + UndefinedBehaviorSanitizer (in build-asan) and
# ThreadSanitizer (hybridd, hybridctl and the engine's stress program, in build-tsan); any
# sanitizer report fails. See scripts/sanitize.sh.
sanitize: deps
	@BUILD=$(BUILD) JOBS=$(JOBS) CMAKE_FLAGS="$(CMAKE_FLAGS)" scripts/sanitize.sh

# The load test at full size: one hybridd, 64 clients x 200 mixed jobs on every backend,
# with cancels, malformed requests and garbage in between (tests/load/loadtest.c; ctest runs
# a 16 x 30 form). It prints jobs/s, latency, and the daemon's fds and RSS; figures in
# docs/reliability.md. LOADTEST_FLAGS passes options (e.g. --json, --no-opencl).
.PHONY: loadtest
loadtest: build
	@if [ -n "$$POCL_CACHE_DIR" ]; then \
	  $(BUILD)/tests/load/loadtest $(LOADTEST_FLAGS); \
	else \
	  dir=$$(mktemp -d /tmp/hybridd-pocl.XXXXXX) && \
	  POCL_CACHE_DIR=$$dir $(BUILD)/tests/load/loadtest $(LOADTEST_FLAGS); \
	  rc=$$?; rm -rf "$$dir"; exit $$rc; \
	fi

clean:
	rm -rf $(BUILD) build-asan build-tsan
