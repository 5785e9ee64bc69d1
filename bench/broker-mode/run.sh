#!/usr/bin/env bash
# run.sh BUILD_DIR [SCENARIO] [RUNS]: broker-mode benchmark of forgescale
# against forgejo-sim, with forgejo-sim-runner as the workers (started by
# the daemon on the local provider, talking to the broker endpoint only)
# and as stand-alone runners (talking to the simulator directly). Starts
# everything in a fresh folder, prints one result table per scenario (one
# column per run plus the median) and stops every process it started.
# A benchmark, not a test: it asserts nothing about time.
#
# Scenarios (see README.md):
#   idle       10 idle broker pools (default poll_interval) for 60 s, then
#              10 x 4 idle runners polling FetchTask every 2 s for 60 s
#   dispatch   250 one-step jobs at 5/s, max_runners 50: "task fetched" ->
#              the worker's first log row acked by the forge (daemon log)
#   relay      10 jobs of `seq 1 100000` through a runner
#              registered on the simulator, 10 through the broker, alternating
#   load       500 jobs of `sleep 60` at once, max_runners 500: daemon CPU
#              per task, RSS with 500 tasks in flight
#   all        the four, one after the other
#
# Environment overrides: JOBS, RATE, MAX_RUNNERS, POLL, STEP, POOLS,
# DAEMONS, IDLE_SECONDS, ROWS, RELAY_JOBS, SLEEP_S, LOG_LEVEL, KEEP=1
# (keep the run folder), BENCH_TMP (parent of the run folder, default
# /tmp), COOLDOWN (seconds between runs).
set -euo pipefail

usage() {
        echo "usage: $0 BUILD_DIR [idle|dispatch|relay|load|all] [RUNS]" >&2
        exit 2
}
[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd)
SCENARIO=${2:-dispatch}
RUNS=${3:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIM="$BUILD/tools/forgejo-sim/forgejo-sim"
RUNNER="$BUILD/tools/forgejo-sim/runner/forgejo-sim-runner"
FS="$BUILD/src/cli/forgescale"
for b in "$SIM" "$RUNNER" "$FS"; do
        [ -x "$b" ] || { echo "run.sh: $b missing; build it with ninja -C $1" >&2; exit 1; }
done
for t in curl jq awk; do
        command -v "$t" >/dev/null || { echo "run.sh: $t is required" >&2; exit 1; }
done
case "$SCENARIO" in
idle|dispatch|relay|load|all) ;;
*) usage ;;
esac
case "$RUNS" in
''|*[!0-9]*|0) usage ;;
esac

TOP=$(mktemp -d "${BENCH_TMP:-/tmp}/fs-broker-bench.XXXXXX")
HZ=$(getconf CLK_TCK)
SIM_PID="" FS_PID="" SAMPLER_PID="" W="" API=""
EXTRA_PIDS=()           # stand-alone runners started by this script

# ---- process control -------------------------------------------------------

# The daemon's workers and their steps run in folders under $W (instance
# folders, TMPDIR), and so do the stand-alone runners: they are found by
# their working folder. The daemon leaves live workers running when it
# stops (a restart would adopt them).
worker_pids() {
        [ -n "$W" ] || return 0
        # shellcheck disable=SC2010
        ls -l /proc/[0-9]*/cwd 2>/dev/null | grep -F -- "-> $W/" |
                sed -n 's#.* /proc/\([0-9]*\)/cwd -> .*#\1#p' || true
}

stop_pid() {    # PID [SIGNAL]: signal one process we started and reap it
        local pid=$1 sig=${2:-TERM}
        [ -n "$pid" ] || return 0
        kill -s "$sig" "$pid" 2>/dev/null || return 0
        for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.05
        done
        kill -s KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
}

stop_extra() {
        local p
        for p in "${EXTRA_PIDS[@]}"; do
                kill -s TERM "$p" 2>/dev/null || true
        done
        for p in "${EXTRA_PIDS[@]}"; do
                stop_pid "$p"
        done
        EXTRA_PIDS=()
}

stop_fs() {
        stop_pid "$FS_PID"; FS_PID=""
        local left
        for _ in 1 2 3 4 5; do
                left=$(worker_pids)
                [ -n "$left" ] || break
                # shellcheck disable=SC2086
                kill -s KILL $left 2>/dev/null || true
                sleep 0.2
        done
}

stop_run() {
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
        stop_extra
        stop_fs
        stop_pid "$SIM_PID"; SIM_PID=""
}

cleanup() {
        local rc=$?
        trap - EXIT INT TERM
        stop_run
        if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
                echo "run folder kept: $TOP" >&2
        else
                rm -rf "$TOP"
        fi
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo $((${EPOCHREALTIME/./} / 1000)); }         # wall clock, ms

die() {
        echo "run.sh: $*" >&2
        [ -n "$W" ] && [ -f "$W/forgescale.log" ] && { echo "--- forgescale.log (tail)" >&2; tail -20 "$W/forgescale.log" >&2 || true; }
        exit 1
}

# ---- simulator, daemon ------------------------------------------------------

start_sim() {
        "$SIM" serve --listen 127.0.0.1:0 --log-level "${SIM_LOG_LEVEL:-warn}" >"$W/sim.out" 2>"$W/sim.log" &
        SIM_PID=$!
        for _ in $(seq 1 200); do
                grep -q '^listening on ' "$W/sim.out" 2>/dev/null && break
                sleep 0.05
        done
        SIM_URL=$(sed -n 's/^listening on //p' "$W/sim.out")
        [ -n "$SIM_URL" ] || die "forgejo-sim did not start"
}

