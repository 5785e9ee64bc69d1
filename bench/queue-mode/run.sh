#!/usr/bin/env bash
# run.sh BUILD_DIR [SCENARIO] [RUNS]: queue-mode benchmark of forgescale
# against forgejo-sim with real forgejo-sim-runner workers on the local
# provider. Starts everything in a fresh folder, prints one result table
# (one column per run plus the median) and stops every process it started.
# A benchmark, not a test: it asserts nothing about time.
#
# Scenarios (see README.md):
#   main         1,000 jobs arriving at RATE/s, max_runners 200, poll 1s
#   burst        1,000 jobs created at once, max_runners 200, poll 1s
#   idle-scope   50 pools on one org scope, no jobs, 60 s
#   idle-repos   50 pools on 50 repository scopes, no jobs, 60 s
#   idle         idle-scope then idle-repos
#   memory       1,000 jobs at once, max_runners 1000, each `sleep 120`
#   launch       1,000 jobs at once, max_runners 1000, a worker that only
#                sleeps: the daemon's own launch rate (register + spawn)
#
# Environment overrides: JOBS, RATE, MAX_RUNNERS, POLL, STEP, POOLS,
# IDLE_SECONDS, SLEEP_S, KEEP=1 (keep the run folder), PERF=1 (perf record
# of the daemon alone during the job phase), STRACE=1 (strace -c -w of the
# daemon during the job phase), PTRACE=1 (perf trace -s, lighter than
# strace); each implies KEEP and leaves perf.txt / strace.txt / ptrace.txt
# in the run folder. BENCH_TMP: parent of the run
# folder (default /tmp).
set -euo pipefail

usage() {
        echo "usage: $0 BUILD_DIR [main|burst|idle|idle-scope|idle-repos|memory|launch] [RUNS]" >&2
        exit 2
}
[ $# -ge 1 ] || usage
BUILD=$(cd "$1" && pwd)
SCENARIO=${2:-main}
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
main|burst|idle|idle-scope|idle-repos|memory|launch) ;;
*) usage ;;
esac

[ "${PERF:-0}" = 1 ] || [ "${STRACE:-0}" = 1 ] || [ "${PTRACE:-0}" = 1 ] && KEEP=1
TOP=$(mktemp -d "${BENCH_TMP:-/tmp}/fs-queue-bench.XXXXXX")
HZ=$(getconf CLK_TCK)
SIM_PID="" FS_PID="" SAMPLER_PID="" PERF_PID="" STRACE_PID="" W=""

# ---- process control -------------------------------------------------------

# Workers and their steps run with their working folder under $W (instance
# folders and TMPDIR), so they are found by cwd; the daemon leaves live
# workers running when it stops (they would be adopted by the next start).
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

