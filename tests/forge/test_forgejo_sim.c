/* test_forgejo_sim.c: hmulti and the Forgejo client through the real event
 * loop against a forgejo-sim child: every forgejo_* call, the label rules,
 * scopes, 401/403/404, injected faults (delay → timeout, garbage, reset,
 * 5xx), concurrency with the per-host connection cap, keep-alive, cancel
 * and teardown with transfers in flight. One simulator for the group; it is
 * stopped in the group teardown and killed by the harness on any exit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "sim.h"
#include "forge/forgejo.h"
#include "http/hmulti.h"
#include "loop/loop.h"

/* ---- world ------------------------------------------------------------- */

static struct sim *S;
static struct sim_user admin, alice, bob;
static struct sim_job j1, j2, j3, j4;

static int group_setup(void **state)
{
        const char *owners[] = { "alice", NULL };
        long long id;

        if (sim_start(NULL, &S) < 0) {
                fprintf(stderr, "cannot start forgejo-sim (FORGEJO_SIM=%s)\n",
                        getenv("FORGEJO_SIM") ? getenv("FORGEJO_SIM") : "");
                return -1;
        }
        if (sim_create_user(S, "admin", true, &admin) < 0 ||
            sim_create_user(S, "alice", false, &alice) < 0 ||
            sim_create_user(S, "bob", false, &bob) < 0 ||
            sim_create_org(S, "acme", owners, &id) < 0 ||
            sim_create_repo(S, "acme", "app", &id) < 0 ||
            sim_create_repo(S, "acme", "web", &id) < 0 ||
            sim_create_repo(S, "bob", "tools", &id) < 0 ||
            sim_create_job(S, "acme", "app", "build", "[\"docker\"]", NULL, &j1) < 0 ||
            sim_create_job(S, "acme", "app", "train", "[\"docker\",\"gpu\"]", NULL, &j2) < 0 ||
            sim_create_job(S, "acme", "web", "plain", "[]", NULL, &j3) < 0 ||
            sim_create_job(S, "bob", "tools", "lint", "[\"docker\"]", NULL, &j4) < 0) {
                sim_stop(S);
                S = NULL;
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        int r = sim_stop(S);
        S = NULL;
        if (r < 0)
                fprintf(stderr, "forgejo-sim did not stop cleanly: %d\n", r);
        return r < 0 ? -1 : 0;
}

/* ---- per-test fixture -------------------------------------------------- */

struct hook_count {
        char route[128];
        char code[16];
        int n;
};

static struct fx {
        struct loop *loop;
        struct hmulti *hm;
        struct forgejo *f_admin, *f_alice, *f_bob;
        struct hook_count hooks[32];
        size_t nhooks;
} fx;

static void on_hook(void *ud, const struct forgejo_event *ev)
{
        struct fx *x = ud;

        assert_string_equal(ev->forge, "sim");
        assert_true(ev->duration_ms >= 0);
        for (size_t i = 0; i < x->nhooks; i++) {
                if (strcmp(x->hooks[i].route, ev->route) == 0 &&
                    strcmp(x->hooks[i].code, ev->code) == 0) {
                        x->hooks[i].n++;
                        return;
                }
        }
        assert_true(x->nhooks < 32);
        struct hook_count *h = &x->hooks[x->nhooks++];
        snprintf(h->route, sizeof(h->route), "%s", ev->route);
        snprintf(h->code, sizeof(h->code), "%s", ev->code);
        h->n = 1;
}

static int hook_n(const char *route, const char *code)
{
        for (size_t i = 0; i < fx.nhooks; i++)
                if (strcmp(fx.hooks[i].route, route) == 0 && strcmp(fx.hooks[i].code, code) == 0)
                        return fx.hooks[i].n;
        return 0;
}

static struct forgejo *client(const char *token, long timeout_ms)
{
        struct forgejo *f = NULL;
        struct forgejo_opts o = {
                .name = "sim", .base_url = S->base_url, .token = token, .timeout_ms = timeout_ms,
        };
        assert_int_equal(forgejo_new(fx.hm, &o, &f), 0);
        forgejo_set_hook(f, on_hook, &fx);
        return f;
}

static int setup(void **state)
{
        memset(&fx, 0, sizeof(fx));
        if (loop_new(&fx.loop) < 0 || hmulti_new(fx.loop, NULL, &fx.hm) < 0)
                return -1;
        fx.f_admin = client(admin.token, 5000);
        fx.f_alice = client(alice.token, 5000);
        fx.f_bob = client(bob.token, 5000);
        return 0;
}

static int teardown(void **state)
{
        forgejo_free(fx.f_admin);
        forgejo_free(fx.f_alice);
        forgejo_free(fx.f_bob);
        hmulti_free(fx.hm);
        /* Every timer and watcher of hmulti is gone with it. */
        size_t timers = loop_timer_count(fx.loop);
        loop_free(fx.loop);
        sim_faults_clear(S);
        if (timers != 0) {
                fprintf(stderr, "%zu loop timers left after hmulti_free\n", timers);
                return -1;
        }
        return 0;
}

static int64_t now_ms(void)
{
        return (int64_t)(ck_now() * 1000.0);
}

/* Runs the loop until *count reaches want (or fails after max_ms). */
static void run_until(const int *count, int want, long max_ms)
{
        int64_t end = now_ms() + max_ms;

        while (*count < want) {
                if (now_ms() > end)
                        fail_msg("timed out waiting: %d of %d callbacks", *count, want);
                assert_true(loop_run_once(fx.loop, 50) >= 0);
        }
}

/* Runs the loop for ms milliseconds. */
static void run_for(long ms)
{
        int64_t end = now_ms() + ms;

        while (now_ms() < end)
                assert_true(loop_run_once(fx.loop, 20) >= 0);
}

static struct forgejo_scope scope(const char *s)
{
        struct forgejo_scope sc;
        assert_int_equal(forgejo_scope_parse(s, &sc), 0);
        return sc;
}

/* ---- results captured from callbacks ----------------------------------- */

struct got {
        int calls;
        int err;
        long status;
        char reason[160];
        char route[128];
        long long ids[64];
        char handles[64][64];
        size_t n;
        long long total;
        /* version / runner */
        char text[128];
        int major, minor, patch;
        struct forgejo_runner_created created;
        char rname[64], rstatus[16], rdesc[64];
        bool reph;
        size_t rlabels;
};

static void take_res(struct got *g, const struct forgejo_result *res)
{
        g->calls++;
        g->err = res->err;
        g->status = res->status;
        snprintf(g->reason, sizeof(g->reason), "%s", res->reason);
        snprintf(g->route, sizeof(g->route), "%s", res->route);
        if (res->err == 0)
                assert_string_equal(res->reason, "");
        else
                assert_true(res->reason[0] != '\0');
}

static void on_version(void *ud, const struct forgejo_result *res, const struct forgejo_version *v)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((v != NULL) == (res->err == 0));
        if (v) {
                snprintf(g->text, sizeof(g->text), "%s", v->version);
                assert_true(v->parsed);
                g->major = v->major;
                g->minor = v->minor;
                g->patch = v->patch;
        }
}

