# Entry points: `make run` (the demo) and `make test` (every test).
# Both install missing Debian packages first (scripts/setup.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
MESON_OPTS ?=

.PHONY: all setup build test test-fast asan fuzz run clean

all: build

setup:
	@sh scripts/setup.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS) >/dev/null

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The full suite: normal build with warnings as errors, then the same
# tests under AddressSanitizer + UndefinedBehaviorSanitizer (leak checks on;
# FS_E2E_LIGHT: the end-to-end scenarios that run hundreds of jobs run fewer),
# then each fuzz target briefly (a crash fails the run). Under the
# sanitizers two suites are left to the normal build: `container` (the
# daemon end to end on Podman: the engine's time, not our code's, and one
# scenario at a time; the container provider's own tests still run there)
# and `kube-fake` (a test tool's conformance).
test: setup
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) -Dwerror=true $(MESON_OPTS) >/dev/null
	meson configure $(BUILD) -Dwerror=true
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=5

asan: setup
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug $(MESON_OPTS) >/dev/null
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 FS_E2E_LIGHT=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs --timeout-multiplier 3 --no-suite container --no-suite kube-fake

# libFuzzer targets (docs/fuzzing.md): clang, every file instrumented by
# -Dfuzz=true, only the fuzz targets built; each runs FUZZ_SECONDS against a
# scratch copy of its seed corpus. Crash inputs land in $(FUZZ_BUILD)/.
fuzz: setup
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=false -Db_sanitize=none $(MESON_OPTS) >/dev/null
	ninja -C $(FUZZ_BUILD) fuzz-targets
	sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fast: build
	meson test -C $(BUILD) --print-errorlogs

run: build
	@sh scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
