/* watch.c: kube-fake's watches: events in order with increasing
 * resourceVersions, synthetic ADDED without a version, resumption from a
 * version, selectors, 410 after a compaction (as an ERROR event for
 * watches, HTTP 410 for lists), dropped watches, timeoutSeconds, the
 * open-watch count, and a job's pods seen through a watch. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kfx.h"

#define SECRETS "/api/v1/namespaces/watch/secrets"

static const char *ev_type(json_t *ev)
{
        return json_string_value(json_object_get(ev, "type"));
}

static const char *ev_name(json_t *ev)
{
        return json_string_value(json_object_get(json_object_get(json_object_get(ev, "object"),
                                                                 "metadata"), "name"));
}

static long long ev_rv(json_t *ev)
{
        const char *s = json_string_value(json_object_get(json_object_get(json_object_get(
                ev, "object"), "metadata"), "resourceVersion"));
        return s ? strtoll(s, NULL, 10) : -1;
}

static void expect_event(struct kubefake_watch *w, const char *type, const char *name,
                         long long *rv)
{
        json_t *ev = NULL;
        int r = kubefake_watch_next(w, 3000, &ev);

        if (r != 0)
                fail_msg("waiting for %s %s: %s", type, name, strerror(-r));
        if (strcmp(ev_type(ev), type) != 0 || (name && strcmp(ev_name(ev) ?: "", name) != 0))
                fail_msg("want %s %s, got %s %s", type, name ? name : "", ev_type(ev),
                         ev_name(ev) ? ev_name(ev) : "");
        if (rv) {
                assert_true(ev_rv(ev) > *rv);
                *rv = ev_rv(ev);
        }
        json_decref(ev);
}

static void expect_quiet(struct kubefake_watch *w, long ms)
{
        json_t *ev = NULL;
        int r = kubefake_watch_next(w, ms, &ev);

        if (r == 0)
                fail_msg("unexpected event %s %s", ev_type(ev), ev_name(ev));
        assert_int_equal(r, -ETIMEDOUT);
}

static void secret(const char *name, const char *labels)
{
        char body[512];

        snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"%s\",\"labels\":%s}}", name,
                 labels ? labels : "{}");
        assert_int_equal(kfx_post(SECRETS, body, NULL), 201);
}

static long long list_rv(const char *path)
{
        json_t *l = NULL;
        long long rv;

        assert_int_equal(kfx_get(path, &l), 200);
        rv = strtoll(json_string_value(json_object_get(json_object_get(l, "metadata"),
                                                       "resourceVersion")), NULL, 10);
        json_decref(l);
        return rv;
}

static void events_in_order(void **state)
{
        struct kubefake_watch *w;
        char path[256];
        long long rv = list_rv(SECRETS);

        (void)state;
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        secret("order-a", NULL);
        secret("order-b", NULL);
        assert_int_equal(kfx_delete(SECRETS "/order-a", NULL, NULL), 200);
        expect_event(w, "ADDED", "order-a", &rv);
        expect_event(w, "ADDED", "order-b", &rv);
        expect_event(w, "DELETED", "order-a", &rv);
        assert_int_equal(kubefake_watch_status(w), 200);
        expect_quiet(w, 200);
        kubefake_watch_close(w);
}

static void no_version_starts_with_added(void **state)
{
        struct kubefake_watch *w;

        (void)state;
        secret("synth-1", "{\"set\":\"synth\"}");
        secret("synth-2", "{\"set\":\"synth\"}");
        assert_int_equal(kubefake_watch_open(kfx, SECRETS "?watch=true&labelSelector=set%3Dsynth",
                                             &w), 0);
        expect_event(w, "ADDED", "synth-1", NULL);
        expect_event(w, "ADDED", "synth-2", NULL);
        expect_quiet(w, 200);
        kubefake_watch_close(w);
}

static void selectors_filter(void **state)
{
        struct kubefake_watch *w;
        long long rv = list_rv(SECRETS);
        char path[256];

        (void)state;
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld&labelSelector="
                 "team%%20in%%20(a,b),!skip", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        secret("sel-c", "{\"team\":\"c\"}");
        secret("sel-skip", "{\"team\":\"a\",\"skip\":\"1\"}");
        secret("sel-a", "{\"team\":\"a\"}");
        expect_event(w, "ADDED", "sel-a", NULL);
        expect_quiet(w, 200);
        kubefake_watch_close(w);
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld&fieldSelector="
                 "metadata.name%%3Dsel-c", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        expect_event(w, "ADDED", "sel-c", NULL);
        expect_quiet(w, 200);
        kubefake_watch_close(w);
        struct kubefake_resp r;
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET",
                                          SECRETS "?labelSelector=a%20in%20(", NULL, &r), 0);
        assert_int_equal(r.status, 400);
        kubefake_resp_done(&r);
}

static void resume_from_last_version(void **state)
{
        struct kubefake_watch *w;
        char path[256];
        long long rv = list_rv(SECRETS), last;

        (void)state;
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        secret("resume-1", NULL);
        expect_event(w, "ADDED", "resume-1", &rv);
        kubefake_watch_close(w);
        last = rv;
        /* Changes while nobody watches... */
        secret("resume-2", NULL);
        assert_int_equal(kfx_delete(SECRETS "/resume-1", NULL, NULL), 200);
        /* ...are replayed from the last version seen, and nothing before. */
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", last);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        expect_event(w, "ADDED", "resume-2", &rv);
        expect_event(w, "DELETED", "resume-1", &rv);
        expect_quiet(w, 200);
        kubefake_watch_close(w);
}

