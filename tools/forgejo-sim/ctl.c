/* ctl.c: the control API under /_sim/ that tests, benchmarks and demos use
 * to create users, organisations, repositories and jobs, cancel jobs,
 * inspect jobs and runners (deleted ones included), read request counters,
 * inject faults and move a test clock. No authentication; never faulted,
 * never counted; never moves a clock the process was not started with
 * --test-clock for. */
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAULT_SECONDS 3600.0

/* Parses the body as a JSON object or answers 400. */
static json_t *body_object(const struct sim_req *rq, struct sim_resp *rs)
{
        json_error_t jerr;
        json_t *j = json_loadb(rq->body, rq->body_len, 0, &jerr);

        if (!j || !json_is_object(j)) {
                resp_message(rs, 400, "invalid JSON body: %s", j ? "not an object" : jerr.text);
                json_decref(j);
                return NULL;
        }
        return j;
}

/* Optional typed members: absent or null leaves the default; a wrong type
 * answers 400 and returns false. */
static bool opt_str(json_t *o, const char *k, const char **v, struct sim_resp *rs)
{
        json_t *m = json_object_get(o, k);

        if (!m || json_is_null(m))
                return true;
        if (!json_is_string(m)) {
                resp_message(rs, 400, "%s: must be a string", k);
                return false;
        }
        *v = json_string_value(m);
        return true;
}

static bool opt_bool(json_t *o, const char *k, bool *v, struct sim_resp *rs)
{
        json_t *m = json_object_get(o, k);

        if (!m || json_is_null(m))
                return true;
        if (!json_is_boolean(m)) {
                resp_message(rs, 400, "%s: must be a boolean", k);
                return false;
        }
        *v = json_is_true(m);
        return true;
}

static bool opt_strlist(json_t *o, const char *k, struct rp_strlist *l, struct sim_resp *rs)
{
        json_t *m = json_object_get(o, k), *e;
        size_t i;

        if (!m || json_is_null(m))
                return true;
        if (!json_is_array(m)) {
                resp_message(rs, 400, "%s: must be an array of strings", k);
                return false;
        }
        json_array_foreach(m, i, e) {
                if (!json_is_string(e)) {
                        resp_message(rs, 400, "%s[%zu]: must be a string", k, i);
                        return false;
                }
                if (rp_strlist_push(l, json_string_value(e)) < 0) {
                        resp_message(rs, 500, "out of memory");
                        return false;
                }
        }
        return true;
}

static bool req_str(json_t *o, const char *k, const char **v, struct sim_resp *rs)
{
        *v = NULL;
        if (!opt_str(o, k, v, rs))
                return false;
        if (!*v || !**v) {
                resp_message(rs, 422, "%s: required", k);
                return false;
        }
        return true;
}

static void create_error(struct sim_resp *rs, int rc, const char *what, const char *name)
{
        switch (rc) {
        case -EEXIST: resp_message(rs, 409, "%s '%s' already exists", what, name); break;
        case -EINVAL: resp_message(rs, 422, "%s name '%s' is not valid", what, name); break;
        case -ENOENT: resp_message(rs, 422, "%s '%s': a referenced name does not exist", what, name); break;
        case -ENOSPC: resp_message(rs, 507, "too many objects"); break;
        default: resp_message(rs, 500, "cannot create %s", what); break;
        }
}

void ctl_users_create(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b = body_object(rq, rs), *out = NULL;
        const char *name;
        bool admin = false;
        struct owner *u;
        int rc;

        if (!b)
                return;
        if (!req_str(b, "name", &name, rs) || !opt_bool(b, "admin", &admin, rs))
                goto out;
        pthread_mutex_lock(&rq->sim->lock);
        rc = state_user_create(rq->sim, name, admin, &u);
        if (rc >= 0)
                out = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)u->id, "name", u->name,
                                "token", u->token);
        pthread_mutex_unlock(&rq->sim->lock);
        if (rc < 0)
                create_error(rs, rc, "user", name);
        else
                resp_json(rs, 201, out);
out:
        json_decref(b);
}

