/* rest.c: the Forgejo REST API subset under /api/v1: version, waiting-job
 * listing, registration tokens and runner management at the instance,
 * organisation, user and repository scopes, with Forgejo's token and
 * permission checks. Never touches runner-protocol state other than
 * through state_*; never returns a runner token except on creation. */
#include "sim.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_DEFAULT 30         /* setting.API.DefaultPagingNum */
#define PAGE_MAX 50             /* setting.API.MaxResponseItems */

struct scope {
        int64_t owner_id, repo_id;
        struct owner *owner;    /* org or user scope */
        struct repo *repo;      /* repo scope */
};

/* The user behind "Authorization: token T" (or "Bearer T"), or NULL after
 * answering 401. */
static struct owner *authenticate(const struct sim_req *rq, struct sim_resp *rs)
{
        const char *h = httpd_header(rq, "Authorization");
        struct owner *u = NULL;

        if (h) {
                while (*h == ' ')
                        h++;
                if (strncasecmp(h, "token ", 6) == 0)
                        h += 6;
                else if (strncasecmp(h, "bearer ", 7) == 0)
                        h += 7;
                else
                        h = NULL;
        }
        if (h) {
                while (*h == ' ')
                        h++;
                u = state_user_by_token(rq->sim, h);
        }
        if (!u)
                resp_message(rs, 401, "token is required");
        return u;
}

static bool is_org_owner(const struct owner *org, const struct owner *u)
{
        for (size_t i = 0; i < org->n_org_owners; i++)
                if (org->org_owners[i] == u->id)
                        return true;
        return false;
}

/* Resolves the scope of the route and checks the doer's permission on it:
 * 404 when the org or repo does not exist, 403 without owner rights. */
static bool resolve_scope(const struct sim_req *rq, struct sim_resp *rs, struct owner *doer,
                          struct scope *sc)
{
        memset(sc, 0, sizeof(*sc));
        switch ((enum scope_kind)rq->arg) {
        case SCOPE_ADMIN:
                if (!doer->admin) {
                        resp_message(rs, 403, "user should be the site admin");
                        return false;
                }
                return true;
        case SCOPE_ORG:
                sc->owner = state_owner_by_name(rq->sim, rq->params[0]);
                if (!sc->owner || !sc->owner->is_org) {
                        resp_message(rs, 404, "org '%s' does not exist", rq->params[0]);
                        return false;
                }
                if (!doer->admin && !is_org_owner(sc->owner, doer)) {
                        resp_message(rs, 403, "must be an organization owner");
                        return false;
                }
                sc->owner_id = sc->owner->id;
                return true;
        case SCOPE_USER:
                sc->owner = doer;
                sc->owner_id = doer->id;
                return true;
        case SCOPE_REPO:
                sc->repo = state_repo_by_name(rq->sim, rq->params[0], rq->params[1]);
                if (!sc->repo) {
                        resp_message(rs, 404, "repository '%s/%s' does not exist", rq->params[0],
                                     rq->params[1]);
                        return false;
                }
                if (!doer->admin && sc->repo->owner != doer &&
                    !(sc->repo->owner->is_org && is_org_owner(sc->repo->owner, doer))) {
                        resp_message(rs, 403, "user should be the owner of the repo");
                        return false;
                }
                sc->repo_id = sc->repo->id;
                return true;
        }
        resp_message(rs, 500, "unknown scope");
        return false;
}

/* Authentication, scope and permission in Forgejo's order. Locks sim.lock
 * and returns true with it held; returns false unlocked with rs filled. */
static bool enter(const struct sim_req *rq, struct sim_resp *rs, struct owner **ret_doer,
                  struct scope *sc)
{
        struct owner *doer;

        pthread_mutex_lock(&rq->sim->lock);
        doer = authenticate(rq, rs);
        if (!doer || !resolve_scope(rq, rs, doer, sc)) {
                pthread_mutex_unlock(&rq->sim->lock);
                return false;
        }
        if (ret_doer)
                *ret_doer = doer;
        return true;
}

static json_t *strlist_json(const struct rp_strlist *l)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < l->n; i++)
                if (json_array_append_new(a, json_string(l->v[i])) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

void rest_version(const struct sim_req *rq, struct sim_resp *rs)
{
        (void)rq;
        resp_json(rs, 200, json_pack("{s:s}", "version", sim_forgejo_version));
}

void rest_user(const struct sim_req *rq, struct sim_resp *rs)
{
        struct owner *u;
        json_t *j;
        char email[SIM_MAX_NAME + 32];

        pthread_mutex_lock(&rq->sim->lock);
        u = authenticate(rq, rs);
        if (!u) {
                pthread_mutex_unlock(&rq->sim->lock);
                return;
        }
        snprintf(email, sizeof(email), "%s@noreply.localhost", u->name);
        j = json_pack("{s:I, s:s, s:s, s:s, s:s, s:b}", "id", (json_int_t)u->id, "login",
                      u->name, "username", u->name, "full_name", "", "email", email, "is_admin",
                      u->admin);
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, j);
}

