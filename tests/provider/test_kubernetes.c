/* test_kubernetes.c: what only the kubernetes provider does, against
 * kube-fake (tests/support/kubefake.h): both ways to authenticate
 * (kubeconfig with a client certificate, in-cluster service account) and
 * token rotation, the watch (a dropped stream resumed without polling, a
 * relist after 410 Gone), API faults (409, 429, 500, a failed Secret),
 * pods that never start (unschedulable, missing image) stopped with the
 * reason, and the exact Job and Secret it makes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "loop/loop.h"
#include "provider/kubeobj.h"
#include "provider/provider.h"
#include "kubefake.h"
#include "util/fsutil.h"
#include "util/httpc.h"

#define NS "kt"

static struct kubefake *kf;
static char tmp[64];

struct ev {
        enum provider_event_type type;
        char instance[96];
        char ref[64];
        struct provider_exit exit;
        int error;
        enum provider_failure failure;
        char detail[1024];
};

struct kt {
        bool cleanup_in_cb;             /* as the core may: cleanup() from EXITED */
        struct loop *loop;
        struct provider prov;
        struct config_provider cfg;
        char kubeconfig[PATH_MAX];
        struct ev ev[32];
        int nev;
};

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_event(void *ud, const struct provider_event *e)
{
        struct kt *t = ud;
        struct ev *r;

        assert_true(t->nev < 32);
        r = &t->ev[t->nev++];
        r->type = e->type;
        snprintf(r->instance, sizeof(r->instance), "%s", e->instance);
        snprintf(r->ref, sizeof(r->ref), "%s", e->ref ? e->ref : "");
        r->exit = e->exit;
        r->error = e->error;
        r->failure = e->failure;
        snprintf(r->detail, sizeof(r->detail), "%s", e->detail ? e->detail : "");
        if (t->cleanup_in_cb && e->type != PROVIDER_EV_STARTED)
                assert_int_equal(t->prov.ops->cleanup(&t->prov, e->instance, e->ref, tmp), 0);
}

static const struct ev *find_ev(struct kt *t, enum provider_event_type type, const char *name)
{
        for (int k = 0; k < t->nev; k++)
                if (t->ev[k].type == type && strcmp(t->ev[k].instance, name) == 0)
                        return &t->ev[k];
        return NULL;
}

/* Runs the loop until name has an event of type (or the time is up). */
static const struct ev *wait_ev(struct kt *t, enum provider_event_type type, const char *name, int64_t ms)
{
        int64_t end = now_ms() + ms;
        const struct ev *e;

        while (!(e = find_ev(t, type, name)) && now_ms() < end)
                assert_int_equal(loop_run_once(t->loop, 20), 0);
        return e;
}

static void spin(struct kt *t, int64_t ms)
{
        int64_t end = now_ms() + ms;

        while (now_ms() < end)
                assert_int_equal(loop_run_once(t->loop, 20), 0);
}

static void kt_init(struct kt *t)
{
        if (!t->loop)
                assert_int_equal(loop_new(&t->loop), 0);
        t->prov.ops = &provider_kubernetes_ops;
        t->cfg.name = (char *)"kt";
        t->cfg.type = CONFIG_PROVIDER_KUBERNETES;
        if (!t->cfg.kubernetes.image)
                t->cfg.kubernetes.image = (char *)"registry.example/runner:11";
        t->cfg.kubernetes.namespace = (char *)NS;
        int r = t->prov.ops->init(&t->prov, t->loop, &t->cfg);
        if (r < 0)
                fail_msg("init: %s: %s", strerror(-r), t->prov.error);
}

static struct kt *kt_new(bool client_cert)
{
        struct kt *t = calloc(1, sizeof(*t));

        assert_non_null(t);
        snprintf(t->kubeconfig, sizeof(t->kubeconfig), "%s/kubeconfig-%d", tmp, client_cert);
        assert_int_equal(kubefake_write_kubeconfig(kf, t->kubeconfig, client_cert), 0);
        t->cfg.kubernetes.kubeconfig = t->kubeconfig;
        t->cfg.kubernetes.kubeconfig_path = t->kubeconfig;
        return t;
}

