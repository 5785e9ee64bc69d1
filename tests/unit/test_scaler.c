/* test_scaler.c: the scaling policy, one behaviour per test. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>
#include "scaler/scaler.h"

static const char *const L_UB[] = { "ubuntu" };
static const char *const L_UB_DOCKER[] = { "ubuntu", "docker" };
static const char *const L_GPU[] = { "gpu" };

#define NOW 1000000

static struct scaler_pool pool(int group, const char *const *labels, size_t n, int max)
{
        return (struct scaler_pool){ .group = group, .forge = 0, .provider = 0, .labels = labels,
                                     .n_labels = n, .min_idle = 0, .max_runners = max,
                                     .idle_timeout_ms = 300000, .bootstrap_timeout_ms = 600000,
                                     .demand_fresh = true, .enabled = true };
}

static struct scaler_job job(int64_t id, const char *handle, const char *const *runs_on, size_t n, bool waiting)
{
        return (struct scaler_job){ .id = id, .handle = handle, .runs_on = runs_on, .n_runs_on = n,
                                    .waiting = waiting, .groups = 1, .forge = 0 };
}

struct plan {
        struct scaler_action a[64];
        struct scaler_pool_stats st[8];
        struct scaler_output out;
};

static void run(struct scaler_input *in, struct plan *p)
{
        static const struct scaler_provider prov = { 0 };
        if (!in->providers) {
                in->providers = &prov;
                in->n_providers = 1;
        }
        in->now_ms = in->now_ms ? in->now_ms : NOW;
        p->out = (struct scaler_output){ .actions = p->a, .cap = 64, .stats = p->st };
        assert_int_equal(scaler_plan(in, &p->out), 0);
}

static size_t count(const struct plan *p, enum scaler_action_kind k, int pool)
{
        size_t n = 0;
        for (size_t i = 0; i < p->out.n; i++)
                n += p->a[i].kind == k && (pool < 0 || p->a[i].pool == pool);
        return n;
}

static void runs_on_is_forgejo_subset_rule(void **state)
{
        static const char *const ab[] = { "a", "b" }, *const abc[] = { "a", "b", "c" },
                                 *const a[] = { "a" }, *const A[] = { "A" };
        assert_true(scaler_runs_on(ab, 2, abc, 3));
        assert_false(scaler_runs_on(ab, 2, a, 1));
        assert_false(scaler_runs_on(a, 1, A, 1));       /* case-sensitive */
        assert_false(scaler_runs_on(NULL, 0, abc, 3));  /* empty runs_on never matches */
        assert_false(scaler_runs_on(a, 1, NULL, 0));
}

static void one_launch_per_waiting_matching_job(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB_DOCKER, 2, 10) };
        struct scaler_job jobs[] = {
                job(1, "h1", L_UB, 1, true),
                job(2, "h2", L_GPU, 1, true),      /* no pool matches */
                job(3, "h3", L_UB, 1, false),      /* running elsewhere */
                job(4, "h4", L_UB_DOCKER, 2, true),
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 4 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 2);
        assert_int_equal(p.a[0].job, 0); /* oldest first */
        assert_int_equal(p.a[1].job, 3);
        assert_int_equal(p.st[0].waiting, 2);
        assert_int_equal(p.st[0].desired, 2);
}

static void served_jobs_are_not_launched_again(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true) };
        jobs[0].served = true;
        struct scaler_inst insts[] = { { .pool = 0, .state = STORE_WAITING, .handle = "h1",
                                         .job_state = SCALER_JOB_WAITING, .created_ms = NOW } };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 1,
                                   .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.out.n, 0);
        assert_int_equal(p.st[0].idle, 1);
}

static void first_matching_pool_with_room_in_config_order(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 2), pool(0, L_UB_DOCKER, 2, 10) };
        struct scaler_job jobs[] = {
                job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true),
                job(3, "h3", L_UB, 1, true), job(4, "h4", L_UB_DOCKER, 2, true),
        };
        struct scaler_input in = { .pools = pools, .n_pools = 2, .jobs = jobs, .n_jobs = 4 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 2);   /* pool 0 full at 2 */
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 1), 2);   /* job 3 overflows, job 4 only fits pool 1 */
        assert_int_equal(p.st[0].waiting, 2);
        assert_int_equal(p.st[1].waiting, 2);
}

