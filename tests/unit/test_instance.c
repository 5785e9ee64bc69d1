/* test_instance.c: one instance's life, in-process — the daemon's own
 * instance code, its store (SQLite in a temporary folder) and its forge
 * client against forgejo-sim, with a fake provider the test drives event by
 * event. Checks that every row is written before the side effect it
 * announces, and how each path ends on the forge and in the store. */
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
#include "http/hmulti.h"
#include "http/metrics.h"
#include "sim.h"
#include "util/fsutil.h"
#include "util/httpc.h"

/* ---- the fake provider -------------------------------------------------- */

struct fake {
        struct env *e;
        int created, stopped, cleaned;
        bool token_ok, handle_in_argv;
        struct store_instance row_at_create;     /* the row as stored when create() came */
        provider_event_cb cb;
        void *ud;
        char instance[STORE_NAME_MAX];
        provider_list_cb list_cb;
        void *list_ud;
        char list_prefix[64];
        char cleaned_name[STORE_NAME_MAX];
};

static struct fake fake;

struct env {
        struct daemon d;
        struct dforge forge;
        struct provider prov;
        struct hmulti *hm;
        struct sim *sim;
        struct sim_user admin;
        char dir[64];
        const char *handle;
};

static int fake_token_path(struct provider *p, const char *instance, const char *workdir, char *buf, size_t n)
{
        return snprintf(buf, n, "%s/token", workdir) < (int)n ? 0 : -ENAMETOOLONG;
}

static int fake_create(struct provider *p, const struct provider_spec *spec, provider_event_cb cb, void *ud)
{
        struct env *e = fake.e;

        if (++fake.created > 1)
                return -EEXIST;         /* one worker per instance, ever */
        fake.cb = cb;
        fake.ud = ud;
        snprintf(fake.instance, sizeof(fake.instance), "%s", spec->instance);
        fake.token_ok = spec->token && spec->token_len > 0 && spec->token_len == strlen(spec->token);
        for (size_t i = 0; spec->argv[i]; i++)
                if (strcmp(spec->argv[i], "--handle") == 0 && spec->argv[i + 1] &&
                    strcmp(spec->argv[i + 1], e->handle) == 0)
                        fake.handle_in_argv = true;
        assert_int_equal(store_instance_get_by_name(e->d.store, spec->instance, &fake.row_at_create), 0);
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
        fake.cleaned++;
        return 0;
}

static int fake_cleanup_named(struct provider *p, const char *instance, const char *ref, const char *workdir)
{
        fake.cleaned++;
        snprintf(fake.cleaned_name, sizeof(fake.cleaned_name), "%s", instance);
        return 0;
}

static int fake_list(struct provider *p, const char *prefix, provider_list_cb cb, void *ud)
{
        fake.list_cb = cb;
        fake.list_ud = ud;
        snprintf(fake.list_prefix, sizeof(fake.list_prefix), "%s", prefix ? prefix : "");
        return 0;
}

/* A provider that can list: the orphan sweep's view. */
static const struct provider_ops fake_list_ops = {
        .type = "fake", .caps = PROVIDER_CAP_LIST, .token_path = fake_token_path,
        .create = fake_create, .stop = fake_stop, .ref = fake_ref, .cleanup = fake_cleanup_named,
        .list = fake_list,
};

static const struct provider_ops fake_ops = {
        .type = "fake", .token_path = fake_token_path, .create = fake_create, .stop = fake_stop,
        .ref = fake_ref, .cleanup = fake_cleanup,
};

static void emit(enum provider_event_type type, struct provider_exit exit)
{
        struct provider_event ev = { .type = type, .instance = fake.instance, .ref = "fake:1", .exit = exit };

        fake.cb(fake.ud, &ev);
}

static void emit_failure(enum provider_event_type type, enum provider_failure f, const char *detail)
{
        struct provider_event ev = { .type = type, .instance = fake.instance, .ref = "fake:1",
                                     .exit = { .kind = PROVIDER_EXIT_UNKNOWN }, .error = -EIO,
                                     .failure = f, .detail = detail };

        fake.cb(fake.ud, &ev);
}

/* ---- fixture ------------------------------------------------------------ */

static struct config *cfg_of(const char *url)
{
        char text[1024];
        struct config *cfg = NULL;
        struct config_diag diag = { 0 };