void ctl_orgs_create(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b = body_object(rq, rs), *out = NULL;
        struct rp_strlist owners = {0};
        const char *name;
        struct owner *o;
        int rc;

        if (!b)
                return;
        if (!req_str(b, "name", &name, rs) || !opt_strlist(b, "owners", &owners, rs))
                goto out;
        pthread_mutex_lock(&rq->sim->lock);
        rc = state_org_create(rq->sim, name, (const char *const *)owners.v, owners.n, &o);
        if (rc >= 0)
                out = json_pack("{s:I, s:s}", "id", (json_int_t)o->id, "name", o->name);
        pthread_mutex_unlock(&rq->sim->lock);
        if (rc == -ENOENT)
                resp_message(rs, 422, "owners: every owner must be an existing user");
        else if (rc < 0)
                create_error(rs, rc, "organization", name);
        else
                resp_json(rs, 201, out);
out:
        rp_strlist_done(&owners);
        json_decref(b);
}

void ctl_repos_create(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b = body_object(rq, rs), *out = NULL;
        const char *owner, *name;
        struct repo *r;
        int rc;

        if (!b)
                return;
        if (!req_str(b, "owner", &owner, rs) || !req_str(b, "name", &name, rs))
                goto out;
        pthread_mutex_lock(&rq->sim->lock);
        rc = state_repo_create(rq->sim, owner, name, &r);
        if (rc >= 0)
                out = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)r->id, "owner",
                                r->owner->name, "name", r->name);
        pthread_mutex_unlock(&rq->sim->lock);
        if (rc == -ENOENT)
                resp_message(rs, 422, "owner '%s' does not exist", owner);
        else if (rc < 0)
                create_error(rs, rc, "repository", name);
        else
                resp_json(rs, 201, out);
out:
        json_decref(b);
}

void ctl_jobs_create(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b = body_object(rq, rs), *out = NULL;
        struct rp_strlist runs_on = {0}, steps = {0};
        const char *owner, *repo, *name, *handle = NULL;
        struct repo *r;
        struct job *j = NULL;
        int rc = -ENOENT;

        if (!b)
                return;
        if (!req_str(b, "owner", &owner, rs) || !req_str(b, "repo", &repo, rs) ||
            !req_str(b, "name", &name, rs) || !opt_strlist(b, "runs_on", &runs_on, rs) ||
            !opt_strlist(b, "steps", &steps, rs) || !opt_str(b, "handle", &handle, rs))
                goto out;
        if (handle && strlen(handle) > SIM_HANDLE_MAX) {
                resp_message(rs, 422, "handle: at most %d bytes", SIM_HANDLE_MAX);
                goto out;
        }
        pthread_mutex_lock(&rq->sim->lock);
        r = state_repo_by_name(rq->sim, owner, repo);
        if (r)
                rc = state_job_create(rq->sim, r, name, &runs_on, &steps, handle, &j);
        if (rc >= 0)
                out = json_pack("{s:I, s:s}", "id", (json_int_t)j->id, "handle", j->handle);
        pthread_mutex_unlock(&rq->sim->lock);
        if (rc == -ENOENT)
                resp_message(rs, 422, "repository '%s/%s' does not exist", owner, repo);
        else if (rc < 0)
                create_error(rs, rc, "job", name);
        else
                resp_json(rs, 201, out);
out:
        rp_strlist_done(&runs_on);
        rp_strlist_done(&steps);
        json_decref(b);
}

static json_t *ts_json(int64_t ms)
{
        char buf[40];

        if (!ms)
                return json_null();
        sim_format_ms(ms, buf, sizeof(buf));
        return json_string(buf);
}

static const char *job_result(const struct job *j)
{
        return state_job_done(j) ? state_job_status_name(j->status) : "";
}