/* ---- jobs --------------------------------------------------------------- */

struct labels_filter {
        bool present;                   /* the labels key was sent */
        struct rp_strlist labels;       /* split on ',' after trimming */
};

static int parse_labels(const struct sim_req *rq, struct labels_filter *f)
{
        const char *v;
        char *buf, *start, *end;
        int rc = 0;

        memset(f, 0, sizeof(*f));
        if (!httpd_query(rq, "labels", &v))
                return 0;
        f->present = true;
        buf = strdup(v);
        if (!buf)
                return -ENOMEM;
        /* ctx.FormTrim trims the whole value only; strings.Split keeps
         * empty and space-padded elements. */
        start = buf;
        while (*start && isspace((unsigned char)*start))
                start++;
        end = start + strlen(start);
        while (end > start && isspace((unsigned char)end[-1]))
                *--end = '\0';
        for (char *p = start;;) {
                char *comma = strchr(p, ',');
                if (comma)
                        *comma = '\0';
                if (rp_strlist_push(&f->labels, p) < 0) {
                        rc = -ENOMEM;
                        break;
                }
                if (!comma)
                        break;
                p = comma + 1;
        }
        free(buf);
        return rc;
}

static bool labels_keep(const struct labels_filter *f, const struct job *j)
{
        if (!f->present)
                return true;
        if (f->labels.n && f->labels.v[0][0] == '\0' && j->runs_on.n == 0)
                return true;
        return state_runs_on(&j->runs_on, &f->labels);
}

static json_t *job_json(const struct job *j)
{
        return json_pack("{s:I, s:I, s:s, s:I, s:I, s:s, s:n, s:o, s:I, s:s}",
                         "id", (json_int_t)j->id,
                         "attempt", (json_int_t)j->attempt,
                         "handle", j->handle,
                         "repo_id", (json_int_t)j->repo->id,
                         "owner_id", (json_int_t)j->repo->owner->id,
                         "name", j->name,
                         "needs",
                         "runs_on", strlist_json(&j->runs_on),
                         "task_id", (json_int_t)(j->task ? j->task->id : 0),
                         "status", state_job_status_name(j->status));
}

/* The cached JSON text of a job, built on first use. Lock held. */
static const char *job_text(struct job *j, size_t *ret_len)
{
        if (!j->rest_json) {
                json_t *o = job_json(j);
                j->rest_json = o ? json_dumps(o, JSON_COMPACT) : NULL;
                json_decref(o);
                if (!j->rest_json)
                        return NULL;
                j->rest_json_len = strlen(j->rest_json);
        }
        *ret_len = j->rest_json_len;
        return j->rest_json;
}

struct textbuf {
        char *p;
        size_t len, cap;
};

static int tb_add(struct textbuf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *np = realloc(b->p, cap);
                if (!np)
                        return -ENOMEM;
                b->p = np;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
        return 0;
}

void rest_jobs(const struct sim_req *rq, struct sim_resp *rs)
{
        struct labels_filter f;
        struct scope sc;
        struct jlist *l;
        enum job_list w;
        struct textbuf b = {0};
        bool oom = false;

        if (parse_labels(rq, &f) < 0) {
                rp_strlist_done(&f.labels);
                resp_message(rs, 500, "out of memory");
                return;
        }
        if (!enter(rq, rs, NULL, &sc)) {
                rp_strlist_done(&f.labels);
                return;
        }
        if (sc.repo) {
                l = &sc.repo->act;
                w = JL_ACT_REPO;
        } else if (sc.owner) {
                l = &sc.owner->act;
                w = JL_ACT_OWNER;
        } else {
                l = &rq->sim->act;
                w = JL_ACT_ALL;
        }
        /* Descending id: walk the ascending list from its tail. */
        for (struct job *j = l->tail; j && !oom; j = j->link[w].prev) {
                const char *t;
                size_t n;
                if (!labels_keep(&f, j))
                        continue;
                t = job_text(j, &n);
                oom = !t || tb_add(&b, b.len ? "," : "[", 1) < 0 || tb_add(&b, t, n) < 0;
        }
        pthread_mutex_unlock(&rq->sim->lock);
        rp_strlist_done(&f.labels);
        /* Forgejo serialises an empty result as null (a nil Go slice). */
        if (!oom)
                oom = tb_add(&b, b.len ? "]" : "null", b.len ? 1 : 4) < 0;
        if (oom) {
                free(b.p);
                resp_message(rs, 500, "out of memory");
                return;
        }
        free(rs->body);
        rs->status = 200;
        rs->body = b.p;
        rs->len = b.len;
        rs->content_type = "application/json;charset=utf-8";
}

