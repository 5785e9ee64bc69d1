/* test_broker.c: a held task's life, in-process — the broker engine, the
 * core's instance code and store, forgejo-sim as the forge, a fake
 * provider whose "worker" is this test: it calls the broker's endpoint
 * with the credentials the provider was handed, on the same loop
 * (forge/rclient.h), in either codec. Checks what is stored before each
 * side effect (the fetch's request key, the task's state before the
 * worker gets it), what the forge's log and job say at each step, and
 * that credentials end with the instance. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/daemon_int.h"
#include "engine/broker.h"
#include "engine/broker_int.h"
#include "forge/rclient.h"
#include "http/hmulti.h"
#include "sim.h"
#include "util/fsutil.h"
#include "util/httpc.h"

/* ---- the fake provider: remembers what a worker would get ------------------ */

static struct {
        int created, stopped;
        provider_event_cb cb;
        void *ud;
        char instance[STORE_NAME_MAX];
        char url[256], uuid[64], token[128];
        struct store_task task_at_create;
} fake;

struct env {
        struct daemon d;
        struct dforge forge;
        struct provider prov;
        struct sim *sim;
        struct sim_user admin;
        char dir[64];
        struct rclient *worker;         /* the fake worker's client */
};

static struct env *E;

static int fake_token_path(struct provider *p, const char *instance, const char *workdir, char *buf, size_t n)
{
        return snprintf(buf, n, "%s/token", workdir) < (int)n ? 0 : -ENAMETOOLONG;
}

static int fake_create(struct provider *p, const struct provider_spec *spec, provider_event_cb cb, void *ud)
{
        fake.created++;
        fake.cb = cb;
        fake.ud = ud;
        snprintf(fake.instance, sizeof(fake.instance), "%s", spec->instance);
        for (size_t i = 0; spec->argv[i]; i++) {
                if (strcmp(spec->argv[i], "--url") == 0)
                        snprintf(fake.url, sizeof(fake.url), "%s", spec->argv[i + 1]);
                if (strcmp(spec->argv[i], "--uuid") == 0)
                        snprintf(fake.uuid, sizeof(fake.uuid), "%s", spec->argv[i + 1]);
                /* A broker worker gets no job handle: it is given its task. */
                assert_string_not_equal(spec->argv[i], "--handle");
        }
        snprintf(fake.token, sizeof(fake.token), "%.*s", (int)spec->token_len, spec->token);
        return 0;
}

static int fake_stop(struct provider *p, const char *instance)
{
        fake.stopped++;
        return 0;
}

static const char *fake_ref(struct provider *p, const char *instance)
{
        return "fake:1";
}

static int fake_cleanup(struct provider *p, const char *instance, const char *ref, const char *workdir)
{
        return 0;
}

static const struct provider_ops fake_ops = {
        .type = "fake", .token_path = fake_token_path, .create = fake_create, .stop = fake_stop,
        .ref = fake_ref, .cleanup = fake_cleanup,
};

static void emit(enum provider_event_type type, struct provider_exit exit)
{
        struct provider_event ev = { .type = type, .instance = fake.instance, .ref = "fake:1", .exit = exit };

        fake.cb(fake.ud, &ev);
}

/* ---- fixture ------------------------------------------------------------------ */

