/* test_container.c: what only the container provider does, against a
 * private Podman service (tests/support/podman.c): its labels, containers
 * of others never listed or touched, the pull policies and a missing
 * image, the engine going away and coming back, the framed log stream in
 * the capped log file, limits reaching the engine, the token kept out of
 * the container's configuration. The contract (contract.c) covers the
 * rest. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "loop/loop.h"
#include "provider/provider.h"
#include "util/fsutil.h"
#include "podman.h"

static struct podman *pm;
static char engine_dir[PATH_MAX / 4];
static char *usr_mount[] = { (char *)"/usr:/usr:ro", NULL };

#define MAX_EV 32

struct rec {
        enum provider_event_type type;
        char instance[96];
        char ref[80];
        struct provider_exit exit;
        int error;
        enum provider_failure failure;
        char detail[400];
};

struct fx {
        struct config_provider cfg;
        char dir[64];
        char prefix[32];
        struct loop *loop;
        struct provider prov;
        struct rec ev[MAX_EV];
        int nev, nend, nstarted;
};

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_event(void *ud, const struct provider_event *ev)
{
        struct fx *f = ud;

        assert_true(f->nev < MAX_EV);
        struct rec *r = &f->ev[f->nev++];
        r->type = ev->type;
        snprintf(r->instance, sizeof(r->instance), "%s", ev->instance);
        snprintf(r->ref, sizeof(r->ref), "%s", ev->ref ? ev->ref : "");
        r->exit = ev->exit;
        r->error = ev->error;
        r->failure = ev->failure;
        snprintf(r->detail, sizeof(r->detail), "%s", ev->detail ? ev->detail : "");
        if (ev->type == PROVIDER_EV_STARTED)
                f->nstarted++;
        else
                f->nend++;
}

static bool run_until(struct fx *f, int *counter, int n, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;

        while (*counter < n) {
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
        return true;
}

static void spin(struct fx *f, int64_t ms)
{
        int64_t end = now_ms() + ms;

        while (now_ms() < end)
                assert_int_equal(loop_run_once(f->loop, 20), 0);
}

static const struct rec *last_end(const struct fx *f, const char *name)
{
        for (int k = f->nev - 1; k >= 0; k--)
                if (f->ev[k].type != PROVIDER_EV_STARTED && strcmp(f->ev[k].instance, name) == 0)
                        return &f->ev[k];
        fail_msg("no end event for %s", name);
        abort();
}

static void base_cfg(struct config_provider *c)
{
        memset(c, 0, sizeof(*c));
        c->name = (char *)"ctr";
        c->type = CONFIG_PROVIDER_CONTAINER;
        c->container.socket = pm->sock;
        c->container.image = (char *)PODMAN_TEST_IMAGE;
        c->container.network = (char *)"none";
        c->container.runtime = (char *)"runc";
        c->container.extra_mounts.v = usr_mount;
        c->container.extra_mounts.n = 1;
}

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        base_cfg(&f->cfg);
        snprintf(f->prefix, sizeof(f->prefix), "tc%d-", (int)getpid());
        snprintf(f->dir, sizeof(f->dir), "/tmp/fs-tctr-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        assert_int_equal(loop_new(&f->loop), 0);
        f->prov.ops = &provider_container_ops;
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &f->cfg), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        const char *rm[] = { "rm", "-af", "-t", "0", NULL };

        f->prov.ops->done(&f->prov);
        loop_free(f->loop);
        (void)podman_cli(pm, NULL, rm);
        fs_rm_rf(f->dir);
        free(f);
        return 0;
}

static void reinit(struct fx *f)
{
        f->prov.ops->done(&f->prov);
        assert_int_equal(f->prov.ops->init(&f->prov, f->loop, &f->cfg), 0);
}

static int launch_max(struct fx *f, const char *suffix, const char *script, const char *token,
                      size_t log_max, char *name, size_t nn)
{
        char wd[PATH_MAX], lp[PATH_MAX], tok[PATH_MAX];
        const char *argv[] = { "sh", "-c", script, "worker", tok, NULL };
        const char *env[] = { "FORGESCALE_RUNNER_TOKEN_FILE=/run/forgescale/token", NULL };

        snprintf(name, nn, "%s%s", f->prefix, suffix);
        snprintf(wd, sizeof(wd), "%s/%s", f->dir, name);
        snprintf(lp, sizeof(lp), "%s/%s.log", f->dir, name);
        if (mkdir(wd, 0700) < 0 && errno != EEXIST)
                return -errno;
        assert_int_equal(f->prov.ops->token_path(&f->prov, name, wd, tok, sizeof(tok)), 0);
        struct provider_spec spec = {
                .instance = name, .pool = "tpool", .workdir = wd, .argv = argv, .env = env,
                .token = token, .token_len = token ? strlen(token) : 0,
                .log_path = lp, .log_max = log_max,
        };
        return f->prov.ops->create(&f->prov, &spec, on_event, f);
}

static int launch(struct fx *f, const char *suffix, const char *script, const char *token,
                  char *name, size_t nn)
{
        return launch_max(f, suffix, script, token, 1 << 20, name, nn);
}

static char *read_log(const struct fx *f, const char *name, size_t *len)
{
        char lp[PATH_MAX], *buf = NULL;
        size_t l = 0;

        snprintf(lp, sizeof(lp), "%s/%s.log", f->dir, name);
        if (fs_read_file(lp, 4 << 20, &buf, &l) < 0)
                return NULL;
        if (len)
                *len = l;
        return buf;
}

static bool wait_log(struct fx *f, const char *name, const char *needle, int64_t timeout_ms)
{
        int64_t end = now_ms() + timeout_ms;

        for (;;) {
                char *log = read_log(f, name, NULL);
                bool ok = log && strstr(log, needle);
                free(log);
                if (ok)
                        return true;
                if (now_ms() >= end)
                        return false;
                assert_int_equal(loop_run_once(f->loop, 20), 0);
        }
}

static json_t *inspect(const char *name)
{
        char path[256], *body = NULL;
        long st = 0;

        snprintf(path, sizeof(path), "/containers/%s/json", name);
        if (podman_api(pm, "GET", path, NULL, &st, &body) < 0 || st != 200) {
                free(body);
                return NULL;
        }
        json_t *j = json_loads(body, 0, NULL);
        free(body);
        return j;
}

/* ---- tests ---------------------------------------------------------------------- */