static void gone_after_compaction(void **state)
{
        struct kubefake_watch *w;
        json_t *ev = NULL, *st;
        char path[256];
        long long old = list_rv(SECRETS);
        struct kubefake_resp r;

        (void)state;
        secret("compact-1", NULL);
        json_t *l = NULL;
        assert_int_equal(kfx_get(SECRETS "?limit=1", &l), 200);
        char cont[128];
        snprintf(cont, sizeof(cont), "%s", json_string_value(json_object_get(json_object_get(
                l, "metadata"), "continue")) ?: "");
        json_decref(l);
        assert_true(cont[0] != '\0');
        /* A change after the list, so its version is older than the compaction. */
        secret("compact-1b", NULL);
        assert_int_equal(kubefake_ctl(kfx, "POST", "compact", NULL, NULL), 200);
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", old);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        assert_int_equal(kubefake_watch_next(w, 3000, &ev), 0);
        assert_string_equal(ev_type(ev), "ERROR");
        st = json_object_get(ev, "object");
        assert_string_equal(json_string_value(json_object_get(st, "kind")), "Status");
        assert_int_equal(json_integer_value(json_object_get(st, "code")), 410);
        assert_string_equal(json_string_value(json_object_get(st, "reason")), "Expired");
        json_decref(ev);
        assert_int_equal(kubefake_watch_next(w, 3000, &ev), -EPIPE);
        assert_int_equal(kubefake_watch_status(w), 200);
        kubefake_watch_close(w);
        snprintf(path, sizeof(path), SECRETS "?resourceVersion=%lld&resourceVersionMatch=Exact",
                 old);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 410);
        kubefake_resp_done(&r);
        snprintf(path, sizeof(path), SECRETS "?limit=1&continue=%s", cont);
        assert_int_equal(kubefake_request(kfx, KUBEFAKE_AUTH_TOKEN, "GET", path, NULL, &r), 0);
        assert_int_equal(r.status, 410);
        kubefake_resp_done(&r);
        /* From the current version on, watching works again. */
        long long now = list_rv(SECRETS);
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", now);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        secret("compact-2", NULL);
        expect_event(w, "ADDED", "compact-2", &now);
        kubefake_watch_close(w);
}

static long watches_open(void)
{
        json_t *st = NULL;
        long n;

        assert_int_equal(kubefake_ctl(kfx, "GET", "stats", NULL, &st), 200);
        n = (long)json_integer_value(json_object_get(st, "watches_open"));
        json_decref(st);
        return n;
}

static void drop_watches(void **state)
{
        struct kubefake_watch *w1, *w2;
        json_t *ev = NULL;
        char path[256];
        long long rv = list_rv(SECRETS);

        (void)state;
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w1), 0);
        assert_int_equal(kubefake_watch_open(kfx, path, &w2), 0);
        secret("drop-1", NULL);
        expect_event(w1, "ADDED", "drop-1", NULL);
        expect_event(w2, "ADDED", "drop-1", NULL);
        assert_int_equal(watches_open(), 2);
        assert_int_equal(kubefake_ctl(kfx, "POST", "drop-watches", NULL, NULL), 200);
        assert_int_equal(kubefake_watch_next(w1, 3000, &ev), -EPIPE);
        assert_int_equal(kubefake_watch_next(w2, 3000, &ev), -EPIPE);
        kubefake_watch_close(w1);
        kubefake_watch_close(w2);
        assert_int_equal(kubefake_watch_open(kfx, path, &w1), 0);
        expect_event(w1, "ADDED", "drop-1", NULL);
        assert_int_equal(kubefake_ctl(kfx, "POST", "drop-watches", "{\"mode\":\"reset\"}", NULL),
                         200);
        assert_int_equal(kubefake_watch_next(w1, 3000, &ev), -ECONNRESET);
        kubefake_watch_close(w1);
        for (int i = 0; i < 100 && watches_open() != 0; i++)
                kfx_sleep_ms(20);
        assert_int_equal(watches_open(), 0);
}

