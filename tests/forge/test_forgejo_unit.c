/* test_forgejo_unit.c: pure parts of the Forgejo client: scope parsing and
 * paths, URL encoding, label queries, version parsing and the strict
 * parsers of job lists, runners and created runners (literal bodies from
 * forgejo-api.md §1.3 and §3.2). No network. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forge/forgejo.h"

#define REF_JOB "{\"id\":393,\"attempt\":1,\"handle\":\"18e9cf40-2f3c-4a8e-9d1e-2b5a7c0e1f11\"," \
                "\"repo_id\":1,\"owner_id\":1,\"name\":\"job_2\",\"needs\":null," \
                "\"runs_on\":[\"ubuntu-latest\"],\"task_id\":47,\"status\":\"waiting\"}"

static void scope_parse_ok(void **state)
{
        struct forgejo_scope sc;
        char buf[512];

        assert_int_equal(forgejo_scope_parse("instance", &sc), 0);
        assert_int_equal(sc.kind, FORGEJO_SCOPE_INSTANCE);
        assert_int_equal(forgejo_scope_runners_path(&sc, buf, sizeof(buf)),
                         (int)strlen("/api/v1/admin/actions/runners"));
        assert_string_equal(buf, "/api/v1/admin/actions/runners");
        forgejo_scope_jobs_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/admin/actions/runners/jobs");
        forgejo_scope_format(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "instance");

        assert_int_equal(forgejo_scope_parse("user", &sc), 0);
        assert_int_equal(sc.kind, FORGEJO_SCOPE_USER);
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/user/actions/runners");
        forgejo_scope_jobs_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/user/actions/runners/jobs");

        assert_int_equal(forgejo_scope_parse("org/acme", &sc), 0);
        assert_int_equal(sc.kind, FORGEJO_SCOPE_ORG);
        assert_string_equal(sc.owner, "acme");
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/orgs/acme/actions/runners");
        forgejo_scope_jobs_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/orgs/acme/actions/runners/jobs");
        forgejo_scope_format(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "org/acme");

        assert_int_equal(forgejo_scope_parse("repo/acme/app", &sc), 0);
        assert_int_equal(sc.kind, FORGEJO_SCOPE_REPO);
        assert_string_equal(sc.owner, "acme");
        assert_string_equal(sc.repo, "app");
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/repos/acme/app/actions/runners");
        forgejo_scope_jobs_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/repos/acme/app/actions/runners/jobs");
        forgejo_scope_format(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "repo/acme/app");

        /* Names are URL-encoded in paths. */
        assert_int_equal(forgejo_scope_parse("repo/my.org/app_1~x%", &sc), 0);
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/repos/my.org/app_1~x%25/actions/runners");
        assert_int_equal(forgejo_scope_parse("org/\xc3\xbc" "ber", &sc), 0);
        forgejo_scope_jobs_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/orgs/%C3%BCber/actions/runners/jobs");
        assert_int_equal(forgejo_scope_parse("org/a?b#c", &sc), 0);
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/orgs/a%3Fb%23c/actions/runners");
}

static void scope_parse_bad(void **state)
{
        struct forgejo_scope sc = { .kind = FORGEJO_SCOPE_USER };
        static const char *const bad[] = {
                "", "Instance", "instance/", "users", "org", "org/", "org/a/b", "org/ acme",
                "org/ac me", "org/.", "org/..", "repo", "repo/", "repo/acme", "repo/acme/",
                "repo//app", "repo/acme/app/x", "repo/./app", "repo/acme/..", "org/a\tb",
                "org/a\nb", "global", "org/a\x7f",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (forgejo_scope_parse(bad[i], &sc) != -EINVAL)
                        fail_msg("scope \"%s\" was accepted", bad[i]);
        }
        assert_int_equal(forgejo_scope_parse(NULL, &sc), -EINVAL);
        assert_int_equal(sc.kind, FORGEJO_SCOPE_USER); /* untouched */

        char longname[300];
        memset(longname, 'a', sizeof(longname));
        memcpy(longname, "org/", 4);
        longname[4 + FORGEJO_NAME_MAX - 1] = '\0';     /* name of NAME_MAX-1 bytes: ok */
        assert_int_equal(forgejo_scope_parse(longname, &sc), 0);
        memset(longname, 'a', sizeof(longname));
        memcpy(longname, "org/", 4);
        longname[4 + FORGEJO_NAME_MAX] = '\0';         /* NAME_MAX bytes: too long */
        assert_int_equal(forgejo_scope_parse(longname, &sc), -EINVAL);
}