        snprintf(text, sizeof(text),
                 "forges: {sim: {url: \"%s\", token_env: T}}\n"
                 "pools:\n  linux: {scope: org/acme, labels: [ubuntu-latest]}\n", url);
        assert_int_equal(config_parse("t.yaml", text, strlen(text), NULL, &cfg, &diag), 0);
        config_diag_done(&diag);
        return cfg;
}

static int setup(void **state)
{
        struct env *e = calloc(1, sizeof(*e));
        char path[128];

        assert_non_null(e);
        memset(&fake, 0, sizeof(fake));
        fake.e = e;
        snprintf(e->dir, sizeof(e->dir), "/tmp/fs-inst-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(path, sizeof(path), "%s/instances", e->dir);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(sim_start(NULL, &e->sim), 0);
        assert_int_equal(sim_create_user(e->sim, "root", true, &e->admin), 0);
        assert_int_equal(sim_create_org(e->sim, "acme", (const char *const[]){ "root", NULL }, NULL), 0);
        assert_int_equal(sim_create_repo(e->sim, "acme", "app", NULL), 0);

        struct daemon *d = &e->d;
        d->cfg = d->cfg0 = cfg_of(e->sim->base_url);
        d->cfg->forges[0].token = strdup(e->admin.token);
        assert_non_null(d->cfg->forges[0].token);
        assert_non_null(d->state_dir = strdup(e->dir));
        snprintf(d->ctrl, sizeof(d->ctrl), "0000test");
        snprintf(d->prefix, sizeof(d->prefix), "fs-0000test-");
        assert_int_equal(loop_new(&d->loop), 0);
        assert_int_equal(hmulti_new(d->loop, NULL, &e->hm), 0);
        struct forgejo_opts fo = { .name = "sim", .base_url = e->sim->base_url,
                                   .token = d->cfg->forges[0].token, .timeout_ms = 5000 };
        assert_int_equal(forgejo_new(e->hm, &fo, &e->forge.client), 0);
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
        assert_non_null(d->psweep_inflight = calloc(1, sizeof(*d->psweep_inflight)));
        assert_non_null(d->next_psweep = calloc(1, sizeof(*d->next_psweep)));
        assert_non_null(d->metrics = metrics_new());
        assert_non_null(d->m_launches = metrics_counter(d->metrics, "forgescale_launches_total", "t",
                                                        2, (const char *[]){ "pool", "result" }));
        assert_non_null(d->m_wstart = metrics_histogram(d->metrics, "forgescale_worker_start_seconds", "t",
                                                        1, (const char *[]){ "provider" }, 1,
                                                        (const double[]){ 1 }));
        *state = e;
        return 0;
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

        inst_free_all(d);
        metrics_free(d->metrics);
        free(d->psweep_inflight);
        free(d->next_psweep);
        free_notes(&d->backoff);
        free_notes(&d->finished);
        forgejo_free(e->forge.client);
        hmulti_free(e->hm);
        store_close(d->store);
        pools_free(d);
        free(d->groups);
        config_free(d->cfg0);
        loop_free(d->loop);
        free(d->state_dir);
        sim_stop(e->sim);
        fs_rm_rf(e->dir);
        free(e);
        return 0;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs the loop until cond(e) holds; fails after 10 s. */
static void run_until(struct env *e, bool (*cond)(struct env *), const char *what)
{
        double t0 = now_s();

        while (!cond(e)) {
                if (now_s() - t0 > 10)
                        fail_msg("not within 10 s: %s", what);
                loop_run_once(e->d.loop, 50);
        }
}

static bool created(struct env *e)
{
        return fake.created > 0;
}

static bool gone(struct env *e)
{
        return e->d.n_insts == 0;
}

/* A job, an instance launched for it and its registration asked for
 * (the answer comes when the loop runs); name gets the instance's name. */
static struct inst *launch(struct env *e, struct sim_job *job, char name[STORE_NAME_MAX])
{
        assert_int_equal(sim_create_job(e->sim, "acme", "app", "j", "[\"ubuntu-latest\"]", NULL, job), 0);
        e->handle = job->handle;
        struct djob dj = { .id = job->id, .handle = job->handle, .waiting = true };
        assert_int_equal(inst_launch(&e->d, 0, &dj, 0), 0);
        struct inst *in = e->d.insts[e->d.n_insts - 1];
        struct store_instance row;
        assert_int_equal(store_instance_get_by_name(e->d.store, in->row.name, &row), 0);
        assert_int_equal(row.state, STORE_REGISTERING);  /* recorded before the POST */
        assert_int_equal(row.runner_id, 0);
        snprintf(name, STORE_NAME_MAX, "%s", in->row.name);
        inst_start_registration(&e->d, in);
        return in;
}

/* The worker of the instance launched last: created, then started. */
static void worker_started(struct env *e)
{
        run_until(e, created, "the worker's create()");
        assert_int_equal(fake.created, 1);
        emit(PROVIDER_EV_STARTED, (struct provider_exit){ 0 });
}

static struct store_instance row_of(struct env *e, const char *name)
{
        struct store_instance row;

        assert_int_equal(store_instance_get_by_name(e->d.store, name, &row), 0);
        return row;
}

static int live_registrations(struct env *e)
{
        json_t *rs = NULL, *r;
        size_t i;
        int n = 0;

        assert_int_equal(sim_list_runners(e->sim, &rs), 0);
        json_array_foreach(rs, i, r)
                n += json_is_false(json_object_get(r, "deleted"));
        json_decref(rs);
        return n;
}

/* ---- scenarios ------------------------------------------------------------ */

/* The worker is created only once the row holds the registration, and
 * with the token in the spec (never in argv); a worker that ran its job
 * and exited 0 leaves a `done` row, no registration, its leftovers
 * cleaned. */
static void job_runs_and_the_instance_ends_done(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        launch(e, &job, name);
        run_until(e, created, "the worker's create()");
        assert_int_equal(fake.created, 1);
        assert_int_equal(fake.row_at_create.state, STORE_STARTING);
        assert_true(fake.row_at_create.runner_id > 0);
        assert_true(fake.row_at_create.runner_uuid[0] != '\0');
        assert_true(fake.token_ok);
        assert_true(fake.handle_in_argv);
        assert_string_equal(row_of(e, name).provider_ref, "fake:1");
        assert_int_equal(live_registrations(e), 1);

        emit(PROVIDER_EV_STARTED, (struct provider_exit){ 0 });
        assert_int_equal(row_of(e, name).state, STORE_WAITING);
        double starts = 0;      /* the provider's part of the launch, by provider */
        assert_int_equal(metrics_get(e->d.m_wstart, (const char *[]){ "local" }, &starts), 0);
        assert_true(starts == 1);
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 0 });
        run_until(e, gone, "the instance's end");
        struct store_instance row = row_of(e, name);
        assert_int_equal(row.state, STORE_DONE);
        assert_string_equal(row.reason, "completed");
        assert_true(row.runner_deleted);
        assert_true(row.claimed_ms > 0);
        assert_int_equal(row.exit_code, 0);
        assert_int_equal(fake.cleaned, 1);
        assert_int_equal(fake.stopped, 0);
        assert_int_equal(live_registrations(e), 0);
}

