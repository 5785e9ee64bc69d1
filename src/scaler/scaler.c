/* scaler.c: see scaler.h. Pure: no I/O, no allocation, no clock. */
#include "scaler/scaler.h"

#include <string.h>

const char *scaler_reason_name(enum scaler_reason r)
{
        switch (r) {
        case SCALER_R_BOOTSTRAP_TIMEOUT: return "bootstrap_timeout";
        case SCALER_R_IDLE_TIMEOUT:      return "idle_timeout";
        case SCALER_R_POOL_DISABLED:     return "pool_disabled";
        case SCALER_R_POOL_REMOVED:      return "pool_removed";
        case SCALER_R_JOB_GONE:          return "job_gone";
        case SCALER_R_JOB_TAKEN:         return "job_taken_by_other_runner";
        case SCALER_R_RUNNER_GONE:       return "runner_gone";
        case SCALER_R_NONE:              break;
        }
        return "none";
}

bool scaler_runs_on(const char *const *runs_on, size_t n_runs_on,
                    const char *const *labels, size_t n_labels)
{
        if (n_runs_on == 0 || n_labels == 0)
                return false;
        for (size_t i = 0; i < n_runs_on; i++) {
                bool found = false;
                for (size_t k = 0; k < n_labels && !found; k++)
                        found = strcmp(runs_on[i], labels[k]) == 0;
                if (!found)
                        return false;
        }
        return true;
}

static void emit(struct scaler_output *out, struct scaler_action a)
{
        if (out->n == out->cap) {
                out->truncated = true;
                return;
        }
        out->actions[out->n++] = a;
}

/* Per-pool and per-provider bookkeeping while planning. Bounded so the
 * planner never allocates; the config layer caps pools and providers. */
#define MAXP 256

struct tally {
        int live[MAXP];           /* live instances per pool (room) */
        int prov_live[MAXP];      /* live instances per provider */
        int warm_idle[MAXP];
        int warm_starting[MAXP];
        int left_for_warm[MAXP];  /* jobs we expect idle warm instances to take */
        int unexplained[MAXP];    /* running jobs not held by our handle instances */
        int warm_claims[MAXP];    /* stale waiting jobs still to write off */
        int held[MAXP];           /* instances holding a job: every live job
                                   * instance, whatever its state, and busy
                                   * warm ones */
};

static bool has_room(const struct scaler_input *in, const struct tally *t, int p)
{
        const struct scaler_pool *pl = &in->pools[p];
        int prov = pl->provider;

        if (pl->hold || t->live[p] >= pl->max_runners)
                return false;
        if (prov >= 0 && (size_t)prov < in->n_providers &&
            in->providers[prov].max_instances > 0 &&
            t->prov_live[prov] >= in->providers[prov].max_instances)
                return false;
        return true;
}

static bool pool_sees(const struct scaler_pool *pl, const struct scaler_job *j)
{
        return pl->forge == j->forge && pl->group >= 0 && pl->group < 64 &&
               (j->groups & (UINT64_C(1) << pl->group));
}

/* Whether what the engine saw of an instance's runner and job means the
 * instance has nothing left to do. Each rule needs an observation made
 * after the fact it rests on: a runner seen idle before its job went away
 * proves nothing. */
static enum scaler_reason lost_purpose(const struct scaler_input *in, const struct scaler_pool *pl,
                                       const struct scaler_inst *s)
{
        if (s->runner_gone_since_ms && s->worker_alive &&
            in->now_ms - s->runner_gone_since_ms >= SCALER_RUNNER_GONE_EXIT_MS)
                return SCALER_R_RUNNER_GONE;
        if (s->warm || s->state != STORE_WAITING || !s->idle_checked_ms || !pl->demand_fresh)
                return SCALER_R_NONE;
        if (s->job_state == SCALER_JOB_GONE && s->job_gone_since_ms &&
            s->idle_checked_ms >= s->job_gone_since_ms)
                return SCALER_R_JOB_GONE;
        if (s->job_state == SCALER_JOB_RUNNING && s->job_running_since_ms &&
            s->idle_checked_ms >= s->job_running_since_ms + SCALER_CLAIM_GRACE_MS)
                return SCALER_R_JOB_TAKEN;
        return SCALER_R_NONE;
}