static void on_jobs(void *ud, const struct forgejo_result *res, const struct forgejo_job_list *l)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((l != NULL) == (res->err == 0));
        g->n = 0;
        if (!l)
                return;
        assert_true(l->n <= 64);
        for (size_t i = 0; i < l->n; i++) {
                g->ids[i] = l->jobs[i].id;
                snprintf(g->handles[i], sizeof(g->handles[i]), "%s", l->jobs[i].handle);
                assert_int_equal(l->jobs[i].state, FORGEJO_JOB_WAITING);
                assert_int_equal(l->jobs[i].task_id, 0);
                assert_int_equal(l->jobs[i].attempt, 1);
        }
        g->n = l->n;
}

static void on_created(void *ud, const struct forgejo_result *res,
                       struct forgejo_runner_created *c)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((c != NULL) == (res->err == 0));
        if (c)
                g->created = *c;
}

static void on_runner(void *ud, const struct forgejo_result *res, const struct forgejo_runner *r)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((r != NULL) == (res->err == 0));
        if (!r)
                return;
        g->ids[0] = r->id;
        g->n = 1;
        snprintf(g->text, sizeof(g->text), "%s", r->uuid);
        snprintf(g->rname, sizeof(g->rname), "%s", r->name);
        snprintf(g->rstatus, sizeof(g->rstatus), "%s", r->status);
        snprintf(g->rdesc, sizeof(g->rdesc), "%s", r->description);
        g->reph = r->ephemeral;
        g->rlabels = r->n_labels;
}

static void on_runners(void *ud, const struct forgejo_result *res,
                       const struct forgejo_runner_list *l)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((l != NULL) == (res->err == 0));
        g->n = 0;
        if (!l)
                return;
        assert_true(l->n <= 64);
        for (size_t i = 0; i < l->n; i++)
                g->ids[i] = l->runners[i].id;
        g->n = l->n;
        g->total = l->total_count;
}

static void on_reg_token(void *ud, const struct forgejo_result *res, const char *token)
{
        struct got *g = ud;
        take_res(g, res);
        assert_true((token != NULL) == (res->err == 0));
        if (token)
                snprintf(g->text, sizeof(g->text), "%s", token);
}

static void on_done(void *ud, const struct forgejo_result *res)
{
        take_res(ud, res);
}

static void never_called(void *ud, const struct forgejo_result *res,
                         const struct forgejo_job_list *l)
{
        fail_msg("callback of a cancelled call ran");
}

static void list_jobs_sync(struct forgejo *f, const char *sc, const char *const *labels,
                           struct got *g)
{
        struct forgejo_scope s = scope(sc);
        memset(g, 0, sizeof(*g));
        assert_int_equal(forgejo_list_jobs(f, &s, labels, on_jobs, g, NULL), 0);
        run_until(&g->calls, 1, 5000);
}

static void assert_ids(const struct got *g, size_t n, ...)
{
        va_list ap;

        if (g->n != n)
                fail_msg("got %zu jobs, want %zu (err=%d reason=%s)", g->n, n, g->err, g->reason);
        va_start(ap, n);
        for (size_t i = 0; i < n; i++) {
                long long want = va_arg(ap, long long);
                if (g->ids[i] != want)
                        fail_msg("job[%zu] id %lld, want %lld", i, g->ids[i], want);
        }
        va_end(ap);
}

/* ---- tests ------------------------------------------------------------- */

static void version(void **state)
{
        struct got g = { 0 };

        assert_int_equal(forgejo_version(fx.f_admin, on_version, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.text, "15.0.0+gitea-1.22.0");
        assert_int_equal(g.major, 15);
        assert_int_equal(g.minor, 0);
        assert_int_equal(g.patch, 0);
        assert_string_equal(g.route, "GET /api/v1/version");
        assert_int_equal(hook_n("GET /api/v1/version", "200"), 1);
        assert_int_equal(forgejo_inflight(fx.f_admin), 0);
        assert_int_equal(hmulti_inflight(fx.hm), 0);
}

static void jobs_labels_instance(void **state)
{
        struct got g;

        /* No labels key: every waiting job, id descending. */
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, 0);
        assert_ids(&g, 4, j4.id, j3.id, j2.id, j1.id);
        assert_string_equal(g.handles[3], j1.handle);
        assert_string_equal(g.handles[0], j4.handle);
        assert_string_equal(g.route, "GET /api/v1/admin/actions/runners/jobs");

        /* labels=docker: jobs whose runs_on is a non-empty subset. */
        const char *const docker[] = { "docker", NULL };
        list_jobs_sync(fx.f_admin, "instance", docker, &g);
        assert_ids(&g, 2, j4.id, j1.id);

        const char *const both[] = { "gpu", "docker", "extra", NULL };
        list_jobs_sync(fx.f_admin, "instance", both, &g);
        assert_ids(&g, 3, j4.id, j2.id, j1.id);

        /* labels= (empty list): only jobs without runs_on. */
        const char *const none[] = { NULL };
        list_jobs_sync(fx.f_admin, "instance", none, &g);
        assert_ids(&g, 1, j3.id);

        /* No match: Forgejo answers null; that is an empty list, not an error. */
        const char *const nomatch[] = { "arm 64&x", NULL };
        list_jobs_sync(fx.f_admin, "instance", nomatch, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 200);
        assert_ids(&g, 0);

        assert_int_equal(hook_n("GET /api/v1/admin/actions/runners/jobs", "200"), 5);
}