static void kt_free(struct kt *t)
{
        spin(t, 300);   /* cleanup()'s deletes go out */
        t->prov.ops->done(&t->prov);
        loop_free(t->loop);
        free(t);
}

static int launch(struct kt *t, const char *name, const char *script, const char *token)
{
        char log[PATH_MAX], tokenv[PATH_MAX + 40], tok[PATH_MAX];
        const char *argv[] = { "sh", "-c", script, NULL };
        const char *env[] = { tokenv, "FORGESCALE_POOL=kt", NULL };

        snprintf(log, sizeof(log), "%s/%s.log", tmp, name);
        assert_int_equal(t->prov.ops->token_path(&t->prov, name, tmp, tok, sizeof(tok)), 0);
        snprintf(tokenv, sizeof(tokenv), "FORGESCALE_RUNNER_TOKEN_FILE=%s", tok);
        struct provider_spec spec = {
                .instance = name, .pool = "kt", .workdir = tmp, .argv = argv, .env = env,
                .token = token, .token_len = token ? strlen(token) : 0,
                .log_path = log, .log_max = 1 << 20,
        };
        return t->prov.ops->create(&t->prov, &spec, on_event, t);
}

static char *read_log(const char *name)
{
        char p[PATH_MAX], *buf = NULL;
        size_t len;

        snprintf(p, sizeof(p), "%s/%s.log", tmp, name);
        if (fs_read_file(p, 1 << 20, &buf, &len) < 0)
                return NULL;
        return buf;
}

static long api_get(const char *path, json_t **ret)
{
        struct kubefake_resp r;
        long st;

        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        st = r.status;
        if (ret) {
                *ret = r.json;
                r.json = NULL;
        }
        kubefake_resp_done(&r);
        return st;
}

static json_t *stats(void)
{
        json_t *s = NULL;

        assert_int_equal(kubefake_ctl(kf, "GET", "/_fake/stats", NULL, &s), 200);
        return s;
}

static long long count(json_t *s, const char *key)
{
        return json_integer_value(json_object_get(json_object_get(s, "requests"), key));
}

static void ctl(const char *path, const char *body)
{
        int st = kubefake_ctl(kf, "POST", path, body, NULL);
        if (st < 200 || st > 299)
                fail_msg("POST %s: %d", path, st);
}

static void finish(struct kt *t, const char *name)
{
        const struct ev *e = find_ev(t, PROVIDER_EV_EXITED, name);

        assert_int_equal(t->prov.ops->cleanup(&t->prov, name, e ? e->ref : "", tmp), 0);
}

/* ---- auth ---------------------------------------------------------------------- */