static int setup_retries(void **state, int retries)
{
        struct env *e = calloc(1, sizeof(*e));
        char path[128], text[1024];
        struct config *cfg = NULL;
        struct config_diag diag = { 0 };

        assert_non_null(e);
        memset(&fake, 0, sizeof(fake));
        snprintf(e->dir, sizeof(e->dir), "/tmp/fs-broker-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(path, sizeof(path), "%s/instances", e->dir);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(sim_start(NULL, &e->sim), 0);
        assert_int_equal(sim_create_user(e->sim, "root", true, &e->admin), 0);
        assert_int_equal(sim_create_org(e->sim, "acme", (const char *const[]){ "root", NULL }, NULL), 0);
        assert_int_equal(sim_create_repo(e->sim, "acme", "app", NULL), 0);

        struct daemon *d = &e->d;
        snprintf(text, sizeof(text),
                 "forges: {sim: {url: \"%s\", token_env: T}}\n"
                 "broker: {listen: \"127.0.0.1:0\", worker_retries: %d}\n"
                 "pools:\n  linux: {scope: org/acme, labels: [lx], mode: broker, max_runners: 4}\n",
                 e->sim->base_url, retries);
        assert_int_equal(config_parse("t.yaml", text, strlen(text), NULL, &cfg, &diag), 0);
        config_diag_done(&diag);
        d->cfg = d->cfg0 = cfg;
        assert_non_null(d->cfg->forges[0].token = strdup(e->admin.token));
        assert_non_null(d->state_dir = strdup(e->dir));
        snprintf(d->ctrl, sizeof(d->ctrl), "0000test");
        snprintf(d->prefix, sizeof(d->prefix), "fs-0000test-");
        assert_int_equal(loop_new(&d->loop), 0);
        assert_int_equal(hmulti_new(d->loop, NULL, &d->hm), 0);
        struct forgejo_opts fo = { .name = "sim", .base_url = e->sim->base_url,
                                   .token = d->cfg->forges[0].token, .timeout_ms = 5000 };
        assert_int_equal(forgejo_new(d->hm, &fo, &e->forge.client), 0);
        e->forge = (struct dforge){ .d = d, .cfg = &d->cfg->forges[0], .client = e->forge.client,
                                    .version_major = 15, .up = true };
        d->forges = &e->forge;
        d->n_forges = 1;
        e->prov = (struct provider){ .ops = &fake_ops, .name = "local" };
        d->providers = &e->prov;
        d->n_providers = 1;
        snprintf(path, sizeof(path), "%s/forgescale.db", e->dir);
        assert_int_equal(store_open(path, &d->store), 0);
        assert_int_equal(pools_init(d), 0);
        pools_enable(d, &d->pools[0]);
        assert_int_equal(broker_init(d), 0);
        E = e;
        *state = e;
        return 0;
}

static int setup(void **state)
{
        return setup_retries(state, 2);
}

static int setup_no_retries(void **state)
{
        return setup_retries(state, 0);
}

static void free_notes(struct strmap *m)
{
        size_t pos = 0;
        const char *k;
        void *v;

        while (strmap_next(m, &pos, &k, &v))
                free(v);
        strmap_done(m);
}

static int teardown(void **state)
{
        struct env *e = *state;
        struct daemon *d = &e->d;

        rclient_free(e->worker);
        inst_free_all(d);
        broker_free(d);
        free_notes(&d->backoff);
        free_notes(&d->finished);
        forgejo_free(e->forge.client);
        hmulti_free(d->hm);
        store_close(d->store);
        demand_free(d);
        pools_free(d);
        free(d->groups);
        config_free(d->cfg0);
        loop_free(d->loop);
        free(d->state_dir);
        sim_stop(e->sim);
        fs_rm_rf(e->dir);
        free(e);
        E = NULL;
        return 0;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_until(struct env *e, bool (*cond)(struct env *), const char *what)
{
        double t0 = now_s();

        while (!cond(e)) {
                if (now_s() - t0 > 10)
                        fail_msg("not within 10 s: %s", what);
                loop_run_once(e->d.loop, 50);
        }
}

static struct broker_pool_status status(struct env *e)
{
        struct broker_pool_status bs;

        assert_int_equal(broker_pool_status(&e->d, "linux", &bs), 0);
        return bs;
}

static bool one_held(struct env *e)
{
        return status(e).held == 1;
}

static bool created(struct env *e)
{
        return fake.created > 0;
}

static bool gone(struct env *e)
{
        return e->d.n_insts == 0;
}

/* The scaler's say: room for n tasks. */
static void room(struct env *e, int n)
{
        e->d.pools[0].stats.room = n;
        broker_plan_done(&e->d);
}

static long long make_job(struct env *e)
{
        struct sim_job job;

        assert_int_equal(sim_create_job(e->sim, "acme", "app", "j", "[\"lx\"]", NULL, &job), 0);
        return job.id;
}

/* The held task as the core sees it, and an instance launched for it. */
static struct inst *launch_for_task(struct env *e, char handle[32])
{
        broker_publish(&e->d);
        struct group *g = &e->d.groups[e->d.pools[0].group];
        assert_int_equal(g->n_jobs, 1);
        assert_true(g->jobs[0].waiting);
        snprintf(handle, 32, "%s", g->jobs[0].handle);
        assert_int_equal(strncmp(handle, "task:", 5), 0);
        struct djob dj = { .id = g->jobs[0].id, .handle = handle, .waiting = true };
        assert_int_equal(inst_launch(&e->d, 0, &dj, 0), 0);
        struct inst *in = e->d.insts[e->d.n_insts - 1];
        inst_start_registration(&e->d, in);
        run_until(e, created, "the worker's create()");
        emit(PROVIDER_EV_STARTED, (struct provider_exit){ 0 });
        return in;
}

/* ---- the fake worker ------------------------------------------------------------- */

struct answer {
        bool done;
        struct rclient_result res;
        json_t *resp;
};

static void on_answer(void *ud, const struct rclient_result *res, json_t *resp)
{
        struct answer *a = ud;

        a->done = true;
        a->res = *res;
        a->resp = json_incref(resp);
}

static struct answer call(struct env *e, const char *method, const char *json, const char *key)
{
        struct answer a = { 0 };
        json_t *req = json_loads(json, 0, NULL);

        assert_non_null(req);
        assert_int_equal(rclient_call(e->worker, method, req, key, on_answer, &a, NULL), 0);
        json_decref(req);
        while (!a.done)
                loop_run_once(e->d.loop, 50);
        return a;
}

static void worker_client(struct env *e, enum rclient_codec codec)
{
        struct rclient_opts o = { .base_url = fake.url, .codec = codec, .timeout_ms = 5000 };

        rclient_free(e->worker);
        assert_int_equal(rclient_new(e->d.hm, &o, &e->worker), 0);
        assert_int_equal(rclient_set_identity(e->worker, fake.uuid, fake.token), 0);
}

static json_t *job_of(struct env *e, long long id)
{
        json_t *j = NULL;
        assert_int_equal(sim_get_job(e->sim, id, &j), 0);
        return j;
}

static size_t log_rows(struct env *e, long long id, const char *has, size_t *ret_prelude)
{
        json_t *j = job_of(e, id), *row;
        size_t i, n = 0, found = 0;

        *ret_prelude = 0;
        json_array_foreach(json_object_get(j, "log"), i, row) {
                n++;
                if (strncmp(json_string_value(row), "forgescale: ", 12) == 0)
                        (*ret_prelude)++;
                if (has && strstr(json_string_value(row), has))
                        found++;
        }
        json_decref(j);
        return has ? found : n;
}

/* ---- scenarios ------------------------------------------------------------------- */

static bool no_fetch_stored(struct env *e)
{
        struct store_fetch *f = NULL;
        size_t n = 0;

        assert_int_equal(store_fetch_list(e->d.store, &f, &n), 0);
        free(f);
        return n == 0 && status(e).held == 1;
}

/* The whole life, in either codec: the key is stored before the fetch;
 * the worker gets its task only once the row says running; its rows go
 * after forgescale's, acked as the forge acked them; its final report
 * ends the job; its credentials end with its instance. */
static void task_life(struct env *e, enum rclient_codec codec)
{
        long long job = make_job(e);
        char handle[32], body[512];
        struct store_fetch *f = NULL;
        size_t n = 0, prelude;

        /* Held back by the forge: the key is in the store meanwhile. */
        assert_int_equal(sim_fault(e->sim, "{\"path_prefix\":\"/api/actions/runner.v1.RunnerService/FetchTask\","
                                           "\"mode\":\"delay\",\"seconds\":0.5,\"count\":1}"), 0);
        room(e, 1);
        double t0 = now_s();
        while (n == 0 && now_s() - t0 < 10) {
                free(f);
                f = NULL;
                assert_int_equal(store_fetch_list(e->d.store, &f, &n), 0);
                loop_run_once(e->d.loop, 20);
        }
        assert_int_equal(n, 1);
        assert_int_equal(status(e).held, 0);
        free(f);
        run_until(e, no_fetch_stored, "the task held and its key dropped");

        struct inst *in = launch_for_task(e, handle);
        worker_client(e, codec);
        struct store_task row;
        long long task_id = strtoll(handle + 5, NULL, 10);
        assert_int_equal(store_task_get(e->d.store, "sim", task_id, &row), 0);
        assert_int_equal(row.state, STORE_TASK_HELD);
        assert_string_equal(row.instance, in->row.name);
        assert_int_equal(row.attempts, 1);

        struct answer a = call(e, RP_SVC_RUNNER "Declare", "{\"version\":\"t\",\"labels\":[\"lx\"]}", NULL);
        assert_int_equal(a.res.err, 0);
        json_decref(a.resp);
        a = call(e, RP_SVC_RUNNER "FetchTask", "{}", "wk-1");
        assert_int_equal(a.res.err, 0);
        json_t *task = json_object_get(a.resp, "task");
        assert_non_null(task);
        assert_int_equal(strtoll(json_string_value(json_object_get(task, "id")), NULL, 10), task_id);
        json_decref(a.resp);
        /* Running, with the count of our rows, before the worker had it. */
        assert_int_equal(store_task_get(e->d.store, "sim", task_id, &row), 0);
        assert_int_equal(row.state, STORE_TASK_RUNNING);
        assert_true(row.prelude_rows >= 3);
        /* One task per worker: a new request gets nothing, a retry of the
         * same request the same task. */
        a = call(e, RP_SVC_RUNNER "FetchTask", "{}", "wk-2");
        assert_null(json_object_get(a.resp, "task"));
        json_decref(a.resp);
        a = call(e, RP_SVC_RUNNER "FetchTask", "{}", "wk-1");
        assert_non_null(json_object_get(a.resp, "task"));
        json_decref(a.resp);

        /* Rows 0..1 of the worker: acked as 2 though the forge has more. */
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"content\":\"one\"},"
                 "{\"content\":\"two\"}]}", task_id);
        for (int i = 0; i < 100; i++) {
                a = call(e, RP_SVC_RUNNER "UpdateLog", body, NULL);
                assert_int_equal(a.res.err, 0);
                /* protojson omits a 0 */
                const char *ack = json_string_value(json_object_get(a.resp, "ackIndex"));
                bool in_now = ack && strcmp(ack, "2") == 0;
                json_decref(a.resp);
                if (in_now)
                        break;
                /* our rows not all in yet: the worker is acked nothing */
                loop_run_once(e->d.loop, 20);
        }
        size_t rows = log_rows(e, job, NULL, &prelude);
        assert_int_equal(rows, prelude + 2);
        assert_int_equal(prelude, (size_t)row.prelude_rows);
        assert_int_equal(log_rows(e, job, "one", &prelude), 1);

        snprintf(body, sizeof(body), "{\"state\":{\"id\":\"%lld\",\"result\":\"RESULT_SUCCESS\","
                 "\"steps\":[{\"id\":\"0\",\"result\":\"RESULT_SUCCESS\",\"logIndex\":\"0\",\"logLength\":\"2\"}]}}",
                 task_id);
        a = call(e, RP_SVC_RUNNER "UpdateTask", body, NULL);
        assert_int_equal(a.res.err, 0);
        assert_string_equal(json_string_value(json_object_get(json_object_get(a.resp, "state"), "result")),
                            "RESULT_SUCCESS");
        json_decref(a.resp);
        json_t *j = job_of(e, job);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
        json_decref(j);

        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 0 });
        run_until(e, gone, "the instance's end");
        assert_int_equal(store_task_get(e->d.store, "sim", task_id, &row), 0);
        assert_int_equal(row.state, STORE_TASK_DONE);
        /* Revoked with the instance. */
        a = call(e, RP_SVC_RUNNER "Declare", "{}", NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAUTHENTICATED);
        char wpath[PATH_MAX];
        snprintf(wpath, sizeof(wpath), "%s/broker/workers/%s", e->dir, fake.instance);
        assert_int_equal(access(wpath, F_OK), -1);
}