static void jobs_scopes(void **state)
{
        struct got g;

        list_jobs_sync(fx.f_alice, "org/acme", NULL, &g);
        assert_int_equal(g.err, 0);
        assert_ids(&g, 3, j3.id, j2.id, j1.id);
        assert_string_equal(g.route, "GET /api/v1/orgs/{org}/actions/runners/jobs");

        list_jobs_sync(fx.f_alice, "repo/acme/app", NULL, &g);
        assert_ids(&g, 2, j2.id, j1.id);
        assert_string_equal(g.route, "GET /api/v1/repos/{owner}/{repo}/actions/runners/jobs");

        list_jobs_sync(fx.f_bob, "user", NULL, &g);
        assert_ids(&g, 1, j4.id);
        assert_string_equal(g.route, "GET /api/v1/user/actions/runners/jobs");

        const char *const gpu[] = { "gpu", NULL };
        list_jobs_sync(fx.f_alice, "repo/acme/app", gpu, &g);
        assert_ids(&g, 0);

        /* The simulator counted the same requests per route. */
        json_t *st = NULL;
        assert_int_equal(sim_stats(S, &st), 0);
        json_t *req = json_object_get(st, "requests");
        assert_true(json_integer_value(json_object_get(
                req, "GET /api/v1/orgs/{org}/actions/runners/jobs")) >= 1);
        json_decref(st);
}

static void errors_401_403_404(void **state)
{
        struct got g;
        struct forgejo *bad = client("0000000000000000000000000000000000000bad", 5000);

        list_jobs_sync(bad, "instance", NULL, &g);
        assert_int_equal(g.err, -EACCES);
        assert_int_equal(g.status, 401);
        assert_non_null(strstr(g.reason, "HTTP 401"));
        assert_null(strstr(g.reason, "0000000000000000000000000000000000000bad"));
        forgejo_free(bad);

        /* bob is neither site admin nor acme owner. */
        list_jobs_sync(fx.f_bob, "instance", NULL, &g);
        assert_int_equal(g.err, -EPERM);
        assert_int_equal(g.status, 403);
        list_jobs_sync(fx.f_bob, "org/acme", NULL, &g);
        assert_int_equal(g.err, -EPERM);

        list_jobs_sync(fx.f_admin, "org/nosuch", NULL, &g);
        assert_int_equal(g.err, -ENOENT);
        assert_int_equal(g.status, 404);
        assert_non_null(strstr(g.reason, "HTTP 404: org 'nosuch' does not exist"));
        list_jobs_sync(fx.f_alice, "repo/acme/nosuch", NULL, &g);
        assert_int_equal(g.err, -ENOENT);

        assert_int_equal(hook_n("GET /api/v1/admin/actions/runners/jobs", "401"), 1);
        assert_int_equal(hook_n("GET /api/v1/admin/actions/runners/jobs", "403"), 1);
        assert_int_equal(hook_n("GET /api/v1/orgs/{org}/actions/runners/jobs", "404"), 1);
}