static void max_runners_counts_live_instances(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 2) };
        struct scaler_job jobs[] = { job(5, "h5", L_UB, 1, true), job(6, "h6", L_UB, 1, true) };
        struct scaler_inst insts[] = { { .pool = 0, .state = STORE_RUNNING, .handle = "h1",
                                         .job_state = SCALER_JOB_RUNNING, .created_ms = NOW } };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 2,
                                   .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 1);
        assert_int_equal(p.st[0].unserved, 1);
        assert_int_equal(p.st[0].busy, 1);
        assert_int_equal(p.st[0].desired, 2);
}

static void provider_max_instances_caps_across_pools(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10), pool(0, L_GPU, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_GPU, 1, true),
                                     job(3, "h3", L_UB, 1, true) };
        struct scaler_provider prov = { .max_instances = 2 };
        struct scaler_input in = { .pools = pools, .n_pools = 2, .jobs = jobs, .n_jobs = 3,
                                   .providers = &prov, .n_providers = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, -1), 2);
}

static void pool_only_takes_jobs_from_its_own_listing(void **state)
{
        struct scaler_pool pools[] = { pool(1, L_UB, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true) }; /* seen by group 0 only */
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.out.n, 0);
        assert_int_equal(p.st[0].waiting, 0);
}

static void bootstrap_timeout_stops_unclaimed(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .handle = "h1", .job_state = SCALER_JOB_WAITING,
                  .created_ms = NOW - 600000 },
                { .pool = 0, .state = STORE_RUNNING, .handle = "h2", .job_state = SCALER_JOB_RUNNING,
                  .created_ms = NOW - 900000 },   /* claimed: never timed out */
                { .pool = 0, .state = STORE_STARTING, .handle = "h3", .created_ms = NOW - 599999 },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 3 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.out.n, 1);
        assert_int_equal(p.a[0].kind, SCALER_STOP);
        assert_int_equal(p.a[0].inst, 0);
        assert_int_equal(p.a[0].reason, SCALER_R_BOOTSTRAP_TIMEOUT);
}

static void verify_only_on_fresh_demand(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .handle = "h1", .job_state = SCALER_JOB_RUNNING, .created_ms = NOW },
                { .pool = 0, .state = STORE_WAITING, .handle = "h2", .job_state = SCALER_JOB_GONE, .created_ms = NOW },
                { .pool = 0, .state = STORE_WAITING, .handle = "h3", .job_state = SCALER_JOB_WAITING, .created_ms = NOW },
                { .pool = 0, .state = STORE_WAITING, .handle = "h4", .job_state = SCALER_JOB_GONE, .created_ms = NOW,
                  .verify_inflight = true },
                { .pool = 0, .state = STORE_WAITING, .handle = "h5", .job_state = SCALER_JOB_GONE, .created_ms = NOW,
                  .verify_after_ms = NOW + 1 },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 5 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_VERIFY, 0), 2);
        assert_int_equal(p.a[0].inst, 0);
        assert_int_equal(p.a[1].inst, 1);

        /* Forge unreachable: no verification, no stops, no launches. */
        pools[0].demand_fresh = false;
        run(&in, &p);
        assert_int_equal(p.out.n, 0);
}

static void warm_pool_kept_at_min_idle(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        pools[0].min_idle = 2;
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .idle_since_ms = NOW },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_WARM, 0), 1);
        assert_int_equal(p.st[0].desired, 2);
}

static void idle_warm_instance_takes_a_job_and_is_replaced(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        pools[0].min_idle = 1;
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true) };
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .idle_since_ms = NOW },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 2,
                                   .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 1); /* job 2 only */
        assert_int_equal(p.a[0].job, 1);
        assert_int_equal(count(&p, SCALER_LAUNCH_WARM, 0), 1); /* replacement */
}

