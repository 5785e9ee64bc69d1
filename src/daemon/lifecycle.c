/* lifecycle.c: see lifecycle.h. Two halves: apply() turns an event into
 * facts, plan() turns facts into effects. plan() never looks at which
 * event came (but for the identity's token, which lives only for the
 * ACQUIRED event), so whatever was held back by a failed save or a
 * backoff comes out again at the next event or RETRY. */
#include "daemon/lifecycle.h"

#include <stdio.h>
#include <string.h>

#include "daemon/outcome.h"

/* Effects of one step, and whether the row is already queued for saving. */
struct plan_ctx {
        struct lifecycle_effects *out;
        bool save_queued;
};

static void emit(struct plan_ctx *c, enum lifecycle_effect e)
{
        /* Bounded by construction: a step yields at most one of each. */
        if (c->out->n < LIFECYCLE_EFFECTS_MAX)
                c->out->v[c->out->n++] = e;
}

static void queue_save(struct lifecycle *lc, struct plan_ctx *c)
{
        lc->held.op = lc->op;
        lc->held.worker = lc->worker;
        lc->held.finished = lc->finished;
        emit(c, LIFECYCLE_DO_SAVE);
        c->save_queued = true;
}

/* An effect outside the process: the row that announces it goes first. */
static void act(struct lifecycle *lc, struct plan_ctx *c, enum lifecycle_effect e)
{
        if (lc->unsaved && !c->save_queued)
                queue_save(lc, c);
        emit(c, e);
}

static void set_state(struct lifecycle *lc, enum store_state st, int64_t wall)
{
        if (lc->row->state != st) {
                lc->row->state = st;
                lc->row->state_ms = wall;
                lc->unsaved = true;
        }
}

static void set_reason(struct lifecycle *lc, const char *reason)
{
        if (!lc->row->reason[0] && reason && reason[0]) {
                snprintf(lc->row->reason, sizeof(lc->row->reason), "%s", reason);
                lc->unsaved = true;
        }
}

static void set_ref(struct lifecycle *lc, const char *ref)
{
        if (ref && strcmp(ref, lc->row->provider_ref) != 0) {
                snprintf(lc->row->provider_ref, sizeof(lc->row->provider_ref), "%s", ref);
                lc->unsaved = true;
        }
}

static void fail(struct lifecycle *lc, const char *reason, struct plan_ctx *c, bool backoff)
{
        set_reason(lc, reason);
        lc->final = STORE_FAILED;
        if (backoff)
                emit(c, LIFECYCLE_DO_BACKOFF);
}

static struct outcome_facts facts(const struct lifecycle *lc)
{
        return (struct outcome_facts){
                .state = lc->row->state, .stop_requested = lc->stop_requested,
                .claimed = lc->row->claimed_ms != 0,
                /* A worker that never ran says nothing about the job. */
                .exited = lc->worker == LIFECYCLE_WORKER_GONE && lc->ran,
                .exit = lc->exit,
        };
}

static void apply_outcome(struct lifecycle *lc, struct outcome o, int64_t wall, struct plan_ctx *c)
{
        if (o.reason)
                set_reason(lc, o.reason);
        if (o.final)
                lc->final = o.final;
        if (o.claimed && !lc->row->claimed_ms) {
                lc->row->claimed_ms = wall;
                lc->unsaved = true;
        }
        if (o.backoff)
                emit(c, LIFECYCLE_DO_BACKOFF);
        if (o.exited_unclaimed)
                emit(c, LIFECYCLE_DO_WARN_UNCLAIMED);
}

/* asked: when the check that saw the claim was asked; the claim came
 * before that. */
static void claim(struct lifecycle *lc, const struct lifecycle_event *ev, int64_t asked, struct plan_ctx *c)
{
        if (lc->row->state != STORE_WAITING && lc->row->state != STORE_STARTING)
                return;
        set_state(lc, STORE_RUNNING, ev->wall);
        lc->row->claimed_ms = ev->wall;
        lc->claimed_mono = asked;
        lc->idle_since = 0;
        emit(c, LIFECYCLE_DO_CLAIMED);
}

/* ---- events ---------------------------------------------------------------- */