static void runner_lifecycle(void **state)
{
        struct forgejo_scope sc = scope("org/acme");
        struct got g = { 0 };

        assert_int_equal(forgejo_runner_create(fx.f_alice, &sc, "fs-life", "made by a test", true,
                                               on_created, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 201);
        assert_string_equal(g.route, "POST /api/v1/orgs/{org}/actions/runners");
        struct forgejo_runner_created c = g.created;
        assert_true(c.id > 0);
        assert_true(is_uuid(c.uuid));
        assert_true(is_hex(c.token, 40));

        /* The simulator agrees, and the token works for the runner protocol. */
        json_t *sr = NULL;
        assert_int_equal(sim_find_runner(S, c.uuid, &sr), 0);
        assert_int_equal(json_integer_value(json_object_get(sr, "id")), c.id);
        assert_string_equal(json_string_value(json_object_get(sr, "name")), "fs-life");
        assert_true(json_is_true(json_object_get(sr, "ephemeral")));
        json_decref(sr);
        struct sim_runner srun = { .id = c.id };
        snprintf(srun.uuid, sizeof(srun.uuid), "%s", c.uuid);
        snprintf(srun.token, sizeof(srun.token), "%s", c.token);
        assert_int_equal(sim_runner_declare(S, &srun, "[\"docker\"]"), 0);

        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_runner_get(fx.f_alice, &sc, c.id, on_runner, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.ids[0], c.id);
        assert_string_equal(g.text, c.uuid);
        assert_string_equal(g.rname, "fs-life");
        assert_string_equal(g.rdesc, "made by a test");
        assert_true(g.reph);
        assert_int_equal(g.rlabels, 1);      /* declared above */
        assert_true(strcmp(g.rstatus, "idle") == 0 || strcmp(g.rstatus, "active") == 0 ||
                    strcmp(g.rstatus, "offline") == 0);

        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_runner_delete(fx.f_alice, &sc, c.id, on_done, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.status, 204);
        assert_string_equal(g.route, "DELETE /api/v1/orgs/{org}/actions/runners/{runner_id}");

        /* Gone: get and a second delete both say -ENOENT. */
        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_runner_get(fx.f_alice, &sc, c.id, on_runner, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, -ENOENT);
        assert_int_equal(g.status, 404);
        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_runner_delete(fx.f_alice, &sc, c.id, on_done, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, -ENOENT);

        /* Not visible from another scope. */
        memset(&g, 0, sizeof(g));
        struct forgejo_scope bs = scope("user");
        assert_int_equal(forgejo_runner_get(fx.f_bob, &bs, c.id, on_runner, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, -ENOENT);

        assert_int_equal(forgejo_runner_get(fx.f_alice, &sc, 0, on_runner, &g, NULL), -EINVAL);
        assert_int_equal(forgejo_runner_create(fx.f_alice, &sc, "", NULL, false, on_created, &g,
                                               NULL), -EINVAL);
        assert_int_equal(forgejo_runner_create(fx.f_alice, &sc, "bad\xff", NULL, false,
                                               on_created, &g, NULL), -EINVAL);
}

/* The scope's registration token, and Register with it makes a runner in
 * that scope; another user's scope is refused. */
static void registration_token(void **state)
{
        struct forgejo_scope sc = scope("org/acme");
        struct got g = { 0 };
        char body[512];
        struct sim_resp r;

        assert_int_equal(forgejo_registration_token(fx.f_alice, &sc, on_reg_token, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_string_equal(g.route, "GET /api/v1/orgs/{org}/actions/runners/registration-token");
        assert_true(strlen(g.text) > 0);
        snprintf(body, sizeof(body), "{\"name\":\"reg-1\",\"token\":\"%s\",\"labels\":[\"x\"]}", g.text);
        assert_int_equal(sim_rpc(S, "runner.v1.RunnerService/Register", NULL, NULL, NULL, body, &r), 0);
        assert_int_equal(r.status, 200);
        sim_resp_done(&r);

        struct forgejo_scope bs = scope("repo/bob/tools");
        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_registration_token(fx.f_alice, &bs, on_reg_token, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_true(g.err == -ENOENT || g.err == -EACCES || g.err == -EPERM);

        /* A token of the wrong shape is refused, and not quoted. */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/orgs/acme/actions/runners/registration-token\","
                                      "\"mode\":\"garbage\",\"count\":1}"), 0);
        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_registration_token(fx.f_alice, &sc, on_reg_token, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, -EBADMSG);
}

static void runner_list_paging(void **state)
{
        struct forgejo_scope sc = scope("repo/acme/web");
        long long made[5];
        struct got g;

        for (int i = 0; i < 5; i++) {
                char name[32];
                snprintf(name, sizeof(name), "page-%d", i);
                memset(&g, 0, sizeof(g));
                assert_int_equal(forgejo_runner_create(fx.f_alice, &sc, name, NULL, false,
                                                       on_created, &g, NULL), 0);
                run_until(&g.calls, 1, 5000);
                assert_int_equal(g.err, 0);
                made[i] = g.created.id;
        }

        long long seen[5];
        size_t nseen = 0;
        for (int page = 1; page <= 3; page++) {
                memset(&g, 0, sizeof(g));
                assert_int_equal(forgejo_runner_list(fx.f_alice, &sc, page, 2, on_runners, &g,
                                                     NULL), 0);
                run_until(&g.calls, 1, 5000);
                assert_int_equal(g.err, 0);
                assert_int_equal(g.total, 5);
                assert_int_equal(g.n, page < 3 ? 2 : 1);
                for (size_t i = 0; i < g.n; i++)
                        seen[nseen++] = g.ids[i];
        }
        assert_string_equal(g.route, "GET /api/v1/repos/{owner}/{repo}/actions/runners");
        for (int i = 0; i < 5; i++) {
                bool found = false;
                for (size_t k = 0; k < nseen; k++)
                        found |= seen[k] == made[i];
                if (!found)
                        fail_msg("runner %lld missing from the pages", made[i]);
        }
        memset(&g, 0, sizeof(g));
        assert_int_equal(forgejo_runner_list(fx.f_alice, &sc, 4, 2, on_runners, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.n, 0);
        assert_int_equal(g.total, 5);

        assert_int_equal(forgejo_runner_list(fx.f_alice, &sc, 0, 2, on_runners, &g, NULL), -EINVAL);
        assert_int_equal(forgejo_runner_list(fx.f_alice, &sc, 1, 0, on_runners, &g, NULL), -EINVAL);

        for (int i = 0; i < 5; i++) {
                memset(&g, 0, sizeof(g));
                assert_int_equal(forgejo_runner_delete(fx.f_alice, &sc, made[i], on_done, &g,
                                                       NULL), 0);
                run_until(&g.calls, 1, 5000);
                assert_int_equal(g.err, 0);
        }
}

static void fault_timeout(void **state)
{
        struct forgejo *quick = client(admin.token, 300);
        struct got g;

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"delay\",\"seconds\":1.5,\"count\":1}"), 0);
        int64_t t0 = now_ms();
        list_jobs_sync(quick, "instance", NULL, &g);
        int64_t took = now_ms() - t0;
        assert_int_equal(g.err, -ETIMEDOUT);
        assert_int_equal(g.status, 0);
        assert_non_null(strstr(g.reason, "timed out after 300 ms"));
        assert_true(took >= 250 && took < 1400); /* the server would answer at 1500 */
        assert_int_equal(hook_n("GET /api/v1/admin/actions/runners/jobs", "error"), 1);

        /* The fault is used up: the next call works on a fresh connection. */
        list_jobs_sync(quick, "instance", NULL, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.n, 4);
        forgejo_free(quick);
}

static void fault_garbage_reset_5xx(void **state)
{
        struct got g;

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"garbage\",\"count\":1}"), 0);
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, -EBADMSG);
        assert_int_equal(g.status, 200);
        assert_non_null(strstr(g.reason, "invalid JSON"));

        /* A reset on a reused keep-alive connection before any response
         * byte is retried once on a fresh connection (curl's stale
         * connection rule), so a single reset is invisible... */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"reset\",\"count\":1}"), 0);
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.n, 4);

        /* ...while a reset on a fresh connection is an error. */
        struct hmulti *fresh = NULL;
        assert_int_equal(hmulti_new(fx.loop, NULL, &fresh), 0);
        struct forgejo_opts o = { .name = "sim", .base_url = S->base_url, .token = admin.token };
        struct forgejo *f2 = NULL;
        assert_int_equal(forgejo_new(fresh, &o, &f2), 0);
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"reset\",\"count\":1}"), 0);
        list_jobs_sync(f2, "instance", NULL, &g);
        if (g.err != -ECONNRESET && g.err != -EIO)
                fail_msg("reset gave %d (%s)", g.err, g.reason);
        assert_int_equal(g.status, 0);
        forgejo_free(f2);
        hmulti_free(fresh);

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"status\",\"status\":503,\"count\":1}"), 0);
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, -EREMOTEIO);
        assert_int_equal(g.status, 503);
        assert_non_null(strstr(g.reason, "HTTP 503"));

        /* Other statuses map as documented. */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"status\",\"status\":429,\"count\":1}"), 0);
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, -EAGAIN);
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"status\",\"status\":418,\"count\":1}"), 0);
        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, -EPROTO);

        list_jobs_sync(fx.f_admin, "instance", NULL, &g);
        assert_int_equal(g.err, 0);
        assert_int_equal(g.n, 4);
        assert_int_equal(hook_n("GET /api/v1/admin/actions/runners/jobs", "503"), 1);
}

