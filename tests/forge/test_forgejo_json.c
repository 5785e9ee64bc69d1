/* test_forgejo_json.c: forgejo_json.c alone (built without the client,
 * curl or the loop): the strict parsers of the version, job listings,
 * runners and created runners, one test per rule, with the bodies of
 * forgejo-api.md sections 1.3 and 3.2 and the ones that used to pass. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include "forge/forgejo_json.h"

#define REF_JOB "{\"id\":393,\"attempt\":1,\"handle\":\"18e9cf40-2f3c-4a8e-9d1e-2b5a7c0e1f11\"," \
                "\"repo_id\":1,\"owner_id\":1,\"name\":\"job_2\",\"needs\":null," \
                "\"runs_on\":[\"ubuntu-latest\"],\"task_id\":47,\"status\":\"waiting\"}"
/* The rest of a job, as the reproduction (07_forge_handles.sh) sends it. */
#define J_REST "\"attempt\":1,\"repo_id\":1,\"owner_id\":1,\"name\":\"j\",\"needs\":null," \
               "\"runs_on\":[\"linux\"],\"task_id\":0,\"status\":\"waiting\""
#define H70 "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
#define H63 "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"

static void job_list_reference_example(void **state)
{
        struct forgejo_job_list l;
        char reason[160] = "";
        const char *body = "[" REF_JOB "]";

        assert_int_equal(forgejo_parse_jobs(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.n_rejected, 0);
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

static void job_list_empty_forms(void **state)
{
        struct forgejo_job_list l;
        char reason[160];

        /* Forgejo sends null for an empty result; [] must work too. */
        assert_int_equal(forgejo_parse_jobs("null", 4, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(l.n_rejected, 0);
        assert_non_null(l.jobs);
        assert_non_null(l.rejected);
        forgejo_job_list_done(&l);
        assert_int_equal(forgejo_parse_jobs(" [ ]\n", 5, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        forgejo_job_list_done(&l);
        forgejo_job_list_done(NULL);
        /* Zeroed structs can be released. */
        struct forgejo_job_list z = { 0 };
        forgejo_job_list_done(&z);
}

static void job_list_variants(void **state)
{
        struct forgejo_job_list l;
        char reason[160];
        /* Descending ids, a running job, empty/null runs_on, newer fields
         * (run_id, html_url) ignored, attempt absent, int64 extremes, the
         * shortest and the longest handle allowed. */
        const char *body =
                "[{\"id\":9223372036854775807,\"attempt\":3,\"handle\":\"h\",\"repo_id\":2,"
                "\"owner_id\":3,\"name\":\"build\",\"needs\":[\"lint\"],\"runs_on\":[\"a\",\"b c\"],"
                "\"task_id\":9223372036854775806,\"status\":\"running\",\"run_id\":7,"
                "\"html_url\":\"https://x/y\"},"
                "{\"id\":5,\"handle\":\"" H63 "\",\"repo_id\":2,\"owner_id\":3,\"name\":\"\","
                "\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"},"
                "{\"id\":4,\"attempt\":0,\"handle\":\"A.b_c-9\",\"repo_id\":2,\"owner_id\":3,"
                "\"name\":\"n (ubuntu, 3.12) \xc3\xa4\",\"runs_on\":null,\"task_id\":0,"
                "\"status\":\"blocked\"}]";

        assert_int_equal(forgejo_parse_jobs(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 3);
        assert_int_equal(l.n_rejected, 0);
        assert_true(l.jobs[0].id == INT64_MAX);
        assert_true(l.jobs[0].task_id == INT64_MAX - 1);
        assert_int_equal(l.jobs[0].state, FORGEJO_JOB_RUNNING);
        assert_int_equal(l.jobs[0].n_runs_on, 2);
        assert_string_equal(l.jobs[0].runs_on[0], "a");
        assert_string_equal(l.jobs[0].runs_on[1], "b c");
        assert_string_equal(l.jobs[0].handle, "h");
        assert_int_equal(l.jobs[1].attempt, 0);
        assert_string_equal(l.jobs[1].handle, H63);
        assert_int_equal(l.jobs[1].n_runs_on, 0);
        assert_non_null(l.jobs[1].runs_on);
        assert_int_equal(l.jobs[2].n_runs_on, 0);
        assert_int_equal(l.jobs[2].state, FORGEJO_JOB_OTHER);
        assert_string_equal(l.jobs[2].status, "blocked");
        assert_string_equal(l.jobs[2].name, "n (ubuntu, 3.12) \xc3\xa4");
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

/* The listing itself is unusable: nothing in it can be trusted. */
static void job_list_fails_as_a_whole(void **state)
{
        static const struct bad_case cases[] = {
                { "", "invalid JSON" },
                { "   ", "invalid JSON" },
                { "<html>502 Bad Gateway</html>", "invalid JSON" },
                { "{\"message\":\"token is required\"}", "expected a JSON array or null, got object" },
                { "\"waiting\"", "got string" },
                { "42", "got integer" },
                { "4.5", "got number" },
                { "true", "got boolean" },
                { "nul", "invalid JSON" },
                { "null x", "invalid JSON" },
                { "[" REF_JOB "] trailing", "invalid JSON" },
                { "[" REF_JOB ",", "invalid JSON" },
                { "[" REF_JOB, "invalid JSON" },
                { "[" REF_JOB ",]", "invalid JSON" },
                { "[," REF_JOB "]", "invalid JSON" },
                { "[" REF_JOB " " REF_JOB "]", "invalid JSON" },
                /* Not JSON anywhere in the body: duplicate keys, NUL, bad
                 * UTF-8, numbers beyond int64. */
                { "[{\"id\":1,\"id\":2," J_REST ",\"handle\":\"h\"}]", "invalid JSON" },
                { "[{\"id\":1,\"handle\":\"a\\u0000b\"," J_REST "}]", "invalid JSON" },
                { "[{\"id\":1,\"handle\":\"h\",\"name\":\"\xff\"}]", "invalid JSON" },
                { "[{\"id\":9223372036854775808,\"handle\":\"h\"," J_REST "}]", "invalid JSON" },
                { "[{\"id\":123456789012345678901234567890}]", "invalid JSON" },
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

struct elem_case {
        const char *elem;                /* one job object (or other value) */
        int64_t id;                      /* expected rejected[].id */
        const char *reason_has;
};

/* One bad job is skipped and reported; the good ones around it stay. Every
 * case here used to either pass (and reach the daemon) or fail the whole
 * listing. */
static void job_list_skips_bad_jobs(void **state)
{
        static const struct elem_case cases[] = {
                /* 07_forge_handles.sh: too long (cut to 63 by the daemon),
                 * empty, missing. */
                { "{\"id\":1,\"handle\":\"" H70 "\"," J_REST "}", 1,
                  "handle: 70 bytes, more than the 63 allowed" },
                { "{\"id\":1,\"handle\":\"" H63 "h\"," J_REST "}", 1,
                  "handle: 64 bytes, more than the 63 allowed" },
                { "{\"id\":1,\"handle\":\"\"," J_REST "}", 1, "handle: empty" },
                { "{\"id\":2," J_REST "}", 2, "missing \"handle\"" },
                { "{\"id\":2,\"handle\":null," J_REST "}", 2, "handle: expected string, got null" },
                { "{\"id\":2,\"handle\":7," J_REST "}", 2, "handle: expected string, got integer" },
                /* Handle characters: argv words, file names, map keys. */
                { "{\"id\":3,\"handle\":\"a b\"," J_REST "}", 3, "handle: byte 0x20 at offset 1" },
                { "{\"id\":3,\"handle\":\"a/b\"," J_REST "}", 3, "handle: byte 0x2f at offset 1" },
                { "{\"id\":3,\"handle\":\"a\\nb\"," J_REST "}", 3, "handle: byte 0x0a at offset 1" },
                { "{\"id\":3,\"handle\":\"\xc3\xa4\"," J_REST "}", 3, "handle: must start with a letter or digit" },
                { "{\"id\":3,\"handle\":\"a\xc3\xa4\"," J_REST "}", 3, "handle: byte 0xc3 at offset 1" },
                { "{\"id\":3,\"handle\":\"-x\"," J_REST "}", 3, "handle: must start with a letter or digit" },
                { "{\"id\":3,\"handle\":\".x\"," J_REST "}", 3, "handle: must start with a letter or digit" },
                /* Types. */
                { "1", 0, "expected object, got integer" },
                { "null", 0, "expected object, got null" },
                { "[]", 0, "expected object, got array" },
                { "{}", 0, "missing \"id\"" },
                { "{\"id\":\"393\",\"handle\":\"h\"," J_REST "}", 0, "id: expected integer, got string" },
                { "{\"id\":393.0,\"handle\":\"h\"," J_REST "}", 0, "id: expected integer, got number" },
                { "{\"id\":1e3,\"handle\":\"h\"," J_REST "}", 0, "id: expected integer, got number" },
                { "{\"id\":4,\"handle\":\"h\",\"attempt\":\"1\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  4, "attempt: expected integer, got string" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":5,\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  4, "name: expected string, got integer" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":\"linux\",\"task_id\":0,\"status\":\"waiting\"}",
                  4, "runs_on: expected array, got string" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[\"a\",7],\"task_id\":0,\"status\":\"waiting\"}",
                  4, "runs_on[1]: expected string, got integer" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":null,\"status\":\"waiting\"}",
                  4, "task_id: expected integer, got null" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":null}",
                  4, "status: expected string, got null" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"needs\":\"x\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  4, "needs: expected array, got string" },
                { "{\"id\":4,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"needs\":[1],\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  4, "needs[0]: expected string, got integer" },
                /* Ranges: ids are > 0 (repo and owner too), task ids >= 0. */
                { "{\"id\":0,\"handle\":\"h\"," J_REST "}", 0, "id: 0 is out of range" },
                { "{\"id\":-5,\"handle\":\"h\"," J_REST "}", 0, "id: -5 is out of range" },
                { "{\"id\":5,\"handle\":\"h\",\"repo_id\":0,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  5, "repo_id: 0 is out of range" },
                { "{\"id\":5,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":0,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  5, "owner_id: 0 is out of range" },
                { "{\"id\":5,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":-1,\"status\":\"waiting\"}",
                  5, "task_id: -1 is out of range" },
                { "{\"id\":5,\"handle\":\"h\",\"attempt\":-1,\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  5, "attempt: -1 is out of range" },
                /* Missing fields. */
                { "{\"id\":6,\"handle\":\"h\",\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  6, "missing \"repo_id\"" },
                { "{\"id\":6,\"handle\":\"h\",\"repo_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  6, "missing \"owner_id\"" },
                { "{\"id\":6,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  6, "missing \"name\"" },
                { "{\"id\":6,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"task_id\":0,\"status\":\"waiting\"}",
                  6, "missing \"runs_on\"" },
                { "{\"id\":6,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"status\":\"waiting\"}",
                  6, "missing \"task_id\"" },
                { "{\"id\":6,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0}",
                  6, "missing \"status\"" },
                /* Strings: labels, names, statuses. */
                { "{\"id\":7,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[\"\"],\"task_id\":0,\"status\":\"waiting\"}",
                  7, "runs_on[0]: empty" },
                { "{\"id\":7,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[\"a\\tb\"],\"task_id\":0,\"status\":\"waiting\"}",
                  7, "runs_on[0]: byte 0x09 at offset 1" },
                { "{\"id\":7,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\\u001b[31m\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  7, "name: byte 0x1b at offset 1" },
                { "{\"id\":7,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"Waiting\"}",
                  7, "status: byte 0x57 at offset 0" },
                { "{\"id\":7,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"\"}",
                  7, "status: empty" },
                /* Duplicates of the good job (id 393 and its handle). */
                { "{\"id\":393,\"handle\":\"other\"," J_REST "}", 393, "id: the listing has it twice" },
                { "{\"id\":8,\"handle\":\"18e9cf40-2f3c-4a8e-9d1e-2b5a7c0e1f11\"," J_REST "}", 8,
                  "handle: also the handle of job 393" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char body[2048];
                struct forgejo_job_list l = { 0 };
                char reason[160] = "";
                int r;

                snprintf(body, sizeof(body), "[" REF_JOB ",%s]", cases[i].elem);
                r = forgejo_parse_jobs(body, strlen(body), &l, reason, sizeof(reason));
                if (r != 0)
                        fail_msg("case %zu (%s): r=%d (%s), want 0", i, cases[i].elem, r, reason);
                if (l.n != 1 || l.jobs[0].id != 393 || l.n_rejected != 1)
                        fail_msg("case %zu (%s): %zu jobs, %zu rejected; want 1 and 1", i,
                                 cases[i].elem, l.n, l.n_rejected);
                if (l.rejected[0].index != 1 || l.rejected[0].id != cases[i].id)
                        fail_msg("case %zu: rejected index %zu id %" PRId64 ", want 1 and %" PRId64,
                                 i, l.rejected[0].index, l.rejected[0].id, cases[i].id);
                if (!strstr(l.rejected[0].reason, cases[i].reason_has))
                        fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, l.rejected[0].reason,
                                 cases[i].reason_has);
                /* Reasons never quote the value and carry no position. */
                assert_null(strstr(l.rejected[0].reason, "hhhh"));
                assert_null(strstr(l.rejected[0].reason, "$["));
                forgejo_job_list_done(&l);
        }
}

/* The exact bodies of 07_forge_handles.sh: no job reaches the caller. */
static void job_list_reproduction_bodies(void **state)
{
        static const char long_handle[] = "[{\"id\":1,\"handle\":\"" H70 "\"," J_REST "}]";
        static const char no_handle[] = "[{\"id\":1,\"handle\":\"\"," J_REST "},{\"id\":2," J_REST "}]";
        struct forgejo_job_list l;
        char reason[160];

        assert_int_equal(forgejo_parse_jobs(long_handle, strlen(long_handle), &l, reason,
                                            sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(l.n_rejected, 1);
        assert_int_equal(l.rejected[0].id, 1);
        forgejo_job_list_done(&l);

        assert_int_equal(forgejo_parse_jobs(no_handle, strlen(no_handle), &l, reason,
                                            sizeof(reason)), 0);
        assert_int_equal(l.n, 0);
        assert_int_equal(l.n_rejected, 2);
        assert_int_equal(l.rejected[0].id, 1);
        assert_int_equal(l.rejected[0].index, 0);
        assert_int_equal(l.rejected[1].id, 2);
        assert_int_equal(l.rejected[1].index, 1);
        forgejo_job_list_done(&l);
}

static void job_list_string_bounds(void **state)
{
        /* Each bound: the longest accepted, one byte more rejected. */
        static const struct {
                const char *before, *after; /* the element around the value */
                size_t max;
                const char *name;
        } b[] = {
                { "{\"id\":9,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"",
                  "\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}", FORGEJO_NAME_TEXT_MAX, "name" },
                { "{\"id\":9,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[\"",
                  "\"],\"task_id\":0,\"status\":\"waiting\"}", FORGEJO_LABEL_MAX, "runs_on[0]" },
                { "{\"id\":9,\"handle\":\"h\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"",
                  "\"}", FORGEJO_STATUS_MAX, "status" },
                { "{\"id\":9,\"handle\":\"",
                  "\",\"repo_id\":1,\"owner_id\":1,\"name\":\"n\",\"runs_on\":[],\"task_id\":0,\"status\":\"waiting\"}",
                  FORGEJO_HANDLE_MAX, "handle" },
        };
        char value[FORGEJO_NAME_TEXT_MAX + 2];
        char body[4096], want[96];

        for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
                for (size_t extra = 0; extra < 2; extra++) {
                        struct forgejo_job_list l;
                        char reason[160];
                        memset(value, 'x', b[i].max + extra);
                        value[b[i].max + extra] = '\0';
                        snprintf(body, sizeof(body), "[%s%s%s]", b[i].before, value, b[i].after);
                        assert_int_equal(forgejo_parse_jobs(body, strlen(body), &l, reason,
                                                            sizeof(reason)), 0);
                        assert_int_equal(l.n, extra ? 0 : 1);
                        assert_int_equal(l.n_rejected, extra ? 1 : 0);
                        if (extra) {
                                snprintf(want, sizeof(want), "%s: %zu bytes, more than the %zu allowed",
                                         b[i].name, b[i].max + 1, b[i].max);
                                if (!strstr(l.rejected[0].reason, want))
                                        fail_msg("\"%s\" lacks \"%s\"", l.rejected[0].reason, want);
                        } else {
                                assert_int_equal(l.n, 1);
                        }
                        forgejo_job_list_done(&l);
                }
        }
}

static void job_list_deep_nesting(void **state)
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

static long max_rss_kb(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_maxrss;
}

/* 100,000 jobs, as Forgejo sends them (no paging), with three bad ones
 * among them: every good job comes back, in order, and the parse costs
 * the result, not a tree of the whole body. */
static void job_list_of_100k(void **state)
{
        const size_t n = 100000;
        size_t cap = n * 400, o = 0;
        char *body = malloc(cap);
        struct forgejo_job_list l;
        char reason[160] = "";
        long rss0;

        assert_non_null(body);
        body[o++] = '[';
        for (size_t i = 0; i < n; i++) {
                /* Jobs 1000, 2000 and 3000 have a handle too long. */
                bool bad_job = i == 1000 || i == 2000 || i == 3000;
                o += (size_t)snprintf(body + o, cap - o,
                        "%s{\"id\":%zu,\"attempt\":1,\"handle\":\"%08zx-2f3c-4a8e-9d1e-2b5a7c0e1f11%s\","
                        "\"repo_id\":%zu,\"owner_id\":%zu,\"name\":\"build (ubuntu-latest, %zu)\","
                        "\"needs\":[\"lint\"],\"runs_on\":[\"ubuntu-latest\",\"docker\"],\"task_id\":0,"
                        "\"status\":\"%s\",\"run_id\":%zu,"
                        "\"html_url\":\"https://code.example/acme/app/actions/runs/%zu/jobs/1/attempt/1\"}",
                        i ? "," : "", n - i, i, bad_job ? H63 : "", i % 5000 + 1, i % 300 + 1,
                        i % 7, i % 10 ? "waiting" : "running", i / 3 + 1, i / 3 + 1);
                assert_true(o < cap - 2);
        }
        body[o++] = ']';
        /* The size this file's header comment and forgejo.h quote. */
        assert_true(o > 30u << 20 && o < 40u << 20);

        rss0 = max_rss_kb();
        assert_int_equal(forgejo_parse_jobs(body, o, &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, n - 3);
        assert_int_equal(l.n_rejected, 3);
        assert_int_equal(l.rejected[1].index, 2000);
        assert_true(l.rejected[1].id == (int64_t)(n - 2000));
        for (size_t i = 0, k = 0; i < n; i++) {
                if (i == 1000 || i == 2000 || i == 3000)
                        continue;
                const struct forgejo_job *j = &l.jobs[k++];
                if (j->id != (int64_t)(n - i) || j->n_runs_on != 2 ||
                    j->state != (i % 10 ? FORGEJO_JOB_WAITING : FORGEJO_JOB_RUNNING))
                        fail_msg("job %zu came back wrong (id %" PRId64 ")", i, j->id);
        }
        assert_string_equal(l.jobs[n - 4].runs_on[1], "docker");
#ifndef __SANITIZE_ADDRESS__
        /* jansson's tree of this body took ~260 MB; the result takes ~40. */
        long grown_mb = (max_rss_kb() - rss0) / 1024;
        if (grown_mb > 100)
                fail_msg("parsing 100k jobs grew the peak RSS by %ld MB", grown_mb);
#else
        (void)rss0;
#endif
        forgejo_job_list_done(&l);
        free(body);
}

#define REF_RUNNER "{\"id\":12,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\"," \
                   "\"owner_id\":3,\"repo_id\":0,\"name\":\"fs-1\",\"status\":\"idle\"," \
                   "\"version\":\"v12.9.0\",\"labels\":[\"docker\",\"linux\"]," \
                   "\"description\":\"made by forgescale\",\"ephemeral\":true}"
#define UUID2 "\"uuid\":\"1f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6c\""

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

        /* A fresh runner (no labels, no version), a multi-line description. */
        const char *fresh = "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"offline\","
                            "\"labels\":null,\"version\":\"\",\"ephemeral\":false,"
                            "\"description\":\"line 1\\nline 2\"}";
        assert_int_equal(forgejo_parse_runner(fresh, strlen(fresh), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.runners[0].n_labels, 0);
        assert_non_null(l.runners[0].labels);
        assert_int_equal(l.runners[0].state, FORGEJO_RUNNER_OFFLINE);
        assert_false(l.runners[0].ephemeral);
        assert_string_equal(l.runners[0].description, "line 1\nline 2");
        forgejo_runner_list_done(&l);

        static const struct bad_case bad[] = {
                { "[" REF_RUNNER "]", "expected a JSON object, got array" },
                { "null", "expected a JSON object, got null" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\"}", "$: missing \"status\"" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"ephemeral\":\"yes\"}",
                  "$.ephemeral: expected boolean, got string" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"labels\":[{}]}",
                  "$.labels[0]: expected string, got object" },
                { "{\"id\":1,\"uuid\":2,\"name\":\"n\",\"status\":\"idle\"}",
                  "$.uuid: expected string, got integer" },
                /* Used to pass: a uuid that is not one, an empty name, ids
                 * out of range, unbounded or control-character strings. */
                { "{\"id\":1,\"uuid\":\"u\",\"name\":\"n\",\"status\":\"idle\"}",
                  "$.uuid: not a canonical UUID" },
                { "{\"id\":1,\"uuid\":\"0f3c1b2a-8d4e-4f6a-9b7c-1d2e3f4a5b6cX\",\"name\":\"n\",\"status\":\"idle\"}",
                  "$.uuid: not a canonical UUID" },
                { "{\"id\":1," UUID2 ",\"name\":\"\",\"status\":\"idle\"}", "$.name: empty" },
                { "{\"id\":1," UUID2 ",\"name\":\"a\\u0007\",\"status\":\"idle\"}",
                  "$.name: byte 0x07 at offset 1" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"owner_id\":-1}",
                  "$.owner_id: -1 is out of range" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"repo_id\":-2}",
                  "$.repo_id: -2 is out of range" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"version\":\"v 1\"}",
                  "$.version: byte 0x20 at offset 1" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"labels\":[\"\"]}",
                  "$.labels[0]: empty" },
                { "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"IDLE\"}",
                  "$.status: byte 0x49 at offset 0" },
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

        /* Description bound. */
        size_t dn = FORGEJO_DESCRIPTION_MAX + 1;
        char *big = malloc(dn + 200);
        assert_non_null(big);
        int o = snprintf(big, 200, "{\"id\":1," UUID2 ",\"name\":\"n\",\"status\":\"idle\",\"description\":\"");
        memset(big + o, 'd', dn);
        memcpy(big + o + dn, "\"}", 3);
        assert_int_equal(forgejo_parse_runner(big, strlen(big), &l, reason, sizeof(reason)), -EBADMSG);
        assert_non_null(strstr(reason, "$.description: 4097 bytes, more than the 4096 allowed"));
        memcpy(big + o + dn - 1, "\"}", 3);
        assert_int_equal(forgejo_parse_runner(big, strlen(big), &l, reason, sizeof(reason)), 0);
        forgejo_runner_list_done(&l);
        free(big);
}

static void runner_list_parse(void **state)
{
        struct forgejo_runner_list l;
        char reason[160];
        const char *body = "[" REF_RUNNER ",{\"id\":13," UUID2 ",\"name\":\"fs-2\","
                           "\"status\":\"active\",\"labels\":[\"gpu\"]}]";

        assert_int_equal(forgejo_parse_runners(body, strlen(body), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 2);
        assert_int_equal(l.n_rejected, 0);
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

        /* A bad runner is skipped and reported; the page stays usable. */
        const char *bad = "[" REF_RUNNER ",{\"id\":-1,\"uuid\":\"x\",\"name\":\"n\",\"status\":\"idle\"},"
                          "{\"id\":14,\"uuid\":\"x\",\"name\":\"fs-3\",\"status\":\"idle\"},7]";
        assert_int_equal(forgejo_parse_runners(bad, strlen(bad), &l, reason, sizeof(reason)), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.runners[0].id, 12);
        assert_int_equal(l.n_rejected, 3);
        assert_int_equal(l.rejected[0].index, 1);
        assert_int_equal(l.rejected[0].id, 0);
        assert_non_null(strstr(l.rejected[0].reason, "id: -1 is out of range"));
        assert_int_equal(l.rejected[1].index, 2);
        assert_int_equal(l.rejected[1].id, 14);
        assert_non_null(strstr(l.rejected[1].reason, "uuid: not a canonical UUID"));
        assert_int_equal(l.rejected[2].index, 3);
        assert_non_null(strstr(l.rejected[2].reason, "expected object, got integer"));
        forgejo_runner_list_done(&l);
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
                { "{\"id\":7,\"token\":\"0123456789abcdef0123456789abcdef01234567\"}", "$: missing \"uuid\"" },
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

static void reg_token_parse(void **state)
{
        struct forgejo_reg_token t;
        char reason[160];
        const char *ok = "{\"token\":\"AbC123secretXYZ\"}";

        assert_int_equal(forgejo_parse_reg_token(ok, strlen(ok), &t, reason, sizeof(reason)), 0);
        assert_string_equal(t.token, "AbC123secretXYZ");

        static const struct bad_case bad[] = {
                { "{\"token\":\"\"}", "$.token: expected 1 to 255 printable characters" },
                { "{\"token\":\"has space secretsecret\"}", "$.token: expected 1 to 255 printable characters" },
                { "{\"token\":\"nl\\nsecretsecret\"}", "$.token: expected 1 to 255 printable characters" },
                { "{\"token\":7}", "$.token: expected string, got integer" },
                { "{}", "$: missing \"token\"" },
                { "[\"secretsecret\"]", "expected a JSON object, got array" },
                { "not json", "" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memset(&t, 0x5a, sizeof(t));
                reason[0] = '\0';
                if (forgejo_parse_reg_token(bad[i].body, strlen(bad[i].body), &t, reason, sizeof(reason)) != -EBADMSG)
                        fail_msg("token case %zu accepted", i);
                if (!strstr(reason, bad[i].reason_has))
                        fail_msg("token case %zu: reason \"%s\" lacks \"%s\"", i, reason, bad[i].reason_has);
                assert_true((unsigned char)t.token[0] == 0x5a);
                assert_null(strstr(reason, "secretsecret"));
        }
        char big[400];
        memset(big, 'a', sizeof(big));
        int n = snprintf(big, sizeof(big), "{\"token\":\"");
        memset(big + n, 'k', 300);
        snprintf(big + n + 300, sizeof(big) - (size_t)n - 300, "\"}");
        assert_int_equal(forgejo_parse_reg_token(big, strlen(big), &t, reason, sizeof(reason)), -EBADMSG);
}

static void version_body(void **state)
{
        struct forgejo_version v;
        char reason[160];
        const char *ok = "{\"version\":\"15.0.1+gitea-1.22.0\"}";

        assert_int_equal(forgejo_parse_version(ok, strlen(ok), &v, reason, sizeof(reason)), 0);
        assert_string_equal(v.version, "15.0.1+gitea-1.22.0");
        assert_true(v.parsed);
        assert_int_equal(v.major, 15);
        forgejo_version_done(&v);
        const char *odd = "{\"version\":\"development\"}";
        assert_int_equal(forgejo_parse_version(odd, strlen(odd), &v, reason, sizeof(reason)), 0);
        assert_false(v.parsed);
        forgejo_version_done(&v);
        forgejo_version_done(NULL);

        static const struct bad_case bad[] = {
                { "[]", "expected a JSON object, got array" },
                { "{}", "$: missing \"version\"" },
                { "{\"version\":15}", "$.version: expected string, got integer" },
                { "{\"version\":\"\"}", "$.version: empty" },
                { "{\"version\":\"15.0 \\u001b[2J\"}", "$.version: byte 0x20 at offset 4" },
                { "{\"version\":\"15.0.0\\n\"}", "$.version: byte 0x0a at offset 6" },
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                reason[0] = '\0';
                if (forgejo_parse_version(bad[i].body, strlen(bad[i].body), &v, reason,
                                          sizeof(reason)) != -EBADMSG)
                        fail_msg("version case %zu accepted", i);
                if (!strstr(reason, bad[i].reason_has))
                        fail_msg("version case %zu: reason \"%s\" lacks \"%s\"", i, reason,
                                 bad[i].reason_has);
        }
        char longv[FORGEJO_VERSION_MAX + 32];
        int o = snprintf(longv, sizeof(longv), "{\"version\":\"");
        memset(longv + o, '1', FORGEJO_VERSION_MAX + 1);
        memcpy(longv + o + FORGEJO_VERSION_MAX + 1, "\"}", 3);
        assert_int_equal(forgejo_parse_version(longv, strlen(longv), &v, reason, sizeof(reason)),
                         -EBADMSG);
        assert_non_null(strstr(reason, "$.version: 129 bytes, more than the 128 allowed"));
}

static void error_message_and_create_body(void **state)
{
        char msg[32];
        char *body;

        const char *m1 = "{\"message\":\"bad\\nts=1 level=error\"}";
        forgejo_parse_error_message(m1, strlen(m1), NULL, msg, sizeof(msg));
        assert_string_equal(msg, "bad?ts=1 level=error");
        const char *m2 = "{\"message\":\"token abc is wrong\"}";
        forgejo_parse_error_message(m2, strlen(m2), "abc", msg, sizeof(msg));
        assert_string_equal(msg, "");
        forgejo_parse_error_message("<html>", 6, NULL, msg, sizeof(msg));
        assert_string_equal(msg, "");

        assert_int_equal(forgejo_create_body("fs-1", NULL, true, &body), 0);
        assert_string_equal(body, "{\"name\":\"fs-1\",\"description\":\"\",\"ephemeral\":true}");
        free(body);
        assert_int_equal(forgejo_create_body("", NULL, true, &body), -EINVAL);
        assert_int_equal(forgejo_create_body("\xff", NULL, true, &body), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(job_list_reference_example),
                cmocka_unit_test(job_list_empty_forms),
                cmocka_unit_test(job_list_variants),
                cmocka_unit_test(job_list_fails_as_a_whole),
                cmocka_unit_test(job_list_skips_bad_jobs),
                cmocka_unit_test(job_list_reproduction_bodies),
                cmocka_unit_test(job_list_string_bounds),
                cmocka_unit_test(job_list_deep_nesting),
                cmocka_unit_test(job_list_of_100k),
                cmocka_unit_test(runner_parse),
                cmocka_unit_test(runner_list_parse),
                cmocka_unit_test(created_parse),
                cmocka_unit_test(reg_token_parse),
                cmocka_unit_test(version_body),
                cmocka_unit_test(error_message_and_create_body),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