static void paths_bounded(void **state)
{
        struct forgejo_scope sc;
        char buf[64];
        char small[8];

        assert_int_equal(forgejo_scope_parse("repo/acme/app", &sc), 0);
        assert_int_equal(forgejo_scope_runners_path(&sc, small, sizeof(small)), -ENAMETOOLONG);
        /* Exactly fits: 38 chars + NUL. */
        assert_int_equal(forgejo_scope_runners_path(&sc, buf, 39), 38);
        assert_int_equal(forgejo_scope_runners_path(&sc, buf, 38), -ENAMETOOLONG);
        assert_int_equal(forgejo_scope_jobs_path(&sc, buf, 44), 43);
        assert_string_equal(buf, "/api/v1/repos/acme/app/actions/runners/jobs");
        assert_int_equal(forgejo_scope_jobs_path(&sc, buf, 43), -ENAMETOOLONG);

        /* A scope built by hand is validated too. */
        struct forgejo_scope hand = { .kind = FORGEJO_SCOPE_ORG };
        assert_int_equal(forgejo_scope_runners_path(&hand, buf, sizeof(buf)), -EINVAL);
        snprintf(hand.owner, sizeof(hand.owner), "../admin");
        assert_int_equal(forgejo_scope_runners_path(&hand, buf, sizeof(buf)), -EINVAL);
}