static json_t *job_json(const struct job *j, bool with_log)
{
        const struct runner *rn = j->task ? j->task->runner : NULL;
        json_t *o = json_object(), *log = NULL;
        int rc = 0;

        if (!o)
                return NULL;
        rc |= json_object_set_new(o, "id", json_integer(j->id));
        rc |= json_object_set_new(o, "status", json_string(state_job_status_name(j->status)));
        rc |= json_object_set_new(o, "result", json_string(job_result(j)));
        rc |= json_object_set_new(o, "task_id", json_integer(j->task ? j->task->id : 0));
        rc |= json_object_set_new(o, "runner_id", json_integer(rn ? rn->id : 0));
        rc |= json_object_set_new(o, "runner_name", json_string(rn ? rn->name : ""));
        if (with_log) {
                log = json_array();
                for (size_t i = 0; log && i < j->n_log; i++)
                        rc |= json_array_append_new(log, json_string(j->log[i]));
                rc |= json_object_set_new(o, "log", log);
        }
        rc |= json_object_set_new(o, "created_at", ts_json(j->created_ms));
        rc |= json_object_set_new(o, "claimed_at", ts_json(j->claimed_ms));
        rc |= json_object_set_new(o, "finished_at", ts_json(j->finished_ms));
        if (rc) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* Locks, finds {id}, answers 404 (unlocked) when absent. */
static struct job *locked_job(const struct sim_req *rq, struct sim_resp *rs)
{
        int64_t id;
        struct job *j = NULL;

        pthread_mutex_lock(&rq->sim->lock);
        if (sim_parse_id(rq->params[0], &id) >= 0)
                j = state_job_by_id(rq->sim, id);
        if (!j) {
                pthread_mutex_unlock(&rq->sim->lock);
                resp_message(rs, 404, "job '%s' does not exist", rq->params[0]);
        }
        return j;
}

void ctl_job_get(const struct sim_req *rq, struct sim_resp *rs)
{
        struct job *j = locked_job(rq, rs);
        json_t *o;

        if (!j)
                return;
        o = job_json(j, true);
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, o);
}

void ctl_job_cancel(const struct sim_req *rq, struct sim_resp *rs)
{
        struct job *j = locked_job(rq, rs);
        json_t *o;

        if (!j)
                return;
        state_job_cancel(rq->sim, j);
        o = job_json(j, true);
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, o);
}

void ctl_jobs_list(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *arr = json_array();

        pthread_mutex_lock(&rq->sim->lock);
        for (size_t i = 0; arr && i < rq->sim->jobs.n; i++)
                if (json_array_append_new(arr, job_json(rq->sim->jobs.v[i], false)) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, arr);
}

void ctl_runners_list(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *arr = json_array();

        pthread_mutex_lock(&rq->sim->lock);
        for (size_t i = 0; arr && i < rq->sim->runners.n; i++) {
                const struct runner *r = rq->sim->runners.v[i];
                json_t *labels = json_array();
                for (size_t k = 0; labels && k < r->labels.n; k++)
                        json_array_append_new(labels, json_string(r->labels.v[k]));
                json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:b, s:b, s:o, s:I, s:I, s:I, s:s}",
                                      "id", (json_int_t)r->id, "uuid", r->uuid, "name", r->name,
                                      "description", r->description,
                                      "ephemeral", r->ephemeral, "deleted", r->deleted,
                                      "labels", labels, "owner_id", (json_int_t)r->owner_id,
                                      "repo_id", (json_int_t)r->repo_id,
                                      "tasks", (json_int_t)r->n_tasks, "version", r->version);
                if (json_array_append_new(arr, o) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        }
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, arr);
}

struct stats_ctx {
        json_t *obj;
        bool oom;
};

static void stat_entry(struct hmap_entry *e, void *arg)
{
        struct stats_ctx *c = arg;

        if (json_object_set_new(c->obj, e->key, json_integer(*(int64_t *)e->value)) < 0)
                c->oom = true;
}