static void concurrent_lists(void **state)
{
        enum { N = 100 };
        static struct got g[N];
        int done = 0;
        struct hmulti_stats before, after;
        struct forgejo_scope sc = scope("org/acme");

        /* Warm one connection so the count below is about concurrency. */
        list_jobs_sync(fx.f_alice, "org/acme", NULL, &g[0]);
        hmulti_get_stats(fx.hm, &before);
        memset(g, 0, sizeof(g));
        for (int i = 0; i < N; i++)
                assert_int_equal(forgejo_list_jobs(fx.f_alice, &sc, NULL, on_jobs, &g[i], NULL), 0);
        assert_int_equal(forgejo_inflight(fx.f_alice), N);
        int64_t t0 = now_ms();
        int64_t end = t0 + 20000;
        while (done < N) {
                done = 0;
                for (int i = 0; i < N; i++)
                        done += g[i].calls;
                if (done < N) {
                        assert_true(now_ms() < end);
                        assert_true(loop_run_once(fx.loop, 50) >= 0);
                }
        }
        hmulti_get_stats(fx.hm, &after);
        for (int i = 0; i < N; i++) {
                assert_int_equal(g[i].calls, 1);
                assert_int_equal(g[i].err, 0);
                assert_int_equal(g[i].n, 3);
        }
        fprintf(stderr, "# %d concurrent lists: %lld ms, %llu new connections, peak %zu fds\n",
                N, (long long)(now_ms() - t0), after.sockets_opened - before.sockets_opened,
                after.sockets_watched_peak);
        assert_true(after.sockets_opened - before.sockets_opened <= HMULTI_DEFAULT_MAX_HOST_CONNECTIONS);
        assert_true(after.sockets_watched_peak <= HMULTI_DEFAULT_MAX_HOST_CONNECTIONS);
        assert_int_equal(hook_n("GET /api/v1/orgs/{org}/actions/runners/jobs", "200"), N + 1);
}