static void resume(struct lifecycle *lc, const struct lifecycle_event *ev)
{
        struct store_instance *row = lc->row;

        if (!store_state_live(row->state)) {
                /* A terminal row whose registration was never confirmed
                 * gone: only the release is left. */
                lc->final = row->state;
                lc->worker = LIFECYCLE_WORKER_GONE;
                return;
        }
        if (row->state == STORE_REGISTERING) {
                /* The POST may or may not have reached the forge, and no id
                 * was saved: the orphan sweep finds it by name. */
                set_reason(lc, "lost_at_restart");
                lc->final = STORE_FAILED;
                row->runner_deleted = true;
                lc->unsaved = true;
                lc->worker = LIFECYCLE_WORKER_GONE;
                return;
        }
        lc->ran = true;
        if (ev->adopted) {
                set_ref(lc, ev->ref);
                lc->worker = LIFECYCLE_WORKER_LIVE;
                /* Its STARTED was not saved before the crash. */
                if (row->state == STORE_STARTING)
                        set_state(lc, STORE_WAITING, ev->wall);
                if (row->warm && row->state == STORE_WAITING)
                        lc->idle_since = ev->wall;
                if (ev->pool_gone || row->state == STORE_STOPPING) {
                        lc->stop_requested = true;
                        set_reason(lc, ev->pool_gone ? "pool_removed" : "resumed_stop");
                        lc->final = STORE_DONE;
                        set_state(lc, STORE_STOPPING, ev->wall);
                }
                return;
        }
        /* The worker is gone (or was never recorded). One that ran its job
         * left no registration behind: the release tells (RELEASED). */
        lc->worker = LIFECYCLE_WORKER_GONE;
        if (row->exit_code != -1) {
                row->exit_code = -1;
                lc->unsaved = true;
        }
        if (row->state == STORE_STOPPING) {
                lc->stop_requested = true;
                lc->final = STORE_DONE;
        } else if (row->state == STORE_RUNNING) {
                set_reason(lc, "completed");
                lc->final = STORE_DONE;
        } else {
                if (!row->provider_ref[0])
                        set_reason(lc, "lost_at_restart");
                lc->final = STORE_FAILED;
        }
}

static void checked(struct lifecycle *lc, const struct lifecycle_event *ev, struct plan_ctx *c)
{
        lc->op = LIFECYCLE_OP_NONE;
        switch (ev->runner) {
        case LIFECYCLE_RUNNER_UNKNOWN:
                lc->verify_after = ev->mono + ev->check_interval;
                break;
        case LIFECYCLE_RUNNER_GONE:
                /* Gone with its task: ours ran (or was cancelled mid-run).
                 * The worker exits by itself. */
                if (!lc->row->runner_deleted) {
                        lc->row->runner_deleted = true;
                        lc->unsaved = true;
                }
                if (!lc->runner_gone_since)
                        lc->runner_gone_since = ev->mono;
                claim(lc, ev, lc->verify_asked, c);
                break;
        case LIFECYCLE_RUNNER_ACTIVE:
                claim(lc, ev, lc->verify_asked, c);
                break;
        case LIFECYCLE_RUNNER_IDLE:
                if (lc->row->warm) {
                        lc->verify_after = ev->mono + ev->check_interval;
                        break;
                }
                /* Registered and idle: whether its job went elsewhere is
                 * the scaler's call, with the listings it has. */
                lc->idle_checked = lc->verify_asked;
                lc->verify_after = ev->mono + 2000;
                emit(c, LIFECYCLE_DO_PLAN);
                break;
        }
}