int scaler_plan(const struct scaler_input *in, struct scaler_output *out)
{
        static struct tally t; /* single-threaded daemon; keeps the stack small */
        size_t np = in->n_pools < MAXP ? in->n_pools : MAXP;

        memset(&t, 0, sizeof(t));
        out->n = 0;
        out->truncated = false;
        if (out->stats)
                memset(out->stats, 0, np * sizeof(*out->stats));
        for (size_t p = 0; p < np; p++)
                t.warm_claims[p] = in->pools[p].warm_claims;

        /* 1. Count what runs, and stop what has outlived its purpose. */
        for (size_t i = 0; i < in->n_insts; i++) {
                const struct scaler_inst *s = &in->insts[i];
                if (s->pool < 0 || (size_t)s->pool >= np || !store_state_live(s->state))
                        continue;
                const struct scaler_pool *pl = &in->pools[s->pool];
                struct scaler_pool_stats *st = out->stats ? &out->stats[s->pool] : NULL;

                t.live[s->pool]++;
                if (pl->provider >= 0 && pl->provider < MAXP)
                        t.prov_live[pl->provider]++;
                if (st) {
                        switch (s->state) {
                        case STORE_REGISTERING:
                        case STORE_STARTING: st->starting++; break;
                        case STORE_WAITING:  st->idle++; break;
                        case STORE_RUNNING:  st->busy++; st->running++; break;
                        case STORE_STOPPING: st->stopping++; break;
                        default: break;
                        }
                }
                if (s->stop_requested || s->state == STORE_STOPPING)
                        continue;
                if (!s->warm || s->state == STORE_RUNNING)
                        t.held[s->pool]++;

                /* A warm instance has no job to finish. */
                if (pl->retired && s->warm && s->state != STORE_RUNNING) {
                        emit(out, (struct scaler_action){ .kind = SCALER_STOP, .pool = s->pool,
                                                          .inst = i, .reason = SCALER_R_POOL_REMOVED });
                        continue;
                }
                bool unclaimed = s->state == STORE_REGISTERING ||
                                 s->state == STORE_STARTING || s->state == STORE_WAITING;
                if (!s->warm && unclaimed &&
                    in->now_ms - s->created_ms >= pl->bootstrap_timeout_ms) {
                        emit(out, (struct scaler_action){ .kind = SCALER_STOP, .pool = s->pool,
                                                          .inst = i, .reason = SCALER_R_BOOTSTRAP_TIMEOUT });
                        continue;
                }
                if (s->warm && (s->state == STORE_REGISTERING || s->state == STORE_STARTING) &&
                    in->now_ms - s->created_ms >= pl->bootstrap_timeout_ms) {
                        emit(out, (struct scaler_action){ .kind = SCALER_STOP, .pool = s->pool,
                                                          .inst = i, .reason = SCALER_R_BOOTSTRAP_TIMEOUT });
                        continue;
                }
                enum scaler_reason why = lost_purpose(in, pl, s);
                if (why != SCALER_R_NONE) {
                        emit(out, (struct scaler_action){ .kind = SCALER_STOP, .pool = s->pool,
                                                          .inst = i, .reason = why });
                        continue;
                }
                if (s->warm) {
                        if (s->state == STORE_WAITING)
                                t.warm_idle[s->pool]++;
                        else if (s->state == STORE_REGISTERING || s->state == STORE_STARTING)
                                t.warm_starting[s->pool]++;
                }
                /* A handle instance whose job is claimed or gone must find
                 * out whether its own runner did it: ask the forge. Only on a
                 * fresh listing, so an unreachable forge changes nothing. */
                if (!s->warm && s->state == STORE_WAITING && pl->demand_fresh &&
                    (s->job_state == SCALER_JOB_RUNNING || s->job_state == SCALER_JOB_GONE) &&
                    !s->verify_inflight && in->now_ms >= s->verify_after_ms)
                        emit(out, (struct scaler_action){ .kind = SCALER_VERIFY, .pool = s->pool, .inst = i });
        }

        /* 2. Running jobs nobody of ours holds by handle: a warm instance may
         * have taken one (or a foreign runner did). */
        for (size_t j = 0; j < in->n_jobs; j++) {
                const struct scaler_job *jb = &in->jobs[j];
                if (jb->waiting || jb->served || jb->stale)
                        continue;
                for (size_t p = 0; p < np; p++) {
                        const struct scaler_pool *pl = &in->pools[p];
                        if (pool_sees(pl, jb) &&
                            scaler_runs_on(jb->runs_on, jb->n_runs_on, pl->labels, pl->n_labels)) {
                                t.unexplained[p]++;
                                break;
                        }
                }
        }
        for (size_t i = 0; i < in->n_insts; i++) {
                const struct scaler_inst *s = &in->insts[i];
                if (s->pool < 0 || (size_t)s->pool >= np || !s->warm || s->state != STORE_WAITING ||
                    s->stop_requested || s->verify_inflight || in->now_ms < s->verify_after_ms)
                        continue;
                if (t.unexplained[s->pool] > 0 && in->pools[s->pool].demand_fresh)
                        emit(out, (struct scaler_action){ .kind = SCALER_VERIFY, .pool = s->pool, .inst = i });
        }

        /* 3. Assign waiting jobs, oldest first, to the first matching pool
         * in config order that has room. */
        for (size_t j = 0; j < in->n_jobs; j++) {
                const struct scaler_job *jb = &in->jobs[j];
                int first_match = -1, chosen = -1;
                bool done = false;

                if (!jb->waiting || jb->served)
                        continue;
                for (size_t p = 0; p < np; p++) {
                        const struct scaler_pool *pl = &in->pools[p];
                        if (!pl->enabled || !pool_sees(pl, jb) ||
                            !scaler_runs_on(jb->runs_on, jb->n_runs_on, pl->labels, pl->n_labels))
                                continue;
                        if (first_match < 0)
                                first_match = (int)p;
                        /* What the forge said last is still the best
                         * estimate of demand (an exporter reading 0 during
                         * an outage would scale KEDA to zero), but nothing
                         * is launched for a job that may be gone. */
                        if (jb->stale) {
                                chosen = (int)p;
                                break;
                        }
                        /* The listing predates a warm instance taking a
                         * job of this pool: count one waiting job as that
                         * one. Otherwise it would hold back an idle warm
                         * instance (and launch its "replacement") or get a
                         * runner of its own, both for a job already taken.
                         * A wrong pick only delays a real job to the next
                         * listing. */
                        if (t.warm_claims[p] > 0) {
                                t.warm_claims[p]--;
                                chosen = (int)p;
                                done = true;
                                break;
                        }
                        /* An idle warm instance will pick this job up by
                         * itself; launching another runner would race it. */
                        if (t.left_for_warm[p] < t.warm_idle[p]) {
                                t.left_for_warm[p]++;
                                chosen = (int)p;
                                break;
                        }
                        if (has_room(in, &t, (int)p)) {
                                chosen = (int)p;
                                if (!in->handle_allowed || in->handle_allowed(in->ud, jb->handle)) {
                                        emit(out, (struct scaler_action){ .kind = SCALER_LAUNCH_JOB,
                                                                          .pool = chosen, .job = j });
                                        t.live[p]++;
                                        if (pl->provider >= 0 && pl->provider < MAXP)
                                                t.prov_live[pl->provider]++;
                                }
                                break;
                        }
                }
                if (first_match < 0 || done)
                        continue;  /* unmatched (never touched) or over */
                if (out->stats) {
                        int p = chosen >= 0 ? chosen : first_match;
                        out->stats[p].waiting++;
                        if (chosen < 0)
                                out->stats[p].unserved++;
                }
        }

        /* 4. Warm pools: keep min_idle ready, replace the ones expected to
         * take a job now, and retire idle ones above min_idle. */
        for (size_t p = 0; p < np; p++) {
                const struct scaler_pool *pl = &in->pools[p];
                if (!pl->enabled)
                        continue;
                int ready = t.warm_idle[p] + t.warm_starting[p] - t.left_for_warm[p];
                for (int k = ready; k < pl->min_idle && has_room(in, &t, (int)p); k++) {
                        emit(out, (struct scaler_action){ .kind = SCALER_LAUNCH_WARM, .pool = (int)p });
                        t.live[p]++;
                        if (pl->provider >= 0 && pl->provider < MAXP)
                                t.prov_live[pl->provider]++;
                }
                int surplus = t.warm_idle[p] - t.left_for_warm[p] - pl->min_idle;
                for (size_t i = 0; i < in->n_insts && surplus > 0; i++) {
                        const struct scaler_inst *s = &in->insts[i];
                        if (s->pool != (int)p || !s->warm || s->state != STORE_WAITING || s->stop_requested)
                                continue;
                        if (s->idle_since_ms && in->now_ms - s->idle_since_ms >= pl->idle_timeout_ms) {
                                emit(out, (struct scaler_action){ .kind = SCALER_STOP, .pool = (int)p,
                                                                  .inst = i, .reason = SCALER_R_IDLE_TIMEOUT });
                                surplus--;
                        }
                }
                if (out->stats) {
                        struct scaler_pool_stats *st = &out->stats[p];
                        /* A job instance still registering or not yet
                         * seen claiming holds its job as much as a busy
                         * one: counting only busy ones made the figure
                         * drop to 0 between a launch and its claim. */
                        int d = t.held[p] + st->waiting + pl->min_idle;
                        /* max_runners 0: observe-only, demand uncapped. */
                        st->desired = pl->max_runners > 0 && d > pl->max_runners ? pl->max_runners : d;
                        int room = pl->max_runners - t.live[p] - st->unserved;
                        if (pl->provider >= 0 && pl->provider < MAXP && (size_t)pl->provider < in->n_providers &&
                            in->providers[pl->provider].max_instances > 0) {
                                int prov = in->providers[pl->provider].max_instances - t.prov_live[pl->provider];
                                if (prov < room)
                                        room = prov;
                        }
                        st->room = !pl->enabled || pl->retired || pl->hold || room < 0 ? 0 : room;
                }
        }
        return 0;
}