static void concurrent_creates(void **state)
{
        enum { N = 200 };
        static struct got g[N];
        struct forgejo_scope sc = scope("user");
        struct hmulti_stats before, after;
        int done = 0;

        hmulti_get_stats(fx.hm, &before);
        memset(g, 0, sizeof(g));
        for (int i = 0; i < N; i++) {
                char name[32];
                snprintf(name, sizeof(name), "burst-%d", i);
                assert_int_equal(forgejo_runner_create(fx.f_bob, &sc, name, NULL, true, on_created,
                                                       &g[i], NULL), 0);
        }
        int64_t end = now_ms() + 30000;
        while (done < N) {
                done = 0;
                for (int i = 0; i < N; i++)
                        done += g[i].calls;
                if (done < N) {
                        assert_true(now_ms() < end);
                        assert_true(loop_run_once(fx.loop, 50) >= 0);
                }
        }
        hmulti_get_stats(fx.hm, &after);
        for (int i = 0; i < N; i++) {
                assert_int_equal(g[i].err, 0);
                for (int k = 0; k < i; k++)
                        assert_true(g[k].created.id != g[i].created.id);
        }
        fprintf(stderr, "# %d concurrent creates: %llu connections opened\n", N,
                after.sockets_opened - before.sockets_opened);
        assert_true(after.sockets_opened - before.sockets_opened <= HMULTI_DEFAULT_MAX_HOST_CONNECTIONS);
        /* Clean up so later list tests see a small user scope. */
        int deleted = 0;
        static struct got d[N];
        memset(d, 0, sizeof(d));
        for (int i = 0; i < N; i++)
                assert_int_equal(forgejo_runner_delete(fx.f_bob, &sc, g[i].created.id, on_done,
                                                       &d[i], NULL), 0);
        end = now_ms() + 30000;
        while (deleted < N) {
                deleted = 0;
                for (int i = 0; i < N; i++)
                        deleted += d[i].calls;
                if (deleted < N) {
                        assert_true(now_ms() < end);
                        assert_true(loop_run_once(fx.loop, 50) >= 0);
                }
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(d[i].err, 0);
}

static void keepalive_reuse(void **state)
{
        struct hmulti_stats before, after;
        struct got g;

        for (int i = 0; i < 10; i++) {
                memset(&g, 0, sizeof(g));
                assert_int_equal(forgejo_version(fx.f_admin, on_version, &g, NULL), 0);
                run_until(&g.calls, 1, 5000);
                assert_int_equal(g.err, 0);
                if (i == 0)
                        hmulti_get_stats(fx.hm, &before);
        }
        hmulti_get_stats(fx.hm, &after);
        /* Nine more requests on the connection of the first. */
        assert_int_equal(after.sockets_opened, before.sockets_opened);
        assert_int_equal(after.started, before.started + 9);
}

static struct forgejo *self_free_target;

static void on_version_free_client(void *ud, const struct forgejo_result *res,
                                   const struct forgejo_version *v)
{
        on_version(ud, res, v);
        forgejo_free(self_free_target);
        self_free_target = NULL;
}

static void cancel_and_free_in_flight(void **state)
{
        struct forgejo_scope sc = scope("instance");
        struct forgejo_call *c = NULL;
        struct got g = { 0 };

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"delay\",\"seconds\":0.5}"), 0);
        /* Cancelled call: never calls back. */
        assert_int_equal(forgejo_list_jobs(fx.f_admin, &sc, NULL, never_called, NULL, &c), 0);
        run_for(100);
        forgejo_cancel(c);
        assert_int_equal(forgejo_inflight(fx.f_admin), 0);
        assert_int_equal(hmulti_inflight(fx.hm), 0);

        /* A second client freed with calls in flight: no callbacks, no leaks. */
        struct forgejo *tmp = client(admin.token, 5000);
        for (int i = 0; i < 5; i++)
                assert_int_equal(forgejo_list_jobs(tmp, &sc, NULL, never_called, NULL, NULL), 0);
        run_for(100);
        assert_int_equal(hmulti_inflight(fx.hm), 5);
        forgejo_free(tmp);
        assert_int_equal(hmulti_inflight(fx.hm), 0);

        /* A client freed from one of its own callbacks: its other calls
         * are cancelled and never call back. */
        struct forgejo *self = client(admin.token, 5000);
        struct got first = { 0 };
        self_free_target = self;
        assert_int_equal(forgejo_list_jobs(self, &sc, NULL, never_called, NULL, NULL), 0);
        assert_int_equal(forgejo_version(self, on_version_free_client, &first, NULL), 0);
        run_until(&first.calls, 1, 5000);
        assert_int_equal(first.err, 0);
        assert_null(self_free_target);
        assert_int_equal(hmulti_inflight(fx.hm), 0);

        /* Other calls still complete after the delay. */
        assert_int_equal(forgejo_list_jobs(fx.f_admin, &sc, NULL, on_jobs, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        run_for(600); /* nothing else fires */

        /* hmulti freed with transfers in flight (the fixture frees the
         * clients first, as documented): teardown checks timers and ASan
         * checks memory. */
        for (int i = 0; i < 3; i++)
                assert_int_equal(forgejo_list_jobs(fx.f_admin, &sc, NULL, never_called, NULL,
                                                   NULL), 0);
        run_for(50);
}

/* Every fd a transfer opens (sockets, curl internals) is close-on-exec, so
 * provider children never inherit a forge connection. */
static int open_fds(int *fds, int max)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        assert_non_null(d);
        while ((e = readdir(d)) && n < max) {
                char *end;
                errno = 0;
                long long v = strtoll(e->d_name, &end, 10);
                if (errno == 0 && *end == '\0' && e->d_name[0] && v != dirfd(d))
                        fds[n++] = (int)v;
        }
        closedir(d);
        return n;
}

static void fds_cloexec(void **state)
{
        int before[256], after[256];
        int nb = open_fds(before, 256);
        struct forgejo_scope sc = scope("instance");
        int checked = 0;

        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/admin/actions/runners/jobs\","
                                      "\"mode\":\"delay\",\"seconds\":0.3}"), 0);
        for (int i = 0; i < 4; i++)
                assert_int_equal(forgejo_list_jobs(fx.f_admin, &sc, NULL, never_called, NULL,
                                                   NULL), 0);
        run_for(100);
        int na = open_fds(after, 256);
        for (int i = 0; i < na; i++) {
                bool old = false;
                for (int k = 0; k < nb; k++)
                        old |= before[k] == after[i];
                if (old)
                        continue;
                int fl = fcntl(after[i], F_GETFD);
                if (fl < 0 || !(fl & FD_CLOEXEC))
                        fail_msg("fd %d opened by a transfer lacks FD_CLOEXEC", after[i]);
                checked++;
        }
        assert_true(checked >= 4); /* the four connections at least */
}

/* ---- raw hmulti -------------------------------------------------------- */

struct raw {
        int calls;
        int err;
        long status;
        size_t len;
        long long total;
        char body[256];
        struct hmulti *free_me;
};

static void on_raw(void *ud, int err, long status, const char *body, size_t len, long long total)
{
        struct raw *r = ud;
        r->calls++;
        r->err = err;
        r->status = status;
        r->len = len;
        r->total = total;
        if (err == 0) {
                assert_non_null(body);
                assert_int_equal(strlen(body), len);
                snprintf(r->body, sizeof(r->body), "%s", body);
        } else {
                assert_null(body);
                assert_int_equal(status, 0);
        }
        if (r->free_me)
                hmulti_free(r->free_me);
}

static void on_raw_never(void *ud, int err, long status, const char *body, size_t len,
                         long long total)
{
        fail_msg("callback after cancel or free");
}