static void task_life_json(void **state)
{
        task_life(*state, RCLIENT_JSON);
}

static void task_life_proto(void **state)
{
        task_life(*state, RCLIENT_PROTO);
}

static bool finished_upstream(struct env *e)
{
        return status(e).finishing == 0 && status(e).running == 0 && status(e).held == 0;
}

/* The worker dies after taking its task: the job fails upstream with a row
 * naming it and its exit status; no other worker gets the task. */
static void worker_dies_mid_task(void **state)
{
        struct env *e = *state;
        long long job = make_job(e);
        char handle[32];
        size_t prelude;

        room(e, 1);
        run_until(e, one_held, "a held task");
        launch_for_task(e, handle);
        worker_client(e, RCLIENT_PROTO);
        struct answer a = call(e, RP_SVC_RUNNER "FetchTask", "{}", NULL);
        assert_non_null(json_object_get(a.resp, "task"));
        json_decref(a.resp);
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 9 });
        run_until(e, gone, "the instance's end");
        run_until(e, finished_upstream, "the failure reported");
        json_t *j = job_of(e, job);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "failure");
        json_decref(j);
        assert_int_equal(log_rows(e, job, "(exit status 9) before reporting a result", &prelude), 1);
        broker_publish(&e->d);
        assert_int_equal(e->d.groups[e->d.pools[0].group].n_jobs, 0);
}