/* A worker that quits before claiming its job: `failed`, exited_unclaimed,
 * the registration deleted, the job's next launch held back. */
static void worker_quits_before_its_claim(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        launch(e, &job, name);
        worker_started(e);
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_CODE, .code = 3 });
        run_until(e, gone, "the instance's end");
        struct store_instance row = row_of(e, name);
        assert_int_equal(row.state, STORE_FAILED);
        assert_string_equal(row.reason, "exited_unclaimed");
        assert_int_equal(row.exit_code, 3);
        assert_int_equal(live_registrations(e), 0);
        struct handle_note *b = strmap_get(&e->d.backoff, job.handle);
        assert_non_null(b);
        assert_int_equal(b->attempts, 1);
}

/* A stop decided while the POST is in flight: no worker is ever created,
 * the registration the POST made is deleted, the row ends `done` with the
 * stop's reason. */
static void stop_while_registering(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        struct inst *in = launch(e, &job, name);
        inst_stop(&e->d, in, "scaled_down", STORE_DONE);
        assert_int_equal(row_of(e, name).state, STORE_STOPPING);   /* saved before anything */
        run_until(e, gone, "the instance's end");
        struct store_instance row = row_of(e, name);
        assert_int_equal(row.state, STORE_DONE);
        assert_string_equal(row.reason, "scaled_down");
        assert_true(row.runner_id > 0);
        assert_true(row.runner_deleted);
        assert_int_equal(fake.created, 0);
        assert_int_equal(live_registrations(e), 0);
}

/* A stop of a running worker goes through the provider; its exit (by the
 * signal the stop sent) ends the instance `done` with the stop's reason,
 * not as a failure of the worker. */