static void kubeconfig_with_client_certificate(void **state)
{
        struct kt *t = kt_new(true);

        kt_init(t);
        assert_int_equal(launch(t, "kt-cert", "echo via-cert; exit 5", "tk"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-cert", 10000);
        assert_non_null(e);
        assert_non_null(find_ev(t, PROVIDER_EV_STARTED, "kt-cert"));
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e->exit.code, 5);
        char *log = read_log("kt-cert");
        assert_non_null(log);
        assert_string_equal(log, "via-cert\n");
        free(log);
        finish(t, "kt-cert");
        kt_free(t);
}

/* In-cluster: the service account folder and KUBERNETES_SERVICE_*; the
 * token rotates (the fake refuses the old one at once) and the provider
 * keeps working, watch included. */
static void in_cluster_with_token_rotation(void **state)
{
        struct kt *t = calloc(1, sizeof(*t));
        char sa[PATH_MAX], port[16], tokp[PATH_MAX + 8];

        assert_non_null(t);
        snprintf(sa, sizeof(sa), "%s/sa", tmp);
        assert_int_equal(kubefake_write_sa_dir(kf, sa), 0);
        snprintf(port, sizeof(port), "%d", kubefake_port(kf));
        setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
        setenv("KUBERNETES_SERVICE_PORT", port, 1);
        setenv("FORGESCALE_KUBE_SA_DIR", sa, 1);
        kt_init(t);
        assert_int_equal(launch(t, "kt-sa-1", "exit 0", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_EXITED, "kt-sa-1", 10000));

        /* The kubelet writes the new token; the API server takes only it. */
        assert_int_equal(kubefake_rotate_token(kf, "rotated-token-2"), 0);
        snprintf(tokp, sizeof(tokp), "%s/token", sa);
        assert_int_equal(fs_write_file_0600(tokp, "rotated-token-2\n", 16), 0);
        assert_int_equal(launch(t, "kt-sa-2", "sleep 0.3; exit 7", "tk"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-sa-2", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.code, 7);
        finish(t, "kt-sa-1");
        finish(t, "kt-sa-2");
        kt_free(t);
        unsetenv("KUBERNETES_SERVICE_HOST");
        unsetenv("KUBERNETES_SERVICE_PORT");
        unsetenv("FORGESCALE_KUBE_SA_DIR");
}

/* ---- the watch ------------------------------------------------------------------- */

static void dropped_watch_resumes_without_polling(void **state)
{
        struct kt *t = kt_new(false);

        kt_init(t);
        json_t *s0 = stats();
        assert_int_equal(launch(t, "kt-drop", "echo up; sleep 1; exit 4", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_STARTED, "kt-drop", 10000));
        ctl("/_fake/drop-watches", NULL);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-drop", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.code, 4);
        json_t *s1 = stats();
        /* Resumed from its resourceVersion: a new watch, no new list, and
         * never a GET of one pod. */
        assert_true(count(s1, "WATCH /api/v1/namespaces/{namespace}/pods") >=
                    count(s0, "WATCH /api/v1/namespaces/{namespace}/pods") + 2);
        assert_int_equal(count(s1, "GET /api/v1/namespaces/{namespace}/pods") -
                                 count(s0, "GET /api/v1/namespaces/{namespace}/pods"), 1);
        assert_int_equal(count(s1, "GET /api/v1/namespaces/{namespace}/pods/{name}"), 0);
        json_decref(s0);
        json_decref(s1);
        finish(t, "kt-drop");
        kt_free(t);
}

static void gone_410_relists(void **state)
{
        struct kt *t = kt_new(false);

        kt_init(t);
        assert_int_equal(launch(t, "kt-410", "sleep 1; exit 6", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_STARTED, "kt-410", 10000));
        json_t *s0 = stats();
        /* The provider resumes only when its loop runs: by then something
         * changed after its resourceVersion and history was compacted. */
        ctl("/_fake/drop-watches", NULL);
        struct kubefake_resp r;
        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "POST", "/api/v1/namespaces/" NS "/secrets",
                                          "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"kt-bump\"}}",
                                          &r), 0);
        assert_int_equal(r.status, 201);
        kubefake_resp_done(&r);
        ctl("/_fake/compact", NULL);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-410", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.code, 6);
        json_t *s1 = stats();
        assert_true(count(s1, "GET /api/v1/namespaces/{namespace}/pods") >
                    count(s0, "GET /api/v1/namespaces/{namespace}/pods"));
        json_decref(s0);
        json_decref(s1);
        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "DELETE", "/api/v1/namespaces/" NS "/secrets/kt-bump",
                                          NULL, &r), 0);
        kubefake_resp_done(&r);
        finish(t, "kt-410");
        kt_free(t);
}

/* A throttled list is retried when the server's Retry-After says, not
 * sooner and not in a loop. */