stop_run() {
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
        stop_pid "$PERF_PID" INT; PERF_PID=""
        stop_pid "$STRACE_PID" INT; STRACE_PID=""
        stop_pid "$FS_PID"; FS_PID=""
        local left
        for _ in 1 2 3 4 5; do
                left=$(worker_pids)
                [ -n "$left" ] || break
                # shellcheck disable=SC2086
                kill -s KILL $left 2>/dev/null || true
                sleep 0.2
        done
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
        [ -n "$W" ] && { echo "--- forgescale.log (tail)" >&2; tail -20 "$W/forgescale.log" >&2 || true; }
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

# GET URL | jq FILTER; prints "nan" instead of failing when the server does
# not answer (the simulator refuses connections beyond its limit).
getq() {
        local v
        v=$(curl -sf --max-time 20 "$1" 2>/dev/null | jq -r "$2" 2>/dev/null) || v=""
        echo "${v:-nan}"
}
jobs_count() { getq "$SIM_URL/_sim/jobs" "[.[] | select($1)] | length"; }
undeleted() { getq "$SIM_URL/_sim/runners" '[.[] | select(.deleted == false)] | length'; }

post() { curl -sf -X POST -H 'Content-Type: application/json' -d "$2" "$SIM_URL$1"; }

sim_setup() {   # REPOS: admin user, org "bench", repos r0..r(REPOS-1)
        local n=$1 i
        post /_sim/users '{"name":"bench-admin","admin":true}' | jq -r .token >"$W/token"
        chmod 600 "$W/token"
        post /_sim/orgs '{"name":"bench","owners":["bench-admin"]}' >/dev/null
        for ((i = 0; i < n; i++)); do
                post /_sim/repos "{\"owner\":\"bench\",\"name\":\"r$i\"}" >/dev/null
        done
}

config_head() {
        cat <<EOF
listen: 127.0.0.1:0
state_dir: ./state
log: {level: ${LOG_LEVEL:-info}, format: logfmt}
forges:
  sim:
    url: $SIM_URL
    token_file: ./token
pools:
EOF
}

pool_yaml() {   # NAME SCOPE LABEL MAX
        cat <<EOF
  $1:
    forge: sim
    scope: $2
    labels: [$3]
    max_runners: $4
    poll_interval: $POLL
    idle_timeout: 1m
    bootstrap_timeout: 2m
    runner:
      env: {TMPDIR: $W/tmp}
EOF
        [ -z "${POOL_COMMAND:-}" ] || echo "      command: [$POOL_COMMAND]"
}

start_fs() {
        mkdir -p "$W/bin" "$W/tmp"
        ln -sf "$RUNNER" "$W/bin/forgejo-runner"
        "$FS" check -c "$W/forgescale.yaml" >/dev/null 2>"$W/check.err" || { cat "$W/check.err" >&2; die "bad configuration"; }
        (cd "$W" && PATH="$W/bin:$PATH" exec "$FS" run -c forgescale.yaml 2>"$W/forgescale.log") &
        FS_PID=$!
        API=""
        local port
        for _ in $(seq 1 200); do
                port=$(sed -n 's/.*msg=listening .*port=\([0-9]*\).*/\1/p' "$W/forgescale.log" | head -1)
                if [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
                        API="http://127.0.0.1:$port"
                        break
                fi
                sleep 0.05
        done
        [ -n "$API" ] || die "forgescale did not start"
        # Wait for the version check and the first listing of every pool.
        for _ in $(seq 1 200); do
                grep -q 'msg=connected' "$W/forgescale.log" && break
                sleep 0.05
        done
}

# ---- measurements -----------------------------------------------------------

proc_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
heap_rss() { awk '/^[0-9a-f]+-/ { h = ($6 == "[heap]") } /^Rss:/ && h { s += $2 } END { printf "%d\n", s }' "/proc/$1/smaps" 2>/dev/null || echo 0; }
# Proportional and private (USS) memory from smaps_rollup: the shared
# libraries' pages count once per process that maps them in VmRSS, but only
# by share in Pss and not at all in the private figure.
rollup_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
uss() { awk '$1 == "Private_Clean:" || $1 == "Private_Dirty:" { s += $2 } END { printf "%d\n", s }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU of the reaped children: the workers (and the steps they waited for).
child_ticks() { awk '{ print $16 + $17 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Sampler: every 0.2 s, the registrations and Declares the simulator has
# served, the daemon's RSS and its live instances. One curl per sample.
sampler() {
        local s reg decl rss t
        while :; do
                t=$(now)
                s=$(curl -s --max-time 2 "$SIM_URL/_sim/stats" || true)
                [[ $s == *requests* ]] || continue
                reg=0 decl=0
                [[ $s =~ \"POST\ /api/v1/[a-z]+(/\{[a-z]+\})*/actions/runners\":([0-9]+) ]] && reg=${BASH_REMATCH[2]}
                [[ $s =~ RunnerService/Declare\":([0-9]+) ]] && decl=${BASH_REMATCH[1]}
                rss=$(proc_field "$FS_PID" VmRSS)
                echo "$t $reg $decl $rss" >>"$W/samples"
                sleep 0.2
        done
}

metric_sum() {  # FILE REGEX: sum of the values of metric lines matching REGEX
        awk -v re="$2" '$0 ~ re && $1 !~ /^#/ { s += $NF } END { printf "%d\n", s }' "$1"
}

# jobs.json → "created claimed finished" in epoch seconds, one job a line.
job_times() {
        jq -r 'def ts: if . == null then "nan" else ((.[0:19] + "Z" | fromdate) + ((.[20:23] | tonumber) / 1000)) end;
               .[] | "\(.created_at | ts) \(.claimed_at | ts) \(.finished_at | ts) \(.status)"' "$1"
}

pct() {         # P < sorted numbers: nearest-rank percentile
        awk -v p="$1" '{ v[NR] = $1 } END { if (!NR) { print "nan"; exit } i = int((NR * p + 99) / 100); if (i < 1) i = 1; printf "%.3f\n", v[i] }'
}

peak_rate() {   # < "t_seconds count" cumulative samples: max increase over any 1 s window
        awk '{ t[NR] = $1; c[NR] = $2 } END {
                best = 0; j = 1
                for (i = 1; i <= NR; i++) {
                        while (t[i] - t[j] > 1.0001) j++
                        d = c[i] - c[j]; if (d > best) best = d
                }
                printf "%d\n", best }'
}

peak_events() { # < event times in seconds: most events within any 1 s window
        sort -n | awk '{ t[NR] = $1 } END { best = 0; j = 1
                for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 1.0) j++; if (i - j + 1 > best) best = i - j + 1 }
                printf "%d\n", best }'
}

R() { printf '%s\t%s\n' "$1" "$2" >>"$W/result.tsv"; }

common_results() {
        R "load average (1 min) at start" "$LOAD0"
        R "daemon peak RSS (VmHWM), KiB" "$(proc_field "$FS_PID" VmHWM)"
        R "daemon RSS at end (VmRSS), KiB" "$(proc_field "$FS_PID" VmRSS)"
        R "  of which anonymous / file-backed, KiB" "$(proc_field "$FS_PID" RssAnon) / $(proc_field "$FS_PID" RssFile)"
        R "  proportional (Pss) / private (USS) at end, KiB" "$(rollup_field "$FS_PID" Pss) / $(uss "$FS_PID")"
        R "load average (1 min) at end" "$(cut -d' ' -f1 /proc/loadavg)"
}

perf_start() {
        if [ "${PERF:-0}" = 1 ]; then
                perf record --call-graph dwarf,16384 -i -F 499 -p "$FS_PID" -o "$W/perf.data" >"$W/perf.log" 2>&1 &
                PERF_PID=$!
        fi
        if [ "${STRACE:-0}" = 1 ]; then
                strace -c -w -p "$FS_PID" -o "$W/strace.txt" 2>"$W/strace.log" &
                STRACE_PID=$!
        elif [ "${PTRACE:-0}" = 1 ]; then
                perf trace -s -p "$FS_PID" -o "$W/ptrace.txt" >/dev/null 2>"$W/ptrace.log" &
                STRACE_PID=$!
        fi
}

perf_stop() {
        if [ -n "$PERF_PID" ]; then
                stop_pid "$PERF_PID" INT; PERF_PID=""
                perf report -i "$W/perf.data" --stdio --no-children --percent-limit 1 \
                        >"$W/perf.txt" 2>/dev/null || true
        fi
        if [ -n "$STRACE_PID" ]; then
                stop_pid "$STRACE_PID" INT; STRACE_PID=""
        fi
}

make_job_batches() {    # N STEP BATCH: curl -K files of BATCH job creations each
        local n=$1 step=$2 batch=$3 i f=0 k=0
        mkdir -p "$W/batches"
        for ((i = 1; i <= n; i++)); do
                [ $k -gt 0 ] && echo next >>"$W/batches/$f"
                printf 'url = "%s/_sim/jobs"\nheader = "Content-Type: application/json"\noutput = "/dev/null"\ndata = "{\\"owner\\":\\"bench\\",\\"repo\\":\\"r0\\",\\"name\\":\\"j%d\\",\\"runs_on\\":[\\"bench\\"],\\"steps\\":[\\"%s\\"]}"\n' \
                        "$SIM_URL" "$i" "$step" >>"$W/batches/$f"
                k=$((k + 1))
                if [ $k -eq "$batch" ]; then
                        f=$((f + 1))
                        k=0
                fi
        done
        ls "$W/batches" | sort -n >"$W/batches.list"
}

batch_size() {   # RATE N: jobs per curl call; 10 calls a second spread the
                # arrivals over the poll phase; RATE 0 sends all N at once
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
                curl -sf "$API/metrics" >"$W/metrics.now" || true
                live=$(metric_sum "$W/metrics.now" '^forgescale_pool_runners[{]')
                [ "$live" = 0 ] && return 0
                [ "$(date +%s)" -ge $deadline ] && return 1
                sleep 0.5
        done
}

# ---- scenarios --------------------------------------------------------------

# main and burst: JOBS jobs of one step, one pool on org/bench.
run_jobs() {
        local rate=$1 n=${JOBS:-1000} max=${MAX_RUNNERS:-200} step=${STEP:-true}
        start_sim
        sim_setup 1
        { config_head; pool_yaml bench org/bench bench "$max"; } >"$W/forgescale.yaml"
        start_fs
        sleep 2
        make_job_batches "$n" "$step" "$(batch_size "$rate" "$n")"
        curl -sf -X DELETE "$SIM_URL/_sim/stats"
        curl -sf "$API/metrics" >"$W/metrics.before"
        local cpu0 t0 t1 t2 sim_cpu0 wcpu0
        cpu0=$(cpu_ticks "$FS_PID")
        wcpu0=$(child_ticks "$FS_PID")
        sim_cpu0=$(cpu_ticks "$SIM_PID")
        sampler &
        SAMPLER_PID=$!
        perf_start
        t0=$(now)
        send_batches "$rate"
        t1=$(now)
        wait_jobs_done "$n" 150 || echo "run.sh: not every job finished within 150 s" >&2
        wait_drained 60 || echo "run.sh: the daemon still has live instances" >&2
        t2=$(now)
        perf_stop
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
        curl -sf "$API/metrics" >"$W/metrics.after" || true
        curl -sf --max-time 20 "$SIM_URL/_sim/stats" >"$W/stats.json" || echo '{"requests":{}}' >"$W/stats.json"
        curl -sf --max-time 20 "$SIM_URL/_sim/jobs" >"$W/jobs.json" || echo '[]' >"$W/jobs.json"
        local cpu1 sim_cpu1 wcpu1
        cpu1=$(cpu_ticks "$FS_PID")
        wcpu1=$(child_ticks "$FS_PID")
        sim_cpu1=$(cpu_ticks "$SIM_PID")

        job_times "$W/jobs.json" >"$W/times"
        local ok secs
        ok=$(awk '$4 == "success"' "$W/times" | wc -l)
        awk '$2 != "nan" { printf "%.3f\n", $2 - $1 }' "$W/times" | sort -n >"$W/waits"
        secs=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
        local first_c last_claim last_fin
        first_c=$(awk 'NR == 1 || $1 < m { m = $1 } END { printf "%.3f", m }' "$W/times")
        last_claim=$(awk '$2 != "nan" && $2 > m { m = $2 } END { printf "%.3f", m }' "$W/times")
        last_fin=$(awk '$3 != "nan" && $3 > m { m = $3 } END { printf "%.3f", m }' "$W/times")

        R "jobs finished with success" "$ok / $n"
        R "job arrival" "$([ "$rate" -gt 0 ] && echo "$rate/s" || echo "all at once ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", (b - a) / 1000 }'))")"
        R "created -> claimed p50, s" "$(pct 50 <"$W/waits")"
        R "created -> claimed p90, s" "$(pct 90 <"$W/waits")"
        R "created -> claimed p99, s" "$(pct 99 <"$W/waits")"
        R "created -> claimed max, s" "$(pct 100 <"$W/waits")"
        # Split of the wait, from the state database: created -> first seen
        # in a listing (poll delay), first seen -> claimed (launch path).
        if command -v sqlite3 >/dev/null; then
                sqlite3 -separator ' ' "$W/state/forgescale.db" \
                        "SELECT job_id, job_seen_ms, created_ms FROM instances WHERE id IN (SELECT min(id) FROM instances WHERE job_id > 0 GROUP BY job_id)" \
                        >"$W/seen" 2>/dev/null || true
                jq -r 'def ts: if . == null then "nan" else ((.[0:19] + "Z" | fromdate) * 1000 + (.[20:23] | tonumber)) end;
                       .[] | "\(.id) \(.created_at | ts) \(.claimed_at | ts)"' "$W/jobs.json" >"$W/simjobs"
                awk 'NR == FNR { seen[$1] = $2; row[$1] = $3; next }
                     ($1 in seen) && $3 != "nan" { printf "%.3f %.3f %.3f\n", (seen[$1] - $2) / 1000, ($3 - seen[$1]) / 1000, ($3 - row[$1]) / 1000 }' \
                        "$W/seen" "$W/simjobs" >"$W/split"
                R "  created -> first seen in a listing p50 / p99, s" "$(cut -d' ' -f1 "$W/split" | sort -n | pct 50) / $(cut -d' ' -f1 "$W/split" | sort -n | pct 99)"
                R "  first seen -> claimed p50 / p99, s" "$(cut -d' ' -f2 "$W/split" | sort -n | pct 50) / $(cut -d' ' -f2 "$W/split" | sort -n | pct 99)"
                R "  instance row -> claimed p50 / p99, s" "$(cut -d' ' -f3 "$W/split" | sort -n | pct 50) / $(cut -d' ' -f3 "$W/split" | sort -n | pct 99)"
        fi
        R "first created -> last claimed, s" "$(awk -v a="$first_c" -v b="$last_claim" 'BEGIN { printf "%.2f", b - a }')"
        R "first created -> last finished, s" "$(awk -v a="$first_c" -v b="$last_fin" 'BEGIN { printf "%.2f", b - a }')"
        R "claims/s, peak 1 s window" "$(awk '$2 != "nan" { print $2 }' "$W/times" | peak_events)"
        awk -v t0="$t0" '{ printf "%.3f %d\n", ($1 - t0) / 1000, $2 }' "$W/samples" >"$W/reg.samples"
        awk -v t0="$t0" '{ printf "%.3f %d\n", ($1 - t0) / 1000, $3 }' "$W/samples" >"$W/decl.samples"
        R "registrations (POST runner)/s, peak 1 s window" "$(peak_rate <"$W/reg.samples")"
        R "workers declared/s, peak 1 s window" "$(peak_rate <"$W/decl.samples")"
        if [ "$rate" = 0 ]; then
                # Time from the first job to the max_runners-th registration:
                # the first wave needs no free slot, only launch speed.
                local wave=$((max < n ? max : n))
                local tw
                tw=$(awk -v w="$wave" '$2 >= w { print $1; exit }' "$W/reg.samples")
                R "first $wave registrations done after, s" "${tw:-nan}"
                R "  first-wave registrations/s" "$(awk -v w="$wave" -v t="${tw:-0}" 'BEGIN { if (t > 0) printf "%.0f", w / t; else print "nan" }')"
                R "first $wave workers declared after, s" "$(awk -v w="$wave" '$2 >= w { print $1; exit }' "$W/decl.samples")"
        fi
        local m=$W/metrics.after b=$W/metrics.before
        local lst reg get del tot
        lst=$(($(metric_sum "$m" '^forgescale_forge_requests_total.*route="[^"]*/jobs"') - $(metric_sum "$b" '^forgescale_forge_requests_total.*route="[^"]*/jobs"')))
        reg=$(($(metric_sum "$m" '^forgescale_forge_requests_total.*route="POST ') - $(metric_sum "$b" '^forgescale_forge_requests_total.*route="POST ')))
        get=$(($(metric_sum "$m" '^forgescale_forge_requests_total.*route="GET [^"]*/runners/[{]') - $(metric_sum "$b" '^forgescale_forge_requests_total.*route="GET [^"]*/runners/[{]')))
        del=$(($(metric_sum "$m" '^forgescale_forge_requests_total.*route="DELETE ') - $(metric_sum "$b" '^forgescale_forge_requests_total.*route="DELETE ')))
        tot=$(($(metric_sum "$m" '^forgescale_forge_requests_total') - $(metric_sum "$b" '^forgescale_forge_requests_total')))
        local permin="60 / $secs"
        R "measured window (first job -> drained), s" "$secs"
        R "daemon forge requests/min (all)" "$(awk "BEGIN { printf \"%.0f\", $tot * $permin }")"
        R "  job listings/min" "$(awk "BEGIN { printf \"%.0f\", $lst * $permin }")"
        R "  POST/GET/DELETE runner, total" "$reg / $get / $del"
        R "sim REST requests (/api/v1), total" "$(jq '[.requests | to_entries[] | select(.key | contains(" /api/v1/")) | .value] | add // 0' "$W/stats.json")"
        R "sim runner-protocol requests (workers), total" "$(jq '[.requests | to_entries[] | select(.key | contains(" /api/actions/")) | .value] | add // 0' "$W/stats.json")"
        R "launches claimed / wasted / failed" "$(metric_sum "$m" 'launches_total.*result="claimed"') / $(metric_sum "$m" 'launches_total.*result="wasted"') / $(metric_sum "$m" 'launches_total.*result="failed"')"
        R "registrations left on the forge" "$(undeleted)"
        R "daemon CPU in window (user+sys), s" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        R "daemon CPU per job, ms" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / hz * 1000 / n }')"
        R "daemon CPU per launch (registrations), ms" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v n="$reg" 'BEGIN { printf "%.2f", n ? (b - a) / hz * 1000 / n : 0 }')"
        R "forgejo-sim CPU in window, s" "$(awk -v a="$sim_cpu0" -v b="$sim_cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        R "workers' CPU (reaped children of the daemon), s" "$(awk -v a="$wcpu0" -v b="$wcpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        R "daemon warnings/errors in log" "$(grep -c 'level=warn\|level=error' "$W/forgescale.log" || true)"
        common_results
}

run_idle() {    # KIND: scope | repos
        local kind=$1 pools=${POOLS:-50} secs=${IDLE_SECONDS:-60} i
        start_sim
        if [ "$kind" = repos ]; then sim_setup "$pools"; else sim_setup 1; fi
        {
                config_head
                for ((i = 0; i < pools; i++)); do
                        if [ "$kind" = repos ]; then
                                pool_yaml "p$i" "repo/bench/r$i" "l$i" 10
                        else
                                pool_yaml "p$i" org/bench "l$i" 10
                        fi
                done
        } >"$W/forgescale.yaml"
        start_fs
        # Start-up (version check, first listings, orphan sweep per scope)
        # is reported apart from the steady state.
        sleep 3
        curl -sf "$SIM_URL/_sim/stats" >"$W/stats.startup" || echo '{"requests":{}}' >"$W/stats.startup"
        curl -sf -X DELETE "$SIM_URL/_sim/stats" || true
        local cpu0 t0 t1 cpu1
        cpu0=$(cpu_ticks "$FS_PID")
        t0=$(now)
        perf_start
        sleep "$secs"
        t1=$(now)
        cpu1=$(cpu_ticks "$FS_PID")
        curl -sf "$SIM_URL/_sim/stats" >"$W/stats.json" || echo '{"requests":{}}' >"$W/stats.json"
        perf_stop
        local scopes=1 total lst dur
        [ "$kind" = repos ] && scopes=$pools
        dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')
        total=$(jq '[.requests[]] | add // 0' "$W/stats.json")
        lst=$(jq '[.requests | to_entries[] | select(.key | endswith("/jobs")) | .value] | add // 0' "$W/stats.json")
        R "pools / (forge, scope) listings" "$pools / $scopes"
        R "poll_interval" "$POLL"
        R "measured window, s" "$dur"
        R "start-up requests (first 3 s)" "$(jq '[.requests[]] | add // 0' "$W/stats.startup")"
        R "forge requests/min (all)" "$(awk -v n="$total" -v d="$dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "  job listings/min" "$(awk -v n="$lst" -v d="$dur" 'BEGIN { printf "%.1f", n * 60 / d }')"
        R "target: <= scopes x 60 / interval per min" "$(awk -v s="$scopes" -v p="$(dur_s "$POLL")" 'BEGIN { printf "%.0f", s * 60 / p }')"
        R "routes seen" "$(jq -r '[.requests | to_entries[] | "\(.key)=\(.value)"] | join(", ")' "$W/stats.json")"
        R "daemon CPU per minute idle, s" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v d="$dur" 'BEGIN { printf "%.3f", (b - a) / hz * 60 / d }')"
        R "daemon warnings/errors in log" "$(grep -c 'level=warn\|level=error' "$W/forgescale.log" || true)"
        common_results
}

