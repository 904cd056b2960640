# Thin wrapper over CMake. `make demo` and `make test` first install any
# missing Debian packages when run as root (quiet when nothing is missing).
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-asan demo fuzz format check-format checksrc clean

all: build

deps:
	@.ci/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DGS_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: deps
	@$(MAKE) --no-print-directory test BUILD=build-asan \
		CMAKE_FLAGS="-DCMAKE_BUILD_TYPE=Debug -DGS_SANITIZE=address,undefined"

demo: build
	@GS_BINDIR=$(abspath $(BUILD))/bin tests/demo/run.sh

fuzz: deps
	@.ci/fuzz.sh build-fuzz

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

check-format:
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror

checksrc:
	@.ci/checksrc.sh

clean:
	@rm -rf build build-asan build-fuzz