# GET URL | jq FILTER; "nan" when the server does not answer.
getq() {
        local v
        v=$(curl -sf --max-time 20 "$1" 2>/dev/null | jq -r "$2" 2>/dev/null) || v=""
        echo "${v:-nan}"
}
jobs_count() { getq "$SIM_URL/_sim/jobs" "[.[] | select($1)] | length"; }

post() { curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$SIM_URL$1"; }

sim_setup() {   # admin user, org "bench", repository bench/r0
        post /_sim/users '{"name":"bench-admin","admin":true}' | jq -r .token >"$W/token"
        chmod 600 "$W/token"
        post /_sim/orgs '{"name":"bench","owners":["bench-admin"]}' >/dev/null
        post /_sim/repos '{"owner":"bench","name":"r0"}' >/dev/null
}

stats() { curl -sf --max-time 20 "$SIM_URL/_sim/stats" || echo '{"requests":{}}'; }
reset_stats() { curl -sf -X DELETE "$SIM_URL/_sim/stats" || true; }

config_head() {
        cat <<EOF
listen: 127.0.0.1:0
state_dir: ./state
log: {level: ${LOG_LEVEL:-info}, format: logfmt}
forges:
  sim:
    url: $SIM_URL
    token_file: ./token
broker:
  listen: 127.0.0.1:0
pools:
EOF
}

pool_yaml() {   # NAME LABEL MAX [COMMAND]: a broker pool on org/bench
        cat <<EOF
  $1:
    mode: broker
    forge: sim
    scope: org/bench
    labels: [$2]
    max_runners: $3
EOF
        [ -z "${POLL:-}" ] || echo "    poll_interval: $POLL"
        echo "    runner:"
        echo "      env: {TMPDIR: $W/tmp}"
        [ -z "${4:-}" ] || echo "      command: [$4]"
}

start_fs() {    # POOLS: start the daemon, wait until every pool's runner is ready
        local pools=$1 port
        mkdir -p "$W/bin" "$W/tmp"
        ln -sf "$RUNNER" "$W/bin/forgejo-runner"
        "$FS" check -c "$W/forgescale.yaml" >/dev/null 2>"$W/check.err" || { cat "$W/check.err" >&2; die "bad configuration"; }
        (cd "$W" && PATH="$W/bin:$PATH" exec "$FS" run -c forgescale.yaml 2>"$W/forgescale.log") &
        FS_PID=$!
        API=""
        for _ in $(seq 1 200); do
                port=$(sed -n 's/.*comp=http msg=listening .*port=\([0-9]*\).*/\1/p' "$W/forgescale.log" | head -1)
                if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
                        API="http://127.0.0.1:$port"
                        break
                fi
                sleep 0.05
        done
        [ -n "$API" ] || die "forgescale did not start"
        for _ in $(seq 1 300); do
                [ "$(grep -c 'msg="runner ready"' "$W/forgescale.log" || true)" -ge "$pools" ] && return 0
                sleep 0.05
        done
        die "not every broker pool has its runner after 15 s"
}

# A worker command that keeps the worker's own log (the daemon removes the
# folder of an instance that ended well, and its worker.log with it).
make_wrapper() {
        mkdir -p "$W/bin" "$W/wlogs"
        cat >"$W/bin/logged-runner" <<EOF
#!/bin/sh
exec "$RUNNER" "\$@" 2>>"$W/wlogs/\${FORGESCALE_INSTANCE:-direct-\$\$}.log"
EOF
        chmod +x "$W/bin/logged-runner"
}

# A runner registered on the simulator over REST, as an administrator
# would for a stand-alone forgejo-runner: "ID UUID"; its token in FILE.
register_runner() {     # NAME TOKEN_FILE
        local j
        j=$(curl -sf -X POST -H "Authorization: token $(cat "$W/token")" -H 'Content-Type: application/json' \
                -d "{\"name\":\"$1\"}" "$SIM_URL/api/v1/orgs/bench/actions/runners") || die "cannot register runner $1"
        (umask 077 && jq -r .token <<<"$j" >"$2")
        RUNNER_UUID=$(jq -r .uuid <<<"$j")
        [ -n "$RUNNER_UUID" ] && [ "$RUNNER_UUID" != null ] || die "runner $1: no uuid in $j"
}

# ---- measurements -----------------------------------------------------------

proc_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
rollup_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }         # MS0 MS1
cpu_s() { awk -v a="$1" -v b="$2" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }'; } # TICKS0 TICKS1

pct() {         # P < sorted numbers: nearest-rank percentile
        awk -v p="$1" '{ v[NR] = $1 } END { if (!NR) { print "nan"; exit } i = int((NR * p + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

# RFC 3339 UTC with milliseconds (the daemon's log, the simulator's jobs)
# to epoch ms; mawk has no mktime, so days come from the civil calendar.
AWK_TS='function ts_ms(s,   y, m, d, era, yoe, doy, doe) {
        y = substr(s, 1, 4) + 0; m = substr(s, 6, 2) + 0; d = substr(s, 9, 2) + 0
        if (m <= 2) y--
        era = int(y / 400); yoe = y - era * 400
        doy = int((153 * (m > 2 ? m - 3 : m + 9) + 2) / 5) + d - 1
        doe = yoe * 365 + int(yoe / 4) - int(yoe / 100) + doy
        return ((era * 146097 + doe - 719468) * 86400 + substr(s, 12, 2) * 3600 + substr(s, 15, 2) * 60) * 1000 + int(substr(s, 18, 6) * 1000 + 0.5)
}'

# "task_id ms" for every daemon log line with msg=MSG.
log_times() {   # MSG FILE
        awk -v want="msg=\"$1\"" "$AWK_TS"'
                index($0, want) && match($0, / task=[0-9]+/) {
                        printf "%s %.0f\n", substr($0, RSTART + 6, RLENGTH - 6), ts_ms(substr($1, 4))
                }' "$2"
}

