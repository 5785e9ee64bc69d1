#!/bin/sh
# demo.sh BUILD_DIR: forgejo-sim + forgescale + local workers, live.
# Enqueues bursts of jobs for two pools with different labels, shows the
# pools scaling up and back down, then prints a summary.
set -eu

BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "$BUILD" && pwd)
WORK="$BUILD/demo"
SIM="$BUILD/tools/forgejo-sim/forgejo-sim"
RUNNER="$BUILD/tools/forgejo-sim/runner/forgejo-sim-runner"
FS="$BUILD/src/cli/forgescale"

rm -rf "$WORK"
mkdir -p "$WORK/bin"
# The default worker command is `forgejo-runner one-job ...`: the simulator's
# runner stands in for it on PATH.
ln -s "$RUNNER" "$WORK/bin/forgejo-runner"

SIM_PID=""
FS_PID=""
cleanup() {
        [ -n "$FS_PID" ] && kill "$FS_PID" 2>/dev/null && wait "$FS_PID" 2>/dev/null || true
        [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$SIM" serve --listen 127.0.0.1:0 >"$WORK/sim.out" 2>"$WORK/sim.log" &
SIM_PID=$!
for _ in $(seq 1 100); do
        grep -q '^listening on ' "$WORK/sim.out" 2>/dev/null && break
        sleep 0.05
done
SIM_URL=$(sed -n 's/^listening on //p' "$WORK/sim.out")
[ -n "$SIM_URL" ] || { echo "demo: forgejo-sim did not start" >&2; cat "$WORK/sim.log" >&2; exit 1; }

post() { curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$SIM_URL$1"; }

TOKEN=$(post /_sim/users '{"name":"demo-admin","admin":true}' | jq -r .token)
post /_sim/orgs '{"name":"demo","owners":["demo-admin"]}' >/dev/null
post /_sim/repos '{"owner":"demo","name":"app"}' >/dev/null
post /_sim/repos '{"owner":"demo","name":"lib"}' >/dev/null

sed "s#http://127.0.0.1:3000#$SIM_URL#" "$ROOT/examples/demo.yaml" >"$WORK/forgescale.yaml"
cd "$WORK"
export FORGESCALE_DEMO_TOKEN="$TOKEN"
PATH="$WORK/bin:$PATH" "$FS" run -c forgescale.yaml 2>"$WORK/forgescale.log" &
FS_PID=$!
API=""
for _ in $(seq 1 100); do
        PORT=$(sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' "$WORK/forgescale.log" | head -1)
        if [ -n "$PORT" ] && curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
                API="http://127.0.0.1:$PORT"
                break
        fi
        sleep 0.05
done
[ -n "$API" ] || { echo "demo: forgescale did not start" >&2; cat "$WORK/forgescale.log" >&2; exit 1; }

echo "forgejo-sim at $SIM_URL, forgescale API at $API (log: $WORK/forgescale.log)"
echo "enqueueing 40 jobs for pool linux (runs-on ubuntu-latest) and 15 for pool arm (runs-on arm64)"
job() { post /_sim/jobs "{\"owner\":\"demo\",\"repo\":\"$1\",\"name\":\"$2\",\"runs_on\":$3,\"steps\":[\"echo building $2\",\"sleep $4\",\"echo done\"]}" >/dev/null; }
i=0
while [ $i -lt 25 ]; do job app "build-$i" '["ubuntu-latest"]' 2; i=$((i + 1)); done
i=0
while [ $i -lt 10 ]; do job lib "arm-$i" '["arm64"]' 3; i=$((i + 1)); done

show() {
        curl -sf "$API/v1/pools" | jq -r '[.[] | "\(.name): waiting \(.waiting) starting \(.starting) idle \(.idle) busy \(.busy)"] | join("  |  ")'
}
t=0
burst2=0
while :; do
        done_n=$(curl -sf "$SIM_URL/_sim/jobs" | jq '[.[] | select(.status == "success" or .status == "failure" or .status == "cancelled")] | length')
        total=$(curl -sf "$SIM_URL/_sim/jobs" | jq 'length')
        printf 't=%3ss  %s  |  jobs done %s/%s\n' "$t" "$(show)" "$done_n" "$total"
        if [ $t -eq 6 ] && [ $burst2 -eq 0 ]; then
                echo "second burst: 15 more for linux, 5 more for arm"
                i=0
                while [ $i -lt 15 ]; do job app "late-$i" '["ubuntu-latest","docker"]' 1; i=$((i + 1)); done
                i=0
                while [ $i -lt 5 ]; do job lib "arm-late-$i" '["arm64"]' 1; i=$((i + 1)); done
                burst2=1
                sleep 1
                t=$((t + 1))
                continue
        fi
        if [ "$done_n" = "$total" ] && [ $burst2 -eq 1 ]; then
                busy=$(curl -sf "$API/v1/pools" | jq '[.[] | .starting + .busy + .stopping] | add')
                [ "$busy" = "0" ] && break
        fi
        [ $t -ge 120 ] && { echo "demo: timed out" >&2; exit 1; }
        sleep 1
        t=$((t + 1))
done
printf 't=%3ss  %s\n' "$t" "$(show)"
echo "all jobs done; waiting for the pools to drain back to zero"
while [ "$(curl -sf "$API/v1/pools" | jq '[.[] | .starting + .idle + .busy + .stopping] | add')" != "0" ]; do
        [ $t -ge 180 ] && { echo "demo: pools did not drain" >&2; exit 1; }
        sleep 1
        t=$((t + 1))
done
printf 't=%3ss  %s\n' "$t" "$(show)"

curl -sf "$SIM_URL/_sim/jobs" >"$WORK/jobs.json"
ok=$(jq '[.[] | select(.status == "success")] | length' "$WORK/jobs.json")
waits=$(jq -r 'def ts: (sub("\\.[0-9]+Z$"; "Z") | fromdate) + ((capture("\\.(?<f>[0-9]+)Z$")? // {f: "0"}).f | "0." + . | tonumber);
        .[] | select(.claimed_at != null) | (.claimed_at | ts) - (.created_at | ts)' "$WORK/jobs.json" | sort -n)
n=$(echo "$waits" | grep -c . || true)
pct() { echo "$waits" | awk -v p="$1" -v n="$n" 'NR == int((n - 1) * p / 100) + 1 { printf "%.2f", $1 }'; }
left=$(curl -sf "$SIM_URL/_sim/runners" | jq '[.[] | select(.deleted == false)] | length')
echo
echo "summary: jobs done $ok/$total, wait (created → claimed) p50 $(pct 50)s p95 $(pct 95)s, registrations left: $left"
echo "forge requests made by forgescale:"
curl -sf "$API/metrics" | grep '^forgescale_forge_requests_total' | sed 's/^/  /'
