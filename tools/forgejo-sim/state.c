/* state.c: the simulator's in-memory model of a Forgejo instance: users,
 * organisations, repositories, jobs, runners, tasks, registration tokens
 * and tasks versions, with the state transitions Forgejo applies to them.
 * Every function expects sim.lock to be held. Never does I/O, never logs,
 * never compares a secret with anything but secret_equal(). */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/secret.h"

#define TOKEN_TAIL 8

int64_t sim_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sim_mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sim_format_ms(int64_t ms, char *buf, size_t n)
{
        time_t sec = (time_t)(ms / 1000);
        struct tm tm;

        gmtime_r(&sec, &tm);
        snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms % 1000));
}

int sim_parse_id(const char *s, int64_t *ret)
{
        int64_t v = 0;

        if (!s || !*s)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v > (INT64_MAX - 9) / 10)
                        return -EINVAL;
                v = v * 10 + (*s - '0');
        }
        if (v <= 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* ---- small containers --------------------------------------------------- */

static int vec_push(struct vec *v, void *x)
{
        if (v->n >= SIM_MAX_OBJECTS)
                return -ENOSPC;
        if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 64;
                void **nv = realloc(v->v, cap * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                v->v = nv;
                v->cap = cap;
        }
        v->v[v->n++] = x;
        return 0;
}

static void *vec_at(const struct vec *v, int64_t id)
{
        if (id <= 0 || (uint64_t)id > v->n)
                return NULL;
        return v->v[id - 1];
}

static void jlist_append(struct jlist *l, struct job *j, enum job_list w)
{
        if (j->in_list[w])
                return;
        j->link[w].prev = l->tail;
        j->link[w].next = NULL;
        if (l->tail)
                l->tail->link[w].next = j;
        else
                l->head = j;
        l->tail = j;
        l->n++;
        j->in_list[w] = true;
}

static void jlist_remove(struct jlist *l, struct job *j, enum job_list w)
{
        if (!j->in_list[w])
                return;
        if (j->link[w].prev)
                j->link[w].prev->link[w].next = j->link[w].next;
        else
                l->head = j->link[w].next;
        if (j->link[w].next)
                j->link[w].next->link[w].prev = j->link[w].prev;
        else
                l->tail = j->link[w].prev;
        j->link[w].prev = j->link[w].next = NULL;
        j->in_list[w] = false;
        l->n--;
}

static void job_changed(struct job *j)
{
        free(j->rest_json);
        j->rest_json = NULL;
        j->rest_json_len = 0;
}

static void job_unlink_wait(struct sim *s, struct job *j)
{
        jlist_remove(&s->wait, j, JL_WAIT_ALL);
        jlist_remove(&j->repo->owner->wait, j, JL_WAIT_OWNER);
        jlist_remove(&j->repo->wait, j, JL_WAIT_REPO);
}

static void job_unlink_act(struct sim *s, struct job *j)
{
        jlist_remove(&s->act, j, JL_ACT_ALL);
        jlist_remove(&j->repo->owner->act, j, JL_ACT_OWNER);
        jlist_remove(&j->repo->act, j, JL_ACT_REPO);
}

static char *lower_dup(const char *s)
{
        char *d = strdup(s);

        if (d)
                for (char *p = d; *p; p++)
                        *p = (char)tolower((unsigned char)*p);
        return d;
}

static const char *token_tail(const char *token)
{
        size_t n = strlen(token);

        return n > TOKEN_TAIL ? token + n - TOKEN_TAIL : token;
}

/* Forgejo user and repository names: ASCII letters, digits, '-', '_', '.'. */
static bool valid_name(const char *s)
{
        size_t n = 0;

        if (!s || !*s)
                return false;
        for (; s[n]; n++)
                if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_' && s[n] != '.')
                        return false;
        return n <= SIM_MAX_NAME && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* ---- lifecycle ---------------------------------------------------------- */

struct sim *state_new(int64_t zombie_timeout_ms, bool test_clock)
{
        struct sim *s = calloc(1, sizeof(*s));

        if (!s)
                return NULL;
        pthread_mutex_init(&s->lock, NULL);
        pthread_mutex_init(&s->aux_lock, NULL);
        s->zombie_timeout_ms = zombie_timeout_ms;
        simclock_init(&s->clock, test_clock);
        s->next_fault_id = 1;
        snprintf(s->server_url, sizeof(s->server_url), "http://127.0.0.1");
        if (hmap_init(&s->owner_by_name) < 0 || hmap_init(&s->user_by_token_tail) < 0 ||
            hmap_init(&s->repo_by_name) < 0 || hmap_init(&s->runner_by_uuid) < 0 ||
            hmap_init(&s->job_by_handle) < 0 || hmap_init(&s->task_by_key) < 0 ||
            hmap_init(&s->reg_by_token) < 0 || hmap_init(&s->stats) < 0) {
                state_free(s);
                return NULL;
        }
        return s;
}

static void free_stat(struct hmap_entry *e, void *arg)
{
        (void)arg;
        free(e->value);
}

void state_free(struct sim *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->owners.n; i++) {
                struct owner *o = s->owners.v[i];
                free(o->name);
                secret_free(o->token);
                free(o->org_owners);
                free(o->reg_token);
                free(o);
        }
        for (size_t i = 0; i < s->repos.n; i++) {
                struct repo *r = s->repos.v[i];
                free(r->name);
                free(r->reg_token);
                free(r);
        }
        for (size_t i = 0; i < s->jobs.n; i++) {
                struct job *j = s->jobs.v[i];
                free(j->name);
                free(j->key);
                rp_strlist_done(&j->runs_on);
                rp_strlist_done(&j->steps);
                for (size_t k = 0; k < j->n_log; k++)
                        free(j->log[k]);
                free(j->log);
                free(j->rest_json);
                free(j);
        }
        for (size_t i = 0; i < s->runners.n; i++) {
                struct runner *r = s->runners.v[i];
                free(r->name);
                free(r->description);
                free(r->version);
                rp_strlist_done(&r->labels);
                free(r);
        }
        for (size_t i = 0; i < s->tasks.n; i++) {
                struct task *t = s->tasks.v[i];
                free(t->request_key);
                json_decref(t->outputs);
                free(t);
        }
        free(s->owners.v);
        free(s->repos.v);
        free(s->jobs.v);
        free(s->runners.v);
        free(s->tasks.v);
        free(s->global_reg_token);
        hmap_done(&s->owner_by_name);
        hmap_done(&s->user_by_token_tail);
        hmap_done(&s->repo_by_name);
        hmap_done(&s->runner_by_uuid);
        hmap_done(&s->job_by_handle);
        hmap_done(&s->task_by_key);
        hmap_done(&s->reg_by_token);
        if (s->stats.buckets)
                hmap_foreach(&s->stats, free_stat, NULL);
        hmap_done(&s->stats);
        httpd_faults_clear(s);
        pthread_mutex_destroy(&s->lock);
        pthread_mutex_destroy(&s->aux_lock);
        free(s);
}

/* ---- lookups ------------------------------------------------------------ */

const char *state_job_status_name(enum job_status st)
{
        switch (st) {
        case JOB_WAITING: return "waiting";
        case JOB_RUNNING: return "running";
        case JOB_SUCCESS: return "success";
        case JOB_FAILURE: return "failure";
        case JOB_CANCELLED: return "cancelled";
        case JOB_SKIPPED: return "skipped";
        }
        return "unknown";
}

bool state_job_done(const struct job *j)
{
        return j->status != JOB_WAITING && j->status != JOB_RUNNING;
}

struct owner *state_owner_by_name(struct sim *s, const char *name)
{
        char *k = lower_dup(name);
        struct owner *o;

        if (!k)
                return NULL;
        o = hmap_get(&s->owner_by_name, k);
        free(k);
        return o;
}

struct owner *state_owner_by_id(struct sim *s, int64_t id)
{
        return vec_at(&s->owners, id);
}

struct owner *state_user_by_token(struct sim *s, const char *token)
{
        if (!token || strlen(token) < TOKEN_TAIL)
                return NULL;
        for (struct hmap_entry *e = hmap_find(&s->user_by_token_tail, token_tail(token)); e;
             e = hmap_next_same(e)) {
                struct owner *u = e->value;
                if (secret_equal(u->token, token))
                        return u;
        }
        return NULL;
}

struct repo *state_repo_by_name(struct sim *s, const char *owner, const char *name)
{
        char buf[2 * SIM_MAX_NAME + 2];
        int n = snprintf(buf, sizeof(buf), "%s/%s", owner, name);

        if (n < 0 || (size_t)n >= sizeof(buf))
                return NULL;
        for (char *p = buf; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return hmap_get(&s->repo_by_name, buf);
}

struct repo *state_repo_by_id(struct sim *s, int64_t id)
{
        return vec_at(&s->repos, id);
}

struct job *state_job_by_id(struct sim *s, int64_t id)
{
        return vec_at(&s->jobs, id);
}

struct runner *state_runner_by_id(struct sim *s, int64_t id)
{
        return vec_at(&s->runners, id);
}

struct task *state_task_by_id(struct sim *s, int64_t id)
{
        return vec_at(&s->tasks, id);
}

struct runner *state_runner_auth(struct sim *s, const char *uuid, const char *token)
{
        struct runner *r;

        if (!uuid || !token || !*uuid || !*token)
                return NULL;
        r = hmap_get(&s->runner_by_uuid, uuid);
        if (!r || r->deleted || !secret_equal(r->token, token))
                return NULL;
        return r;
}

/* ---- creation ----------------------------------------------------------- */

static int owner_add(struct sim *s, struct owner *o)
{
        char *k = lower_dup(o->name);
        int r;

        if (!k)
                return -ENOMEM;
        r = vec_push(&s->owners, o);
        if (r < 0)
                goto out;
        o->id = (int64_t)s->owners.n;
        r = hmap_add(&s->owner_by_name, k, o);
        if (r < 0)
                s->owners.n--;
out:
        free(k);
        return r;
}

int state_user_create(struct sim *s, const char *name, bool admin, struct owner **ret)
{
        struct owner *u;
        int r = -ENOMEM;

        if (!valid_name(name))
                return -EINVAL;
        if (state_owner_by_name(s, name))
                return -EEXIST;
        u = calloc(1, sizeof(*u));
        if (!u)
                return -ENOMEM;
        u->admin = admin;
        u->name = strdup(name);
        u->token = malloc(41);
        if (!u->name || !u->token)
                goto err;
        r = secret_random_hex(u->token, 20);
        if (r < 0)
                goto err;
        r = hmap_add(&s->user_by_token_tail, token_tail(u->token), u);
        if (r < 0)
                goto err;
        r = owner_add(s, u);
        if (r < 0) {
                hmap_remove(&s->user_by_token_tail, token_tail(u->token), u);
                goto err;
        }
        *ret = u;
        return 0;
err:
        free(u->name);
        secret_free(u->token);
        free(u);
        return r;
}

int state_org_create(struct sim *s, const char *name, const char *const *owners,
                     size_t n_owners, struct owner **ret)
{
        struct owner *o = NULL;
        int64_t *ids = NULL;
        int r = -ENOMEM;

        if (!valid_name(name))
                return -EINVAL;
        if (state_owner_by_name(s, name))
                return -EEXIST;
        if (n_owners && !(ids = calloc(n_owners, sizeof(*ids))))
                return -ENOMEM;
        for (size_t i = 0; i < n_owners; i++) {
                struct owner *u = state_owner_by_name(s, owners[i]);
                if (!u || u->is_org) {
                        r = -ENOENT;
                        goto err;
                }
                ids[i] = u->id;
        }
        o = calloc(1, sizeof(*o));
        if (!o)
                goto err;
        o->is_org = true;
        o->name = strdup(name);
        if (!o->name)
                goto err;
        o->org_owners = ids;
        o->n_org_owners = n_owners;
        r = owner_add(s, o);
        if (r < 0)
                goto err;
        *ret = o;
        return 0;
err:
        if (o)
                free(o->name);
        free(o);
        free(ids);
        return r;
}

int state_repo_create(struct sim *s, const char *owner, const char *name, struct repo **ret)
{
        struct owner *o;
        struct repo *rp;
        char key[2 * SIM_MAX_NAME + 2];
        int r = -ENOMEM;

        if (!valid_name(name))
                return -EINVAL;
        o = state_owner_by_name(s, owner);
        if (!o)
                return -ENOENT;
        if (state_repo_by_name(s, o->name, name))
                return -EEXIST;
        snprintf(key, sizeof(key), "%s/%s", o->name, name);
        for (char *p = key; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        rp = calloc(1, sizeof(*rp));
        if (!rp)
                return -ENOMEM;
        rp->owner = o;
        rp->name = strdup(name);
        if (!rp->name)
                goto err;
        r = vec_push(&s->repos, rp);
        if (r < 0)
                goto err;
        rp->id = (int64_t)s->repos.n;
        r = hmap_add(&s->repo_by_name, key, rp);
        if (r < 0) {
                s->repos.n--;
                goto err;
        }
        *ret = rp;
        return 0;
err:
        free(rp->name);
        free(rp);
        return r;
}

static int strlist_copy(struct rp_strlist *dst, const struct rp_strlist *src)
{
        for (size_t i = 0; src && i < src->n; i++)
                if (rp_strlist_push(dst, src->v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

int state_job_create(struct sim *s, struct repo *rp, const char *name,
                     const struct rp_strlist *runs_on, const struct rp_strlist *steps,
                     const char *handle, struct job **ret)
{
        struct job *j;
        int r = -ENOMEM;

        if (s->jobs.n >= SIM_MAX_OBJECTS)
                return -ENOSPC;
        j = calloc(1, sizeof(*j));
        if (!j)
                return -ENOMEM;
        j->id = (int64_t)s->jobs.n + 1;
        j->repo = rp;
        j->attempt = 1;
        j->status = JOB_WAITING;
        j->created_ms = simclock_wall_ms(&s->clock);
        j->name = strdup(name);
        j->key = workflow_job_key(name, j->id);
        if (!j->name || !j->key || strlist_copy(&j->runs_on, runs_on) < 0 ||
            strlist_copy(&j->steps, steps) < 0)
                goto err;
        if (handle) {
                if (strlen(handle) > SIM_HANDLE_MAX) {
                        r = -EINVAL;
                        goto err;
                }
                snprintf(j->handle, sizeof(j->handle), "%s", handle);
        } else if ((r = secret_uuid4(j->handle)) < 0) {
                goto err;
        }
        r = hmap_add(&s->job_by_handle, j->handle, j);
        if (r < 0)
                goto err;
        r = vec_push(&s->jobs, j);
        if (r < 0) {
                hmap_remove(&s->job_by_handle, j->handle, j);
                goto err;
        }
        jlist_append(&s->act, j, JL_ACT_ALL);
        jlist_append(&rp->owner->act, j, JL_ACT_OWNER);
        jlist_append(&rp->act, j, JL_ACT_REPO);
        jlist_append(&s->wait, j, JL_WAIT_ALL);
        jlist_append(&rp->owner->wait, j, JL_WAIT_OWNER);
        jlist_append(&rp->wait, j, JL_WAIT_REPO);
        /* A run created with a waiting job bumps global, owner and repo. */
        state_tasks_version_bump(s, rp->owner->id, rp->id);
        *ret = j;
        return 0;
err:
        free(j->name);
        free(j->key);
        rp_strlist_done(&j->runs_on);
        rp_strlist_done(&j->steps);
        free(j);
        return r;
}

int state_runner_create(struct sim *s, int64_t owner_id, int64_t repo_id, const char *name,
                        const char *description, bool ephemeral, struct runner **ret)
{
        struct runner *rn;
        size_t len = strlen(name);
        int r = -ENOMEM;

        rn = calloc(1, sizeof(*rn));
        if (!rn)
                return -ENOMEM;
        /* Forgejo cuts names at 255 bytes; do not split a UTF-8 sequence. */
        if (len > SIM_MAX_NAME) {
                len = SIM_MAX_NAME;
                while (len > 0 && ((unsigned char)name[len] & 0xc0) == 0x80)
                        len--;
        }
        rn->name = strndup(name, len);
        rn->description = strdup(description ? description : "");
        rn->version = strdup("");
        rn->owner_id = owner_id;
        rn->repo_id = repo_id;
        rn->ephemeral = ephemeral;
        if (!rn->name || !rn->description || !rn->version)
                goto err;
        if ((r = secret_uuid4(rn->uuid)) < 0 || (r = secret_random_hex(rn->token, 20)) < 0)
                goto err;
        r = hmap_add(&s->runner_by_uuid, rn->uuid, rn);
        if (r < 0)
                goto err;
        r = vec_push(&s->runners, rn);
        if (r < 0) {
                hmap_remove(&s->runner_by_uuid, rn->uuid, rn);
                goto err;
        }
        rn->id = (int64_t)s->runners.n;
        *ret = rn;
        return 0;
err:
        free(rn->name);
        free(rn->description);
        free(rn->version);
        free(rn);
        return r;
}

void state_runner_delete(struct sim *s, struct runner *r)
{
        if (r->deleted)
                return;
        r->deleted = true;
        hmap_remove(&s->runner_by_uuid, r->uuid, r);
}

/* ---- registration tokens and tasks versions ----------------------------- */

struct reg_token *state_reg_token(struct sim *s, int64_t owner_id, int64_t repo_id)
{
        struct reg_token **slot;
        struct reg_token *t;

        if (repo_id) {
                struct repo *rp = state_repo_by_id(s, repo_id);
                if (!rp)
                        return NULL;
                slot = &rp->reg_token;
        } else if (owner_id) {
                struct owner *o = state_owner_by_id(s, owner_id);
                if (!o)
                        return NULL;
                slot = &o->reg_token;
        } else {
                slot = &s->global_reg_token;
        }
        if (*slot && (*slot)->active)
                return *slot;
        /* Tokens are never deactivated here, so a slot is only ever filled
         * once; an inactive one would be replaced like NewRunnerToken does. */
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        if (secret_random_hex(t->token, 20) < 0 ||
            hmap_add(&s->reg_by_token, token_tail(t->token), t) < 0) {
                free(t);
                return NULL;
        }
        t->owner_id = owner_id;
        t->repo_id = repo_id;
        t->active = true;
        if (*slot) {
                hmap_remove(&s->reg_by_token, token_tail((*slot)->token), *slot);
                free(*slot);
        }
        *slot = t;
        return t;
}

struct reg_token *state_reg_token_find(struct sim *s, const char *token)
{
        if (!token || strlen(token) < TOKEN_TAIL)
                return NULL;
        for (struct hmap_entry *e = hmap_find(&s->reg_by_token, token_tail(token)); e;
             e = hmap_next_same(e)) {
                struct reg_token *t = e->value;
                if (secret_equal(t->token, token))
                        return t;
        }
        return NULL;
}

static int64_t *scope_version(struct sim *s, int64_t owner_id, int64_t repo_id)
{
        if (repo_id) {
                struct repo *rp = state_repo_by_id(s, repo_id);
                return rp ? &rp->tasks_version : NULL;
        }
        if (owner_id) {
                struct owner *o = state_owner_by_id(s, owner_id);
                return o ? &o->tasks_version : NULL;
        }
        return &s->global_tasks_version;
}

void state_tasks_version_bump(struct sim *s, int64_t owner_id, int64_t repo_id)
{
        int64_t *v;

        s->global_tasks_version++;
        if (owner_id > 0 && (v = scope_version(s, owner_id, 0)))
                (*v)++;
        if (repo_id > 0 && (v = scope_version(s, 0, repo_id)))
                (*v)++;
}

int64_t state_tasks_version(struct sim *s, int64_t owner_id, int64_t repo_id)
{
        int64_t *v = scope_version(s, owner_id, repo_id);

        if (!v)
                return 1; /* scope object vanished; cannot happen in practice */
        if (*v == 0)
                state_tasks_version_bump(s, owner_id, repo_id);
        return *v;
}

/* ---- tasks -------------------------------------------------------------- */

bool state_runs_on(const struct rp_strlist *runs_on, const struct rp_strlist *labels)
{
        if (!runs_on->n || !labels->n)
                return false;
        for (size_t i = 0; i < runs_on->n; i++)
                if (!rp_strlist_contains(labels, runs_on->v[i]))
                        return false;
        return true;
}

static bool job_in_runner_scope(const struct job *j, const struct runner *r)
{
        if (r->repo_id)
                return j->repo->id == r->repo_id;
        if (r->owner_id)
                return j->repo->owner->id == r->owner_id;
        return true;
}

static void running_link(struct sim *s, struct task *t)
{
        t->run_prev = NULL;
        t->run_next = s->running_head;
        if (s->running_head)
                s->running_head->run_prev = t;
        s->running_head = t;
        t->running_linked = true;
}

static void running_unlink(struct sim *s, struct task *t)
{
        if (!t->running_linked)
                return;
        if (t->run_prev)
                t->run_prev->run_next = t->run_next;
        else
                s->running_head = t->run_next;
        if (t->run_next)
                t->run_next->run_prev = t->run_prev;
        t->run_prev = t->run_next = NULL;
        t->running_linked = false;
}

static int key_of(char *buf, size_t n, const struct runner *r, const char *request_key)
{
        int k = snprintf(buf, n, "%lld/%s", (long long)r->id, request_key);

        return (k < 0 || (size_t)k >= n) ? -ENAMETOOLONG : 0;
}

int state_pick_task(struct sim *s, struct runner *r, const char *request_key,
                    const char *handle, struct task **ret)
{
        struct job *j = NULL;
        struct task *t;
        char kbuf[512];
        int rc;

        if (r->ephemeral && r->n_tasks > 0)
                return 0;
        if (handle) {
                j = hmap_get(&s->job_by_handle, handle);
                if (!j || j->status != JOB_WAITING || j->task || !job_in_runner_scope(j, r) ||
                    !state_runs_on(&j->runs_on, &r->labels))
                        return 0;
        } else {
                struct jlist *l;
                enum job_list w;

                if (r->repo_id) {
                        struct repo *rp = state_repo_by_id(s, r->repo_id);
                        if (!rp)
                                return 0;
                        l = &rp->wait;
                        w = JL_WAIT_REPO;
                } else if (r->owner_id) {
                        struct owner *o = state_owner_by_id(s, r->owner_id);
                        if (!o)
                                return 0;
                        l = &o->wait;
                        w = JL_WAIT_OWNER;
                } else {
                        l = &s->wait;
                        w = JL_WAIT_ALL;
                }
                /* Waiting jobs are never updated after creation here, so
                 * list order equals Forgejo's "updated, id" order. */
                for (j = l->head; j; j = j->link[w].next)
                        if (state_runs_on(&j->runs_on, &r->labels))
                                break;
                if (!j)
                        return 0;
        }
        if (request_key && key_of(kbuf, sizeof(kbuf), r, request_key) < 0)
                return -ENAMETOOLONG;
        if (s->tasks.n >= SIM_MAX_OBJECTS)
                return -ENOSPC;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->outputs = json_object();
        if (request_key)
                t->request_key = strdup(request_key);
        if (!t->outputs || (request_key && !t->request_key)) {
                rc = -ENOMEM;
                goto err;
        }
        rc = secret_random_hex(t->token, 20);
        if (rc < 0)
                goto err;
        rc = vec_push(&s->tasks, t);
        if (rc < 0)
                goto err;
        t->id = (int64_t)s->tasks.n;
        if (request_key && hmap_add(&s->task_by_key, kbuf, t) < 0) {
                s->tasks.n--;
                rc = -ENOMEM;
                goto err;
        }
        t->job = j;
        t->runner = r;
        t->status = JOB_RUNNING;
        t->updated_mono = simclock_mono_ms(&s->clock);
        running_link(s, t);
        j->task = t;
        j->status = JOB_RUNNING;
        job_changed(j);
        j->claimed_ms = simclock_wall_ms(&s->clock);
        job_unlink_wait(s, j);
        r->n_tasks++;
        *ret = t;
        return 1;
err:
        free(t->request_key);
        json_decref(t->outputs);
        free(t);
        return rc;
}

size_t state_tasks_by_request_key(struct sim *s, const struct runner *r, const char *request_key,
                                  struct task **out, size_t max)
{
        char kbuf[512];
        size_t n = 0;

        if (key_of(kbuf, sizeof(kbuf), r, request_key) < 0)
                return 0;
        for (struct hmap_entry *e = hmap_find(&s->task_by_key, kbuf); e && n < max;
             e = hmap_next_same(e)) {
                /* insertion sort: chains hold the newest entry first */
                struct task *t = e->value;
                size_t i = n++;
                while (i > 0 && out[i - 1]->id > t->id) {
                        out[i] = out[i - 1];
                        i--;
                }
                out[i] = t;
        }
        return n;
}

int state_task_new_token(struct task *t)
{
        return secret_random_hex(t->token, 20);
}

void state_task_finish(struct sim *s, struct task *t, enum job_status st)
{
        struct job *j = t->job;

        if (t->status != JOB_RUNNING)
                return;
        t->status = st;
        running_unlink(s, t);
        j->status = st;
        j->finished_ms = simclock_wall_ms(&s->clock);
        job_changed(j);
        job_unlink_act(s, j);
}

void state_task_stop(struct sim *s, struct task *t, enum job_status st)
{
        if (t->status != JOB_RUNNING)
                return;
        state_task_finish(s, t, st);
        if (t->runner->ephemeral)
                state_runner_delete(s, t->runner);
}

void state_task_touch(struct sim *s, struct task *t)
{
        t->updated_mono = simclock_mono_ms(&s->clock);
}

void state_job_cancel(struct sim *s, struct job *j)
{
        if (state_job_done(j))
                return;
        if (j->task) {
                state_task_stop(s, j->task, JOB_CANCELLED);
                return;
        }
        j->status = JOB_CANCELLED;
        j->finished_ms = simclock_wall_ms(&s->clock);
        job_changed(j);
        job_unlink_wait(s, j);
        job_unlink_act(s, j);
}

int state_job_log_append(struct job *j, const struct rp_log_row *rows, size_t n)
{
        if (n > SIM_MAX_LOG_ROWS - j->n_log)
                return -ENOSPC;
        if (j->n_log + n > j->cap_log) {
                size_t cap = j->cap_log ? j->cap_log : 64;
                while (cap < j->n_log + n)
                        cap *= 2;
                char **nl = realloc(j->log, cap * sizeof(*nl));
                if (!nl)
                        return -ENOMEM;
                j->log = nl;
                j->cap_log = cap;
        }
        for (size_t i = 0; i < n; i++) {
                char *c = strdup(rows[i].content ? rows[i].content : "");
                if (!c) {
                        while (i-- > 0)
                                free(j->log[--j->n_log]);
                        return -ENOMEM;
                }
                j->log[j->n_log++] = c;
        }
        return 0;
}

size_t state_tick(struct sim *s)
{
        int64_t now_mono = simclock_mono_ms(&s->clock);
        size_t n = 0;
        struct task *t = s->running_head;

        while (t) {
                struct task *next = t->run_next;
                /* Strictly older, as Forgejo's "updated < now - timeout":
                 * at exactly the timeout the task still runs. */
                if (now_mono - t->updated_mono > s->zombie_timeout_ms) {
                        /* Forgejo's stopTasks also moves the log to
                         * storage, so later appends are refused. */
                        state_task_stop(s, t, JOB_FAILURE);
                        t->log_archived = true;
                        n++;
                }
                t = next;
        }
        return n;
}

const char *state_runner_status(const struct runner *r, int64_t now_mono)
{
        if (!r->last_online_mono || now_mono - r->last_online_mono > SIM_RUNNER_OFFLINE_MS)
                return "offline";
        if (!r->last_active_mono || now_mono - r->last_active_mono > SIM_RUNNER_IDLE_MS)
                return "idle";
        return "active";
}