void ctl_stats_get(const struct sim_req *rq, struct sim_resp *rs)
{
        struct stats_ctx c = { .obj = json_object() };

        if (!c.obj) {
                resp_message(rs, 500, "out of memory");
                return;
        }
        struct rpc_stats rpc;

        pthread_mutex_lock(&rq->sim->aux_lock);
        hmap_foreach(&rq->sim->stats, stat_entry, &c);
        rpc = rq->sim->rpc_stats;
        pthread_mutex_unlock(&rq->sim->aux_lock);
        if (c.oom) {
                json_decref(c.obj);
                resp_message(rs, 500, "out of memory");
                return;
        }
        resp_json(rs, 200, json_pack("{s:o, s:{s:I, s:I}, s:{s:I, s:I}}", "requests", c.obj,
                                     "codecs", "proto", (json_int_t)rpc.proto, "json", (json_int_t)rpc.json,
                                     "gzip", "requests", (json_int_t)rpc.gzip_in,
                                     "responses", (json_int_t)rpc.gzip_out));
}

static void stat_free(struct hmap_entry *e, void *arg)
{
        (void)arg;
        free(e->value);
}

void ctl_stats_reset(const struct sim_req *rq, struct sim_resp *rs)
{
        struct hmap fresh;

        if (hmap_init(&fresh) < 0) {
                resp_message(rs, 500, "out of memory");
                return;
        }
        pthread_mutex_lock(&rq->sim->aux_lock);
        hmap_foreach(&rq->sim->stats, stat_free, NULL);
        hmap_done(&rq->sim->stats);
        rq->sim->stats = fresh;
        memset(&rq->sim->rpc_stats, 0, sizeof(rq->sim->rpc_stats));
        pthread_mutex_unlock(&rq->sim->aux_lock);
        rs->status = 204;
}

static const char *const mode_names[] = { "status", "delay", "garbage", "reset" };

void ctl_faults_add(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b = body_object(rq, rs), *m;
        const char *prefix = NULL, *mode = NULL, *method = NULL;
        struct fault *f = NULL;
        int mi = -1;

        if (!b)
                return;
        if (!opt_str(b, "path_prefix", &prefix, rs) || !opt_str(b, "mode", &mode, rs) ||
            !opt_str(b, "method", &method, rs))
                goto out;
        if (method && (!method[0] || strlen(method) > 15 || strspn(method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != strlen(method))) {
                resp_message(rs, 422, "method: an HTTP method in capitals, like POST");
                goto out;
        }
        if (!prefix) {
                resp_message(rs, 422, "path_prefix: required");
                goto out;
        }
        for (int i = 0; mode && i < 4; i++)
                if (strcmp(mode, mode_names[i]) == 0)
                        mi = i;
        if (mi < 0) {
                resp_message(rs, 422, "mode: one of status, delay, garbage, reset");
                goto out;
        }
        f = calloc(1, sizeof(*f));
        if (!f || !(f->path_prefix = strdup(prefix))) {
                resp_message(rs, 500, "out of memory");
                goto out;
        }
        f->mode = (enum fault_mode)mi;
        snprintf(f->method, sizeof(f->method), "%s", method ? method : "");
        m = json_object_get(b, "status");
        if (f->mode == FAULT_STATUS) {
                if (!json_is_integer(m) || json_integer_value(m) < 200 ||
                    json_integer_value(m) > 599) {
                        resp_message(rs, 422, "status: an HTTP status from 200 to 599 is required");
                        goto out;
                }
                f->status = (int)json_integer_value(m);
        } else if (m && !json_is_null(m) && !json_is_integer(m)) {
                resp_message(rs, 400, "status: must be an integer");
                goto out;
        }
        m = json_object_get(b, "seconds");
        if (m && !json_is_null(m)) {
                if (!json_is_number(m) || !isfinite(json_number_value(m)) ||
                    json_number_value(m) < 0 || json_number_value(m) > MAX_FAULT_SECONDS) {
                        resp_message(rs, 422, "seconds: a number from 0 to %.0f", MAX_FAULT_SECONDS);
                        goto out;
                }
                f->seconds = json_number_value(m);
        } else if (f->mode == FAULT_DELAY) {
                resp_message(rs, 422, "seconds: required for mode delay");
                goto out;
        }
        m = json_object_get(b, "count");
        if (m && !json_is_null(m)) {
                if (!json_is_integer(m) || json_integer_value(m) < 0) {
                        resp_message(rs, 422, "count: a non-negative integer");
                        goto out;
                }
                f->remaining = json_integer_value(m);
        }
        if (!opt_bool(b, "after", &f->after, rs))
                goto out;

        pthread_mutex_lock(&rq->sim->aux_lock);
        int64_t id = f->id = rq->sim->next_fault_id++;
        struct fault **pp = &rq->sim->faults;
        while (*pp)
                pp = &(*pp)->next;
        *pp = f;
        f = NULL;
        pthread_mutex_unlock(&rq->sim->aux_lock);
        resp_json(rs, 201, json_pack("{s:I}", "id", (json_int_t)id));
out:
        if (f) {
                free(f->path_prefix);
                free(f);
        }
        json_decref(b);
}

void ctl_faults_list(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *arr = json_array();

        pthread_mutex_lock(&rq->sim->aux_lock);
        for (struct fault *f = rq->sim->faults; arr && f; f = f->next)
                json_array_append_new(arr, json_pack("{s:I, s:s, s:s, s:s, s:i, s:f, s:I, s:b}",
                        "id", (json_int_t)f->id, "path_prefix", f->path_prefix, "method", f->method,
                        "mode", mode_names[f->mode], "status", f->status,
                        "seconds", f->seconds, "count", (json_int_t)f->remaining,
                        "after", f->after));
        pthread_mutex_unlock(&rq->sim->aux_lock);
        resp_json(rs, 200, arr);
}

void ctl_faults_clear(const struct sim_req *rq, struct sim_resp *rs)
{
        httpd_faults_clear(rq->sim);
        rs->status = 204;
}

/* {"test_clock", "now", "advanced_ms"}; call with sim.lock held so that
 * the answer matches the state it was taken with. */
static json_t *clock_json(const struct sim *s)
{
        char now[40];

        sim_format_ms(simclock_wall_ms(&s->clock), now, sizeof(now));
        return json_pack("{s:b, s:s, s:I}", "test_clock", s->clock.test, "now", now,
                         "advanced_ms", (json_int_t)simclock_advanced_ms(&s->clock));
}

void ctl_clock_get(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *o;

        pthread_mutex_lock(&rq->sim->lock);
        o = clock_json(rq->sim);
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, o);
}