static void stop_of_a_running_worker(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        struct inst *in = launch(e, &job, name);
        worker_started(e);
        inst_stop(&e->d, in, "idle_timeout", STORE_DONE);
        assert_int_equal(fake.stopped, 1);
        assert_int_equal(row_of(e, name).state, STORE_STOPPING);
        emit(PROVIDER_EV_EXITED, (struct provider_exit){ .kind = PROVIDER_EXIT_SIGNAL, .signal = 15 });
        run_until(e, gone, "the instance's end");
        struct store_instance row = row_of(e, name);
        assert_int_equal(row.state, STORE_DONE);
        assert_string_equal(row.reason, "idle_timeout");
        assert_int_equal(row.exit_code, 128 + 15);
        assert_null(strmap_get(&e->d.backoff, job.handle));
        assert_int_equal(live_registrations(e), 0);
}

/* The orphan sweep: an ended worker that no row owns (an exited container
 * its engine keeps) is removed through cleanup(); a worker a row of this
 * run owns is never touched, running or not. */
static void sweep_removes_ended_workers_no_row_owns(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        launch(e, &job, name);
        run_until(e, created, "the worker's create()");
        e->prov.ops = &fake_list_ops;
        reaper_provider_sweep(&e->d, 0);
        assert_non_null(fake.list_cb);
        assert_string_equal(fake.list_prefix, "fs-0000test-");
        const struct provider_listing items[] = {
                { .instance = "fs-0000test-gone-1", .ref = "c1", .running = false },
                { .instance = name, .ref = "fake:1", .running = false },
        };
        fake.list_cb(fake.list_ud, 0, items, 2);
        assert_int_equal(fake.cleaned, 1);
        assert_string_equal(fake.cleaned_name, "fs-0000test-gone-1");
        assert_int_equal(fake.stopped, 0);
        e->prov.ops = &fake_ops;
}

static double launches(struct env *e, const char *result)
{
        double v = 0;

        metrics_get(e->d.m_launches, (const char *[]){ "linux", result }, &v);
        return v;
}

/* An engine that refuses the worker (image missing): the launch counts
 * under the engine's category, not as a plain failure, and pauses the
 * pool like a worker's own failure does. */
static void engine_refusal_is_counted_by_its_category(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        launch(e, &job, name);
        run_until(e, created, "the worker's create()");
        emit_failure(PROVIDER_EV_FAILED, PROVIDER_FAIL_IMAGE, "no such image: localhost/nope");
        run_until(e, gone, "the instance's end");
        assert_int_equal(row_of(e, name).state, STORE_FAILED);
        assert_true(launches(e, "image") == 1);
        assert_true(launches(e, "failed") == 0);
        assert_int_equal(e->d.pools[0].failures, 1);
        assert_int_equal(live_registrations(e), 0);
}

/* A worker the engine never placed, stopped by the core: its exit names
 * the engine's reason, and the launch counts as unschedulable rather than
 * wasted. */
static void never_placed_worker_stopped_counts_unschedulable(void **state)
{
        struct env *e = *state;
        struct sim_job job;
        char name[STORE_NAME_MAX];

        struct inst *in = launch(e, &job, name);
        worker_started(e);
        inst_stop(&e->d, in, "bootstrap_timeout", STORE_FAILED);
        assert_int_equal(fake.stopped, 1);
        emit_failure(PROVIDER_EV_EXITED, PROVIDER_FAIL_UNSCHEDULABLE, "0/3 nodes are available");
        run_until(e, gone, "the instance's end");
        assert_true(launches(e, "unschedulable") == 1);
        assert_true(launches(e, "failed") == 0 && launches(e, "wasted") == 0);
        assert_int_equal(e->d.pools[0].failures, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(job_runs_and_the_instance_ends_done, setup, teardown),
                cmocka_unit_test_setup_teardown(worker_quits_before_its_claim, setup, teardown),
                cmocka_unit_test_setup_teardown(stop_while_registering, setup, teardown),
                cmocka_unit_test_setup_teardown(stop_of_a_running_worker, setup, teardown),
                cmocka_unit_test_setup_teardown(engine_refusal_is_counted_by_its_category, setup, teardown),
                cmocka_unit_test_setup_teardown(sweep_removes_ended_workers_no_row_owns, setup, teardown),
                cmocka_unit_test_setup_teardown(never_placed_worker_stopped_counts_unschedulable, setup,
                                                teardown),
        };
        httpc_global_init();
        return cmocka_run_group_tests(tests, NULL, NULL);
}