static void throttled_list_honours_retry_after(void **state)
{
        struct kt *t = kt_new(false);
        json_t *s0 = stats(), *s1 = NULL;
        const char *list = "GET /api/v1/namespaces/{namespace}/pods";
        const char *watch = "WATCH /api/v1/namespaces/{namespace}/pods";

        ctl("/_fake/faults", "{\"method\":\"GET\",\"path_prefix\":\"/api/v1/namespaces/" NS "/pods\","
                             "\"status\":429,\"count\":2,\"message\":\"too many requests\"}");
        int64_t t0 = now_ms();
        kt_init(t);
        for (;;) {
                spin(t, 50);
                json_decref(s1);
                s1 = stats();
                if (count(s1, watch) > count(s0, watch) || now_ms() - t0 > 10000)
                        break;
        }
        int64_t took = now_ms() - t0;
        assert_true(count(s1, watch) > count(s0, watch));
        /* Retry-After: 1 twice: about 2 s (doubling from 250 ms would take
         * 0.75 s), and exactly three lists. */
        assert_true(took >= 1900);
        assert_int_equal(count(s1, list) - count(s0, list), 3);
        json_decref(s0);
        json_decref(s1);
        kt_free(t);
}

/* ---- API faults ------------------------------------------------------------------ */

static void faults_become_failed_launches(void **state)
{
        static const struct {
                const char *path;
                int status;
                enum provider_failure want;
                const char *says;
        } cases[] = {
                { "/apis/batch/v1/", 409, PROVIDER_FAIL_REJECTED, "fault-409-says-this" },
                { "/apis/batch/v1/", 429, PROVIDER_FAIL_ENGINE, "429" },
                { "/apis/batch/v1/", 500, PROVIDER_FAIL_ENGINE, "fault-500-says-this" },
                { "/api/v1/namespaces/" NS "/secrets", 500, PROVIDER_FAIL_ENGINE, "token Secret" },
        };
        struct kt *t = kt_new(false);

        kt_init(t);
        for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
                char name[64], body[256];
                snprintf(name, sizeof(name), "kt-fault-%zu", k);
                snprintf(body, sizeof(body),
                         "{\"method\":\"POST\",\"path_prefix\":\"%s\",\"status\":%d,\"count\":1,"
                         "\"message\":\"fault-%d-says-this %s\"}",
                         cases[k].path, cases[k].status, cases[k].status, name);
                ctl("/_fake/faults", body);
                assert_int_equal(launch(t, name, "exit 0", "tk"), 0);
                const struct ev *e = wait_ev(t, PROVIDER_EV_FAILED, name, 10000);
                if (!e)
                        fail_msg("case %zu: no FAILED", k);
                assert_int_equal(e->failure, cases[k].want);
                if (!strstr(e->detail, cases[k].says))
                        fail_msg("case %zu: detail \"%s\" lacks \"%s\"", k, e->detail, cases[k].says);
                assert_null(find_ev(t, PROVIDER_EV_STARTED, name));
                finish(t, name);
        }
        /* The Job whose Secret failed was deleted, not left pending. */
        char kname[KUBEOBJ_NAME_MAX + 1], path[256];
        assert_int_equal(kubeobj_name("kt-fault-3", kname, sizeof(kname)), 0);
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/" NS "/jobs/%s", kname);
        int64_t end = now_ms() + 5000;
        long st;
        while ((st = api_get(path, NULL)) == 200 && now_ms() < end)
                spin(t, 50);
        assert_int_equal(st, 404);
        /* And after the faults the next launch works. */
        assert_int_equal(launch(t, "kt-fault-ok", "exit 0", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_EXITED, "kt-fault-ok", 10000));
        finish(t, "kt-fault-ok");
        kt_free(t);
}

/* ---- pods that never start ------------------------------------------------------ */