/* ---- registration tokens ------------------------------------------------ */

void rest_reg_token(const struct sim_req *rq, struct sim_resp *rs)
{
        struct scope sc;
        struct reg_token *t;
        json_t *j = NULL;

        if (!enter(rq, rs, NULL, &sc))
                return;
        t = state_reg_token(rq->sim, sc.owner_id, sc.repo_id);
        if (t)
                j = json_pack("{s:s}", "token", t->token);
        pthread_mutex_unlock(&rq->sim->lock);
        if (!j)
                resp_message(rs, 500, "out of memory");
        else
                resp_json(rs, 200, j);
}

/* ---- runners ------------------------------------------------------------ */

static json_t *runner_json(const struct runner *r, int64_t now)
{
        return json_pack("{s:I, s:s, s:I, s:I, s:s, s:s, s:s, s:o, s:s, s:b}",
                         "id", (json_int_t)r->id,
                         "uuid", r->uuid,
                         "owner_id", (json_int_t)r->owner_id,
                         "repo_id", (json_int_t)r->repo_id,
                         "name", r->name,
                         "status", state_runner_status(r, now),
                         "version", r->version,
                         "labels", strlist_json(&r->labels),
                         "description", r->description,
                         "ephemeral", r->ephemeral);
}

/* Runners listed at a scope: exactly its own; with visible=true also those
 * usable from it (the repo owner's and global ones). The instance scope
 * lists every runner. */
static bool runner_listed(const struct runner *r, const struct scope *sc, bool visible)
{
        if (r->deleted)
                return false;
        if (sc->repo) {
                if (r->repo_id == sc->repo_id)
                        return true;
                return visible && ((r->owner_id == sc->repo->owner->id && !r->repo_id) ||
                                   (!r->owner_id && !r->repo_id));
        }
        if (sc->owner) {
                if (r->owner_id == sc->owner_id && !r->repo_id)
                        return true;
                return visible && !r->owner_id && !r->repo_id;
        }
        return true;
}

/* GetVisibleRunnerByID: a runner is reachable from a scope when it belongs
 * to it or could run its jobs (global runners, the repo owner's runners). */
static bool runner_visible(const struct runner *r, const struct scope *sc)
{
        return runner_listed(r, sc, true);
}

/* Editable: only from the scope the runner belongs to, or the instance. */
static bool runner_editable(const struct runner *r, const struct scope *sc)
{
        if (sc->repo)
                return r->repo_id == sc->repo_id;
        if (sc->owner)
                return r->owner_id == sc->owner_id && !r->repo_id;
        return true;
}

static bool query_bool(const struct sim_req *rq, const char *name)
{
        const char *v;

        if (!httpd_query(rq, name, &v))
                return false;
        return strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "t") == 0 ||
               strcasecmp(v, "TRUE") == 0;
}

static long long query_int(const struct sim_req *rq, const char *name)
{
        const char *v;
        char *end;
        long long n;

        if (!httpd_query(rq, name, &v) || !*v)
                return 0;
        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno || *end)
                return 0;
        return n;
}

static char *page_link(const struct sim_req *rq, long long page, long long limit,
                       long long last, bool visible)
{
        char buf[2048];
        size_t off = 0;
        struct { const char *rel; long long p; bool on; } rels[] = {
                { "next", page + 1, page < last },
                { "last", last, page < last },
                { "first", 1, page > 1 },
                { "prev", page - 1, page > 1 },
        };

        for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
                if (!rels[i].on)
                        continue;
                int n = snprintf(buf + off, sizeof(buf) - off,
                                 "%s<%s%s?%spage=%lld&limit=%lld>; rel=\"%s\"", off ? "," : "",
                                 rq->sim->server_url, rq->path, visible ? "visible=true&" : "",
                                 rels[i].p, limit, rels[i].rel);
                if (n < 0 || (size_t)n >= sizeof(buf) - off)
                        return NULL;
                off += (size_t)n;
        }
        return off ? strdup(buf) : NULL;
}

void rest_runners_list(const struct sim_req *rq, struct sim_resp *rs)
{
        struct scope sc;
        bool visible = query_bool(rq, "visible");
        long long page = query_int(rq, "page"), limit = query_int(rq, "limit");
        long long total = 0, skip, last;
        int64_t now;
        json_t *arr = json_array();

        if (page <= 0)
                page = 1;
        if (limit <= 0)
                limit = PAGE_DEFAULT;
        if (limit > PAGE_MAX)
                limit = PAGE_MAX;
        if (!arr) {
                resp_message(rs, 500, "out of memory");
                return;
        }
        if (!enter(rq, rs, NULL, &sc)) {
                json_decref(arr);
                return;
        }
        /* Read under the lock: a test clock advance must not fall between
         * this and the statuses it judges. */
        now = simclock_mono_ms(&rq->sim->clock);
        skip = (page - 1) * limit;
        for (size_t i = 0; i < rq->sim->runners.n; i++) {
                const struct runner *r = rq->sim->runners.v[i];
                if (!runner_listed(r, &sc, visible))
                        continue;
                if (total >= skip && total < skip + limit)
                        json_array_append_new(arr, runner_json(r, now));
                total++;
        }
        pthread_mutex_unlock(&rq->sim->lock);
        last = total ? (total + limit - 1) / limit : 1;
        resp_json(rs, 200, arr);
        rs->total_count = total;
        rs->link = page_link(rq, page, limit, last, visible);
}

