/* test_router.c: the route table shared by the daemon's HTTP server and
 * forgejo-sim: pattern rules, literal and {param} matching, first match in
 * order, method mismatches and their Allow list, HEAD as GET, paths split
 * in place. Pure code. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/router.h"

static int A, B, C, D, E, F;

/* Matches a copy of path; the copy lives in buf. */
static int match(const struct router *r, const char *method, const char *path, char *buf,
                 size_t n, struct router_match *m)
{
        snprintf(buf, n, "%s", path);
        return router_match(r, method, buf, m);
}

static void test_patterns(void **state)
{
        struct router *r = router_new(0);
        static const char *const bad[] = {
                "", "nope", "//", "/a//b", "/a/", "/a/{b", "/a/b}", "/a/{}", "/a/{b-c}",
                "/a/x{b}", "/{a}/{a}", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
        };
        char many[256] = "";

        assert_non_null(r);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (router_add(r, "GET", bad[i], &A) != -EINVAL)
                        fail_msg("pattern \"%s\" accepted", bad[i]);
        for (int i = 0; i <= ROUTER_MAX_SEGMENTS; i++)
                memcpy(many + 2 * i, "/s", 3);
        assert_int_equal(router_add(r, "GET", many, &A), -EINVAL);
        assert_int_equal(router_add(r, "get", "/a", &A), -EINVAL);
        assert_int_equal(router_add(r, "", "/a", &A), -EINVAL);
        assert_int_equal(router_add(r, "VERYLONGMETHODXX", "/a", &A), -EINVAL);
        assert_int_equal(router_add(r, NULL, "/a", &A), -EINVAL);
        assert_int_equal(router_add(r, "GET", NULL, &A), -EINVAL);
        assert_int_equal(router_count(r), 0);

        assert_int_equal(router_add(r, "GET", "/", &A), 0);
        assert_int_equal(router_add(r, "GET", "/pools/{name}/demand", &A), 0);
        /* The same route under other parameter names could never match. */
        assert_int_equal(router_add(r, "GET", "/pools/{pool}/demand", &B), -EEXIST);
        assert_int_equal(router_add(r, "GET", "/pools/{name}/demand", &B), -EEXIST);
        assert_int_equal(router_add(r, "POST", "/pools/{name}/demand", &B), 0);
        assert_int_equal(router_add(r, "GET", "/pools/x/demand", &C), 0);
        assert_int_equal(router_count(r), 4);
        router_free(r);
        router_free(NULL);
}

static void test_matching(void **state)
{
        struct router *r = router_new(0);
        struct router_match m;
        char buf[256];

        /* Literals before the {params} that would also match them. */
        assert_int_equal(router_add(r, "GET", "/admin/actions/runners/jobs", &A), 0);
        assert_int_equal(router_add(r, "GET", "/admin/actions/runners/{id}", &B), 0);
        assert_int_equal(router_add(r, "DELETE", "/admin/actions/runners/{id}", &C), 0);
        assert_int_equal(router_add(r, "GET", "/repos/{owner}/{repo}/actions/runners/{id}", &D), 0);
        assert_int_equal(router_add(r, "GET", "/", &E), 0);

        assert_int_equal(match(r, "GET", "/admin/actions/runners/jobs", buf, sizeof(buf), &m),
                         ROUTER_MATCH);
        assert_ptr_equal(m.ud, &A);
        assert_int_equal(m.nparams, 0);
        assert_int_equal(match(r, "GET", "/admin/actions/runners/42", buf, sizeof(buf), &m),
                         ROUTER_MATCH);
        assert_ptr_equal(m.ud, &B);
        assert_string_equal(m.pattern, "/admin/actions/runners/{id}");
        assert_string_equal(m.method, "GET");
        assert_int_equal(m.nparams, 1);
        assert_string_equal(m.name[0], "id");
        assert_string_equal(m.value[0], "42");
        assert_string_equal(router_match_param(&m, "id"), "42");
        assert_null(router_match_param(&m, "nope"));
        assert_int_equal(match(r, "DELETE", "/admin/actions/runners/42", buf, sizeof(buf), &m),
                         ROUTER_MATCH);
        assert_ptr_equal(m.ud, &C);

        /* Parameters in pattern order, values decoded as given. */
        assert_int_equal(match(r, "GET", "/repos/acme/web site/actions/runners/7", buf,
                               sizeof(buf), &m), ROUTER_MATCH);
        assert_ptr_equal(m.ud, &D);
        assert_int_equal(m.nparams, 3);
        assert_string_equal(m.name[0], "owner");
        assert_string_equal(m.value[0], "acme");
        assert_string_equal(m.value[1], "web site");
        assert_string_equal(m.value[2], "7");
        assert_string_equal(router_match_param(&m, "repo"), "web site");

        assert_int_equal(match(r, "GET", "/", buf, sizeof(buf), &m), ROUTER_MATCH);
        assert_ptr_equal(m.ud, &E);

        /* No match: empty segments, trailing slash, extra or missing
         * segments, case, no leading slash, too many segments. */
        static const char *const none[] = {
                "/admin/actions/runners/", "/admin/actions/runners", "/admin//runners/1",
                "/repos//web/actions/runners/1", "/admin/actions/runners/1/x", "/Admin/actions/runners/1",
                "/x", "//",
        };
        for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
                if (match(r, "GET", none[i], buf, sizeof(buf), &m) != -ENOENT)
                        fail_msg("\"%s\" matched", none[i]);
        assert_int_equal(match(r, "GET", "admin", buf, sizeof(buf), &m), -EINVAL);
        assert_int_equal(match(r, "GET", "", buf, sizeof(buf), &m), -EINVAL);
        char deep[256] = "";
        for (int i = 0; i <= ROUTER_MAX_SEGMENTS; i++)
                memcpy(deep + 2 * i, "/d", 3);
        assert_int_equal(match(r, "GET", deep, buf, sizeof(buf), &m), -EINVAL);
        router_free(r);
}

