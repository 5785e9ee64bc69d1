#!/bin/sh
# cli.sh FORGESCALE WORKROOT GOOD_CONFIG
# The command line contract: exit codes (0 ok, 1 invalid, 2 usage), help
# and version output, and the `run` life cycle: started line, state_dir
# created with mode 0700, SIGTERM -> "stopped" and exit 0, tokens redacted.
set -u
bin=$1 work=$2 good=$3
fail=0
case "$bin" in /*) ;; *) bin="$(pwd)/$bin" ;; esac
case "$good" in /*) ;; *) good="$(pwd)/$good" ;; esac
dir="$work/cli"
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 99

expect() { # expect WANT_RC DESCRIPTION CMD...
        want=$1 what=$2
        shift 2
        "$@" > out 2> err
        rc=$?
        if [ "$rc" -ne "$want" ]; then
                echo "FAIL: $what: exit $rc, expected $want"
                cat out err
                fail=1
        fi
}
has() { # has FILE TEXT DESCRIPTION
        if ! grep -qF -- "$2" "$1"; then
                echo "FAIL: $3: '$2' not in $1:"
                cat "$1"
                fail=1
        fi
}

expect 0 "--help" "$bin" --help
has out "Exit status: 0 success, 1 invalid configuration or runtime failure," "main help"
expect 0 "check --help" "$bin" check --help
has out "--print" "check help"
expect 0 "run --help" "$bin" run --help
has out "--log-format" "run help"
expect 0 "version" "$bin" version
has out "forgescale " "version"
expect 0 "config-reference" "$bin" config-reference
has out '| `max_runners` |' "reference"

expect 2 "no command" "$bin"
has err "missing command" "no command"
expect 2 "unknown command" "$bin" frobnicate
has err 'unknown command "frobnicate"' "unknown command"
expect 2 "check without -c" "$bin" check
has err "forgescale: check: missing -c FILE" "check without -c"
expect 2 "check unknown option" "$bin" check -c x.yaml --bogus
has err "unknown option --bogus" "unknown option"
expect 2 "-c without value" "$bin" check -c
has err "option -c needs a value" "-c without value"
expect 2 "print on run" "$bin" run -c x.yaml --print
expect 2 "bad --log-level" "$bin" run -c x.yaml --log-level loud
has err "--log-level loud is invalid" "bad --log-level"
expect 2 "extra argument" "$bin" version extra
expect 1 "missing file" "$bin" check -c missing.yaml
has err "missing.yaml: cannot read the configuration: No such file or directory" "missing file"
expect 1 "run missing file" "$bin" run -c missing.yaml --log-format json
has err '"level":"error"' "run logs errors as JSON"

# run: a real start and stop.
cp "$good" cfg.yaml
(umask 077; printf 'cli-token-0123456789\n' > token; printf 'pem\n' > ca.pem)
# A token value must never reach the logs, even at debug level.
"$bin" run -c cfg.yaml --log-level debug > out 2> log &
pid=$!
i=0
while ! grep -q 'msg=started' log 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
                echo "FAIL: run did not log started"
                cat log
                kill $pid 2>/dev/null
                exit 1
        fi
        sleep 0.05
done
has log "pools=linux" "started line lists pools"
mode=$(stat -c %a forgescale-state 2>/dev/null)
if [ "$mode" != 700 ]; then
        echo "FAIL: state_dir mode is '$mode', expected 700"
        fail=1
fi
kill -TERM $pid
wait $pid
rc=$?
if [ "$rc" -ne 0 ]; then
        echo "FAIL: run exited $rc after SIGTERM"
        fail=1
fi
has log "msg=stopped" "stopped line"
if grep -qF cli-token-0123456789 log; then
        echo "FAIL: the token appears in the log"
        fail=1
fi

# run refuses an unreadable token and exits 1.
rm token
expect 1 "run without token" "$bin" run -c cfg.yaml
has err 'token_file \"token\": No such file or directory' "run token error"

[ "$fail" -eq 0 ] && echo "ok: cli"
exit "$fail"
