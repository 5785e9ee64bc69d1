#!/bin/sh
# run-case.sh FORGESCALE WORKROOT bad|warn|good CASE.yaml GOLDEN
#
# Runs `forgescale check` on one configuration from a scratch folder
# WORKROOT/NAME that holds only the case (as NAME.yaml) and the files cases
# refer to, so every message carries the same relative paths wherever the
# tree lives. bad: exit status 1 and stdout+stderr equal to GOLDEN.
# warn: exit status 0 (warnings do not fail) and stdout+stderr equal to GOLDEN.
# good: exit status 0, `check --print` output equal to GOLDEN, and the printed
# configuration must itself pass and print identically (round trip).
# Token values must never appear in any output.
# FORGESCALE_UPDATE_GOLDEN=1 rewrites GOLDEN instead of comparing.
set -u

bin=$1 work=$2 kind=$3 case_file=$4 golden=$5

abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
bin=$(abspath "$bin")
case_file=$(abspath "$case_file")
golden=$(abspath "$golden")
name=$(basename "$case_file" .yaml)
dir="$work/$name"
fail=0

rm -rf "$dir" && mkdir -p "$dir" || exit 99
cp "$case_file" "$dir/$name.yaml" || exit 99
(
        umask 077
        printf 'file-token-%s-0123456789\n' "$name" > "$dir/token"
        : > "$dir/empty-token"
        printf 'line-one-token\nline-two-token\n' > "$dir/two-lines"
        mkdir "$dir/a-folder"
        printf 'nul-token\000tail\n' > "$dir/nul-token"
        printf '  spaced-value-0123456789\n' > "$dir/spaced-token"
        printf 'inner token\n' > "$dir/inner-space-token"
        mkfifo "$dir/fifo-token"
        printf 'shared-token-0123456789\n' > "$dir/shared-token"
        chmod 0644 "$dir/shared-token"
        printf 'open-token-0123456789\n' > "$dir/open-token"
        chmod 0666 "$dir/open-token"
        mkdir "$dir/open-dir"
        chmod 0777 "$dir/open-dir"
        printf '%s\n' '-----BEGIN CERTIFICATE-----' '-----END CERTIFICATE-----' > "$dir/ca.pem"
) || exit 99
cd "$dir" || exit 99

FORGESCALE_TEST_TOKEN=env-token-0123456789
FORGESCALE_TEST_SPACED=' env-spaced-value'
export FORGESCALE_TEST_TOKEN FORGESCALE_TEST_SPACED
unset FORGESCALE_TEST_UNSET

if [ "$kind" = bad ]; then
        "$bin" check -c "$name.yaml" > out 2>&1
        rc=$?
        want=1
elif [ "$kind" = warn ]; then
        "$bin" check -c "$name.yaml" > out 2>&1
        rc=$?
        want=0
else
        "$bin" check --print -c "$name.yaml" > out 2> err
        rc=$?
        want=0
        if [ -s err ]; then
                echo "FAIL: unexpected stderr:"
                cat err
                fail=1
        fi
fi

if [ "$rc" -ne "$want" ]; then
        echo "FAIL: exit status $rc, expected $want"
        fail=1
fi

for secret in "file-token-$name-0123456789" env-token-0123456789 line-one-token \
              spaced-value-0123456789 env-spaced-value shared-token-0123456789 open-token-0123456789; do
        if grep -qF "$secret" out; then
                echo "FAIL: a token value appears in the output"
                fail=1
        fi
done

if [ "${FORGESCALE_UPDATE_GOLDEN:-}" = 1 ]; then
        cp out "$golden"
        echo "updated $golden"
elif ! diff -u "$golden" out; then
        echo "FAIL: output differs from $golden (- expected, + actual)"
        fail=1
fi

if [ "$kind" = good ] && [ "$rc" -eq 0 ]; then
        cp out printed.yaml
        "$bin" check --print -c printed.yaml > out2 2>&1
        rc2=$?
        if [ "$rc2" -ne 0 ]; then
                echo "FAIL: the printed configuration does not pass check (exit $rc2):"
                cat out2
                fail=1
        elif ! diff -u out out2; then
                echo "FAIL: printing the printed configuration changes it"
                fail=1
        fi
fi

[ "$fail" -eq 0 ] && echo "ok: $kind/$name"
exit "$fail"