static void timeout_seconds_ends_watch(void **state)
{
        struct kubefake_watch *w;
        json_t *ev = NULL;

        (void)state;
        assert_int_equal(kubefake_watch_open(kfx, SECRETS "?watch=1&timeoutSeconds=1&"
                                             "labelSelector=none%3Dnone", &w), 0);
        assert_int_equal(kubefake_watch_next(w, 500, &ev), -ETIMEDOUT);
        assert_int_equal(kubefake_watch_next(w, 3000, &ev), -EPIPE);
        kubefake_watch_close(w);
}

static void bookmarks_when_asked(void **state)
{
        struct kubefake_watch *w;
        json_t *ev = NULL;
        long long rv = list_rv(SECRETS);
        char path[256];

        (void)state;
        snprintf(path, sizeof(path), SECRETS "?watch=1&resourceVersion=%lld&"
                 "allowWatchBookmarks=true&labelSelector=none%%3Dnone", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        secret("bookmark-1", NULL);
        assert_int_equal(kubefake_watch_next(w, 8000, &ev), 0);
        assert_string_equal(ev_type(ev), "BOOKMARK");
        assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "object"),
                                                              "kind")), "Secret");
        /* It carries the current version, past the change it did not show. */
        assert_true(ev_rv(ev) > rv);
        json_decref(ev);
        kubefake_watch_close(w);
}

/* A job's pod seen through a label-selected watch, in phase order. */
static void job_pod_through_watch(void **state)
{
        const char *argv[] = { "/bin/sh", "-c", "echo ok", NULL };
        char *job = kfx_job("watched", "busybox", argv, NULL, NULL, NULL);
        struct kubefake_watch *w;
        json_t *ev = NULL;
        long long rv = list_rv("/api/v1/namespaces/watch/pods");
        char path[256];
        const char *phases[8];
        size_t n = 0;

        (void)state;
        snprintf(path, sizeof(path), "/api/v1/namespaces/watch/pods?watch=1&resourceVersion=%lld"
                 "&labelSelector=job-name%%3Dwatched", rv);
        assert_int_equal(kubefake_watch_open(kfx, path, &w), 0);
        assert_int_equal(kfx_post("/apis/batch/v1/namespaces/watch/jobs", job, NULL), 201);
        free(job);
        while (n < 8 && kubefake_watch_next(w, 3000, &ev) == 0) {
                const char *ph = json_string_value(json_object_get(json_object_get(
                        json_object_get(ev, "object"), "status"), "phase"));
                if (n == 0 || strcmp(phases[n - 1], ph) != 0)
                        phases[n++] = strcmp(ph, "Pending") == 0 ? "Pending"
                                      : strcmp(ph, "Running") == 0 ? "Running" : "Succeeded";
                if (n == 1)
                        assert_string_equal(ev_type(ev), "ADDED");
                bool done = strcmp(ph, "Succeeded") == 0;
                json_decref(ev);
                if (done)
                        break;
        }
        assert_int_equal(n, 3);
        assert_string_equal(phases[0], "Pending");
        assert_string_equal(phases[1], "Running");
        assert_string_equal(phases[2], "Succeeded");
        kubefake_watch_close(w);
        json_t *st = NULL;
        assert_int_equal(kubefake_ctl(kfx, "GET", "stats", NULL, &st), 200);
        assert_true(json_integer_value(json_object_get(json_object_get(st, "requests"),
                    "WATCH /api/v1/namespaces/{namespace}/pods")) >= 1);
        json_decref(st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(events_in_order),
                cmocka_unit_test(no_version_starts_with_added),
                cmocka_unit_test(selectors_filter),
                cmocka_unit_test(resume_from_last_version),
                cmocka_unit_test(gone_after_compaction),
                cmocka_unit_test(drop_watches),
                cmocka_unit_test(timeout_seconds_ends_watch),
                cmocka_unit_test(job_pod_through_watch),
                cmocka_unit_test(bookmarks_when_asked),
        };
        return cmocka_run_group_tests(tests, kfx_setup, kfx_teardown);
}
