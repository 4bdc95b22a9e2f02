# hybridd's two front doors: `make demo` and `make test`. Both install what is missing from
# Debian's packages first (scripts/install-deps.sh), then build with CMake into $(BUILD).
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# CI turns warnings into errors; locally they stay warnings.
ifeq ($(CI),true)
CMAKE_FLAGS += -DHY_WERROR=ON
endif

.PHONY: all deps build demo test bench clean

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

# Every test, through ctest. PoCL caches compiled kernels: one fresh cache per run, shared
# by all the suites of that run.
test: build
	@dir=$$(mktemp -d /tmp/hybridd-pocl.XXXXXX) && \
	  POCL_CACHE_DIR=$$dir ctest --test-dir $(BUILD) --output-on-failure; \
	  rc=$$?; rm -rf "$$dir"; exit $$rc

clean:
	rm -rf $(BUILD)