R() { printf '%s\t%s\n' "$1" "$2" >>"$W/result.tsv"; }

common_results() {
        R "daemon warnings/errors in log" "$(grep -c 'level=warn\|level=error' "$W/forgescale.log" 2>/dev/null || true)"
        R "load average (1 min) at start / end" "$LOAD0 / $(cut -d' ' -f1 /proc/loadavg)"
}

make_job_batches() {    # N LABEL STEP BATCH: curl -K files of BATCH job creations each
        local n=$1 label=$2 step=$3 batch=$4 i f=0 k=0
        rm -rf "$W/batches"
        mkdir -p "$W/batches"
        for ((i = 1; i <= n; i++)); do
                [ $k -gt 0 ] && echo next >>"$W/batches/$f"
                printf 'url = "%s/_sim/jobs"\nheader = "Content-Type: application/json"\noutput = "/dev/null"\ndata = "{\\"owner\\":\\"bench\\",\\"repo\\":\\"r0\\",\\"name\\":\\"j%d\\",\\"runs_on\\":[\\"%s\\"],\\"steps\\":[\\"%s\\"]}"\n' \
                        "$SIM_URL" "$i" "$label" "$step" >>"$W/batches/$f"
                k=$((k + 1))
                if [ $k -eq "$batch" ]; then
                        f=$((f + 1))
                        k=0
                fi
        done
        ls "$W/batches" | sort -n >"$W/batches.list"
}

batch_size() {  # RATE N: 10 calls a second; RATE 0 sends all N at once
        if [ "$1" -gt 0 ]; then echo $((($1 + 9) / 10)); else echo "$2"; fi
}

send_batches() { # RATE: send the prepared batches, paced to RATE jobs/s
        local rate=$1 k=0 f target start_us=${EPOCHREALTIME/./} tick_us=0 batch
        batch=$(batch_size "$rate" 1)
        [ "$rate" -gt 0 ] && tick_us=$((batch * 1000000 / rate))
        while read -r f; do
                if [ "$rate" -gt 0 ]; then
                        target=$((start_us + k * tick_us))
                        while [ "${EPOCHREALTIME/./}" -lt "$target" ]; do sleep 0.005; done
                fi
                curl -s -K "$W/batches/$f" || true
                k=$((k + 1))
        done <"$W/batches.list"
}

wait_jobs_done() {      # N TIMEOUT_S: until N jobs have a final status
        local n=$1 deadline=$(($(date +%s) + $2)) d
        while :; do
                d=$(jobs_count '.result != ""')
                [ "$d" != nan ] && [ "$d" -ge "$n" ] && return 0
                [ "$(date +%s)" -ge $deadline ] && return 1
                sleep 0.5
        done
}

wait_drained() {        # TIMEOUT_S: until the daemon has no live instance
        local deadline=$(($(date +%s) + $1)) live
        while :; do
                live=$(curl -sf "$API/metrics" | awk '/^forgescale_pool_runners[{]/ { s += $NF } END { printf "%d", s }') || live=x
                [ "$live" = 0 ] && return 0
                [ "$(date +%s)" -ge $deadline ] && return 1
                sleep 0.5
        done
}

# jobs.json -> "task_id created_ms claimed_ms finished_ms status", one job a line.
job_times() {
        jq -r '.[] | "\(.task_id) \(.created_at) \(.claimed_at) \(.finished_at) \(.status)"' "$1" |
                awk "$AWK_TS"'{ printf "%s %.0f %s %s %s\n", $1, ts_ms($2), $3 == "null" ? "nan" : sprintf("%.0f", ts_ms($3)), $4 == "null" ? "nan" : sprintf("%.0f", ts_ms($4)), $5 }'
}

# ---- scenarios --------------------------------------------------------------

