#!/bin/bash
# bench.sh: throughput of forgejo-sim with wrk on loopback: a REST job
# listing and FetchTask with an unchanged tasks version.
# usage: tools/forgejo-sim/bench.sh [path/to/forgejo-sim] [jobs] [seconds]
# Needs curl, jq and wrk. Starts its own simulator on a free port and stops
# it (by pid) when done.
set -euo pipefail

BIN=${1:-build/tools/forgejo-sim/forgejo-sim}
NJOBS=${2:-10}
SECS=${3:-5}
DIR=$(mktemp -d)
SIM_PID=
cleanup() {
        [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null
        rm -rf "$DIR"
}
trap cleanup EXIT

"$BIN" serve --listen 127.0.0.1:0 >"$DIR/out" 2>"$DIR/err" &
SIM_PID=$!
for _ in $(seq 100); do
        grep -q listening "$DIR/out" 2>/dev/null && break
        sleep 0.05
done
B=$(sed -n 's/^listening on //p' "$DIR/out")
[ -n "$B" ] || { echo "forgejo-sim did not start" >&2; cat "$DIR/err" >&2; exit 1; }

post() { curl -sf -XPOST "$B$1" "${@:2}"; }
AL=$(post /_sim/users -d '{"name":"alice"}' | jq -r .token)
post /_sim/orgs -d '{"name":"acme","owners":["alice"]}' >/dev/null
post /_sim/repos -d '{"owner":"acme","name":"web"}' >/dev/null
for i in $(seq 1 "$NJOBS"); do
        post /_sim/jobs -d "{\"owner\":\"acme\",\"repo\":\"web\",\"name\":\"j$i\",\"runs_on\":[\"linux\",\"x64\"],\"steps\":[\"echo $i\"]}" >/dev/null
done
R=$(post /api/v1/orgs/acme/actions/runners -H "Authorization: token $AL" -d '{"name":"bench"}')
U=$(jq -r .uuid <<<"$R")
T=$(jq -r .token <<<"$R")
rpc() {
        post "/api/actions/runner.v1.RunnerService/$1" -H 'Content-Type: application/json' \
                -H "x-runner-uuid: $U" -H "x-runner-token: $T" -d "$2"
}
rpc Declare '{"labels":["matches-nothing"]}' >/dev/null
V=$(rpc FetchTask '{"tasksVersion":"0"}' | jq -r .tasksVersion)

printf 'wrk.method = "GET"\nwrk.headers["Authorization"] = "token %s"\n' "$AL" >"$DIR/list.lua"
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\nwrk.headers["x-runner-uuid"] = "%s"\nwrk.headers["x-runner-token"] = "%s"\n' \
        "'{\"tasksVersion\":\"$V\"}'" "$U" "$T" >"$DIR/fetch.lua"

echo "jobs listed: $(curl -s -H "Authorization: token $AL" "$B/api/v1/orgs/acme/actions/runners/jobs?labels=linux,x64" | jq length)," \
     "tasks version: $V, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== GET /api/v1/orgs/acme/actions/runners/jobs?labels=linux,x64"
wrk -t2 -c32 -d"${SECS}s" -s "$DIR/list.lua" "$B/api/v1/orgs/acme/actions/runners/jobs?labels=linux,x64"
echo "== POST FetchTask {\"tasksVersion\":\"$V\"}"
wrk -t2 -c32 -d"${SECS}s" -s "$DIR/fetch.lua" "$B/api/actions/runner.v1.RunnerService/FetchTask"
echo "== FetchTask still answers without a task: $(rpc FetchTask "{\"tasksVersion\":\"$V\"}")"