static void warm_claims_write_off_stale_waiting_jobs(void **state)
{
        /* A warm instance took a job after the listing was asked: the
         * listing still shows that job waiting. */
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        pools[0].min_idle = 2;
        pools[0].warm_claims = 1;
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true) };
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .idle_since_ms = NOW },
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .idle_since_ms = NOW },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 1,
                                   .insts = insts, .n_insts = 2 };
        struct plan p;
        run(&in, &p);
        /* Neither a replacement for an idle instance expected to take it,
         * nor a runner for the job. */
        assert_int_equal(p.out.n, 0);
        assert_int_equal(p.st[0].waiting, 0);

        /* Without the note the same input replaces the idle instance that
         * is expected to take the job. */
        pools[0].warm_claims = 0;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_WARM, 0), 1);
        assert_int_equal(p.st[0].waiting, 1);

        /* No idle warm instance: the oldest waiting job is written off, the
         * next one gets its runner. */
        struct scaler_job two[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true) };
        pools[0].min_idle = 0;
        pools[0].warm_claims = 1;
        struct scaler_input in2 = { .pools = pools, .n_pools = 1, .jobs = two, .n_jobs = 2 };
        run(&in2, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 1);
        assert_int_equal(p.a[0].job, 1); /* index 1: job 2 */
        assert_int_equal(p.st[0].waiting, 1);
}

static void warm_above_min_idle_retired_after_idle_timeout(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        pools[0].min_idle = 1;
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = 1,
                  .idle_since_ms = NOW - 300000 },
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = 1,
                  .idle_since_ms = NOW - 300000 },
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = 1,
                  .idle_since_ms = NOW - 10 },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 3 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_STOP, 0), 2);
        assert_int_equal(p.a[0].reason, SCALER_R_IDLE_TIMEOUT);
        assert_int_equal(count(&p, SCALER_LAUNCH_WARM, 0), 0);
}

static void unexplained_running_job_triggers_warm_verify(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        pools[0].min_idle = 1;
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, false) };
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .idle_since_ms = NOW },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 1,
                                   .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_VERIFY, 0), 1);
        jobs[0].served = true; /* our handle instance runs it: nothing to check */
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_VERIFY, 0), 0);
}

static bool deny_h1(void *ud, const char *h)
{
        return strcmp(h, "h1") != 0;
}

static void handle_backoff_holds_launch(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true) };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 2,
                                   .handle_allowed = deny_h1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, 0), 1);
        assert_int_equal(p.a[0].job, 1);
}

static void observe_only_pool_exports_demand_and_launches_nothing(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 0) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true),
                                     job(3, "h3", L_UB, 1, true) };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 3 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.out.n, 0);
        assert_int_equal(p.st[0].waiting, 3);
        assert_int_equal(p.st[0].desired, 3);
}

static void action_buffer_overflow_is_reported(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 100) };
        struct scaler_job jobs[70];
        for (int i = 0; i < 70; i++)
                jobs[i] = job(i + 1, "h", L_UB, 1, true);
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 70 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.out.n, 64);
        assert_true(p.out.truncated);
}

/* A listing that failed keeps its jobs as the last known demand: they
 * count in the figures (KEDA must not see 0) but nothing is launched for
 * them, and they never make a warm instance look busy. */
static void stale_jobs_count_as_demand_and_launch_nothing(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_job jobs[] = {
                job(1, "h1", L_UB, 1, true),
                job(2, "h2", L_UB, 1, true),
                job(3, "h3", L_UB, 1, false),
        };
        for (size_t i = 0; i < 3; i++)
                jobs[i].stale = true;
        pools[0].demand_fresh = false;
        pools[0].min_idle = 1;
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW - 1000,
                  .state_ms = NOW - 1000, .idle_since_ms = NOW - 1000 },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 3,
                                   .insts = insts, .n_insts = 1 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, -1), 0);
        assert_int_equal(count(&p, SCALER_VERIFY, -1), 0);
        assert_int_equal(p.st[0].waiting, 2);
        assert_int_equal(p.st[0].unserved, 0);
        assert_int_equal(p.st[0].desired, 3);   /* 2 waiting + min_idle 1 */
}