static void hmulti_raw(void **state)
{
        char url[256];
        const char *hdr[] = { NULL, NULL };
        char auth[200];
        struct raw r = { 0 };

        snprintf(auth, sizeof(auth), "Authorization: token %s", alice.token);
        hdr[0] = auth;

        /* X-Total-Count is passed through. */
        snprintf(url, sizeof(url), "%s/api/v1/orgs/acme/actions/runners?page=1&limit=1", S->base_url);
        struct hmulti_req req = { .url = url, .headers = hdr };
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw, &r, NULL), 0);
        run_until(&r.calls, 1, 5000);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 200);
        assert_true(r.total >= 0);

        /* No header: -1. Body is NUL-terminated with its length. */
        memset(&r, 0, sizeof(r));
        snprintf(url, sizeof(url), "%s/api/v1/version", S->base_url);
        req = (struct hmulti_req){ .url = url };
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw, &r, NULL), 0);
        run_until(&r.calls, 1, 5000);
        assert_int_equal(r.total, -1);
        assert_string_equal(r.body, "{\"version\":\"15.0.0+gitea-1.22.0\"}");

        /* Response above max_response. */
        memset(&r, 0, sizeof(r));
        req.max_response = 10;
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw, &r, NULL), 0);
        run_until(&r.calls, 1, 5000);
        assert_int_equal(r.err, -EMSGSIZE);
        req.max_response = 0;

        /* 404 is a response, not an error. */
        memset(&r, 0, sizeof(r));
        snprintf(url, sizeof(url), "%s/api/v1/nope", S->base_url);
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw, &r, NULL), 0);
        run_until(&r.calls, 1, 5000);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 404);

        /* Connection refused: a port we bound and closed. */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t sl = sizeof(sa);
        assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
        close(s);
        memset(&r, 0, sizeof(r));
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/version", ntohs(sa.sin_port));
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw, &r, NULL), 0);
        run_until(&r.calls, 1, 5000);
        assert_int_equal(r.err, -ECONNREFUSED);

        /* Rejected up front, callback never called. */
        req.url = "ftp://127.0.0.1/x";
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw_never, NULL, NULL), -EINVAL);
        req.url = NULL;
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw_never, NULL, NULL), -EINVAL);
        req.url = url;
        req.method = "GET\r\nX: y";
        assert_int_equal(hmulti_start(fx.hm, &req, on_raw_never, NULL, NULL), -EINVAL);
}

static int done_count;

static void on_counted(void *ud, int err, long status, const char *body, size_t len,
                       long long total)
{
        on_raw(ud, err, status, body, len, total);
        done_count++;
}

static void hmulti_admission(void **state)
{
        /* Three connections per origin: ordinary requests get two of them
         * and wait in hmulti's queue beyond that; an urgent one takes the
         * third at once; a cancel frees a slot or a queue place, and a
         * cancelled request never calls back. */
        struct hmulti *h = NULL;
        struct hmulti_opts o = { .max_host_connections = 3 };
        char slow[256], fast[256];
        struct raw r[8] = { 0 }, u = { 0 };
        struct hmulti_xfer *x[8];
        struct hmulti_stats st;

        assert_int_equal(hmulti_new(fx.loop, &o, &h), 0);
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/version\",\"mode\":\"delay\","
                                      "\"seconds\":1.0,\"count\":0}"), 0);
        snprintf(slow, sizeof(slow), "%s/api/v1/version", S->base_url);
        snprintf(fast, sizeof(fast), "%s/api/v1/nope", S->base_url);
        struct hmulti_req rs = { .url = slow, .timeout_ms = 8000 };
        struct hmulti_req ru = { .url = fast, .timeout_ms = 8000, .urgent = true };
        done_count = 0;
        for (int i = 0; i < 8; i++)
                assert_int_equal(hmulti_start(h, &rs, on_counted, &r[i], &x[i]), 0);
        hmulti_get_stats(h, &st);
        assert_int_equal(st.active_peak, 2);
        assert_int_equal(st.queued, 6);
        assert_int_equal(st.queued_total, 6);
        assert_int_equal(hmulti_inflight(h), 8);

        hmulti_cancel(x[7]); /* queued */
        hmulti_cancel(x[0]); /* admitted: x[2] takes its slot */
        assert_int_equal(hmulti_inflight(h), 6);
        hmulti_get_stats(h, &st);
        assert_int_equal(st.queued, 5);
        run_for(30);
        hmulti_get_stats(h, &st);
        assert_int_equal(st.queued, 4);
        assert_int_equal(st.active_peak, 2);

        int64_t t0 = now_ms();
        assert_int_equal(hmulti_start(h, &ru, on_raw, &u, NULL), 0);
        run_until(&u.calls, 1, 5000);
        assert_int_equal(u.err, 0);
        assert_int_equal(u.status, 404);
        /* Before any slow one (1 s each) has freed a connection. */
        assert_int_equal(done_count, 0);
        hmulti_get_stats(h, &st);
        assert_int_equal(st.active_peak, 3);

        /* x[1]..x[6]: two at a time, 1 s each, so three rounds. */
        run_until(&done_count, 6, 10000);
        assert_true(now_ms() - t0 >= 2800);
        for (int i = 1; i <= 6; i++) {
                assert_int_equal(r[i].calls, 1);
                assert_int_equal(r[i].err, 0);
                assert_int_equal(r[i].status, 200);
        }
        assert_int_equal(r[0].calls + r[7].calls, 0);
        hmulti_get_stats(h, &st);
        assert_int_equal(st.queued, 0);
        assert_int_equal(st.active_peak, 3);
        assert_true(st.sockets_watched_peak <= 3);
        assert_int_equal(hmulti_inflight(h), 0);
        assert_int_equal(sim_faults_clear(S), 0);
        hmulti_free(h);
}

