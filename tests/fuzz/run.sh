#!/bin/sh
# run.sh: runs each libFuzzer target of BUILD for SECONDS against a scratch
# copy of tests/fuzz/corpus/<target>/ (the committed corpus never grows),
# prints libFuzzer's final stats, and fails on the first crash, leak or
# broken check, leaving the input as BUILD/crash-<target>-<sha1>.
# Usage: tests/fuzz/run.sh BUILD SECONDS [TARGET...]   (default: all)
set -eu

build=${1:?usage: run.sh BUILD SECONDS [TARGET...]}
secs=${2:?usage: run.sh BUILD SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
[ $# -gt 0 ] || set -- config forge_json rproto rpcodec

scratch=$(mktemp -d "${TMPDIR:-/tmp}/forgescale-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT INT TERM

# Symbolised stacks; leaks count as failures, except the third-party ones
# listed (with their reproducers) in lsan.supp.
asan="detect_leaks=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed=0
for t in "$@"; do
        exe="$build/tests/fuzz/fuzz_$t"
        seeds="$here/corpus/$t"
        log="$build/fuzz-$t.log"
        if [ ! -x "$exe" ] || [ ! -d "$seeds" ]; then
                echo "fuzz: no target '$t' (want $exe and $seeds)" >&2
                exit 2
        fi
        mkdir -p "$scratch/$t"
        cp "$seeds"/* "$scratch/$t/"
        echo "fuzz: $t for ${secs}s ($(ls "$seeds" | wc -l) seeds; log $log)"
        # libfyaml has no frame pointers: the suppressed leak is only
        # recognised with the slow (DWARF) unwinder.
        opts=$asan
        [ "$t" = config ] && opts="$opts:fast_unwind_on_malloc=0:malloc_context_size=8"
        # -timeout: one input running 10 s is a hang, reported as a crash.
        if ASAN_OPTIONS=$opts "$exe" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
                -artifact_prefix="$build/crash-$t-" "$scratch/$t" >"$log" 2>&1; then
                grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed "s/^/fuzz: $t: /"
                grep -E '^stat::' "$log" | sed "s/^/fuzz: $t: /"
        else
                failed=1
                echo "fuzz: $t FAILED; the end of $log:" >&2
                tail -n 60 "$log" >&2
                echo "fuzz: reproduce with: $exe $build/crash-$t-*" >&2
        fi
done
exit $failed