/* A pool removed by a reload launches nothing; its warm instances go at
 * once, its job instances are left to finish (or time out). */
static void retired_pool_launches_nothing_and_retires_warm(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true) };
        pools[0].enabled = false;
        pools[0].retired = true;
        pools[0].min_idle = 2;
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW - 1000,
                  .state_ms = NOW - 1000, .idle_since_ms = NOW - 1000 },
                { .pool = 0, .state = STORE_RUNNING, .warm = true, .handle = "", .created_ms = NOW - 1000,
                  .state_ms = NOW - 1000 },
                { .pool = 0, .state = STORE_WAITING, .warm = false, .handle = "h0", .created_ms = NOW - 1000,
                  .state_ms = NOW - 1000, .job_state = SCALER_JOB_WAITING },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 1,
                                   .insts = insts, .n_insts = 3 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(count(&p, SCALER_LAUNCH_JOB, -1), 0);
        assert_int_equal(count(&p, SCALER_LAUNCH_WARM, -1), 0);
        assert_int_equal(count(&p, SCALER_STOP, -1), 1);
        assert_int_equal(p.a[0].inst, 0);
        assert_int_equal(p.a[0].reason, SCALER_R_POOL_REMOVED);
}

/* Desired counts every instance that holds a job, not only those seen
 * busy: between a launch and its claim the figure must not drop. */
static void desired_counts_job_instances_before_their_claim(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_job jobs[] = { job(1, "h1", L_UB, 1, true), job(2, "h2", L_UB, 1, true) };
        jobs[0].served = jobs[1].served = true;
        struct scaler_inst insts[] = {
                { .pool = 0, .state = STORE_REGISTERING, .handle = "h1", .created_ms = NOW, .state_ms = NOW },
                { .pool = 0, .state = STORE_WAITING, .handle = "h2", .created_ms = NOW, .state_ms = NOW,
                  .job_state = SCALER_JOB_WAITING },
                { .pool = 0, .state = STORE_WAITING, .warm = true, .handle = "", .created_ms = NOW,
                  .state_ms = NOW, .idle_since_ms = NOW },
        };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .jobs = jobs, .n_jobs = 2,
                                   .insts = insts, .n_insts = 3 };
        struct plan p;
        run(&in, &p);
        assert_int_equal(p.st[0].waiting, 0);
        assert_int_equal(p.st[0].desired, 2);   /* the idle warm one is not wanted: min_idle 0 */
}

static struct scaler_inst waiting_job_inst(enum scaler_job_state js)
{
        return (struct scaler_inst){ .pool = 0, .state = STORE_WAITING, .handle = "h1", .job_state = js,
                                     .created_ms = NOW - 20000, .state_ms = NOW - 20000,
                                     .verify_after_ms = NOW + 1000, .worker_alive = true };
}

static const struct scaler_action *only_stop(const struct plan *p)
{
        for (size_t i = 0; i < p->out.n; i++)
                if (p->a[i].kind == SCALER_STOP)
                        return &p->a[i];
        return NULL;
}

/* The reason of the plan's stop; SCALER_R_NONE when it has none. */
static enum scaler_reason stop_reason(const struct plan *p)
{
        const struct scaler_action *a = only_stop(p);

        return a ? a->reason : SCALER_R_NONE;
}

/* A job gone from the listings and a runner found idle by a check asked
 * after that: the instance has nothing to do. A check asked before the job
 * went proves nothing. */
static void job_gone_and_runner_idle_stops(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_inst insts[] = { waiting_job_inst(SCALER_JOB_GONE) };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 1 };
        struct plan p;

        insts[0].job_gone_since_ms = NOW - 3000;
        insts[0].idle_checked_ms = NOW - 3001;
        run(&in, &p);
        assert_null(only_stop(&p));
        insts[0].idle_checked_ms = NOW - 3000;
        run(&in, &p);
        assert_int_equal(stop_reason(&p), SCALER_R_JOB_GONE);
        /* Not on a listing that is no longer fresh. */
        pools[0].demand_fresh = false;
        run(&in, &p);
        assert_null(only_stop(&p));
}

