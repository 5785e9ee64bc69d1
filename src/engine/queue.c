/* queue.c: the queue engine (engine.h) — an instance's runner is an
 * ephemeral registration made over Forgejo 15 REST at the instance's scope,
 * deleted when it ends, and checked with GET …/runners/{id}. Owns the bound
 * on registrations in flight per forge and raising the orphan sweep when a
 * registration's fate is unknown. Never decides what the answers mean: the
 * instance code and the scaler do. */
#include "daemon/daemon_int.h"
#include "engine/broker.h"
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct dforge *forge_of(struct daemon *d, const struct inst *in)
{
        for (size_t f = 0; f < d->n_forges; f++)
                if (strcmp(d->forges[f].cfg->name, in->row.forge) == 0)
                        return &d->forges[f];
        return NULL;
}

static void on_created(void *ud, const struct forgejo_result *res, struct forgejo_runner_created *c)
{
        struct inst *in = ud;
        struct daemon *d = in->d;
        struct dforge *f = forge_of(d, in);
        struct engine_result er = { .err = res->err, .status = res->status, .reason = res->reason };

        in->call = NULL;
        if (f && f->creates_inflight > 0)
                f->creates_inflight--;
        daemon_schedule_tick(d); /* a registration slot is free */
        if (res->err < 0) {
                /* A POST that timed out or died may still have created the
                 * runner: the orphan sweep comes soon. */
                if ((res->status == 0 || res->status >= 500) && in->pool >= 0)
                        reaper_suspect_leak(d, d->pools[in->pool].group);
                inst_acquired(d, in, &er, NULL);
                return;
        }
        struct engine_identity id = { .id = c->id, .uuid = c->uuid, .token = c->token };
        inst_acquired(d, in, &er, &id);
        explicit_bzero(c->token, sizeof(c->token));
}

static int queue_acquire(struct daemon *d, struct inst *in)
{
        struct dforge *f = forge_of(d, in);
        struct forgejo_scope sc;
        char desc[256];
        int r;

        if (!f || forgejo_scope_parse(in->row.scope, &sc) < 0)
                return -ENOENT;
        if (in->row.warm)
                snprintf(desc, sizeof(desc), "forgescale pool %s (warm)", in->row.pool);
        else
                snprintf(desc, sizeof(desc), "forgescale pool %s job %lld", in->row.pool,
                         (long long)in->row.job_id);
        r = forgejo_runner_create(f->client, &sc, in->row.name, desc, true, on_created, in,
                                  &in->call);
        if (r < 0)
                return r;
        f->creates_inflight++;
        return 0;
}

static void on_deleted(void *ud, const struct forgejo_result *res)
{
        struct inst *in = ud;
        struct engine_result er = { .err = res->err == -ENOENT ? 0 : res->err, .status = res->status,
                                    .reason = res->reason };

        in->call = NULL;
        inst_released(in->d, in, &er, res->err == -ENOENT);
}

static int queue_release(struct daemon *d, struct inst *in)
{
        struct dforge *f = forge_of(d, in);
        struct forgejo_scope sc;

        if (!f || forgejo_scope_parse(in->row.scope, &sc) < 0)
                return -ENOENT;
        return forgejo_runner_delete(f->client, &sc, in->row.runner_id, on_deleted, in,
                                     &in->call);
}

static void on_runner(void *ud, const struct forgejo_result *res, const struct forgejo_runner *rn)
{
        struct inst *in = ud;
        struct engine_result er = { .err = res->err == -ENOENT ? 0 : res->err, .status = res->status,
                                    .reason = res->reason };
        enum engine_runner st = ENGINE_RUNNER_IDLE;

        in->call = NULL;
        /* An ephemeral runner disappears when its task ends. */
        if (res->err == -ENOENT)
                st = ENGINE_RUNNER_GONE;
        else if (res->err == 0 && rn->state == FORGEJO_RUNNER_ACTIVE)
                st = ENGINE_RUNNER_ACTIVE;
        inst_checked(in->d, in, &er, st);
}

static int queue_check(struct daemon *d, struct inst *in)
{
        struct dforge *f = forge_of(d, in);
        struct forgejo_scope sc;

        if (!f || forgejo_scope_parse(in->row.scope, &sc) < 0)
                return -ENOENT;
        return forgejo_runner_get(f->client, &sc, in->row.runner_id, on_runner, in,
                                  &in->call);
}

static void queue_cancel(struct inst *in)
{
        if (in->lc.op == LIFECYCLE_OP_ACQUIRE) {
                struct dforge *f = forge_of(in->d, in);
                if (f && f->creates_inflight > 0)
                        f->creates_inflight--;
        }
        forgejo_cancel(in->call);
        in->call = NULL;
}

/* Registrations in flight per forge are bounded: a burst queued in the
 * HTTP client would time out waiting for a connection (the timeout counts
 * the wait). The rest launch as answers come. */
#define CREATES_INFLIGHT_MAX 32

static int queue_slots(const struct daemon *d, int pool)
{
        const struct dforge *f = &d->forges[d->pools[pool].cfg->forge_idx];

        return CREATES_INFLIGHT_MAX - f->creates_inflight;
}

const struct engine_ops engine_queue_ops = {
        .mode = "queue",
        .acquire = queue_acquire,
        .release = queue_release,
        .check = queue_check,
        .cancel = queue_cancel,
        .slots = queue_slots,
};

const struct engine_ops *engine_of(const struct daemon *d, const struct inst *in)
{
        /* A broker task's handle has a colon, which a forge's never has:
         * a row knows its engine even after its pool is gone. */
        if (strncmp(in->row.handle, "task:", 5) == 0)
                return &engine_broker_ops;
        return &engine_queue_ops;
}

const struct engine_ops *engine_of_pool(const struct daemon *d, int pool)
{
        return d->pools[pool].cfg->mode == CONFIG_MODE_BROKER ? &engine_broker_ops : &engine_queue_ops;
}
