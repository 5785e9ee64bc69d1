/* kfx.c: see kfx.h. */
#include "kfx.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

struct kubefake *kfx;

int kfx_setup(void **state)
{
        (void)state;
        int r = kubefake_start(NULL, &kfx);
        if (r < 0)
                fprintf(stderr, "kubefake_start: %s\n", strerror(-r));
        return r < 0 ? -1 : 0;
}

int kfx_teardown(void **state)
{
        (void)state;
        int r = kubefake_stop(kfx);
        kfx = NULL;
        if (r < 0)
                fprintf(stderr, "kubefake_stop: %s\n", strerror(-r));
        return r < 0 ? -1 : 0;
}

void kfx_sleep_ms(long ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

char *kfx_job(const char *name, const char *image, const char *const *argv,
              const char *const *env, const char *secret, const char *extra_spec)
{
        json_t *cmd = json_array(), *envs = json_array();
        json_t *c, *ps, *job;
        char *out;

        for (size_t i = 0; argv && argv[i]; i++)
                json_array_append_new(cmd, json_string(argv[i]));
        for (size_t i = 0; env && env[i] && env[i + 1]; i += 2)
                json_array_append_new(envs, json_pack("{s:s,s:s}", "name", env[i], "value",
                                                      env[i + 1]));
        c = json_pack("{s:s,s:s,s:o,s:o}", "name", "worker", "image", image, "command", cmd,
                      "env", envs);
        ps = json_pack("{s:s,s:[o]}", "restartPolicy", "Never", "containers", c);
        if (secret) {
                json_object_set_new(ps, "volumes",
                                    json_pack("[{s:s,s:{s:s,s:i}}]", "name", "token", "secret",
                                              "secretName", secret, "defaultMode", 0400));
                json_object_set_new(c, "volumeMounts",
                                    json_pack("[{s:s,s:s,s:b}]", "name", "token", "mountPath",
                                              "/var/run/forgescale", "readOnly", 1));
        }
        job = json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:i,s:{s:{s:{s:s}},s:o}}}",
                        "apiVersion", "batch/v1", "kind", "Job",
                        "metadata", "name", name, "labels", "app", "kfx",
                        "spec", "backoffLimit", 0, "template", "metadata", "labels", "app", "kfx",
                        "spec", ps);
        if (extra_spec) {
                json_t *x = json_loads(extra_spec, 0, NULL);
                assert_non_null(x);
                json_object_update(json_object_get(job, "spec"), x);
                json_decref(x);
        }
        out = json_dumps(job, JSON_COMPACT);
        json_decref(job);
        assert_non_null(out);
        return out;
}

static long req(const char *method, const char *path, const char *body, json_t **ret)
{
        struct kubefake_resp r;
        long st;

        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, method, path, body, &r), 0);
        st = r.status;
        if (ret) {
                *ret = r.json;
                r.json = NULL;
        }
        kubefake_resp_done(&r);
        return st;
}

long kfx_post(const char *path, const char *body, json_t **ret)
{
        return req("POST", path, body, ret);
}

long kfx_get(const char *path, json_t **ret)
{
        return req("GET", path, NULL, ret);
}

long kfx_delete(const char *path, const char *body, json_t **ret)
{
        return req("DELETE", path, body, ret);
}

json_t *kfx_wait_pod(const char *ns, const char *job, const char *phase, long timeout_ms)
{
        char path[512];
        double end = now_ms() + (double)timeout_ms;

        snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=job-name%%3D%s",
                 ns, job);
        do {
                json_t *list = NULL;
                if (kfx_get(path, &list) == 200) {
                        json_t *p = json_array_get(json_object_get(list, "items"), 0);
                        const char *ph = json_string_value(
                                json_object_get(json_object_get(p, "status"), "phase"));
                        if (p && (!phase || (ph && strcmp(ph, phase) == 0))) {
                                json_incref(p);
                                json_decref(list);
                                return p;
                        }
                }
                json_decref(list);
                kfx_sleep_ms(20);
        } while (now_ms() < end);
        return NULL;
}

bool kfx_wait_status(const char *path, long status, long timeout_ms)
{
        double end = now_ms() + (double)timeout_ms;

        do {
                if (kfx_get(path, NULL) == status)
                        return true;
                kfx_sleep_ms(20);
        } while (now_ms() < end);
        return false;
}

json_t *kfx_wait_job_condition(const char *ns, const char *job, const char *type,
                               long timeout_ms)
{
        char path[512];
        double end = now_ms() + (double)timeout_ms;

        snprintf(path, sizeof(path), "/apis/batch/v1/namespaces/%s/jobs/%s", ns, job);
        do {
                json_t *j = NULL, *c;
                size_t i;
                if (kfx_get(path, &j) == 200) {
                        json_array_foreach(json_object_get(json_object_get(j, "status"),
                                                           "conditions"), i, c) {
                                if (strcmp(json_string_value(json_object_get(c, "type")) ?: "",
                                           type) == 0 &&
                                    strcmp(json_string_value(json_object_get(c, "status")) ?: "",
                                           "True") == 0)
                                        return j;
                        }
                }
                json_decref(j);
                kfx_sleep_ms(20);
        } while (now_ms() < end);
        return NULL;
}

bool kfx_pid_alive(int pid)
{
        char path[64], buf[512];
        FILE *f;
        bool alive = false;

        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        f = fopen(path, "re");
        if (!f)
                return false;
        if (fgets(buf, sizeof(buf), f)) {
                const char *p = strrchr(buf, ')');
                alive = p && p[1] == ' ' && p[2] != 'Z';
        }
        fclose(f);
        return alive;
}