/* Without retries, a worker that never connects fails its task at once. */
static void worker_never_connects(void **state)
{
        struct env *e = *state;
        long long job = make_job(e);
        char handle[32];
        size_t prelude;

        room(e, 1);
        run_until(e, one_held, "a held task");
        launch_for_task(e, handle);
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 1 });
        run_until(e, gone, "the instance's end");
        run_until(e, finished_upstream, "the failure reported");
        json_t *j = job_of(e, job);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "failure");
        json_decref(j);
        assert_int_equal(log_rows(e, job, "no worker connected (1 started", &prelude), 1);
}

static bool upstream_said_final(struct env *e)
{
        struct btask *t = e->d.broker->n_tasks ? e->d.broker->tasks[0] : NULL;
        return t && t->upstream_final && !t->state_call;
}

/* A job cancelled while its worker runs silently: the heartbeat hears it;
 * when the worker is gone the task is over, not left running. */
static void cancelled_while_silent(void **state)
{
        struct env *e = *state;
        long long job = make_job(e);
        char handle[32];

        room(e, 1);
        run_until(e, one_held, "a held task");
        launch_for_task(e, handle);
        long long task_id = strtoll(handle + 5, NULL, 10);
        worker_client(e, RCLIENT_PROTO);
        struct answer a = call(e, RP_SVC_RUNNER "FetchTask", "{}", NULL);
        assert_non_null(json_object_get(a.resp, "task"));
        json_decref(a.resp);
        assert_int_equal(sim_cancel_job(e->sim, job), 0);
        /* Long after its last word: a heartbeat goes out. */
        btask_tick(e->d.broker, loop_now_ms(e->d.loop) + 31000);
        run_until(e, upstream_said_final, "the heartbeat's answer");
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = 15 });
        run_until(e, gone, "the instance's end");
        struct store_task row;
        assert_int_equal(store_task_get(e->d.store, "sim", task_id, &row), 0);
        assert_int_equal(row.state, STORE_TASK_DONE);
        json_t *j = job_of(e, job);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "cancelled");
        json_decref(j);
}