# idle: the forge's traffic when nothing happens. 10 broker pools (one
# runner each on the forge, default poll_interval) against 10 x 4
# stand-alone runners, each polling FetchTask every 2 s (forgejo-runner's
# default fetch_interval) as `forgejo-sim-runner one-job --wait` does
# until a task comes; none comes (their labels match no job).
run_idle() {
        local pools=${POOLS:-10} daemons=${DAEMONS:-40} secs=${IDLE_SECONDS:-60} i
        start_sim
        sim_setup
        { config_head; for ((i = 0; i < pools; i++)); do pool_yaml "p$i" "l$i" 4; done; } >"$W/forgescale.yaml"
        start_fs "$pools"
        # Start-up (version, registration token, Register, Declare per pool)
        # is counted apart from the steady state.
        sleep 3
        stats >"$W/stats.broker.startup"
        local t0 t1 c0 c1
        c0=$(cpu_ticks "$FS_PID")
        reset_stats
        t0=$(now)
        sleep "$secs"
        stats >"$W/stats.broker.json"
        t1=$(now)
        c1=$(cpu_ticks "$FS_PID")
        local b_dur b_all b_fetch rss pss
        b_dur=$(secs "$t0" "$t1")
        b_all=$(jq '[.requests[]] | add // 0' "$W/stats.broker.json")
        b_fetch=$(jq '[.requests | to_entries[] | select(.key | endswith("/FetchTask")) | .value] | add // 0' "$W/stats.broker.json")
        rss=$(proc_field "$FS_PID" VmRSS)
        pss=$(rollup_field "$FS_PID" Pss)
        R "broker: pools (runners on the forge) / poll_interval" "$pools / $(awk '/poll_interval/ { print $2; exit }' "$W/forgescale.yaml" | grep . || echo '2s (default)')"
        R "broker: start-up requests (start to 3 s after ready)" "$(jq '[.requests[]] | add // 0' "$W/stats.broker.startup")"
        R "broker: measured window, s" "$b_dur"
        R "broker: forge requests/min (all)" "$(awk -v n="$b_all" -v d="$b_dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "broker:   FetchTask/min" "$(awk -v n="$b_fetch" -v d="$b_dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "broker:   computed: pools x 60 / 2 s" "$((pools * 30))"
        R "broker: routes seen" "$(jq -r '[.requests | to_entries[] | "\(.key | sub(".*/"; ""))=\(.value)"] | join(", ")' "$W/stats.broker.json")"
        R "broker: daemon CPU per minute, s" "$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v d="$b_dur" 'BEGIN { printf "%.3f", (b - a) / hz * 60 / d }')"
        R "broker: daemon RSS / PSS, KiB" "$rss / $pss"
        stop_fs

        # The same forge, 40 stand-alone runners. Each is registered over
        # REST (one registration per runner, as `forgejo-runner register`
        # makes) and polls with its own credentials.
        mkdir -p "$W/runners"
        printf 'runner:\n  fetch_interval: 2s\n' >"$W/runners/config.yaml"
        local uuid
        for ((i = 0; i < daemons; i++)); do
                register_runner "d$i" "$W/runners/d$i.token"
                uuid=$RUNNER_UUID
                mkdir -p "$W/runners/d$i"
                (cd "$W/runners/d$i" && exec "$RUNNER" -c "$W/runners/config.yaml" one-job --url "$SIM_URL" \
                        --uuid "$uuid" --token-url "file:$W/runners/d$i.token" --label "idle$i" --wait \
                        2>"$W/runners/d$i.log") &
                EXTRA_PIDS+=($!)
        done
        sleep 3
        stats >"$W/stats.daemons.startup"
        # Reading 40 processes' counters takes a while: the CPU window
        # has its own clock, the request window starts and ends with the
        # counters of the simulator.
        local rc0=0 rc1=0 rrss=0 rpss=0 p tc0 tc1
        tc0=$(now)
        for p in "${EXTRA_PIDS[@]}"; do rc0=$((rc0 + $(cpu_ticks "$p"))); done
        reset_stats
        t0=$(now)
        sleep "$secs"
        stats >"$W/stats.daemons.json"
        t1=$(now)
        for p in "${EXTRA_PIDS[@]}"; do rc1=$((rc1 + $(cpu_ticks "$p"))); done
        tc1=$(now)
        for p in "${EXTRA_PIDS[@]}"; do
                rrss=$((rrss + $(proc_field "$p" VmRSS)))
                rpss=$((rpss + $(rollup_field "$p" Pss)))
        done
        local d_dur d_all d_fetch alive=0
        for p in "${EXTRA_PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
        d_dur=$(secs "$t0" "$t1")
        d_all=$(jq '[.requests[]] | add // 0' "$W/stats.daemons.json")
        d_fetch=$(jq '[.requests | to_entries[] | select(.key | endswith("/FetchTask")) | .value] | add // 0' "$W/stats.daemons.json")
        R "runners: polling processes alive at the end" "$alive / $daemons"
        R "runners: start-up requests (registrations to 3 s after)" "$(jq '[.requests[]] | add // 0' "$W/stats.daemons.startup")"
        R "runners: measured window, s" "$d_dur"
        R "runners: forge requests/min (all)" "$(awk -v n="$d_all" -v d="$d_dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "runners:   FetchTask/min" "$(awk -v n="$d_fetch" -v d="$d_dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "runners:   computed: runners x 60 / 2 s" "$((daemons * 30))"
        R "runners: routes seen" "$(jq -r '[.requests | to_entries[] | "\(.key | sub(".*/"; ""))=\(.value)"] | join(", ")' "$W/stats.daemons.json")"
        R "runners: CPU per minute, all together, s" "$(awk -v a="$rc0" -v b="$rc1" -v hz="$HZ" -v d="$(secs "$tc0" "$tc1")" 'BEGIN { printf "%.3f", (b - a) / hz * 60 / d }')"
        R "runners: RSS / PSS, all together, KiB" "$rrss / $rpss"
        R "ratio: runners' / broker's forge requests per minute" "$(awk -v a="$d_all" -v ad="$d_dur" -v b="$b_all" -v bd="$b_dur" 'BEGIN { if (b) printf "%.2f", (a / ad) / (b / bd); else print "nan" }')"
        stop_extra
        R "load average (1 min) at start / end" "$LOAD0 / $(cut -d' ' -f1 /proc/loadavg)"
}