static void unschedulable_pod_stopped_with_reason(void **state)
{
        struct kt *t = kt_new(false);

        kt_init(t);
        ctl("/_fake/scheduling", "{\"schedulable\":false,\"message\":\"0/3 nodes are available: 3 Insufficient cpu.\"}");
        assert_int_equal(launch(t, "kt-unsched", "exit 0", "tk"), 0);
        spin(t, 1500);
        assert_int_equal(t->nev, 0);
        t->prov.stop_grace_ms = 1000;
        assert_int_equal(t->prov.ops->stop(&t->prov, "kt-unsched"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-unsched", 5000);
        ctl("/_fake/scheduling", "{\"schedulable\":true}");
        assert_non_null(e);
        assert_int_equal(e->failure, PROVIDER_FAIL_UNSCHEDULABLE);
        assert_non_null(strstr(e->detail, "0/3 nodes are available: 3 Insufficient cpu."));
        assert_null(find_ev(t, PROVIDER_EV_STARTED, "kt-unsched"));
        finish(t, "kt-unsched");
        kt_free(t);
}

static void missing_image_stopped_with_reason(void **state)
{
        struct kt *t = kt_new(false);

        t->cfg.kubernetes.image = (char *)"missing/forgejo-runner:0";
        kt_init(t);
        assert_int_equal(launch(t, "kt-noimage", "exit 0", "tk"), 0);
        spin(t, 1500);
        assert_int_equal(t->nev, 0);
        assert_int_equal(t->prov.ops->stop(&t->prov, "kt-noimage"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-noimage", 5000);
        assert_non_null(e);
        assert_int_equal(e->failure, PROVIDER_FAIL_IMAGE);
        assert_non_null(strstr(e->detail, "missing/forgejo-runner:0"));
        finish(t, "kt-noimage");
        kt_free(t);
}

/* active_deadline: Kubernetes ends the worker, and the exit says so. */
static void deadline_exceeded_in_the_detail(void **state)
{
        struct kt *t = kt_new(false);

        t->cfg.kubernetes.active_deadline_ms = 1000;
        kt_init(t);
        assert_int_equal(launch(t, "kt-deadline", "exec sleep 30", "tk"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-deadline", 15000);
        assert_non_null(e);
        assert_non_null(find_ev(t, PROVIDER_EV_STARTED, "kt-deadline"));
        assert_int_equal(e->failure, PROVIDER_FAIL_ENGINE);
        if (!strstr(e->detail, "DeadlineExceeded"))
                fail_msg("detail: %s", e->detail);
        finish(t, "kt-deadline");
        kt_free(t);
}

/* ---- the objects ------------------------------------------------------------------ */

static void job_and_secret_as_made(void **state)
{
        struct kt *t = kt_new(false);
        char kname[KUBEOBJ_NAME_MAX + 1], path[256];
        json_t *job = NULL, *sec = NULL;

        t->cfg.stop_grace_ms = 2500;
        kt_init(t);
        assert_int_equal(launch(t, "kt-Objects_1", "echo $FORGESCALE_POOL; exit 0", "tok-secret-xyz"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-Objects_1", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.code, 0);
        assert_int_equal(kubeobj_name("kt-Objects_1", kname, sizeof(kname)), 0);
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/" NS "/jobs/%s", kname);
        assert_int_equal(api_get(path, &job), 200);
        json_t *md = json_object_get(job, "metadata"), *sp = json_object_get(job, "spec");
        json_t *ps = json_object_get(json_object_get(sp, "template"), "spec");
        json_t *c = json_array_get(json_object_get(ps, "containers"), 0);
        assert_string_equal(json_string_value(json_object_get(md, "uid")), e->ref);
        assert_string_equal(json_string_value(json_object_get(json_object_get(md, "labels"), KUBEOBJ_LABEL_MANAGED)),
                            "true");
        assert_string_equal(json_string_value(json_object_get(json_object_get(md, "annotations"),
                                                               KUBEOBJ_LABEL_INSTANCE)), "kt-Objects_1");
        assert_int_equal(json_integer_value(json_object_get(sp, "backoffLimit")), 0);
        assert_string_equal(json_string_value(json_object_get(ps, "restartPolicy")), "Never");
        assert_int_equal(json_integer_value(json_object_get(ps, "terminationGracePeriodSeconds")), 3);
        json_t *vm = json_array_get(json_object_get(c, "volumeMounts"), 0);
        assert_true(json_is_true(json_object_get(vm, "readOnly")));
        json_t *vol = json_array_get(json_object_get(ps, "volumes"), 0);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(vol, "secret"), "defaultMode")), 0400);
        char *dump = json_dumps(job, 0);
        assert_null(strstr(dump, "tok-secret-xyz"));
        free(dump);

        snprintf(path, sizeof(path), "/api/v1/namespaces/" NS "/secrets/%s", kname);
        assert_int_equal(api_get(path, &sec), 200);
        json_t *own = json_array_get(json_object_get(json_object_get(sec, "metadata"), "ownerReferences"), 0);
        assert_string_equal(json_string_value(json_object_get(own, "uid")), e->ref);
        assert_string_equal(json_string_value(json_object_get(own, "kind")), "Job");
        assert_string_equal(json_string_value(json_object_get(json_object_get(sec, "data"), "token")),
                            "dG9rLXNlY3JldC14eXo=");
        char *log = read_log("kt-Objects_1");
        assert_non_null(log);
        assert_string_equal(log, "kt\n");
        free(log);

        /* A worker that ended on its own leaves both; cleanup() removes them. */
        finish(t, "kt-Objects_1");
        int64_t end = now_ms() + 5000;
        long sj, ss;
        do {
                spin(t, 50);
                snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/" NS "/jobs/%s", kname);
                sj = api_get(path, NULL);
                snprintf(path, sizeof(path), "/api/v1/namespaces/" NS "/secrets/%s", kname);
                ss = api_get(path, NULL);
        } while ((sj != 404 || ss != 404) && now_ms() < end);
        assert_int_equal(sj, 404);
        assert_int_equal(ss, 404);
        json_decref(job);
        json_decref(sec);
        kt_free(t);
}

/* The daemon died between the Job's POST and its Secret's: after the
 * restart the Job is not adopted (its pod could never start) but deleted,
 * so the core starts another worker. */
static void job_without_secret_not_adopted(void **state)
{
        struct kt *t = kt_new(false);
        struct kubeobj_params kp = { .namespace = NS, .image = "registry.example/runner:11", .grace_s = 1 };
        const char *argv[] = { "sh", "-c", "exit 0", NULL };
        char kname[KUBEOBJ_NAME_MAX + 1], path[256];
        struct kubefake_resp r;
        json_t *job;

        assert_int_equal(kubeobj_job(&kp, "kt-nosecret", "kt", argv, NULL, &job), 0);
        char *body = json_dumps(job, JSON_COMPACT);
        json_decref(job);
        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "POST", "/apis/batch/v1/namespaces/" NS "/jobs",
                                          body, &r), 0);
        free(body);
        assert_int_equal(r.status, 201);
        kubefake_resp_done(&r);
        kt_init(t);
        assert_int_equal(t->prov.ops->adopt(&t->prov, "kt-nosecret", "", NULL, 0, on_event, t), -ESRCH);
        assert_int_equal(kubeobj_name("kt-nosecret", kname, sizeof(kname)), 0);
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/" NS "/jobs/%s", kname);
        int64_t end = now_ms() + 5000;
        long st;
        do {
                spin(t, 50);
                st = api_get(path, NULL);
        } while (st != 404 && now_ms() < end);
        assert_int_equal(st, 404);
        assert_int_equal(t->nev, 0);
        kt_free(t);
}

/* A pod gone while the watch was down, and its history compacted: the
 * relist finds it missing and the worker ends as exited, unknown how. */
static void pod_gone_during_outage_found_by_relist(void **state)
{
        struct kt *t = kt_new(false);
        char kname[KUBEOBJ_NAME_MAX + 1], path[256];
        struct kubefake_resp r;

        t->cleanup_in_cb = true;
        kt_init(t);
        assert_int_equal(launch(t, "kt-vanish", "exec sleep 100", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_STARTED, "kt-vanish", 10000));
        ctl("/_fake/drop-watches", NULL);
        assert_int_equal(kubeobj_name("kt-vanish", kname, sizeof(kname)), 0);
        snprintf(path, sizeof(path),
                 "/apis/batch/v1/namespaces/" NS "/jobs/%s?propagationPolicy=Background&gracePeriodSeconds=0", kname);
        assert_int_equal(kubefake_request(kf, KUBEFAKE_AUTH_TOKEN, "DELETE", path, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        kubefake_resp_done(&r);
        /* Wait (without running the provider's loop) until the pod is gone. */
        for (int k = 0; k < 100; k++) {
                json_t *pods = NULL;
                bool there = false;
                size_t x;
                json_t *it;
                assert_int_equal(kubefake_ctl(kf, "GET", "/_fake/pods", NULL, &pods), 200);
                json_array_foreach(json_object_get(pods, "pods"), x, it)
                        there = there || strcmp(json_string_value(json_object_get(it, "job")) ?: "", kname) == 0;
                json_decref(pods);
                if (!there)
                        break;
                usleep(50000);
        }
        ctl("/_fake/compact", NULL);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-vanish", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_UNKNOWN);
        kt_free(t);
}

/* A worker whose pod ended while the daemon was down changes no more, so
 * no watch event will ever report it: when adopt()'s own look at its pods
 * fails, the provider asks again rather than wait for the watch. */
static void failed_adopt_check_is_asked_again(void **state)
{
        struct kt *t = kt_new(false);

        kt_init(t);
        assert_int_equal(launch(t, "kt-ended", "sleep 1; exit 4", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_STARTED, "kt-ended", 10000));
        t->prov.ops->done(&t->prov);            /* the daemon is gone */
        usleep(2500000);                        /* the pod ends meanwhile */
        t->nev = 0;
        kt_init(t);
        /* The new watch is up (its listing is done) before the fault. */
        int64_t end = now_ms() + 10000;
        for (;;) {
                json_t *st = stats();
                long long open = json_integer_value(json_object_get(st, "watches_open"));
                json_decref(st);
                if (open > 0)
                        break;
                if (now_ms() > end)
                        fail_msg("no watch");
                spin(t, 50);
        }
        ctl("/_fake/faults", "{\"method\":\"GET\",\"path_prefix\":\"/api/v1/namespaces/" NS "/pods\","
                             "\"status\":500,\"count\":1}");
        assert_int_equal(t->prov.ops->adopt(&t->prov, "kt-ended", "", NULL, 0, on_event, t), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-ended", 10000);
        assert_non_null(e);
        assert_int_equal(e->exit.kind, PROVIDER_EXIT_CODE);
        assert_int_equal(e->exit.code, 4);
        finish(t, "kt-ended");
        kt_free(t);
}

/* After a restart the adopted worker's output still reaches the instance
 * log, the lines from before the restart included. */
static void adopted_worker_log_copied(void **state)
{
        struct kt *t = kt_new(false);
        char log[PATH_MAX];

        kt_init(t);
        assert_int_equal(launch(t, "kt-adlog", "echo before-restart; sleep 2; echo after-restart", "tk"), 0);
        assert_non_null(wait_ev(t, PROVIDER_EV_STARTED, "kt-adlog", 10000));
        t->prov.ops->done(&t->prov);
        snprintf(log, sizeof(log), "%s/kt-adlog.log", tmp);
        unlink(log);                            /* only the adopted copy can fill it */
        t->nev = 0;
        kt_init(t);
        assert_int_equal(t->prov.ops->adopt(&t->prov, "kt-adlog", "", log, 1 << 20, on_event, t), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-adlog", 15000);
        assert_non_null(e);
        assert_int_equal(e->exit.code, 0);
        char *text = read_log("kt-adlog");
        assert_non_null(text);
        assert_non_null(strstr(text, "before-restart\n"));
        assert_non_null(strstr(text, "after-restart\n"));
        free(text);
        finish(t, "kt-adlog");
        kt_free(t);
}

struct listed {
        int calls;
        bool found, running;
        char ref[64];
};

static void on_list(void *ud, int error, const struct provider_listing *items, size_t n)
{
        struct listed *l = ud;

        assert_int_equal(error, 0);
        for (size_t k = 0; k < n; k++) {
                if (strcmp(items[k].instance, "kt-lost-1") != 0)
                        continue;
                l->found = true;
                l->running = items[k].running;
                snprintf(l->ref, sizeof(l->ref), "%s", items[k].ref);
        }
        l->calls++;
}

/* A finished Job whose cleanup() never happened (the daemon stopped first)
 * is listed as not running, with its ref, after a restart; cleanup() by
 * name, as the orphan sweep calls it, removes it. */
static void lost_cleanup_found_by_list(void **state)
{
        struct kt *t = kt_new(false);
        char kname[KUBEOBJ_NAME_MAX + 1], path[256];
        struct listed l = { 0 };

        kt_init(t);
        assert_int_equal(launch(t, "kt-lost-1", "exit 0", "tk"), 0);
        const struct ev *e = wait_ev(t, PROVIDER_EV_EXITED, "kt-lost-1", 10000);
        assert_non_null(e);
        t->prov.ops->done(&t->prov);
        kt_init(t);
        assert_int_equal(kubeobj_name("kt-lost-1", kname, sizeof(kname)), 0);
        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/" NS "/jobs/%s", kname);
        assert_int_equal(api_get(path, NULL), 200);
        assert_int_equal(t->prov.ops->list(&t->prov, "kt-lost-", on_list, &l), 0);
        int64_t end = now_ms() + 5000;
        while (l.calls == 0 && now_ms() < end)
                spin(t, 20);
        assert_int_equal(l.calls, 1);
        assert_true(l.found);
        assert_false(l.running);
        assert_string_equal(l.ref, e->ref);
        assert_int_equal(t->prov.ops->cleanup(&t->prov, "kt-lost-1", l.ref, tmp), 0);
        long st;
        do {
                spin(t, 50);
                st = api_get(path, NULL);
        } while (st != 404 && now_ms() < end);
        assert_int_equal(st, 404);
        kt_free(t);
}

static int group_setup(void **state)
{
        struct kubefake_opts o = { .ns = NS };
        int r;

        httpc_global_init();
        snprintf(tmp, sizeof(tmp), "/tmp/fs-kt-XXXXXX");
        if (!mkdtemp(tmp))
                return -1;
        r = kubefake_start(&o, &kf);
        if (r < 0) {
                fprintf(stderr, "kubefake_start: %s\n", strerror(-r));
                return -1;
        }
        return 0;
}

static int group_teardown(void **state)
{
        /* Nothing with the managed label may be left. */
        json_t *jobs = NULL;
        long st = api_get("/apis/batch/v1/namespaces/" NS "/jobs?labelSelector=forgescale.io%2Fmanaged%3Dtrue", &jobs);
        size_t left = json_array_size(json_object_get(jobs, "items"));
        json_decref(jobs);
        kubefake_stop(kf);
        fs_rm_rf(tmp);
        if (st != 200 || left) {
                fprintf(stderr, "%zu managed Jobs left (status %ld)\n", left, st);
                return -1;
        }
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(kubeconfig_with_client_certificate),
                cmocka_unit_test(in_cluster_with_token_rotation),
                cmocka_unit_test(dropped_watch_resumes_without_polling),
                cmocka_unit_test(gone_410_relists),
                cmocka_unit_test(throttled_list_honours_retry_after),
                cmocka_unit_test(faults_become_failed_launches),
                cmocka_unit_test(unschedulable_pod_stopped_with_reason),
                cmocka_unit_test(missing_image_stopped_with_reason),
                cmocka_unit_test(job_and_secret_as_made),
                cmocka_unit_test(deadline_exceeded_in_the_detail),
                cmocka_unit_test(lost_cleanup_found_by_list),
                cmocka_unit_test(pod_gone_during_outage_found_by_relist),
                cmocka_unit_test(failed_adopt_check_is_asked_again),
                cmocka_unit_test(adopted_worker_log_copied),
                cmocka_unit_test(job_without_secret_not_adopted),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