void ctl_clock_advance(const struct sim_req *rq, struct sim_resp *rs)
{
        json_t *b, *m, *o;
        int64_t ms;
        size_t stopped;
        int rc;

        /* Checked before the body: a simulator on real time refuses every
         * attempt, well-formed or not. */
        if (!rq->sim->clock.test) {
                resp_message(rs, 409, "the clock follows real time; start forgejo-sim with "
                             "--test-clock to advance it");
                return;
        }
        b = body_object(rq, rs);
        if (!b)
                return;
        m = json_object_get(b, "advance_ms");
        if (!m || json_is_null(m)) {
                resp_message(rs, 422, "advance_ms: required");
                goto out;
        }
        if (!json_is_integer(m)) {
                resp_message(rs, 400, "advance_ms: must be an integer number of milliseconds");
                goto out;
        }
        ms = json_integer_value(m);
        pthread_mutex_lock(&rq->sim->lock);
        rc = simclock_advance(&rq->sim->clock, ms);
        if (rc < 0) {
                int64_t left = SIMCLOCK_MAX_ADVANCE_MS - simclock_advanced_ms(&rq->sim->clock);
                pthread_mutex_unlock(&rq->sim->lock);
                if (ms < 0)
                        resp_message(rs, 422, "advance_ms: %lld is negative; the clock never "
                                     "goes back", (long long)ms);
                else
                        resp_message(rs, 422, "advance_ms: %lld is too far; the test clock can "
                                     "move %lld ms more", (long long)ms, (long long)left);
                goto out;
        }
        /* The advance itself applies the rules, so the caller sees their
         * effect in its very next request, without waiting for a tick. */
        stopped = state_tick(rq->sim);
        o = clock_json(rq->sim);
        pthread_mutex_unlock(&rq->sim->lock);
        if (o && json_object_set_new(o, "zombies_stopped", json_integer((json_int_t)stopped)) < 0) {
                json_decref(o);
                o = NULL;
        }
        resp_json(rs, 200, o);
out:
        json_decref(b);
}