# dispatch: from the fetch that brings a task to the forge having acked
# the first row its worker wrote (the worker's first UpdateLog, relayed).
run_dispatch() {
        local n=${JOBS:-250} rate=${RATE:-5} max=${MAX_RUNNERS:-50} step=${STEP:-true}
        # The first acked worker row is a debug line.
        local LOG_LEVEL=${LOG_LEVEL:-debug}
        [ "$LOG_LEVEL" = debug ] || die "dispatch needs LOG_LEVEL=debug"
        start_sim
        sim_setup
        { config_head; pool_yaml bench bench "$max"; } >"$W/forgescale.yaml"
        start_fs 1
        sleep 1
        make_job_batches "$n" bench "$step" "$(batch_size "$rate" "$n")"
        local c0 c1 t0 t1 t2 wc0 wc1
        c0=$(cpu_ticks "$FS_PID")
        wc0=$(awk '{ print $16 + $17 }' "/proc/$FS_PID/stat")
        t0=$(now)
        send_batches "$rate"
        t1=$(now)
        wait_jobs_done "$n" 300 || echo "run.sh: not every job finished within 300 s" >&2
        wait_drained 60 || echo "run.sh: the daemon still has live instances" >&2
        t2=$(now)
        c1=$(cpu_ticks "$FS_PID")
        wc1=$(awk '{ print $16 + $17 }' "/proc/$FS_PID/stat")
        curl -sf --max-time 20 "$SIM_URL/_sim/jobs" >"$W/jobs.json" || echo '[]' >"$W/jobs.json"
        job_times "$W/jobs.json" >"$W/times"
        log_times "task fetched" "$W/forgescale.log" >"$W/t.fetched"
        log_times "worker took its task" "$W/forgescale.log" >"$W/t.took"
        log_times "first worker row acked" "$W/forgescale.log" >"$W/t.acked"
        # task fetched acked took created, one task a line (nan if missing)
        awk 'FILENAME == ARGV[1] { f[$1] = $2; next }
             FILENAME == ARGV[2] { if (!($1 in k)) k[$1] = $2; next }
             FILENAME == ARGV[3] { if (!($1 in a)) a[$1] = $2; next }
             { c[$1] = $2 }
             END { for (t in f) printf "%s %s %s %s %s\n", t, f[t], (t in a) ? a[t] : "nan", (t in k) ? k[t] : "nan", (t in c) ? c[t] : "nan" }' \
                "$W/t.fetched" "$W/t.took" "$W/t.acked" "$W/times" >"$W/dispatch"
        awk '$3 != "nan" { print $3 - $2 }' "$W/dispatch" | sort -n >"$W/d.total"
        awk '$4 != "nan" { print $4 - $2 }' "$W/dispatch" | sort -n >"$W/d.launch"
        awk '$3 != "nan" && $4 != "nan" { print $3 - $4 }' "$W/dispatch" | sort -n >"$W/d.first"
        awk '$5 != "nan" { print $2 - $5 }' "$W/dispatch" | sort -n >"$W/d.poll"
        local ok
        ok=$(awk '$5 == "success"' "$W/times" | wc -l)
        R "jobs finished with success" "$ok / $n"
        R "job arrival / max_runners / poll_interval" "$rate/s / $max / ${POLL:-2s (default)}"
        R "tasks fetched / with a first worker row acked" "$(wc -l <"$W/t.fetched") / $(wc -l <"$W/d.total")"
        R "fetched -> first worker row acked p50, ms" "$(pct 50 <"$W/d.total")"
        R "fetched -> first worker row acked p90, ms" "$(pct 90 <"$W/d.total")"
        R "fetched -> first worker row acked p99, ms" "$(pct 99 <"$W/d.total")"
        R "fetched -> first worker row acked max, ms" "$(pct 100 <"$W/d.total")"
        R "  fetched -> worker took its task p50, ms" "$(pct 50 <"$W/d.launch")"
        R "  fetched -> worker took its task p99, ms" "$(pct 99 <"$W/d.launch")"
        R "  took -> first worker row acked p50, ms" "$(pct 50 <"$W/d.first")"
        R "  took -> first worker row acked p99, ms" "$(pct 99 <"$W/d.first")"
        R "(before: job created -> task fetched p50, ms)" "$(pct 50 <"$W/d.poll")"
        R "(before: job created -> task fetched p99, ms)" "$(pct 99 <"$W/d.poll")"
        R "tasks with first ack > 1 s after the worker took it" "$(awk '$1 > 1000' "$W/d.first" | wc -l)"
        R "window (first job -> drained), s" "$(secs "$t0" "$t2")"
        R "daemon CPU in window, s" "$(cpu_s "$c0" "$c1")"
        R "daemon CPU per task, ms" "$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / hz * 1000 / n }')"
        R "workers' CPU (reaped children), s" "$(cpu_s "$wc0" "$wc1")"
        R "daemon peak RSS (VmHWM), KiB" "$(proc_field "$FS_PID" VmHWM)"
        common_results
}

# One task's upload from its worker's own log: from "step finished" (every
# row of the step is in the worker's memory; only the runner's header rows
# went up, at the step's start) to "task finished" (every UpdateLog of
# REPORT_ROWS_PER_CALL = 1,000 rows acked, then the final UpdateTask).
worker_rate() { # ROWS LOGFILE -> "upload_ms rows_per_s task_ms"
        awk -v rows="$1" "$AWK_TS"'
                / msg="task started"/ { s = ts_ms(substr($1, 4)) }
                / msg="step finished"/ { f = ts_ms(substr($1, 4)) }
                / msg="task finished"/ { e = ts_ms(substr($1, 4)) }
                END { if (s && f && e > f) printf "%d %.0f %d\n", e - f, rows * 1000 / (e - f), e - s; else print "nan nan nan" }' "$2"
}