/* Returns false when the step ends without planning. */
static bool apply(struct lifecycle *lc, const struct lifecycle_event *ev, struct plan_ctx *c)
{
        struct store_instance *row = lc->row;

        switch (ev->type) {
        case LIFECYCLE_EV_LAUNCH:
        case LIFECYCLE_EV_RETRY:
                break;
        case LIFECYCLE_EV_RESUME:
                resume(lc, ev);
                break;
        case LIFECYCLE_EV_ACQUIRED:
                lc->op = LIFECYCLE_OP_NONE;
                row->runner_id = ev->runner_id;
                snprintf(row->runner_uuid, sizeof(row->runner_uuid), "%s", ev->runner_uuid ? ev->runner_uuid : "");
                lc->unsaved = true;
                if (!lc->stop_requested)
                        set_state(lc, STORE_STARTING, ev->wall);
                break;
        case LIFECYCLE_EV_ACQUIRE_FAILED:
                lc->op = LIFECYCLE_OP_NONE;
                fail(lc, "register_failed", c, true);
                /* Nothing of ours to release; an identity the forge made
                 * all the same is the orphan sweep's. */
                row->runner_deleted = true;
                lc->unsaved = true;
                lc->worker = LIFECYCLE_WORKER_GONE;
                break;
        case LIFECYCLE_EV_CREATED:
                set_ref(lc, ev->ref);
                lc->created = true;
                break;
        case LIFECYCLE_EV_STARTED:
                lc->worker = LIFECYCLE_WORKER_LIVE;
                lc->ran = true;
                set_ref(lc, ev->ref);
                if (row->state == STORE_STARTING) {
                        set_state(lc, STORE_WAITING, ev->wall);
                        if (row->warm)
                                lc->idle_since = ev->wall;
                }
                break;
        case LIFECYCLE_EV_START_FAILED:
                lc->worker = LIFECYCLE_WORKER_GONE;
                fail(lc, "start_failed", c, true);
                break;
        case LIFECYCLE_EV_EXITED:
                lc->worker = LIFECYCLE_WORKER_GONE;
                lc->ran = true;
                lc->exit = ev->exit;
                row->exit_code = outcome_exit_code(&ev->exit);
                lc->unsaved = true;
                if (!lc->stop_requested) {
                        struct outcome_facts f = facts(lc);
                        apply_outcome(lc, outcome_worker_exited(&f), ev->wall, c);
                }
                break;
        case LIFECYCLE_EV_STOP_FAILED:
                lc->worker = LIFECYCLE_WORKER_GONE;
                break;
        case LIFECYCLE_EV_CHECK:
                if (lc->op == LIFECYCLE_OP_NONE && row->runner_id != 0 && !row->runner_deleted &&
                    lc->worker != LIFECYCLE_WORKER_GONE) {
                        emit(c, LIFECYCLE_DO_CHECK);
                        lc->op = LIFECYCLE_OP_CHECK;
                        lc->verify_asked = ev->mono;
                }
                break;
        case LIFECYCLE_EV_CHECK_FAILED:
                lc->op = LIFECYCLE_OP_NONE;
                break;
        case LIFECYCLE_EV_CHECKED:
                checked(lc, ev, c);
                break;
        case LIFECYCLE_EV_STOP:
                if (lc->stop_requested)
                        break;
                lc->stop_requested = true;
                set_reason(lc, ev->reason);
                lc->final = ev->final ? ev->final : STORE_DONE;
                if (store_state_live(row->state))
                        set_state(lc, STORE_STOPPING, ev->wall);
                break;
        case LIFECYCLE_EV_RELEASED:
                lc->op = LIFECYCLE_OP_NONE;
                lc->release_failures = 0;
                row->runner_deleted = true;
                lc->unsaved = true;
                /* A row that had ended before a restart keeps its end. */
                if (store_state_live(row->state)) {
                        struct outcome_facts f = facts(lc);
                        apply_outcome(lc, outcome_runner_deleted(&f, ev->was_gone), ev->wall, c);
                }
                break;
        case LIFECYCLE_EV_RELEASE_FAILED: {
                lc->op = LIFECYCLE_OP_NONE;
                lc->release_failures++;
                int64_t delay = 1000;
                for (int i = 1; i < lc->release_failures && delay < 60000; i++)
                        delay *= 2;
                lc->release_after = ev->mono + (delay > 60000 ? 60000 : delay);
                break;
        }
        case LIFECYCLE_EV_RELEASE_IMPOSSIBLE:
                lc->op = LIFECYCLE_OP_NONE;
                row->runner_deleted = true;
                lc->unsaved = true;
                break;
        case LIFECYCLE_EV_SAVE_FAILED:
                /* Nothing after the save ran. */
                lc->op = lc->held.op;
                lc->worker = lc->held.worker;
                lc->finished = lc->held.finished;
                /* The identity's token lives only for the ACQUIRED event: a
                 * worker cannot start later, and one started now would run
                 * under a row a restart could not account for. Undo on the
                 * forge instead, once the row can say so. */
                if (row->state == STORE_STARTING && lc->worker == LIFECYCLE_WORKER_NONE && !lc->stop_requested) {
                        fail(lc, "store_failed", c, false);
                        lc->worker = LIFECYCLE_WORKER_GONE;
                }
                c->out->retry_ms = 1000;
                return false;
        }
        return true;
}

/* ---- plan ----------------------------------------------------------------- */

/* The worker is gone or will never run: release the identity once the row
 * says STOPPING, then end the row, then forget the instance. */
static void plan_end(struct lifecycle *lc, const struct lifecycle_event *ev, struct plan_ctx *c)
{
        struct store_instance *row = lc->row;

        if (lc->op == LIFECYCLE_OP_CHECK) {
                emit(c, LIFECYCLE_DO_CANCEL_CHECK);
                lc->op = LIFECYCLE_OP_NONE;
        }
        if (lc->op != LIFECYCLE_OP_NONE)
                return; /* its answer comes back here */
        if (store_state_live(row->state))
                set_state(lc, STORE_STOPPING, ev->wall);
        if (row->runner_id != 0 && !row->runner_deleted) {
                if (ev->mono < lc->release_after) {
                        c->out->retry_ms = lc->release_after - ev->mono;
                        return;
                }
                act(lc, c, LIFECYCLE_DO_RELEASE);
                lc->op = LIFECYCLE_OP_RELEASE;
                return;
        }
        if (!row->runner_deleted) {
                row->runner_deleted = true;
                lc->unsaved = true;
        }
        set_state(lc, lc->final == STORE_FAILED ? STORE_FAILED : STORE_DONE, ev->wall);
        act(lc, c, LIFECYCLE_DO_FINISH);
        lc->finished = true;
}