static void urlencode(void **state)
{
        char buf[64];

        assert_int_equal(forgejo_urlencode("AZaz09-._~", buf, sizeof(buf)), 10);
        assert_string_equal(buf, "AZaz09-._~");
        assert_int_equal(forgejo_urlencode("a b/c?d&e=f,g%+", buf, sizeof(buf)), 31);
        assert_string_equal(buf, "a%20b%2Fc%3Fd%26e%3Df%2Cg%25%2B");
        forgejo_urlencode("\xff\x01", buf, sizeof(buf));
        assert_string_equal(buf, "%FF%01");
        assert_int_equal(forgejo_urlencode("", buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");
        assert_int_equal(forgejo_urlencode("abc", buf, 4), 3);
        assert_int_equal(forgejo_urlencode("abc", buf, 3), -ENAMETOOLONG);
        assert_int_equal(forgejo_urlencode(" ", buf, 4), 3);
        assert_int_equal(forgejo_urlencode(" ", buf, 3), -ENAMETOOLONG);
}

static void labels_query(void **state)
{
        char buf[128];

        /* NULL: key omitted entirely. */
        assert_int_equal(forgejo_labels_query(NULL, buf, sizeof(buf)), 0);
        assert_string_equal(buf, "");
        /* Empty list: "labels=" (jobs without runs_on). */
        const char *const none[] = { NULL };
        assert_int_equal(forgejo_labels_query(none, buf, sizeof(buf)), 7);
        assert_string_equal(buf, "labels=");
        const char *const one[] = { "ubuntu-latest", NULL };
        forgejo_labels_query(one, buf, sizeof(buf));
        assert_string_equal(buf, "labels=ubuntu-latest");
        const char *const many[] = { "docker", "x86 64", "gpu&fast", "a=b", NULL };
        forgejo_labels_query(many, buf, sizeof(buf));
        assert_string_equal(buf, "labels=docker,x86%2064,gpu%26fast,a%3Db");
        /* Not expressible: empty label, label with a comma. */
        const char *const empty_label[] = { "a", "", NULL };
        assert_int_equal(forgejo_labels_query(empty_label, buf, sizeof(buf)), -EINVAL);
        const char *const comma[] = { "a,b", NULL };
        assert_int_equal(forgejo_labels_query(comma, buf, sizeof(buf)), -EINVAL);
        /* Bounded. */
        assert_int_equal(forgejo_labels_query(one, buf, 10), -ENAMETOOLONG);
        assert_int_equal(forgejo_labels_query(one, buf, 21), 20);
        assert_int_equal(forgejo_labels_query(one, buf, 20), -ENAMETOOLONG);
        assert_int_equal(forgejo_labels_query(none, buf, 7), -ENAMETOOLONG);
}

static void version_parse(void **state)
{
        int a = -1, b = -1, c = -1;

        assert_int_equal(forgejo_version_parse("15.0.1+gitea-1.22.0", &a, &b, &c), 0);
        assert_int_equal(a, 15); assert_int_equal(b, 0); assert_int_equal(c, 1);
        assert_int_equal(forgejo_version_parse("15.0.0-dev-123-abc", &a, &b, &c), 0);
        assert_int_equal(a, 15); assert_int_equal(b, 0); assert_int_equal(c, 0);
        assert_int_equal(forgejo_version_parse("v16.2.31", &a, &b, &c), 0);
        assert_int_equal(a, 16); assert_int_equal(b, 2); assert_int_equal(c, 31);
        assert_int_equal(forgejo_version_parse("11.0", &a, &b, &c), 0);
        assert_int_equal(a, 11); assert_int_equal(b, 0); assert_int_equal(c, 0);
        a = b = c = -7;
        static const char *const bad[] = {
                "", "15", "15.", ".1.2", "a.b.c", "15.0.0.1", "15.0.0 ", "15.0.x",
                "1234567890.0.0", "15..0", "-15.0.0", "15.0.0_1",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (forgejo_version_parse(bad[i], &a, &b, &c) != -EINVAL)
                        fail_msg("version \"%s\" was accepted", bad[i]);
        assert_int_equal(a, -7);
        assert_int_equal(forgejo_version_parse(NULL, &a, &b, &c), -EINVAL);
}

static void jobs_reference_example(void **state)
{
        struct forgejo_job_list l;
        char reason[160] = "";
        const char *body = "[" REF_JOB "]";

        assert_int_equal(forgejo_parse_jobs(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 1);
        struct forgejo_job *j = &l.jobs[0];
        assert_int_equal(j->id, 393);
        assert_int_equal(j->attempt, 1);
        assert_string_equal(j->handle, "18e9cf40-2f3c-4a8e-9d1e-2b5a7c0e1f11");
        assert_int_equal(j->repo_id, 1);
        assert_int_equal(j->owner_id, 1);
        assert_string_equal(j->name, "job_2");
        assert_int_equal(j->n_runs_on, 1);
        assert_string_equal(j->runs_on[0], "ubuntu-latest");
        assert_int_equal(j->task_id, 47);
        assert_string_equal(j->status, "waiting");
        assert_int_equal(j->state, FORGEJO_JOB_WAITING);
        forgejo_job_list_done(&l);
}

static void jobs_empty_forms(void **state)
{
        struct forgejo_job_list l;
        char reason[160];

        /* Forgejo sends null for an empty result; [] must work too. */
        assert_int_equal(forgejo_parse_jobs("null", 4, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        assert_non_null(l.jobs);
        forgejo_job_list_done(&l);
        assert_int_equal(forgejo_parse_jobs(" [ ]\n", 5, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        forgejo_job_list_done(&l);
        forgejo_job_list_done(NULL);
}

static void jobs_many_and_variants(void **state)
{
        struct forgejo_job_list l;
        char reason[160];
        /* Descending ids, a running job, empty/null runs_on, newer fields
         * (run_id, html_url) ignored, attempt/handle absent (pre-15.0),
         * int64 extremes. */
        const char *body =
                "[{\"id\":9223372036854775807,\"attempt\":3,\"handle\":\"h\",\"repo_id\":2,"
                "\"owner_id\":3,\"name\":\"build\",\"needs\":[\"lint\"],\"runs_on\":[\"a\",\"b\"],"
                "\"task_id\":9223372036854775806,\"status\":\"running\",\"run_id\":7,"
                "\"html_url\":\"https://x/y\"},"
                "{\"id\":5,\"repo_id\":2,\"owner_id\":3,\"name\":\"\",\"runs_on\":[],"
                "\"task_id\":0,\"status\":\"waiting\"},"
                "{\"id\":4,\"attempt\":1,\"handle\":\"\",\"repo_id\":2,\"owner_id\":3,"
                "\"name\":\"n\",\"runs_on\":null,\"task_id\":0,\"status\":\"blocked\"}]";

        assert_int_equal(forgejo_parse_jobs(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 3);
        assert_true(l.jobs[0].id == INT64_MAX);
        assert_true(l.jobs[0].task_id == INT64_MAX - 1);
        assert_int_equal(l.jobs[0].state, FORGEJO_JOB_RUNNING);
        assert_int_equal(l.jobs[0].n_runs_on, 2);
        assert_string_equal(l.jobs[0].runs_on[0], "a");
        assert_string_equal(l.jobs[0].runs_on[1], "b");
        assert_int_equal(l.jobs[1].attempt, 0);
        assert_string_equal(l.jobs[1].handle, "");
        assert_int_equal(l.jobs[1].n_runs_on, 0);
        assert_int_equal(l.jobs[2].n_runs_on, 0);
        assert_int_equal(l.jobs[2].state, FORGEJO_JOB_OTHER);
        assert_string_equal(l.jobs[2].status, "blocked");
        forgejo_job_list_done(&l);

        /* Not NUL-terminated: the parser honours len. */
        char raw[8] = { '[', ']', 'x', 'x', 'x', 'x', 'x', 'x' };
        assert_int_equal(forgejo_parse_jobs(raw, 2, &l, reason, sizeof(reason)), 0);
        forgejo_job_list_done(&l);
}

struct bad_case {
        const char *body;
        const char *reason_has;
};

static void jobs_rejected(void **state)
{
        static const struct bad_case cases[] = {
                { "", "invalid JSON" },
                { "   ", "invalid JSON" },
                { "<html>502 Bad Gateway</html>", "invalid JSON" },
                { "{\"message\":\"token is required\"}", "expected a JSON array or null, got object" },
                { "\"waiting\"", "got string" },
                { "42", "got integer" },
                { "true", "got boolean" },
                { "[1]", "$[0]: expected object, got integer" },
                { "[null]", "$[0]: expected object, got null" },
                { "[[]]", "$[0]: expected object, got array" },
                { "[" REF_JOB "] trailing", "invalid JSON" },
                { "[" REF_JOB ",", "invalid JSON" },
                /* wrong types */
                { "[{\"id\":\"393\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].id: expected integer, got string" },
                { "[{\"id\":393.0,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].id: expected integer, got number" },
                { "[{\"id\":1e3,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].id: expected integer, got number" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":5,\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].name: expected string, got integer" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":\"linux\",\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].runs_on: expected array, got string" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[\"a\",7],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].runs_on[1]: expected string, got integer" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":null,\"status\":\"waiting\"}]",
                  "$[0].task_id: expected integer, got null" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":null}]",
                  "$[0].status: expected string, got null" },
                { "[{\"id\":1,\"attempt\":\"1\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].attempt: expected integer, got string" },
                { "[{\"id\":1,\"handle\":7,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].handle: expected string, got integer" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"needs\":\"x\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].needs: expected array, got string" },
                /* out of range */
                { "[{\"id\":0,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].id: 0 is out of range" },
                { "[{\"id\":-5,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0].id: -5 is out of range" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":-1,\"status\":\"waiting\"}]",
                  "$[0].task_id: -1 is out of range" },
                /* huge numbers do not fit int64 */
                { "[{\"id\":9223372036854775808,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "invalid JSON" },
                { "[{\"id\":123456789012345678901234567890,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "invalid JSON" },
                /* missing fields */
                { "[{\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0]: missing \"id\"" },
                { "[{\"id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0]: missing \"repo_id\"" },
                { "[{\"id\":1,\"repo_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0]: missing \"owner_id\"" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0]: missing \"name\"" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"task_id\":0,\"status\":\"waiting\"}]",
                  "$[0]: missing \"runs_on\"" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"status\":\"waiting\"}]",
                  "$[0]: missing \"task_id\"" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0}]",
                  "$[0]: missing \"status\"" },
                { "[{}]", "$[0]: missing \"id\"" },
                /* one bad element poisons the whole list */
                { "[" REF_JOB ",{\"id\":2}]", "$[1]: missing \"repo_id\"" },
                /* duplicate keys, embedded NUL, bad UTF-8 */
                { "[{\"id\":1,\"id\":2,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "invalid JSON" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"a\\u0000b\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "invalid JSON" },
                { "[{\"id\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"\xff\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}]",
                  "invalid JSON" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct forgejo_job_list l = { 0 };
                char reason[160] = "";
                int r = forgejo_parse_jobs(cases[i].body, strlen(cases[i].body), &l, reason,
                                           sizeof(reason));
                if (r != -EBADMSG)
                        fail_msg("case %zu (%s): r=%d, want -EBADMSG", i, cases[i].body, r);
                if (!strstr(reason, cases[i].reason_has))
                        fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, reason,
                                 cases[i].reason_has);
                assert_null(l.jobs); /* untouched */
        }
        /* NULL body and a NULL reason buffer are tolerated. */
        struct forgejo_job_list l;
        assert_int_equal(forgejo_parse_jobs(NULL, 0, &l, NULL, 0), -EBADMSG);
}

static void jobs_deep_nesting(void **state)
{
        /* A hostile deeply nested body must fail cleanly, not overflow. */
        size_t depth = 100000;
        char *body = malloc(2 * depth + 1);
        struct forgejo_job_list l;
        char reason[160];

        assert_non_null(body);
        memset(body, '[', depth);
        memset(body + depth, ']', depth);
        body[2 * depth] = '\0';
        assert_int_equal(forgejo_parse_jobs(body, 2 * depth, &l, reason, sizeof(reason)),
                         -EBADMSG);
        free(body);
}

#define REF_RUNNER "{\"id\":12,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\"," \
                   "\"owner_id\":3,\"repo_id\":0,\"name\":\"fs-1\",\"status\":\"idle\"," \
                   "\"version\":\"v12.9.0\",\"labels\":[\"docker\",\"linux\"]," \
                   "\"description\":\"made by forgescale\",\"ephemeral\":true}"

static void runner_parse(void **state)
{
        struct forgejo_runner_list l;
        char reason[160];

        assert_int_equal(forgejo_parse_runner(REF_RUNNER, strlen(REF_RUNNER), &l, reason,
                                              sizeof(reason)), 0);
        assert_int_equal(l.n, 1);
        struct forgejo_runner *r = &l.runners[0];
        assert_int_equal(r->id, 12);
        assert_string_equal(r->uuid, "0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c");
        assert_int_equal(r->owner_id, 3);
        assert_int_equal(r->repo_id, 0);
        assert_string_equal(r->name, "fs-1");
        assert_string_equal(r->status, "idle");
        assert_int_equal(r->state, FORGEJO_RUNNER_IDLE);
        assert_string_equal(r->version, "v12.9.0");
        assert_int_equal(r->n_labels, 2);
        assert_string_equal(r->labels[1], "linux");
        assert_string_equal(r->description, "made by forgescale");
        assert_true(r->ephemeral);
        forgejo_runner_list_done(&l);

        /* A fresh runner (no labels, no version). */
        const char *fresh = "{\"id\":1,\"uuid\":\"u\",\"name\":\"n\",\"status\":\"offline\","
                            "\"labels\":null,\"version\":\"\",\"ephemeral\":false}";
        assert_int_equal(forgejo_parse_runner(fresh, strlen(fresh), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.runners[0].n_labels, 0);
        assert_int_equal(l.runners[0].state, FORGEJO_RUNNER_OFFLINE);
        assert_false(l.runners[0].ephemeral);
        forgejo_runner_list_done(&l);

        static const struct bad_case bad[] = {
                { "[" REF_RUNNER "]", "expected a JSON object, got array" },
                { "null", "expected a JSON object, got null" },
                { "{\"id\":1,\"uuid\":\"u\",\"name\":\"n\"}", "$: missing \"status\"" },
                { "{\"id\":1,\"uuid\":\"u\",\"name\":\"n\",\"status\":\"idle\",\"ephemeral\":\"yes\"}",
                  "$.ephemeral: expected boolean, got string" },
                { "{\"id\":1,\"uuid\":\"u\",\"name\":\"n\",\"status\":\"idle\",\"labels\":[{}]}",
                  "$.labels[0]: expected string, got object" },
                { "{\"id\":1,\"uuid\":2,\"name\":\"n\",\"status\":\"idle\"}",
                  "$.uuid: expected string, got integer" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                reason[0] = '\0';
                if (forgejo_parse_runner(bad[i].body, strlen(bad[i].body), &l, reason,
                                         sizeof(reason)) != -EBADMSG)
                        fail_msg("runner case %zu accepted", i);
                if (!strstr(reason, bad[i].reason_has))
                        fail_msg("runner case %zu: reason \"%s\" lacks \"%s\"", i, reason,
                                 bad[i].reason_has);
        }
}

static void runners_parse(void **state)
{
        struct forgejo_runner_list l;
        char reason[160];
        const char *body = "[" REF_RUNNER ",{\"id\":13,\"uuid\":\"x\",\"name\":\"fs-2\","
                           "\"status\":\"active\",\"labels\":[\"gpu\"]}]";

        assert_int_equal(forgejo_parse_runners(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.runners[1].id, 13);
        assert_int_equal(l.runners[1].state, FORGEJO_RUNNER_ACTIVE);
        assert_int_equal(l.runners[1].n_labels, 1);
        assert_string_equal(l.runners[1].labels[0], "gpu");
        assert_string_equal(l.runners[0].labels[0], "docker");
        forgejo_runner_list_done(&l);

        assert_int_equal(forgejo_parse_runners("null", 4, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        forgejo_runner_list_done(&l);
        assert_int_equal(forgejo_parse_runners("[]", 2, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        forgejo_runner_list_done(&l);

        /* Gitea's envelope is not Forgejo's bare array. */
        const char *gitea = "{\"runners\":[],\"total_count\":0}";
        assert_int_equal(forgejo_parse_runners(gitea, strlen(gitea), &l, reason, sizeof(reason)),
                         -EBADMSG);
        assert_non_null(strstr(reason, "expected a JSON array or null, got object"));
        const char *bad = "[" REF_RUNNER ",{\"id\":-1,\"uuid\":\"x\",\"name\":\"n\",\"status\":\"idle\"}]";
        assert_int_equal(forgejo_parse_runners(bad, strlen(bad), &l, reason, sizeof(reason)),
                         -EBADMSG);
        assert_non_null(strstr(reason, "$[1].id: -1 is out of range"));
}

static void created_parse(void **state)
{
        struct forgejo_runner_created c;
        char reason[160];
        const char *ok = "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\","
                         "\"token\":\"0123456789abcdef0123456789ABCDEF01234567\"}";

        assert_int_equal(forgejo_parse_created(ok, strlen(ok), &c, reason, sizeof(reason)), 0);
        assert_int_equal(c.id, 7);
        assert_string_equal(c.uuid, "0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c");
        assert_string_equal(c.token, "0123456789abcdef0123456789ABCDEF01234567");

        static const struct bad_case bad[] = {
                { "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\",\"token\":\"0123456789abcdef0123456789abcdef0123456\"}",
                  "$.token: expected 40 hex characters" },
                { "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\",\"token\":\"0123456789abcdef0123456789abcdef01234567z\"}",
                  "$.token: expected 40 hex characters" },
                { "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\",\"token\":\"g123456789abcdef0123456789abcdef01234567\"}",
                  "$.token: expected 40 hex characters" },
                { "{\"id\":7,\"uuid\":\"0f3c1b2a8d4e-4f6a-9b7c-1d2e3f4a5b6cx\",\"token\":\"0123456789abcdef0123456789abcdef01234567\"}",
                  "$.uuid: not a canonical UUID" },
                { "{\"id\":7,\"uuid\":\"\",\"token\":\"0123456789abcdef0123456789abcdef01234567\"}",
                  "$.uuid: not a canonical UUID" },
                { "{\"id\":0,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\",\"token\":\"0123456789abcdef0123456789abcdef01234567\"}",
                  "$.id: 0 is out of range" },
                { "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\"}", "$: missing \"token\"" },
                { "{\"id\":7,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\",\"token\":40}",
                  "$.token: expected string, got integer" },
                { "[]", "expected a JSON object, got array" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(&c, 0x5a, sizeof(c));
                reason[0] = '\0';
                if (forgejo_parse_created(bad[i].body, strlen(bad[i].body), &c, reason,
                                          sizeof(reason)) != -EBADMSG)
                        fail_msg("created case %zu accepted", i);
                if (!strstr(reason, bad[i].reason_has))
                        fail_msg("created case %zu: reason \"%s\" lacks \"%s\"", i, reason,
                                 bad[i].reason_has);
                assert_true(c.id == 0x5a5a5a5a5a5a5a5a); /* untouched */
                /* The reason never quotes the token value. */
                assert_null(strstr(reason, "0123456789abcdef"));
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(scope_parse_ok),
                cmocka_unit_test(scope_parse_bad),
                cmocka_unit_test(paths_bounded),
                cmocka_unit_test(urlencode),
                cmocka_unit_test(labels_query),
                cmocka_unit_test(version_parse),
                cmocka_unit_test(jobs_reference_example),
                cmocka_unit_test(jobs_empty_forms),
                cmocka_unit_test(jobs_many_and_variants),
                cmocka_unit_test(jobs_rejected),
                cmocka_unit_test(jobs_deep_nesting),
                cmocka_unit_test(runner_parse),
                cmocka_unit_test(runners_parse),
                cmocka_unit_test(created_parse),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