/* A worker reports only on its own task, with its own token. */
static void worker_limits(void **state)
{
        struct env *e = *state;
        char handle[32], body[256];

        make_job(e);
        room(e, 1);
        run_until(e, one_held, "a held task");
        launch_for_task(e, handle);
        long long task_id = strtoll(handle + 5, NULL, 10);
        worker_client(e, RCLIENT_JSON);
        snprintf(body, sizeof(body), "{\"taskId\":\"%lld\",\"index\":\"0\",\"rows\":[{\"content\":\"x\"}]}",
                 task_id + 1);
        struct answer a = call(e, RP_SVC_RUNNER "UpdateLog", body, NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_PERMISSION_DENIED);
        a = call(e, RP_SVC_RUNNER "Register", "{\"name\":\"x\",\"token\":\"y\"}", NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_PERMISSION_DENIED);
        char bad[128];
        /* The right token but its last character. */
        snprintf(bad, sizeof(bad), "%s", fake.token);
        bad[strlen(bad) - 1] = bad[strlen(bad) - 1] == '0' ? '1' : '0';
        assert_int_equal(rclient_set_identity(e->worker, fake.uuid, bad), 0);
        a = call(e, RP_SVC_RUNNER "FetchTask", "{}", NULL);
        assert_int_equal(a.res.cerr.code, RP_CODE_UNAUTHENTICATED);
        assert_int_equal(status(e).held, 1); /* untouched */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(task_life_json, setup, teardown),
                cmocka_unit_test_setup_teardown(task_life_proto, setup, teardown),
                cmocka_unit_test_setup_teardown(worker_dies_mid_task, setup, teardown),
                cmocka_unit_test_setup_teardown(worker_never_connects, setup_no_retries, teardown),
                cmocka_unit_test_setup_teardown(worker_limits, setup, teardown),
                cmocka_unit_test_setup_teardown(cancelled_while_silent, setup, teardown),
        };
        httpc_global_init();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