static void test_methods(void **state)
{
        struct router *plain = router_new(0), *head = router_new(ROUTER_HEAD_AS_GET);
        struct router_match m;
        char buf[128];

        for (int i = 0; i < 2; i++) {
                struct router *r = i ? head : plain;
                assert_int_equal(router_add(r, "POST", "/echo", &A), 0);
                assert_int_equal(router_add(r, "PUT", "/echo", &B), 0);
                assert_int_equal(router_add(r, "GET", "/metrics", &C), 0);
                assert_int_equal(router_add(r, "GET", "/jobs/{id}", &D), 0);
                assert_int_equal(router_add(r, "POST", "/jobs/{id}", &E), 0);
                assert_int_equal(router_add(r, "DELETE", "/jobs/{id}", &F), 0);
        }

        /* The first route with the path stands in for it (the simulator
         * counts requests by pattern), with the methods it would take. */
        assert_int_equal(match(plain, "DELETE", "/echo", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_ptr_equal(m.ud, &A);
        assert_string_equal(m.pattern, "/echo");
        assert_string_equal(m.allow, "POST, PUT");
        assert_int_equal(match(plain, "PATCH", "/jobs/9", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_ptr_equal(m.ud, &D);
        assert_string_equal(m.allow, "GET, POST, DELETE");
        assert_int_equal(match(head, "PATCH", "/jobs/9", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_string_equal(m.allow, "GET, HEAD, POST, DELETE");

        /* HEAD only where asked for. */
        assert_int_equal(match(plain, "HEAD", "/metrics", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_string_equal(m.allow, "GET");
        assert_int_equal(match(head, "HEAD", "/metrics", buf, sizeof(buf), &m), ROUTER_MATCH);
        assert_ptr_equal(m.ud, &C);
        assert_int_equal(match(head, "POST", "/metrics", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_string_equal(m.allow, "GET, HEAD");
        assert_int_equal(match(head, "HEAD", "/echo", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_string_equal(m.allow, "POST, PUT");
        assert_int_equal(match(head, "GET", "/nope", buf, sizeof(buf), &m), -ENOENT);
        router_free(plain);
        router_free(head);
}

/* A long list of methods on one path is cut at a method, never mid-word. */
static void test_allow_bound(void **state)
{
        struct router *r = router_new(0);
        struct router_match m;
        char buf[32], meth[16];

        for (int i = 0; i < 26; i++) {
                snprintf(meth, sizeof(meth), "METHOD%c", 'A' + i);
                assert_int_equal(router_add(r, meth, "/x", &A), 0);
        }
        assert_int_equal(match(r, "GET", "/x", buf, sizeof(buf), &m), ROUTER_WRONG_METHOD);
        assert_true(strlen(m.allow) < ROUTER_ALLOW_MAX);
        assert_true(strncmp(m.allow, "METHODA, METHODB", 16) == 0);
        size_t len = strlen(m.allow);
        assert_true(m.allow[len - 1] >= 'A' && m.allow[len - 1] <= 'Z');
        assert_true(strncmp(m.allow + len - 7, "METHOD", 6) == 0);
        router_free(r);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_patterns),
                cmocka_unit_test(test_matching),
                cmocka_unit_test(test_methods),
                cmocka_unit_test(test_allow_bound),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