dur_s() { awk -v d="$1" 'BEGIN { if (d ~ /ms$/) { sub(/ms$/, "", d); print d / 1000 } else if (d ~ /s$/) { sub(/s$/, "", d); print d } else if (d ~ /m$/) { sub(/m$/, "", d); print d * 60 } else print d }'; }

run_memory() {
        local n=${JOBS:-1000} max=${MAX_RUNNERS:-1000} sl=${SLEEP_S:-120}
        local need=$((n * 4 + 500))
        [ "$(ulimit -u)" = unlimited ] || [ "$(ulimit -u)" -ge $need ] || die "ulimit -u $(ulimit -u) < $need processes needed"
        [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((n + 200)) ] || die "ulimit -n $(ulimit -n) too small for $n connections to the simulator"
        start_sim
        sim_setup 1
        { config_head; pool_yaml bench org/bench bench "$max"; } >"$W/forgescale.yaml"
        start_fs
        sleep 2
        local rss0
        rss0=$(proc_field "$FS_PID" VmRSS)
        local anon0 uss0
        anon0=$(proc_field "$FS_PID" RssAnon)
        uss0=$(uss "$FS_PID")
        local rate=${RATE:-0}
        make_job_batches "$n" "sleep $sl" "$(batch_size "$rate" "$n")"
        curl -sf -X DELETE "$SIM_URL/_sim/stats"
        sampler &
        SAMPLER_PID=$!
        local t0 tall="" running=0 cpu0
        cpu0=$(cpu_ticks "$FS_PID")
        t0=$(now)
        perf_start
        send_batches "$rate"
        # Until every job runs, or the count stopped growing for 10 s (a
        # launch that failed waits for its backoff), within the jobs' sleep.
        local deadline=$(($(date +%s) + sl - 10)) best=0 since
        since=$(date +%s)
        while [ "$(date +%s)" -lt $deadline ]; do
                running=$(jobs_count '.status == "running"')
                [ "$running" = nan ] && running=0
                if [ "$running" -ge "$n" ]; then
                        tall=$(now)
                        break
                fi
                if [ "$running" -gt "$best" ]; then
                        best=$running
                        since=$(date +%s)
                elif [ $(($(date +%s) - since)) -ge 10 ]; then
                        break
                fi
                sleep 0.5
        done
        # Let the daemon settle with every worker live (claim checks done,
        # listings showing every job running), then measure.
        sleep 3
        local rss fds thr wk wrss busy cpu1
        running=$(jobs_count '.status == "running"')
        busy=$(getq "$API/v1/pools" '[.[] | .busy] | add')
        rss=$(proc_field "$FS_PID" VmRSS)
        thr=$(proc_field "$FS_PID" Threads)
        fds=$(ls "/proc/$FS_PID/fd" | wc -l)
        wk=$(pgrep -c -P "$FS_PID" || true)
        wrss=$(for p in $(pgrep -P "$FS_PID"); do awk '$1 == "VmRSS:" { print $2 }' "/proc/$p/status" 2>/dev/null; done | awk '{ s += $1 } END { printf "%d", s / (NR ? NR : 1) }')
        cpu1=$(cpu_ticks "$FS_PID")
        perf_stop
        R "job arrival" "$([ "$rate" -gt 0 ] && echo "$rate/s" || echo "all at once")"
        R "jobs running at measurement (sim)" "$running / $n"
        R "daemon busy instances (/v1/pools)" "$busy"
        R "worker processes (children of the daemon)" "$wk"
        R "all $n claimed after, s" "$([ -n "$tall" ] && awk -v a="$t0" -v b="$tall" 'BEGIN { printf "%.2f", (b - a) / 1000 }' || echo "not reached")"
        local floor=$BUILD/bench/memory-floor/memory-floor
        if [ -x "$floor" ]; then
                # The same libraries loaded and initialised by a program that
                # does nothing else: the part of every figure below that is
                # not the daemon's.
                "$floor" >"$W/floor.txt" 2>&1 || true
                R "floor: the libraries alone (VmRSS; anonymous), KiB" "$(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } END { printf "%s; %s", r, a }' "$W/floor.txt")"
        fi
        R "daemon RSS before jobs (anonymous; USS), KiB" "$rss0 ($anon0; $uss0)"
        R "daemon RSS with all workers live, KiB" "$rss"
        R "  of which anonymous / [heap], KiB" "$(proc_field "$FS_PID" RssAnon) / $(heap_rss "$FS_PID")"
        R "  proportional (Pss) / private (USS), KiB" "$(rollup_field "$FS_PID" Pss) / $(uss "$FS_PID")"
        R "daemon threads / open fds" "$thr / $fds"
        R "worker (forgejo-sim-runner) RSS each, KiB" "$wrss"
        R "forgejo-sim RSS / threads" "$(proc_field "$SIM_PID" VmRSS) KiB / $(proc_field "$SIM_PID" Threads)"
        R "daemon CPU from jobs to measurement, s" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        awk -v t0="$t0" '{ printf "%.3f %d\n", ($1 - t0) / 1000, $2 }' "$W/samples" >"$W/reg.samples"
        R "registrations (POST runner)/s, peak 1 s window" "$(peak_rate <"$W/reg.samples")"
        stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
        # Cancel every job: the workers see RESULT_CANCELLED on their next
        # report and exit; the daemon deletes the registrations.
        : >"$W/cancel.cfg"
        local i
        for ((i = 1; i <= n; i++)); do
                [ $i -gt 1 ] && echo next >>"$W/cancel.cfg"
                printf 'url = "%s/_sim/jobs/%d/cancel"\nrequest = "POST"\noutput = "/dev/null"\n' "$SIM_URL" "$i" >>"$W/cancel.cfg"
        done
        local tc
        tc=$(now)
        curl -s -K "$W/cancel.cfg" || true
        if wait_drained 60; then
                R "cancel all -> daemon drained, s" "$(awk -v a="$tc" -v b="$(now)" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
                sleep 3 # housekeeping of the idle daemon (heap trim) runs every second
                R "daemon RSS 3 s after the drain (no workers), KiB" "$(proc_field "$FS_PID" VmRSS)"
                R "  of which anonymous; private (USS), KiB" "$(proc_field "$FS_PID" RssAnon); $(uss "$FS_PID")"
        else
                R "cancel all -> daemon drained, s" "not within 60 s"
        fi
        curl -sf "$API/metrics" >"$W/metrics.after" || true
        R "launches claimed / wasted / failed" "$(metric_sum "$W/metrics.after" 'launches_total.*result="claimed"') / $(metric_sum "$W/metrics.after" 'launches_total.*result="wasted"') / $(metric_sum "$W/metrics.after" 'launches_total.*result="failed"')"
        R "  failed: registration timed out (daemon log)" "$(grep -c 'msg="runner registration failed".*timed out' "$W/forgescale.log" || true)"
        R "  failed: worker lost its connection to the sim" "$(grep -l 'Connection reset\|Empty reply\|Connection refused' "$W"/state/instances/*/worker.log 2>/dev/null | wc -l)"
        R "registrations left on the forge" "$(undeleted)"
        R "daemon warnings/errors in log" "$(grep -c 'level=warn\|level=error' "$W/forgescale.log" || true)"
        common_results
}

