# Entry points: `make run` (the demo) and `make test` (every test).
# Both install missing Debian packages first (scripts/setup.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
MESON_OPTS ?=

.PHONY: all setup build test test-fast asan run clean

all: build

setup:
	@sh scripts/setup.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS) >/dev/null

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

# The full suite: normal build with warnings as errors, then the same
# tests under AddressSanitizer + UndefinedBehaviorSanitizer (leak checks on).
test: setup
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) -Dwerror=true $(MESON_OPTS) >/dev/null
	meson configure $(BUILD) -Dwerror=true
	ninja -C $(BUILD)
	meson test -C $(BUILD) --print-errorlogs
	$(MAKE) --no-print-directory asan

asan: setup
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug $(MESON_OPTS) >/dev/null
	ninja -C $(ASAN_BUILD)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C $(ASAN_BUILD) --print-errorlogs --timeout-multiplier 3

test-fast: build
	meson test -C $(BUILD) --print-errorlogs

run: build
	@sh scripts/demo.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