# relay: the same jobs through a runner talking to the simulator and
# through a broker worker. One task at a time, so each measures one path.
run_relay() {
        local jobs=${RELAY_JOBS:-10} rows=${ROWS:-100000} i uuid jid
        start_sim
        sim_setup
        make_wrapper
        local step="seq 1 $rows"
        # Direct: a runner registered over REST, one `one-job` per task.
        register_runner direct "$W/direct.token"
        uuid=$RUNNER_UUID
        mkdir -p "$W/direct"
        # Broker: one pool, one worker at a time.
        { config_head; pool_yaml bench bench 1 "$W/bin/logged-runner"; } >"$W/forgescale.yaml"
        start_fs 1
        sleep 1
        # Alternating, so that the machine's other load falls on both.
        local c=0 c0 sd=0 sb=0 s0 t0 t1
        : >"$W/direct.ids"
        : >"$W/broker.ids"
        t0=$(now)
        for ((i = 1; i <= jobs; i++)); do
                s0=$(cpu_ticks "$SIM_PID")
                jid=$(post /_sim/jobs "{\"owner\":\"bench\",\"repo\":\"r0\",\"name\":\"direct$i\",\"runs_on\":[\"direct\"],\"steps\":[\"$step\"]}" | jq -r .id)
                echo "$jid" >>"$W/direct.ids"
                (cd "$W/direct" && exec "$RUNNER" one-job --url "$SIM_URL" --uuid "$uuid" \
                        --token-url "file:$W/direct.token" --label direct 2>"$W/wlogs/direct-$i.log") &
                EXTRA_PIDS=($!)
                wait "${EXTRA_PIDS[0]}" || echo "run.sh: direct runner $i exited with $?" >&2
                EXTRA_PIDS=()
                sd=$((sd + $(cpu_ticks "$SIM_PID") - s0))

                s0=$(cpu_ticks "$SIM_PID")
                c0=$(cpu_ticks "$FS_PID")
                jid=$(post /_sim/jobs "{\"owner\":\"bench\",\"repo\":\"r0\",\"name\":\"broker$i\",\"runs_on\":[\"bench\"],\"steps\":[\"$step\"]}" | jq -r .id)
                echo "$jid" >>"$W/broker.ids"
                wait_jobs_done $((2 * i)) 120 || echo "run.sh: broker job $i did not finish" >&2
                wait_drained 60 || echo "run.sh: the daemon still has live instances" >&2
                c=$((c + $(cpu_ticks "$FS_PID") - c0))
                sb=$((sb + $(cpu_ticks "$SIM_PID") - s0))
        done
        t1=$(now)
        # Every row arrived once and in order: the log is the header, 1..ROWS, the result.
        local okd=0 okb=0 f n
        for jid in $(cat "$W/direct.ids"); do
                n=$(curl -sf "$SIM_URL/_sim/jobs/$jid" | jq --argjson r "$rows" '[.log[] | select(test("^[0-9]+$"))] as $s | if ($s | length) == $r and ($s | map(tonumber)) == [range(1; $r + 1)] and .status == "success" then 1 else 0 end' 2>/dev/null || echo 0)
                okd=$((okd + n))
        done
        for jid in $(cat "$W/broker.ids"); do
                n=$(curl -sf "$SIM_URL/_sim/jobs/$jid" | jq --argjson r "$rows" '[.log[] | select(test("^[0-9]+$"))] as $s | if ($s | length) == $r and ($s | map(tonumber)) == [range(1; $r + 1)] and .status == "success" then 1 else 0 end' 2>/dev/null || echo 0)
                okb=$((okb + n))
        done
        # Uploaded after the step: its rows and the runner's "Job succeeded".
        for f in "$W"/wlogs/direct-*.log; do worker_rate $((rows + 1)) "$f"; done >"$W/rate.direct"
        for f in "$W"/wlogs/fs-*.log; do [ -e "$f" ] && worker_rate $((rows + 1)) "$f"; done >"$W/rate.broker"
        local dr br
        dr=$(cut -d' ' -f2 "$W/rate.direct" | grep -v nan | sort -n | pct 50)
        br=$(cut -d' ' -f2 "$W/rate.broker" | grep -v nan | sort -n | pct 50)
        R "tasks per path / step" "$jobs / $step"
        R "jobs with every row once and in order: direct / broker" "$okd / $okb"
        R "direct: upload (step finished -> task finished), ms" "$(cut -d' ' -f1 "$W/rate.direct" | grep -v nan | sort -n | pct 50)"
        R "direct: rows/s (median of tasks)" "$dr"
        R "direct: rows/s per task" "$(cut -d' ' -f2 "$W/rate.direct" | paste -sd' ')"
        R "direct: task started -> finished, ms" "$(cut -d' ' -f3 "$W/rate.direct" | grep -v nan | sort -n | pct 50)"
        R "broker: upload (step finished -> task finished), ms" "$(cut -d' ' -f1 "$W/rate.broker" | grep -v nan | sort -n | pct 50)"
        R "broker: rows/s (median of tasks)" "$br"
        R "broker: rows/s per task" "$(cut -d' ' -f2 "$W/rate.broker" | paste -sd' ')"
        R "broker: task started -> finished, ms" "$(cut -d' ' -f3 "$W/rate.broker" | grep -v nan | sort -n | pct 50)"
        R "ratio: broker / direct rows/s" "$(awk -v a="$br" -v b="$dr" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }')"
        R "daemon CPU per broker task (launch, fetch, relay, release), ms" "$(awk -v c="$c" -v hz="$HZ" -v n="$jobs" 'BEGIN { printf "%.1f", c / hz * 1000 / n }')"
        R "  per 1,000 relayed rows (all of it counted as relay), ms" "$(awk -v c="$c" -v hz="$HZ" -v n="$((jobs * (rows + 4)))" 'BEGIN { printf "%.2f", c / hz * 1000 * 1000 / n }')"
        R "forgejo-sim CPU per task: direct / broker, ms" "$(awk -v a="$sd" -v b="$sb" -v hz="$HZ" -v n="$jobs" 'BEGIN { printf "%.0f / %.0f", a / hz * 1000 / n, b / hz * 1000 / n }')"
        R "whole scenario (first task -> last drained), s" "$(secs "$t0" "$t1")"
        R "daemon peak RSS (VmHWM), KiB" "$(proc_field "$FS_PID" VmHWM)"
        R "worker warnings (all workers' logs)" "$(cat "$W"/wlogs/*.log | grep -c 'level=warn\|level=error' || true)"
        common_results
}