static void plan(struct lifecycle *lc, const struct lifecycle_event *ev, struct plan_ctx *c)
{
        struct store_instance *row = lc->row;

        if (lc->finished)
                return;
        if (lc->worker == LIFECYCLE_WORKER_NONE && lc->stop_requested && lc->op != LIFECYCLE_OP_ACQUIRE)
                lc->worker = LIFECYCLE_WORKER_GONE;
        if (lc->worker == LIFECYCLE_WORKER_GONE) {
                plan_end(lc, ev, c);
        } else if (lc->stop_requested) {
                /* Nothing is stopped before the row says STOPPING: a worker
                 * stopped under a row that still says RUNNING would be taken,
                 * after a restart, for one that finished its job. An
                 * acquire or a create in flight continues here when it
                 * answers. */
                /* A worker created but not started yet (a pod pending
                 * for a node or an image) is stopped too: STARTED may
                 * never come, and EXITED then says why. */
                if (lc->worker == LIFECYCLE_WORKER_LIVE ||
                    (lc->worker == LIFECYCLE_WORKER_STARTING && lc->created)) {
                        act(lc, c, LIFECYCLE_DO_STOP_WORKER);
                        lc->worker = LIFECYCLE_WORKER_STOPPING;
                }
        } else if (row->state == STORE_REGISTERING && lc->op == LIFECYCLE_OP_NONE && row->runner_id == 0) {
                act(lc, c, LIFECYCLE_DO_ACQUIRE);
                lc->op = LIFECYCLE_OP_ACQUIRE;
        } else if (row->state == STORE_STARTING && lc->worker == LIFECYCLE_WORKER_NONE &&
                   ev->type == LIFECYCLE_EV_ACQUIRED) {
                act(lc, c, LIFECYCLE_DO_START_WORKER);
                lc->worker = LIFECYCLE_WORKER_STARTING;
        }
        /* What was only observed (a ref, a claim) is saved too; a failure
         * is retried like any other. */
        if (lc->unsaved && !c->save_queued && !lc->finished)
                queue_save(lc, c);
}

/* ---- API ------------------------------------------------------------------ */

void lifecycle_init(struct lifecycle *lc, struct store_instance *row)
{
        *lc = (struct lifecycle){ .row = row, .final = STORE_DONE };
}

void lifecycle_step(struct lifecycle *lc, const struct lifecycle_event *ev, struct lifecycle_effects *out)
{
        struct plan_ctx c = { .out = out };

        out->n = 0;
        out->retry_ms = 0;
        if (apply(lc, ev, &c))
                plan(lc, ev, &c);
}

bool lifecycle_wants_adopt(const struct store_instance *row)
{
        /* Without a saved ref (the daemon died between starting the worker
         * and saving it) the provider may still find the worker by name. */
        return store_state_live(row->state) && row->state != STORE_REGISTERING &&
               (row->provider_ref[0] || row->state == STORE_STARTING);
}

const char *lifecycle_result(const struct store_instance *row)
{
        if (row->claimed_ms)
                return "claimed";
        if (row->state == STORE_FAILED)
                return "failed";
        return "wasted";
}

const char *lifecycle_effect_name(enum lifecycle_effect e)
{
        static const char *const names[] = {
                [LIFECYCLE_DO_SAVE] = "save", [LIFECYCLE_DO_ACQUIRE] = "acquire",
                [LIFECYCLE_DO_START_WORKER] = "start_worker", [LIFECYCLE_DO_STOP_WORKER] = "stop_worker",
                [LIFECYCLE_DO_CHECK] = "check", [LIFECYCLE_DO_CANCEL_CHECK] = "cancel_check",
                [LIFECYCLE_DO_RELEASE] = "release", [LIFECYCLE_DO_FINISH] = "finish",
                [LIFECYCLE_DO_BACKOFF] = "backoff", [LIFECYCLE_DO_CLAIMED] = "claimed",
                [LIFECYCLE_DO_PLAN] = "plan", [LIFECYCLE_DO_WARN_UNCLAIMED] = "warn_unclaimed",
        };

        return (unsigned)e < sizeof(names) / sizeof(names[0]) && names[e] ? names[e] : "?";
}