/* Labels, limits, the token bind and the token absent from the
 * container's configuration; the token file 0600 on the host. */
static void labels_limits_and_token(void **state)
{
        struct fx *f = *state;
        static char *ulv_names[] = { NULL };
        struct config_env ul[] = { { (char *)"nofile", (char *)"512:1000" }, { (char *)"nproc", (char *)"2048" } };
        const char *token = "tc-secret-token-5e1d";
        char name[96], path[PATH_MAX];
        struct stat st;

        (void)ulv_names;
        f->cfg.container.memory_bytes = 64 << 20;
        f->cfg.container.nano_cpus = 500000000;
        f->cfg.container.pids_limit = 64;
        f->cfg.container.ulimits.v = ul;
        f->cfg.container.ulimits.n = 2;
        reinit(f);
        assert_int_equal(launch(f, "lab", "echo ready; exec sleep 30", token, name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nstarted, 1, 15000));
        assert_true(wait_log(f, name, "ready", 10000));

        json_t *j = inspect(name);
        assert_non_null(j);
        json_t *cfg = json_object_get(j, "Config"), *hc = json_object_get(j, "HostConfig");
        json_t *labels = json_object_get(cfg, "Labels");
        assert_string_equal(json_string_value(json_object_get(labels, "forgescale.instance")), name);
        assert_string_equal(json_string_value(json_object_get(labels, "forgescale.pool")), "tpool");
        assert_string_equal(json_string_value(json_object_get(labels, "forgescale.managed")), "1");
        assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 << 20);
        assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
        assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 64);
        bool nofile = false;
        size_t k;
        json_t *u;
        json_array_foreach(json_object_get(hc, "Ulimits"), k, u) {
                const char *n = json_string_value(json_object_get(u, "Name"));
                if (n && (strcmp(n, "RLIMIT_NOFILE") == 0 || strcmp(n, "nofile") == 0)) {
                        nofile = true;
                        assert_int_equal(json_integer_value(json_object_get(u, "Soft")), 512);
                        assert_int_equal(json_integer_value(json_object_get(u, "Hard")), 1000);
                }
        }
        assert_true(nofile);
        char *dump = json_dumps(cfg, 0);
        assert_non_null(dump);
        assert_null(strstr(dump, token));       /* not in Env, Cmd, Entrypoint, Labels */
        assert_non_null(strstr(dump, "FORGESCALE_RUNNER_TOKEN_FILE=/run/forgescale/token"));
        free(dump);
        dump = json_dumps(hc, 0);
        assert_non_null(strstr(dump, "/token:/run/forgescale/token:ro"));
        free(dump);
        json_decref(j);

        snprintf(path, sizeof(path), "%s/%s/token", f->dir, name);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(st.st_uid, geteuid());

        f->prov.stop_grace_ms = 5000;
        assert_int_equal(f->prov.ops->stop(&f->prov, name), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        assert_int_equal(last_end(f, name)->exit.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(last_end(f, name)->exit.signal, SIGTERM);
        /* Removed before EXITED: only the token file is left for cleanup. */
        assert_null(inspect(name));
}

/* With a numeric user the token file belongs to that uid, which reads it
 * inside the container; nobody else on the host can. */
static void numeric_user_owns_the_token(void **state)
{
        struct fx *f = *state;
        char name[96], path[PATH_MAX];
        struct stat st;

        f->cfg.container.user = (char *)"4321:4321";
        reinit(f);
        assert_int_equal(launch(f, "uid", "id -u; cat \"$1\"", "tok-4321", name, sizeof(name)), 0);
        snprintf(path, sizeof(path), "%s/%s/token", f->dir, name);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_uid, 4321);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_true(run_until(f, &f->nend, 1, 15000));
        assert_int_equal(last_end(f, name)->exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(last_end(f, name)->exit.code, 0);
        char *log = read_log(f, name, NULL);
        assert_non_null(log);
        assert_string_equal(log, "4321\ntok-4321");
        free(log);
}

static void create_foreign(const char *name, const char *labels)
{
        char body[1024], path[256];
        long st = 0;

        snprintf(body, sizeof(body),
                 "{\"Image\":\"" PODMAN_TEST_IMAGE "\",\"Entrypoint\":[\"sleep\"],\"Cmd\":[\"30\"],"
                 "\"Labels\":%s,\"HostConfig\":{\"NetworkMode\":\"none\",\"Init\":true}}", labels);
        snprintf(path, sizeof(path), "/containers/create?name=%s", name);
        assert_int_equal(podman_api(pm, "POST", path, body, &st, NULL), 0);
        assert_int_equal(st, 201);
        snprintf(path, sizeof(path), "/containers/%s/start", name);
        assert_int_equal(podman_api(pm, "POST", path, NULL, &st, NULL), 0);
        assert_int_equal(st, 204);
}

struct listing {
        int calls, error;
        size_t n;
        char names[8][96];
        char refs[8][80];
        bool running[8];
};

static void on_list(void *ud, int error, const struct provider_listing *items, size_t n)
{
        struct listing *l = ud;

        l->calls++;
        l->error = error;
        l->n = n;
        for (size_t k = 0; k < n && k < 8; k++) {
                snprintf(l->names[k], sizeof(l->names[k]), "%s", items[k].instance);
                snprintf(l->refs[k], sizeof(l->refs[k]), "%s", items[k].ref ? items[k].ref : "");
                l->running[k] = items[k].running;
        }
}

/* Containers without the managed label, or of another prefix, are never
 * listed, adopted, stopped or removed, even when named like ours. */
static void foreign_containers_untouched(void **state)
{
        struct fx *f = *state;
        char unmanaged[96], other[96], mine[96], lab[512];
        struct listing l = { 0 };

        snprintf(unmanaged, sizeof(unmanaged), "%sunmanaged", f->prefix);
        snprintf(other, sizeof(other), "zz%d-other", (int)getpid());
        snprintf(mine, sizeof(mine), "%sorphan", f->prefix);
        snprintf(lab, sizeof(lab), "{\"forgescale.instance\":\"%s\"}", unmanaged);
        create_foreign(unmanaged, lab);
        snprintf(lab, sizeof(lab), "{\"forgescale.instance\":\"%s\",\"forgescale.managed\":\"1\"}", other);
        create_foreign(other, lab);
        snprintf(lab, sizeof(lab), "{\"forgescale.instance\":\"%s\",\"forgescale.managed\":\"1\"}", mine);
        create_foreign(mine, lab);

        assert_int_equal(f->prov.ops->list(&f->prov, f->prefix, on_list, &l), 0);
        assert_true(run_until(f, &l.calls, 1, 10000));
        assert_int_equal(l.error, 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.names[0], mine);
        assert_true(l.running[0]);

        assert_int_equal(f->prov.ops->adopt(&f->prov, unmanaged, "", NULL, 0, on_event, f), -ESRCH);
        assert_int_equal(f->prov.ops->stop(&f->prov, unmanaged), -ENOENT);
        char wd[PATH_MAX];
        snprintf(wd, sizeof(wd), "%s/nowhere", f->dir);
        assert_int_equal(f->prov.ops->cleanup(&f->prov, unmanaged, "", wd), 0);
        /* Named like ours, labelled as someone else's instance. */
        char imposter[96];
        snprintf(imposter, sizeof(imposter), "%simposter", f->prefix);
        snprintf(lab, sizeof(lab), "{\"forgescale.instance\":\"%s\",\"forgescale.managed\":\"1\"}", other);
        create_foreign(imposter, lab);
        assert_int_equal(f->prov.ops->cleanup(&f->prov, imposter, "", wd), 0);
        assert_int_equal(f->prov.ops->adopt(&f->prov, imposter, "", NULL, 0, on_event, f), -ESRCH);
        spin(f, 1000);
        json_t *j = inspect(unmanaged);
        assert_non_null(j);
        assert_true(json_is_true(json_object_get(json_object_get(j, "State"), "Running")));
        json_decref(j);
        assert_non_null(j = inspect(other));
        json_decref(j);
        assert_non_null(j = inspect(imposter));
        json_decref(j);

        /* Ours (an orphan of a previous run): adopted and stopped. */
        assert_int_equal(f->prov.ops->adopt(&f->prov, mine, "", NULL, 0, on_event, f), 0);
        f->prov.stop_grace_ms = 3000;
        assert_int_equal(f->prov.ops->stop(&f->prov, mine), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        assert_null(inspect(mine));
        assert_int_equal(podman_count_managed(pm, f->prefix), 0);
}

/* An exited container of ours that no instance watches (a lost delete):
 * listed as not running, and removed by cleanup() (the orphan sweep's
 * call for an ended worker no row owns). */
static void exited_leftover_listed_and_cleaned(void **state)
{
        struct fx *f = *state;
        char mine[96], lab[512], path[256], wd[PATH_MAX];
        struct listing l = { 0 };
        long st = 0;

        snprintf(mine, sizeof(mine), "%sleft", f->prefix);
        snprintf(lab, sizeof(lab), "{\"forgescale.instance\":\"%s\",\"forgescale.managed\":\"1\"}", mine);
        create_foreign(mine, lab);
        snprintf(path, sizeof(path), "/containers/%s/kill?signal=KILL", mine);
        assert_int_equal(podman_api(pm, "POST", path, NULL, &st, NULL), 0);
        snprintf(path, sizeof(path), "/containers/%s/wait", mine);
        assert_int_equal(podman_api(pm, "POST", path, NULL, &st, NULL), 0);
        assert_int_equal(f->prov.ops->list(&f->prov, f->prefix, on_list, &l), 0);
        assert_true(run_until(f, &l.calls, 1, 10000));
        assert_int_equal(l.n, 1);
        assert_false(l.running[0]);
        spin(f, 300);
        assert_int_equal(podman_count_managed(pm, f->prefix), 1);      /* a listing changes nothing */
        snprintf(wd, sizeof(wd), "%s/nowhere", f->dir);
        assert_int_equal(f->prov.ops->cleanup(&f->prov, mine, l.refs[0], wd), 0);
        int64_t end = now_ms() + 5000;
        while (podman_count_managed(pm, f->prefix) != 0 && now_ms() < end)
                spin(f, 50);
        assert_int_equal(podman_count_managed(pm, f->prefix), 0);
}

/* pull: never with a missing image fails the launch as IMAGE with the
 * engine's words; if-missing tries a pull first (which fails here: no
 * registry), always pulls even a present image. */
static void pull_policies_and_missing_image(void **state)
{
        struct fx *f = *state;
        char name[96];

        f->cfg.container.image = (char *)"localhost/forgescale-missing:1";
        f->cfg.container.pull = CONFIG_PULL_NEVER;
        reinit(f);
        assert_int_equal(launch(f, "never", "exit 0", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        const struct rec *e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_FAILED);
        assert_int_equal(e->failure, PROVIDER_FAIL_IMAGE);
        assert_true(e->error < 0);
        assert_non_null(strstr(e->detail, "localhost/forgescale-missing:1"));
        /* The engine's own message: Podman says "... image not known". */
        assert_true(strstr(e->detail, "not known") || strstr(e->detail, "No such image") ||
                    strstr(e->detail, "no such image"));
        assert_int_equal(f->nstarted, 0);

        f->cfg.container.pull = CONFIG_PULL_IF_MISSING;
        reinit(f);
        assert_int_equal(launch(f, "ifmiss", "exit 0", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, 2, 30000));
        e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_FAILED);
        assert_int_equal(e->failure, PROVIDER_FAIL_IMAGE);
        assert_non_null(strstr(e->detail, "pull"));

        /* always: the local-only test image cannot be pulled again. */
        f->cfg.container.image = (char *)PODMAN_TEST_IMAGE;
        f->cfg.container.pull = CONFIG_PULL_ALWAYS;
        reinit(f);
        assert_int_equal(launch(f, "always", "exit 0", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, 3, 30000));
        e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_FAILED);
        assert_int_equal(e->failure, PROVIDER_FAIL_IMAGE);
        assert_int_equal(f->nstarted, 0);
        assert_int_equal(podman_count_managed(pm, f->prefix), 0);
}

/* The engine gone: create() fails at once as UNREACHABLE; a running
 * worker's wait is retried, and its exit is seen once the engine is back;
 * then launches work again. */
static void engine_gone_and_back(void **state)
{
        struct fx *f = *state;
        char name[96], early[96];

        assert_int_equal(launch(f, "surv", "sleep 3; echo survived; exit 5", "t", early, sizeof(early)), 0);
        assert_true(run_until(f, &f->nstarted, 1, 15000));
        podman_service_stop(pm);

        int r = launch(f, "down", "exit 0", "t", name, sizeof(name));
        if (r < 0) {
                assert_int_equal(r, -ECONNREFUSED);
                assert_int_equal(f->prov.failure, PROVIDER_FAIL_UNREACHABLE);
                assert_non_null(strstr(f->prov.error, pm->sock));
        } else {
                assert_true(run_until(f, &f->nend, 1, 15000));
                const struct rec *e = last_end(f, name);
                assert_int_equal(e->type, PROVIDER_EV_FAILED);
                assert_int_equal(e->failure, PROVIDER_FAIL_UNREACHABLE);
        }
        int ends = f->nend;
        spin(f, 4000);                  /* the worker exits while the engine is away */
        assert_int_equal(f->nend, ends);
        assert_int_equal(podman_service_start(pm), 0);
        assert_true(run_until(f, &f->nend, ends + 1, 40000));
        const struct rec *e = last_end(f, early);
        assert_int_equal(e->type, PROVIDER_EV_EXITED);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e->exit.code, 5);

        assert_int_equal(launch(f, "back", "exit 4", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, ends + 2, 15000));
        e = last_end(f, name);
        assert_int_equal(e->exit.code, 4);
}