# load: 500 tasks in flight at once, every worker reporting each second.
run_load() {
        local n=${JOBS:-500} max=${MAX_RUNNERS:-500} sl=${SLEEP_S:-60}
        [ "$(ulimit -u)" = unlimited ] || [ "$(ulimit -u)" -ge $((n * 4 + 500)) ] || die "ulimit -u $(ulimit -u) is too small for $n workers"
        [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((n * 2 + 200)) ] || die "ulimit -n $(ulimit -n) is too small for $n workers"
        start_sim
        sim_setup
        make_wrapper
        { config_head; pool_yaml bench bench "$max" "$W/bin/logged-runner"; } >"$W/forgescale.yaml"
        start_fs 1
        sleep 2
        local rss0 anon0
        rss0=$(proc_field "$FS_PID" VmRSS)
        anon0=$(proc_field "$FS_PID" RssAnon)
        make_job_batches "$n" bench "sleep $sl" "$n"
        local c0 t0 tall="" took=0 best=0 since
        # VmHWM is kept lazily by the kernel: sample VmRSS too.
        : >"$W/rss.samples"
        (while kill -0 "$FS_PID" 2>/dev/null; do proc_field "$FS_PID" VmRSS >>"$W/rss.samples"; sleep 1; done) &
        SAMPLER_PID=$!
        c0=$(cpu_ticks "$FS_PID")
        t0=$(now)
        send_batches 0
        # Until every task's worker took it, or the count stopped growing
        # for 15 s, within the jobs' sleep.
        local deadline=$(($(date +%s) + sl - 10))
        since=$(date +%s)
        while [ "$(date +%s)" -lt $deadline ]; do
                took=$(grep -c 'msg="worker took its task"' "$W/forgescale.log" || true)
                if [ "$took" -ge "$n" ]; then
                        tall=$(now)
                        break
                fi
                if [ "$took" -gt "$best" ]; then
                        best=$took
                        since=$(date +%s)
                elif [ $(($(date +%s) - since)) -ge 15 ]; then
                        break
                fi
                sleep 0.5
        done
        # Steady state: every worker reports (UpdateTask, and UpdateLog
        # when it has rows) once a second, each relayed to the forge.
        sleep 3
        local cs0 cs1 ts0 ts1 ss0 ss1
        reset_stats
        cs0=$(cpu_ticks "$FS_PID"); ss0=$(cpu_ticks "$SIM_PID"); ts0=$(now)
        sleep 10
        cs1=$(cpu_ticks "$FS_PID"); ss1=$(cpu_ticks "$SIM_PID"); ts1=$(now)
        stats >"$W/stats.steady.json"
        local rss anon hwm thr fds wk pss uss
        rss=$(proc_field "$FS_PID" VmRSS)
        anon=$(proc_field "$FS_PID" RssAnon)
        hwm=$(proc_field "$FS_PID" VmHWM)
        pss=$(rollup_field "$FS_PID" Pss)
        uss=$(awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" { s += $2 } END { printf "%d", s }' "/proc/$FS_PID/smaps_rollup" 2>/dev/null || echo 0)
        thr=$(proc_field "$FS_PID" Threads)
        fds=$(ls "/proc/$FS_PID/fd" | wc -l)
        wk=$(pgrep -c -P "$FS_PID" || true)
        local running
        running=$(jobs_count '.status == "running"')
        wait_jobs_done "$n" $((sl + 180)) || echo "run.sh: not every job finished" >&2
        wait_drained 120 || echo "run.sh: the daemon still has live instances" >&2
        local t2 c1
        t2=$(now)
        c1=$(cpu_ticks "$FS_PID")
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
        curl -sf --max-time 20 "$SIM_URL/_sim/jobs" >"$W/jobs.json" || echo '[]' >"$W/jobs.json"
        local sd
        sd=$(secs "$ts0" "$ts1")
        R "tasks (jobs of \`sleep $sl\`, created at once) / max_runners" "$n / $max"
        R "workers that took their task (daemon log)" "$took"
        R "all $n taken after, s" "$([ -n "$tall" ] && secs "$t0" "$tall" || echo "not reached")"
        R "jobs running on the forge at measurement" "$running"
        R "worker processes (children of the daemon)" "$wk"
        R "daemon RSS before jobs (anonymous), KiB" "$rss0 ($anon0)"
        R "daemon RSS, $n in flight (VmRSS), KiB" "$rss"
        R "  of which anonymous, KiB" "$anon"
        R "  proportional (Pss) / private (USS), KiB" "$pss / $uss"
        R "daemon peak RSS so far (VmHWM), KiB" "$hwm"
        R "daemon threads / open fds" "$thr / $fds"
        R "steady: relayed UpdateTask+UpdateLog/s (forge side)" "$(jq --arg d "$sd" '[.requests | to_entries[] | select(.key | test("/Update(Task|Log)$")) | .value] | add // 0 | . / ($d | tonumber) | floor' "$W/stats.steady.json")"
        R "steady: forge requests/s (all)" "$(jq --arg d "$sd" '[.requests[]] | add // 0 | . / ($d | tonumber) | floor' "$W/stats.steady.json")"
        R "steady: daemon CPU, % of one core" "$(awk -v a="$cs0" -v b="$cs1" -v hz="$HZ" -v d="$sd" 'BEGIN { printf "%.1f", (b - a) / hz * 100 / d }')"
        R "steady: daemon CPU per relayed call, ms" "$(jq -r --arg c "$((cs1 - cs0))" --arg hz "$HZ" '[.requests | to_entries[] | select(.key | test("/Update(Task|Log)$")) | .value] | add // 0 | if . > 0 then ($c | tonumber) / ($hz | tonumber) * 1000 / . * 1000 | round / 1000 else "nan" end' "$W/stats.steady.json")"
        R "steady: forgejo-sim CPU, % of one core" "$(awk -v a="$ss0" -v b="$ss1" -v hz="$HZ" -v d="$sd" 'BEGIN { printf "%.1f", (b - a) / hz * 100 / d }')"
        R "jobs finished with success" "$(jq '[.[] | select(.status == "success")] | length' "$W/jobs.json") / $n"
        R "jobs failed / cancelled / not finished" "$(jq -r '[([.[] | select(.status == "failure")] | length), ([.[] | select(.status == "cancelled")] | length), ([.[] | select(.result == "")] | length)] | join(" / ")' "$W/jobs.json")"
        R "whole run (first job -> drained), s" "$(secs "$t0" "$t2")"
        R "daemon CPU over the run, s" "$(cpu_s "$c0" "$c1")"
        R "daemon CPU per task, ms" "$(awk -v a="$c0" -v b="$c1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / hz * 1000 / n }')"
        R "daemon peak RSS over the run (VmHWM), KiB" "$(proc_field "$FS_PID" VmHWM)"
        R "daemon peak RSS, largest 1 s sample (VmRSS), KiB" "$(sort -n "$W/rss.samples" | tail -1)"
        R "daemon RSS after the drain (anonymous), KiB" "$(proc_field "$FS_PID" VmRSS) ($(proc_field "$FS_PID" RssAnon))"
        cat "$W"/wlogs/*.log >"$W/workers.log" 2>/dev/null || true
        R "workers: Declare failed (reset, empty reply / other)" "$(grep 'msg="declare failed"' "$W/workers.log" | grep -c 'reset by peer\|Empty reply' || true) / $(grep 'msg="declare failed"' "$W/workers.log" | grep -vc 'reset by peer\|Empty reply' || true)"
        R "workers: reports failed (reset, empty reply / other)" "$(grep 'msg="report failed"' "$W/workers.log" | grep -c 'reset by peer\|Empty reply' || true) / $(grep 'msg="report failed"' "$W/workers.log" | grep -vc 'reset by peer\|Empty reply' || true)"
        R "daemon: workers exited before claiming their task" "$(grep -c 'msg="worker exited before claiming' "$W/forgescale.log" || true)"
        R "daemon: tasks failed, no worker connected / other" "$(grep 'msg="task failed"' "$W/forgescale.log" | grep -c 'no worker connected' || true) / $(grep 'msg="task failed"' "$W/forgescale.log" | grep -vc 'no worker connected' || true)"
        common_results
}

# ---- driver -----------------------------------------------------------------

one_run() {     # SCENARIO RUN
        W="$TOP/$1-$2"
        mkdir -p "$W"
        : >"$W/result.tsv"
        LOAD0=$(cut -d' ' -f1 /proc/loadavg)
        case "$1" in
        idle) run_idle ;;
        dispatch) run_dispatch ;;
        relay) run_relay ;;
        load) run_load ;;
        esac
        stop_run
        cp "$W/result.tsv" "$OUT/$1.run$2.tsv"
        if [ "${KEEP:-0}" != 1 ]; then
                rm -rf "$W"
        fi
        W=""
}

# Table: one column per run, then the median of the numeric rows.
table() {       # SCENARIO
        local files=() r
        for ((r = 1; r <= RUNS; r++)); do files+=("$OUT/$1.run$r.tsv"); done
        awk -F'\t' -v runs="$RUNS" '
                FNR == 1 { f++ }
                { if (f == 1) { key[FNR] = $1; n = FNR } val[f, FNR] = $2 }
                function isnum(x) { return x ~ /^-?[0-9]+(\.[0-9]+)?$/ }
                END {
                        w = 0; for (i = 1; i <= n; i++) if (length(key[i]) > w) w = length(key[i])
                        printf "%-" w "s", ""
                        for (r = 1; r <= runs; r++) printf " | run %d", r
                        if (runs > 1) printf " | median"
                        printf "\n"
                        for (i = 1; i <= n; i++) {
                                printf "%-" w "s", key[i]
                                m = 0; ok = 1
                                for (r = 1; r <= runs; r++) { printf " | %s", val[r, i]; if (isnum(val[r, i])) a[++m] = val[r, i] + 0; else ok = 0 }
                                if (runs > 1) {
                                        if (ok && m) {
                                                for (x = 1; x <= m; x++) for (y = x + 1; y <= m; y++) if (a[y] < a[x]) { t = a[x]; a[x] = a[y]; a[y] = t }
                                                med = (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
                                                printf " | %g", med
                                        } else printf " | "
                                }
                                printf "\n"
                        }
                }' "${files[@]}"
}

OUT="$TOP/results"
mkdir -p "$OUT"
case "$SCENARIO" in
all) LIST="idle dispatch relay load" ;;
*) LIST=$SCENARIO ;;
esac
echo "forgescale broker-mode benchmark: $LIST, $RUNS run(s); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src tools meson.build 2>/dev/null || echo '+modified'), build $(basename "$BUILD") ($(jq -r '.[] | select(.name == "buildtype") | .value' "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo '?'), forgescale linked $(date -r "$FS" '+%F %T'))"
OVR=""
for v in JOBS RATE MAX_RUNNERS POLL STEP POOLS DAEMONS IDLE_SECONDS ROWS RELAY_JOBS SLEEP_S LOG_LEVEL BENCH_TMP; do
        [ -n "${!v:-}" ] && OVR="$OVR $v=${!v}"
done
[ -n "$OVR" ] && echo "overrides:$OVR"
for s in $LIST; do
        for ((r = 1; r <= RUNS; r++)); do
                # Let the previous run's processes and load settle.
                [ "$r" -gt 1 ] && sleep "${COOLDOWN:-$([ "$s" = load ] && echo 20 || echo 5)}"
                echo "[$s run $r/$RUNS] $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)" >&2
                one_run "$s" "$r"
        done
        echo
        echo "== $s"
        table "$s"
done