static void hmulti_queue_timeout(void **state)
{
        /* One connection per host: the second request waits in hmulti's
         * queue behind a slow one, and its own timeout still applies. */
        struct hmulti *one = NULL;
        struct hmulti_opts o = { .max_host_connections = 1 };
        char slow[256], quick[256];
        struct raw a = { 0 }, b = { 0 };

        assert_int_equal(hmulti_new(fx.loop, &o, &one), 0);
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/version\",\"mode\":\"delay\","
                                      "\"seconds\":2.0,\"count\":1}"), 0);
        snprintf(slow, sizeof(slow), "%s/api/v1/version", S->base_url);
        snprintf(quick, sizeof(quick), "%s/api/v1/version?x=1", S->base_url);
        struct hmulti_req ra = { .url = slow, .timeout_ms = 4000 };
        struct hmulti_req rb = { .url = quick, .timeout_ms = 300 };
        assert_int_equal(hmulti_start(one, &ra, on_raw, &a, NULL), 0);
        run_for(50);
        int64_t t0 = now_ms();
        assert_int_equal(hmulti_start(one, &rb, on_raw, &b, NULL), 0);
        run_until(&b.calls, 1, 3000);
        int64_t took = now_ms() - t0;
        assert_int_equal(b.err, -ETIMEDOUT);
        assert_true(took < 1500); /* long before the slow one frees the connection */
        run_until(&a.calls, 1, 4000);
        assert_int_equal(a.err, 0);
        assert_int_equal(a.status, 200);
        struct hmulti_stats st;
        hmulti_get_stats(one, &st);
        assert_true(st.sockets_watched_peak <= 1);
        hmulti_free(one);
}

static void hmulti_free_from_callback(void **state)
{
        struct hmulti *own = NULL;
        char url[256];
        struct raw first = { 0 };

        assert_int_equal(hmulti_new(fx.loop, NULL, &own), 0);
        snprintf(url, sizeof(url), "%s/api/v1/version", S->base_url);
        struct hmulti_req req = { .url = url };
        first.free_me = own;
        assert_int_equal(hmulti_start(own, &req, on_raw, &first, NULL), 0);
        /* Slow ones that must never call back once the first frees hm. */
        assert_int_equal(sim_fault(S, "{\"path_prefix\":\"/api/v1/version\",\"mode\":\"delay\","
                                      "\"seconds\":0.3,\"count\":0}"), 0);
        run_until(&first.calls, 1, 5000);
        assert_int_equal(first.err, 0);
        run_for(100);

        /* And the same with other transfers in flight at that moment. */
        assert_int_equal(hmulti_new(fx.loop, NULL, &own), 0);
        struct raw second = { .free_me = own };
        req.timeout_ms = 100; /* times out first, then frees hm */
        assert_int_equal(hmulti_start(own, &req, on_raw, &second, NULL), 0);
        req.timeout_ms = 5000;
        for (int i = 0; i < 3; i++)
                assert_int_equal(hmulti_start(own, &req, on_raw_never, NULL, NULL), 0);
        run_until(&second.calls, 1, 5000);
        assert_int_equal(second.err, -ETIMEDOUT);
        run_for(500);
}

static void client_new_checks(void **state)
{
        struct forgejo *f = NULL;
        static const char *const bad_urls[] = {
                "", "127.0.0.1:3000", "ftp://x", "http://", "http:///x", "http://a b",
                "http://x/?q", "http://x/#f", "http://x\n",
        };
        for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
                struct forgejo_opts o = { .base_url = bad_urls[i], .token = "t" };
                if (forgejo_new(fx.hm, &o, &f) != -EINVAL)
                        fail_msg("base url \"%s\" accepted", bad_urls[i]);
        }
        struct forgejo_opts o = { .base_url = "http://x", .token = "abc\r\nX-Evil: 1" };
        assert_int_equal(forgejo_new(fx.hm, &o, &f), -EINVAL);

        /* A trailing slash and a sub-path are fine. */
        char base[128];
        snprintf(base, sizeof(base), "%s///", S->base_url);
        struct forgejo_opts ok = { .name = "sim", .base_url = base, .token = admin.token };
        assert_int_equal(forgejo_new(fx.hm, &ok, &f), 0);
        struct got g = { 0 };
        assert_int_equal(forgejo_version(f, on_version, &g, NULL), 0);
        run_until(&g.calls, 1, 5000);
        assert_int_equal(g.err, 0);
        forgejo_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(version, setup, teardown),
                cmocka_unit_test_setup_teardown(jobs_labels_instance, setup, teardown),
                cmocka_unit_test_setup_teardown(jobs_scopes, setup, teardown),
                cmocka_unit_test_setup_teardown(errors_401_403_404, setup, teardown),
                cmocka_unit_test_setup_teardown(runner_lifecycle, setup, teardown),
                cmocka_unit_test_setup_teardown(registration_token, setup, teardown),
                cmocka_unit_test_setup_teardown(runner_list_paging, setup, teardown),
                cmocka_unit_test_setup_teardown(fault_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(fault_garbage_reset_5xx, setup, teardown),
                cmocka_unit_test_setup_teardown(concurrent_lists, setup, teardown),
                cmocka_unit_test_setup_teardown(concurrent_creates, setup, teardown),
                cmocka_unit_test_setup_teardown(keepalive_reuse, setup, teardown),
                cmocka_unit_test_setup_teardown(cancel_and_free_in_flight, setup, teardown),
                cmocka_unit_test_setup_teardown(fds_cloexec, setup, teardown),
                cmocka_unit_test_setup_teardown(hmulti_raw, setup, teardown),
                cmocka_unit_test_setup_teardown(hmulti_admission, setup, teardown),
                cmocka_unit_test_setup_teardown(hmulti_queue_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(hmulti_free_from_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(client_new_checks, setup, teardown),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