/* A stop asked while the engine is away is not lost with its calls: once
 * the engine is back, the worker is killed and its exit reported. */
static void stop_during_engine_outage_not_lost(void **state)
{
        struct fx *f = *state;
        char name[96];

        assert_int_equal(launch(f, "outage", "exec sleep 100", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nstarted, 1, 15000));
        f->prov.stop_grace_ms = 500;
        podman_service_stop(pm);
        assert_int_equal(f->prov.ops->stop(&f->prov, name), 0);
        int ends = f->nend;
        spin(f, 2000);                  /* TERM and KILL both fail meanwhile */
        assert_int_equal(f->nend, ends);
        assert_int_equal(podman_service_start(pm), 0);
        assert_true(run_until(f, &f->nend, ends + 1, 20000));
        const struct rec *e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_EXITED);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e->exit.signal, SIGKILL);
}

/* stdout and stderr, demultiplexed, in the log; capped at log_max. */
static void logs_demuxed_and_capped(void **state)
{
        struct fx *f = *state;
        char name[96], big[96];
        size_t len = 0;

        assert_int_equal(launch(f, "log", "echo to-out; echo to-err >&2; echo again", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        char *log = read_log(f, name, &len);
        assert_non_null(log);
        assert_non_null(strstr(log, "to-out\n"));
        assert_non_null(strstr(log, "to-err\n"));
        assert_non_null(strstr(log, "again\n"));
        /* No frame header bytes. */
        assert_int_equal(strlen(log), len);
        assert_int_equal(len, strlen("to-out\nto-err\nagain\n"));
        free(log);

        assert_int_equal(launch_max(f, "big", "i=0; while [ $i -lt 400 ]; do echo line-$i-0123456789; i=$((i+1)); done",
                                    "t", 1000, big, sizeof(big)), 0);
        assert_true(run_until(f, &f->nend, 2, 15000));
        log = read_log(f, big, &len);
        assert_non_null(log);
        assert_int_equal(len, 1000);
        assert_true(strncmp(log, "line-0-0123456789\nline-1-", 25) == 0);
        free(log);
        assert_int_equal(last_end(f, big)->exit.code, 0);
}

/* Over its memory limit the engine kills the worker: EXITED as SIGKILL
 * with failure QUOTA and detail OOMKilled when the engine says so; Podman
 * 4.3 on cgroup v1 does not (OOMKilled false), and then it is the code
 * 137 the engine gives, never a signal the provider did not send. */
static void oom_killed(void **state)
{
        struct fx *f = *state;
        char name[96];

        f->cfg.container.memory_bytes = 8 << 20;
        reinit(f);
        assert_int_equal(launch(f, "oom", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
                                "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nend, 1, 60000));
        const struct rec *e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_EXITED);
        if (e->exit.kind == PROVIDER_EXIT_SIGNAL) {
                assert_int_equal(e->exit.signal, SIGKILL);
                assert_int_equal(e->failure, PROVIDER_FAIL_QUOTA);
                assert_non_null(strstr(e->detail, "OOMKilled"));
        } else {
                assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
                assert_int_equal(e->exit.code, 137);
                assert_int_equal(e->failure, PROVIDER_FAIL_NONE);
        }
        char *log = read_log(f, name, NULL);
        assert_non_null(log);
        assert_null(strstr(log, "survived"));
        free(log);
}

/* stop() before the container started: it never starts, EXITED (no
 * STARTED) follows, nothing is left in the engine. */
static void stop_before_start(void **state)
{
        struct fx *f = *state;
        char name[96];

        assert_int_equal(launch(f, "early", "echo should-not-run; sleep 30", "t", name, sizeof(name)), 0);
        assert_int_equal(f->prov.ops->stop(&f->prov, name), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        const struct rec *e = last_end(f, name);
        assert_int_equal(e->type, PROVIDER_EV_EXITED);
        assert_int_equal(f->nstarted, 0);
        assert_int_equal(f->prov.ops->stop(&f->prov, name), -ENOENT);
        assert_int_equal(podman_count_managed(pm, f->prefix), 0);
        char *log = read_log(f, name, NULL);
        assert_true(!log || !strstr(log, "should-not-run"));
        free(log);
}

/* stop() while the start call is on its way (the ref is known once the
 * create answered): STARTED, then the stop goes out at once. */
static void stop_during_start(void **state)
{
        struct fx *f = *state;
        char name[96];

        assert_int_equal(launch(f, "mid", "exec sleep 30", "t", name, sizeof(name)), 0);
        int64_t end = now_ms() + 15000;
        while (!f->prov.ops->ref(&f->prov, name) && now_ms() < end)
                assert_int_equal(loop_run_once(f->loop, 1), 0);
        assert_non_null(f->prov.ops->ref(&f->prov, name));
        assert_int_equal(f->nstarted, 0);
        f->prov.stop_grace_ms = 20000;
        assert_int_equal(f->prov.ops->stop(&f->prov, name), 0);
        assert_true(run_until(f, &f->nend, 1, 8000));
        assert_int_equal(f->nstarted, 1);
        const struct rec *e = last_end(f, name);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_SIGNAL);
        assert_int_equal(e->exit.signal, SIGTERM);
}

/* After a restart the log goes on where it stopped. */
static void adopt_resumes_log(void **state)
{
        struct fx *f = *state;
        char name[96], ref[80];

        assert_int_equal(launch(f, "res", "echo first; sleep 2.5; echo second", "t", name, sizeof(name)), 0);
        assert_true(run_until(f, &f->nstarted, 1, 15000));
        assert_true(wait_log(f, name, "first\n", 10000));
        snprintf(ref, sizeof(ref), "%s", f->ev[0].ref);
        reinit(f);
        assert_int_equal(f->prov.ops->adopt(&f->prov, name, ref, NULL, 0, on_event, f), 0);
        assert_true(run_until(f, &f->nend, 1, 15000));
        assert_int_equal(last_end(f, name)->exit.code, 0);
        char *log = read_log(f, name, NULL);
        assert_non_null(log);
        char *first = strstr(log, "first\n");
        assert_non_null(first);
        assert_non_null(strstr(log, "second\n"));
        free(log);
}

int main(void)
{
        static const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
                T(labels_limits_and_token),
                T(numeric_user_owns_the_token),
                T(foreign_containers_untouched),
                T(exited_leftover_listed_and_cleaned),
                T(pull_policies_and_missing_image),
                T(logs_demuxed_and_capped),
                T(oom_killed),
                T(adopt_resumes_log),
                T(stop_before_start),
                T(stop_during_start),
                T(engine_gone_and_back),
                T(stop_during_engine_outage_not_lost),
#undef T
        };
        int failed, r;

        snprintf(engine_dir, sizeof(engine_dir), "/tmp/fs-tctr-env-XXXXXX");
        if (!mkdtemp(engine_dir))
                return 1;
        r = podman_start(engine_dir, &pm);
        if (r < 0) {
                fprintf(stderr, "cannot start podman: %s\n", strerror(-r));
                fs_rm_rf(engine_dir);
                return 1;
        }
        failed = cmocka_run_group_tests(tests, NULL, NULL);
        podman_free(pm);
        fs_rm_rf(engine_dir);
        return failed ? 1 : 0;
}