# launch: the daemon's launch rate without the cost of a real worker. The
# worker is `sh -c 'exec sleep'`: it never claims its job, so each launch is
# exactly the daemon's work (row, POST runner, token file, instance folder,
# spawn) plus an exec that costs ~1 ms. Then every job is cancelled and the
# daemon stops the workers and deletes the registrations (job_gone).
run_launch() {
        local n=${JOBS:-1000} max=${MAX_RUNNERS:-1000}
        start_sim
        sim_setup 1
        mkdir -p "$W/bin"
        printf '#!/bin/sh\nexec sleep 600\n' >"$W/bin/idle-worker"
        chmod +x "$W/bin/idle-worker"
        { config_head; POOL_COMMAND="$W/bin/idle-worker" pool_yaml bench org/bench bench "$max"; } >"$W/forgescale.yaml"
        start_fs
        sleep 2
        make_job_batches "$n" true "$n"
        curl -sf -X DELETE "$SIM_URL/_sim/stats"
        curl -sf "$API/metrics" >"$W/metrics.before"
        local cpu0 t0 t1 tr="" tw="" reg=0 kids=0 sim_cpu0
        cpu0=$(cpu_ticks "$FS_PID")
        sim_cpu0=$(cpu_ticks "$SIM_PID")
        : >"$W/launch.samples"
        perf_start
        t0=$(now)
        send_batches 0
        t1=$(now)
        local deadline=$(($(date +%s) + 60)) s t
        while [ "$(date +%s)" -lt $deadline ]; do
                t=$(now)
                s=$(curl -s --max-time 2 "$SIM_URL/_sim/stats" || true)
                reg=0
                [[ $s =~ \"POST\ /api/v1/[a-z]+(/\{[a-z]+\})*/actions/runners\":([0-9]+) ]] && reg=${BASH_REMATCH[2]}
                kids=$(pgrep -c -P "$FS_PID" || true)
                echo "$(awk -v a="$t0" -v b="$t" 'BEGIN { printf "%.3f", (b - a) / 1000 }') $reg $kids" >>"$W/launch.samples"
                [ -z "$tr" ] && [ "$reg" -ge "$n" ] && tr=$t
                if [ "$kids" -ge "$n" ]; then
                        # Every worker follows its registration (the count
                        # of registrations above was read just before).
                        [ -z "$tr" ] && tr=$t
                        tw=$t
                        break
                fi
                sleep 0.1
        done
        local cpu1 sim_cpu1
        cpu1=$(cpu_ticks "$FS_PID")
        sim_cpu1=$(cpu_ticks "$SIM_PID")
        perf_stop
        local wall
        wall=$(awk -v a="$t0" -v b="${tw:-$(now)}" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
        R "jobs created at once, s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
        R "all $n registered after, s" "$([ -n "$tr" ] && awk -v a="$t0" -v b="$tr" 'BEGIN { printf "%.2f", (b - a) / 1000 }' || echo "not reached ($reg)")"
        R "all $n workers running after, s" "$([ -n "$tw" ] && echo "$wall" || echo "not reached ($kids)")"
        R "launches/s overall (first job -> last worker)" "$([ -n "$tw" ] && awk -v n="$n" -v w="$wall" 'BEGIN { printf "%.0f", n / w }' || echo nan)"
        R "registrations/s, peak 1 s window" "$(cut -d' ' -f1,2 "$W/launch.samples" | peak_rate)"
        R "workers started/s, peak 1 s window" "$(cut -d' ' -f1,3 "$W/launch.samples" | peak_rate)"
        R "daemon CPU until all running, s" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        R "daemon CPU per launch, ms" "$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / hz * 1000 / n }')"
        R "forgejo-sim CPU until all running, s" "$(awk -v a="$sim_cpu0" -v b="$sim_cpu1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')"
        R "daemon RSS with $n workers (anonymous), KiB" "$(proc_field "$FS_PID" VmRSS) ($(proc_field "$FS_PID" RssAnon))"
        # Cancel every job: the listing drops them, the claim check finds
        # the runner idle, the daemon stops the worker and deletes it.
        : >"$W/cancel.cfg"
        local i tc
        for ((i = 1; i <= n; i++)); do
                [ $i -gt 1 ] && echo next >>"$W/cancel.cfg"
                printf 'url = "%s/_sim/jobs/%d/cancel"\nrequest = "POST"\noutput = "/dev/null"\n' "$SIM_URL" "$i" >>"$W/cancel.cfg"
        done
        tc=$(now)
        curl -s -K "$W/cancel.cfg" || true
        if wait_drained 90; then
                R "cancel all -> daemon drained, s" "$(awk -v a="$tc" -v b="$(now)" 'BEGIN { printf "%.2f", (b - a) / 1000 }')"
        else
                R "cancel all -> daemon drained, s" "not within 90 s"
        fi
        curl -sf "$API/metrics" >"$W/metrics.after" || true
        R "launches claimed / wasted / failed" "$(metric_sum "$W/metrics.after" 'launches_total.*result="claimed"') / $(metric_sum "$W/metrics.after" 'launches_total.*result="wasted"') / $(metric_sum "$W/metrics.after" 'launches_total.*result="failed"')"
        R "registrations left on the forge" "$(undeleted)"
        R "worker processes left" "$(pgrep -c -P "$FS_PID" || true)"
        R "daemon warnings/errors in log" "$(grep -c 'level=warn\|level=error' "$W/forgescale.log" || true)"
        common_results
}

# ---- driver -----------------------------------------------------------------

one_run() {     # SCENARIO RUN
        W="$TOP/$1-$2"
        mkdir -p "$W"
        : >"$W/result.tsv"
        : >"$W/samples"
        LOAD0=$(cut -d' ' -f1 /proc/loadavg)
        POLL=${POLL:-1s}
        case "$1" in
        main) run_jobs "${RATE:-25}" ;;
        burst) run_jobs 0 ;;
        idle-scope) run_idle scope ;;
        idle-repos) run_idle repos ;;
        memory) run_memory ;;
        launch) run_launch ;;
        esac
        stop_run
        cp "$W/result.tsv" "$OUT/$1.run$2.tsv"
        if [ "${KEEP:-0}" != 1 ]; then
                rm -rf "$W"
        fi
        W=""
}

# Table: one column per run, then the median of the numeric runs.
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
idle) LIST="idle-scope idle-repos" ;;
*) LIST=$SCENARIO ;;
esac
echo "forgescale queue-mode benchmark: $LIST, $RUNS run(s); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
     "tree $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src tools meson.build 2>/dev/null || echo '+modified'), build $(basename "$BUILD") ($(jq -r '.[] | select(.name == "buildtype") | .value' "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo '?'), forgescale linked $(date -r "$FS" '+%F %T'))"
OVR=""
for v in JOBS RATE MAX_RUNNERS POLL STEP POOLS IDLE_SECONDS SLEEP_S BENCH_TMP; do
        [ -n "${!v:-}" ] && OVR="$OVR $v=${!v}"
done
[ -n "$OVR" ] && echo "overrides:$OVR"
for s in $LIST; do
        for ((r = 1; r <= RUNS; r++)); do
                # Let the previous run's processes and load settle.
                [ "$r" -gt 1 ] && sleep "${COOLDOWN:-$([ "$s" = memory ] && echo 30 || echo 5)}"
                echo "[$s run $r/$RUNS] $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)" >&2
                one_run "$s" "$r"
        done
        echo
        echo "== $s"
        table "$s"
done