void rest_runners_create(const struct sim_req *rq, struct sim_resp *rs)
{
        json_error_t jerr;
        json_t *body = json_loadb(rq->body, rq->body_len, 0, &jerr);
        json_t *jn = NULL, *jd = NULL, *je = NULL, *out = NULL;
        struct scope sc;
        struct runner *r = NULL;
        int bad = 0, rc;

        /* The body is decoded first but judged only after the token, scope
         * and permission checks, which come first in Forgejo. */
        if (!body || !json_is_object(body)) {
                bad = 400;
        } else {
                jn = json_object_get(body, "name");
                jd = json_object_get(body, "description");
                je = json_object_get(body, "ephemeral");
                if ((jn && !json_is_string(jn) && !json_is_null(jn)) ||
                    (jd && !json_is_string(jd) && !json_is_null(jd)) ||
                    (je && !json_is_boolean(je) && !json_is_null(je)))
                        bad = 400;
                else if (!json_is_string(jn) || !*json_string_value(jn))
                        bad = 422;
        }
        if (!enter(rq, rs, NULL, &sc)) {
                json_decref(body);
                return;
        }
        if (bad) {
                pthread_mutex_unlock(&rq->sim->lock);
                if (bad == 422)
                        resp_message(rs, 422, "[Name]: Required");
                else if (!body)
                        resp_message(rs, 400, "invalid JSON body: %s", jerr.text);
                else
                        resp_message(rs, 400, "invalid JSON body: expected an object with string "
                                     "name and description and boolean ephemeral");
                json_decref(body);
                return;
        }
        rc = state_runner_create(rq->sim, sc.owner_id, sc.repo_id, json_string_value(jn),
                                 json_is_string(jd) ? json_string_value(jd) : "",
                                 json_is_true(je), &r);
        if (rc >= 0)
                out = json_pack("{s:I, s:s, s:s}", "id", (json_int_t)r->id, "uuid", r->uuid,
                                "token", r->token);
        pthread_mutex_unlock(&rq->sim->lock);
        json_decref(body);
        if (rc == -ENOSPC)
                resp_message(rs, 507, "too many runners");
        else if (!out)
                resp_message(rs, 500, "cannot create runner");
        else
                resp_json(rs, 201, out);
}

/* Looks up {id} visible from the scope; answers 404 otherwise. Called
 * with the lock held. */
static struct runner *scoped_runner(const struct sim_req *rq, struct sim_resp *rs,
                                    const struct scope *sc)
{
        const char *idp = rq->arg == SCOPE_REPO ? rq->params[2] :
                          rq->arg == SCOPE_ORG ? rq->params[1] : rq->params[0];
        int64_t id;
        struct runner *r = NULL;

        if (sim_parse_id(idp, &id) >= 0)
                r = state_runner_by_id(rq->sim, id);
        if (!r || !runner_visible(r, sc)) {
                resp_message(rs, 404, "runner does not exist");
                return NULL;
        }
        return r;
}

void rest_runner_get(const struct sim_req *rq, struct sim_resp *rs)
{
        struct scope sc;
        struct runner *r;
        json_t *j;

        if (!enter(rq, rs, NULL, &sc))
                return;
        r = scoped_runner(rq, rs, &sc);
        if (!r) {
                pthread_mutex_unlock(&rq->sim->lock);
                return;
        }
        j = runner_json(r, simclock_mono_ms(&rq->sim->clock));
        pthread_mutex_unlock(&rq->sim->lock);
        resp_json(rs, 200, j);
}

void rest_runner_delete(const struct sim_req *rq, struct sim_resp *rs)
{
        struct scope sc;
        struct runner *r;

        if (!enter(rq, rs, NULL, &sc))
                return;
        r = scoped_runner(rq, rs, &sc);
        if (r && !runner_editable(r, &sc)) {
                resp_message(rs, 404, "no permission to delete this runner");
                r = NULL;
        }
        if (r)
                state_runner_delete(rq->sim, r);
        pthread_mutex_unlock(&rq->sim->lock);
        if (r) {
                free(rs->body);
                rs->body = NULL;
                rs->len = 0;
                rs->status = 204;
                rs->content_type = NULL;
        }
}