/* Another runner took the job: the job is listed running and ours was
 * still idle a claim grace later. */
static void job_taken_after_claim_grace_stops(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_inst insts[] = { waiting_job_inst(SCALER_JOB_RUNNING) };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 1 };
        struct plan p;

        insts[0].job_running_since_ms = NOW - 16000;
        insts[0].idle_checked_ms = NOW - 16000 + SCALER_CLAIM_GRACE_MS - 1;
        run(&in, &p);
        assert_null(only_stop(&p));
        insts[0].idle_checked_ms = NOW - 16000 + SCALER_CLAIM_GRACE_MS;
        run(&in, &p);
        assert_int_equal(stop_reason(&p), SCALER_R_JOB_TAKEN);
        /* A warm instance holds no job of its own. */
        insts[0].warm = true;
        run(&in, &p);
        assert_null(only_stop(&p));
}

/* A worker whose runner was deleted (its task ended) should exit; one still
 * running a minute later is stopped, whatever its state. */
static void worker_outliving_its_runner_stops(void **state)
{
        struct scaler_pool pools[] = { pool(0, L_UB, 1, 10) };
        struct scaler_inst insts[] = { waiting_job_inst(SCALER_JOB_UNKNOWN) };
        struct scaler_input in = { .pools = pools, .n_pools = 1, .insts = insts, .n_insts = 1 };
        struct plan p;

        insts[0].state = STORE_RUNNING;
        insts[0].runner_gone_since_ms = NOW - SCALER_RUNNER_GONE_EXIT_MS + 1;
        run(&in, &p);
        assert_null(only_stop(&p));
        insts[0].runner_gone_since_ms = NOW - SCALER_RUNNER_GONE_EXIT_MS;
        run(&in, &p);
        assert_int_equal(stop_reason(&p), SCALER_R_RUNNER_GONE);
        insts[0].worker_alive = false;   /* it exited: nothing to stop */
        run(&in, &p);
        assert_null(only_stop(&p));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(runs_on_is_forgejo_subset_rule),
                cmocka_unit_test(one_launch_per_waiting_matching_job),
                cmocka_unit_test(served_jobs_are_not_launched_again),
                cmocka_unit_test(first_matching_pool_with_room_in_config_order),
                cmocka_unit_test(max_runners_counts_live_instances),
                cmocka_unit_test(provider_max_instances_caps_across_pools),
                cmocka_unit_test(pool_only_takes_jobs_from_its_own_listing),
                cmocka_unit_test(bootstrap_timeout_stops_unclaimed),
                cmocka_unit_test(verify_only_on_fresh_demand),
                cmocka_unit_test(warm_pool_kept_at_min_idle),
                cmocka_unit_test(idle_warm_instance_takes_a_job_and_is_replaced),
                cmocka_unit_test(warm_claims_write_off_stale_waiting_jobs),
                cmocka_unit_test(warm_above_min_idle_retired_after_idle_timeout),
                cmocka_unit_test(unexplained_running_job_triggers_warm_verify),
                cmocka_unit_test(handle_backoff_holds_launch),
                cmocka_unit_test(observe_only_pool_exports_demand_and_launches_nothing),
                cmocka_unit_test(action_buffer_overflow_is_reported),
                cmocka_unit_test(stale_jobs_count_as_demand_and_launch_nothing),
                cmocka_unit_test(retired_pool_launches_nothing_and_retires_warm),
                cmocka_unit_test(desired_counts_job_instances_before_their_claim),
                cmocka_unit_test(job_gone_and_runner_idle_stops),
                cmocka_unit_test(job_taken_after_claim_grace_stops),
                cmocka_unit_test(worker_outliving_its_runner_stops),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
