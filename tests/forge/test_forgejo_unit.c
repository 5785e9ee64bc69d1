/* test_forgejo_unit.c: pure parts of the Forgejo client: scope parsing and
 * paths, URL encoding, label queries and version strings. The body parsers
 * have their own test (test_forgejo_json.c). No network. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forge/forgejo.h"
#include "util/scope.h"

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

        /* Names are Forgejo's (util/scope.h), the grammar check applies: no
         * character that would need encoding in a path gets this far. */
        assert_int_equal(forgejo_scope_parse("repo/my.org/app_1-x", &sc), 0);
        forgejo_scope_runners_path(&sc, buf, sizeof(buf));
        assert_string_equal(buf, "/api/v1/repos/my.org/app_1-x/actions/runners");
        assert_int_equal(forgejo_scope_parse("org/\xc3\xbc" "ber", &sc), -EINVAL);
        assert_int_equal(forgejo_scope_parse("org/a?b#c", &sc), -EINVAL);
        assert_int_equal(forgejo_scope_parse("repo/acme/app~x%", &sc), -EINVAL);
        /* A scope built by hand is checked again before it becomes a path. */
        sc = (struct forgejo_scope){ .kind = FORGEJO_SCOPE_ORG, .owner = "a/../b" };
        assert_int_equal(forgejo_scope_runners_path(&sc, buf, sizeof(buf)), -EINVAL);
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
        longname[4 + SCOPE_NAME_MAX] = '\0';          /* a name of the longest: ok */
        assert_int_equal(forgejo_scope_parse(longname, &sc), 0);
        memset(longname, 'a', sizeof(longname));
        memcpy(longname, "org/", 4);
        longname[4 + SCOPE_NAME_MAX + 1] = '\0';      /* one byte more: too long */
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

/* A page of n runners with ids first, first+1, ... (rejected[] lists the
 * positions given in bad, with id 0). */
struct page {
        struct forgejo_runner runners[64];
        struct forgejo_rejected rejected[8];
        struct forgejo_runner_list l;
};

static const struct forgejo_runner_list *mkpage(struct page *pg, size_t count, int64_t first,
                                                long long total, const size_t *bad, size_t nbad)
{
        memset(pg, 0, sizeof(*pg));
        for (size_t i = 0, k = 0; i < count; i++) {
                bool rejected = false;
                for (size_t b = 0; b < nbad; b++)
                        rejected |= bad[b] == i;
                if (rejected)
                        pg->rejected[pg->l.n_rejected++] = (struct forgejo_rejected){ .index = i };
                else
                        pg->runners[k++].id = first + (int64_t)i;
                if (!rejected)
                        pg->l.n++;
        }
        pg->l.runners = pg->runners;
        pg->l.rejected = pg->rejected;
        pg->l.page_count = count;
        pg->l.total_count = total;
        return &pg->l;
}

static void pager_without_total(void **state)
{
        struct forgejo_pager p;
        struct page pg;

        /* Full pages go on, a short one ends. */
        forgejo_pager_init(&p, 50);
        assert_int_equal(p.page, 1);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, NULL, 0)));
        assert_int_equal(p.page, 2);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 51, -1, NULL, 0)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 49, 101, -1, NULL, 0)));
        assert_string_equal(p.stop, "short page");
        assert_false(p.incomplete);
        assert_int_equal(p.seen, 149);

        /* A rejected runner does not make a page short. */
        const size_t bad[] = { 0, 17 };
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, bad, 2)));
        assert_int_equal(pg.l.n, 48);

        /* An empty page ends. */
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, NULL, 0)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 0, 0, -1, NULL, 0)));
        assert_string_equal(p.stop, "empty page");

        /* A server that ignores page answers page 1 again: stop. */
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, NULL, 0)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, NULL, 0)));
        assert_string_equal(p.stop, "page repeated (the server ignores page)");
        assert_true(p.incomplete);
        assert_int_equal(p.seen, 50);
        /* ... also when the repeated page has rejected ends. */
        const size_t ends[] = { 0, 49 };
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, ends, 2)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 50, 1, -1, ends, 2)));
}

static void pager_with_total(void **state)
{
        struct forgejo_pager p;
        struct page pg;

        /* The server caps limit at 30 although 50 were asked: short pages
         * go on until X-Total-Count runners were seen. */
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 30, 1, 70, NULL, 0)));
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 30, 31, 70, NULL, 0)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 10, 61, 70, NULL, 0)));
        assert_string_equal(p.stop, "all runners seen (X-Total-Count)");
        assert_false(p.incomplete);
        assert_int_equal(p.page, 3);

        /* Exactly full pages: stop without asking for an empty one. */
        forgejo_pager_init(&p, 50);
        assert_true(forgejo_pager_next(&p, mkpage(&pg, 50, 1, 100, NULL, 0)));
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 50, 51, 100, NULL, 0)));
        assert_int_equal(p.page, 2);

        /* A total that keeps growing (runners registered meanwhile), or a
         * lying one, is bounded by the empty page, a repeat, or the cap. */
        forgejo_pager_init(&p, 1);
        int asked = 1;
        while (forgejo_pager_next(&p, mkpage(&pg, 1, p.page, 1LL << 40, NULL, 0)))
                asked++;
        assert_string_equal(p.stop, "too many pages");
        assert_true(p.incomplete);
        assert_int_equal(asked, FORGEJO_PAGER_MAX_PAGES);
        assert_int_equal(p.page, FORGEJO_PAGER_MAX_PAGES);
        /* A total of 0 with runners in the page ends there. */
        forgejo_pager_init(&p, 50);
        assert_false(forgejo_pager_next(&p, mkpage(&pg, 5, 1, 0, NULL, 0)));
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
                cmocka_unit_test(pager_without_total),
                cmocka_unit_test(pager_with_total),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
