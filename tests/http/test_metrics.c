/* test_metrics.c: the metrics registry and the bounded buffer: exact text
 * exposition output (escaping, sorting, histogram buckets), series bounds,
 * reset, registration rules. Pure code, no I/O. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/buffer.h"
#include "http/metrics.h"

/* Like assert_non_null(strstr()), but shows the text on failure. */
#define assert_contains(hay, needle)                                              \
        do {                                                                      \
                const char *h_ = (hay);                                           \
                if (!strstr(h_, (needle))) {                                      \
                        print_error("missing:\n%s\nin:\n%s\n", (needle), h_);     \
                        fail();                                                   \
                }                                                                 \
        } while (0)

static const char *render(struct metrics *reg, struct buffer *b)
{
        buffer_reset(b);
        assert_int_equal(metrics_render(reg, b), 0);
        return buffer_str(b);
}

static void test_buffer_bounds(void **state)
{
        struct buffer b = BUFFER_INIT(8);
        size_t len;
        char *p;

        assert_string_equal(buffer_str(&b), "");
        assert_int_equal(buffer_puts(&b, "abcd"), 0);
        assert_int_equal(buffer_printf(&b, "%d", 123), 0);
        assert_string_equal(buffer_str(&b), "abcd123");
        /* All or nothing: 2 more bytes would exceed 8, nothing is added. */
        assert_int_equal(buffer_puts(&b, "xy"), -EMSGSIZE);
        assert_string_equal(buffer_str(&b), "abcd123");
        assert_int_equal(buffer_putc(&b, 'z'), 0);
        assert_int_equal(b.len, 8);
        assert_int_equal(buffer_putc(&b, 'z'), -EMSGSIZE);
        assert_int_equal(buffer_printf(&b, "%s", ""), 0);
        p = buffer_steal(&b, &len);
        assert_non_null(p);
        assert_int_equal(len, 8);
        assert_string_equal(p, "abcd123z");
        free(p);
        assert_int_equal(b.len, 0);
        assert_string_equal(buffer_str(&b), "");

        /* A long printf takes the slow path and still respects the cap. */
        buffer_init(&b, 1000);
        assert_int_equal(buffer_printf(&b, "%0600d", 7), 0);
        assert_int_equal(b.len, 600);
        assert_int_equal(buffer_printf(&b, "%0600d", 7), -EMSGSIZE);
        assert_int_equal(b.len, 600);
        buffer_done(&b);
        buffer_done(NULL);
}

static void test_counter_gauge_render(void **state)
{
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        struct metric *c, *g, *u;
        double v;

        assert_non_null(reg);
        c = metrics_counter(reg, "fs_launches_total", "Launch attempts.", 2,
                            (const char *[]){ "pool", "result" });
        g = metrics_gauge(reg, "fs_idle", "Idle runners.", 1, (const char *[]){ "pool" });
        u = metrics_gauge(reg, "fs_up", "Always 1.", 0, NULL);
        assert_non_null(c);
        assert_non_null(g);
        assert_non_null(u);

        assert_int_equal(metrics_inc(c, (const char *[]){ "linux", "ok" }, 1), 0);
        assert_int_equal(metrics_inc(c, (const char *[]){ "linux", "ok" }, 2), 0);
        assert_int_equal(metrics_inc(c, (const char *[]){ "arm", "error" }, 1), 0);
        assert_int_equal(metrics_inc(c, (const char *[]){ "arm", "ok" }, -1), -EINVAL);
        assert_int_equal(metrics_inc(c, (const char *[]){ "arm", "ok" }, NAN), -EINVAL);
        assert_int_equal(metrics_set(c, (const char *[]){ "arm", "ok" }, 1), -EINVAL);
        assert_int_equal(metrics_observe(c, (const char *[]){ "arm", "ok" }, 1), -EINVAL);
        assert_int_equal(metrics_set(g, (const char *[]){ "b" }, 2.5), 0);
        assert_int_equal(metrics_set(g, (const char *[]){ "a" }, -3), 0);
        assert_int_equal(metrics_inc(g, (const char *[]){ "a" }, -1), 0);
        assert_int_equal(metrics_set(u, NULL, 1), 0);

        assert_int_equal(metrics_get(c, (const char *[]){ "linux", "ok" }, &v), 0);
        assert_true(v == 3);
        assert_int_equal(metrics_get(c, (const char *[]){ "linux", "nope" }, &v), -ENOENT);
        assert_int_equal(metrics_series_count(c), 2);

        assert_string_equal(render(reg, &b),
                "# HELP forgescale_metrics_dropped_series_total Label sets dropped because a metric reached its series limit.\n"
                "# TYPE forgescale_metrics_dropped_series_total counter\n"
                "# HELP fs_idle Idle runners.\n"
                "# TYPE fs_idle gauge\n"
                "fs_idle{pool=\"a\"} -4\n"
                "fs_idle{pool=\"b\"} 2.5\n"
                "# HELP fs_launches_total Launch attempts.\n"
                "# TYPE fs_launches_total counter\n"
                "fs_launches_total{pool=\"arm\",result=\"error\"} 1\n"
                "fs_launches_total{pool=\"linux\",result=\"ok\"} 3\n"
                "# HELP fs_up Always 1.\n"
                "# TYPE fs_up gauge\n"
                "fs_up 1\n");

        /* Reset drops labelled series; a label-less one goes back to 0. */
        metrics_reset(g);
        metrics_reset(u);
        assert_int_equal(metrics_series_count(g), 0);
        assert_int_equal(metrics_set(g, (const char *[]){ "c" }, 1e21), 0);
        assert_contains(render(reg, &b), "# TYPE fs_idle gauge\nfs_idle{pool=\"c\"} 1e+21\n# HELP");
        assert_contains(buffer_str(&b), "fs_up 0\n");
        assert_null(strstr(buffer_str(&b), "pool=\"a\""));

        buffer_done(&b);
        metrics_free(reg);
}

static void test_escaping(void **state)
{
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        struct metric *g = metrics_gauge(reg, "fs_odd", "Help with \\ and\nnewline \"quoted\".", 2,
                                         (const char *[]){ "a", "b" });

        assert_non_null(g);
        assert_int_equal(metrics_set(g, (const char *[]){ "q\"uo\\te\nnl", "" }, 1), 0);
        assert_int_equal(metrics_set(g, (const char *[]){ NULL, "x" }, 2), 0);
        /* Invalid UTF-8 (a lone 0xff, a truncated sequence) becomes U+FFFD. */
        assert_int_equal(metrics_set(g, (const char *[]){ "bad\xff", "\xc3" }, 3), 0);
        assert_int_equal(metrics_set(g, (const char *[]){ "caf\xc3\xa9", "z" }, 4), 0);
        render(reg, &b);
        assert_contains(buffer_str(&b),
                "# HELP fs_odd Help with \\\\ and\\nnewline \"quoted\".\n"
                "# TYPE fs_odd gauge\n"
                "fs_odd{a=\"\",b=\"x\"} 2\n"
                "fs_odd{a=\"bad\xef\xbf\xbd\",b=\"\xef\xbf\xbd\"} 3\n"
                "fs_odd{a=\"caf\xc3\xa9\",b=\"z\"} 4\n"
                "fs_odd{a=\"q\\\"uo\\\\te\\nnl\",b=\"\"} 1\n");
        buffer_done(&b);
        metrics_free(reg);
}

static void test_histogram(void **state)
{
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        const double bounds[] = { 0.1, 1, 10 };
        struct metric *h = metrics_histogram(reg, "fs_latency_seconds", "Latency.", 1,
                                             (const char *[]){ "op" }, 3, bounds);
        struct metric *h0 = metrics_histogram(reg, "fs_plain_seconds", "Plain.", 0, NULL, 1,
                                              (const double[]){ 0.5 });
        double v;

        assert_non_null(h);
        assert_non_null(h0);
        assert_int_equal(metrics_observe(h, (const char *[]){ "get" }, 0.05), 0);
        assert_int_equal(metrics_observe(h, (const char *[]){ "get" }, 1), 0);  /* le is inclusive */
        assert_int_equal(metrics_observe(h, (const char *[]){ "get" }, 5), 0);
        assert_int_equal(metrics_observe(h, (const char *[]){ "get" }, 100), 0);
        assert_int_equal(metrics_observe(h, (const char *[]){ "get" }, NAN), -EINVAL);
        assert_int_equal(metrics_inc(h, (const char *[]){ "get" }, 1), -EINVAL);
        assert_int_equal(metrics_get(h, (const char *[]){ "get" }, &v), 0);
        assert_true(v == 4);
        render(reg, &b);
        assert_contains(buffer_str(&b),
                "# HELP fs_latency_seconds Latency.\n"
                "# TYPE fs_latency_seconds histogram\n"
                "fs_latency_seconds_bucket{op=\"get\",le=\"0.1\"} 1\n"
                "fs_latency_seconds_bucket{op=\"get\",le=\"1\"} 2\n"
                "fs_latency_seconds_bucket{op=\"get\",le=\"10\"} 3\n"
                "fs_latency_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
                "fs_latency_seconds_sum{op=\"get\"} 106.05\n"
                "fs_latency_seconds_count{op=\"get\"} 4\n"
                "# HELP fs_plain_seconds Plain.\n"
                "# TYPE fs_plain_seconds histogram\n"
                "fs_plain_seconds_bucket{le=\"0.5\"} 0\n"
                "fs_plain_seconds_bucket{le=\"+Inf\"} 0\n"
                "fs_plain_seconds_sum 0\n"
                "fs_plain_seconds_count 0\n");
        buffer_done(&b);
        metrics_free(reg);
}

static void test_registration_rules(void **state)
{
        struct metrics *reg = metrics_new();
        struct metric *c = metrics_counter(reg, "fs_x_total", "X.", 1, (const char *[]){ "a" });

        assert_non_null(c);
        /* Same shape: the same metric; any other shape: refused. */
        assert_ptr_equal(metrics_counter(reg, "fs_x_total", "other help", 1, (const char *[]){ "a" }), c);
        assert_null(metrics_gauge(reg, "fs_x_total", "X.", 1, (const char *[]){ "a" }));
        assert_null(metrics_counter(reg, "fs_x_total", "X.", 1, (const char *[]){ "b" }));
        assert_null(metrics_counter(reg, "fs_x_total", "X.", 0, NULL));
        /* Names and labels. */
        assert_null(metrics_counter(reg, "", "h", 0, NULL));
        assert_null(metrics_counter(reg, "9lives", "h", 0, NULL));
        assert_null(metrics_counter(reg, "has-dash", "h", 0, NULL));
        assert_non_null(metrics_counter(reg, "ns:sub_total", "h", 0, NULL));
        assert_null(metrics_counter(reg, "fs_y", "h", 1, (const char *[]){ "__reserved" }));
        assert_null(metrics_counter(reg, "fs_y", "h", 1, (const char *[]){ "a:b" }));
        assert_null(metrics_counter(reg, "fs_y", "h", 2, (const char *[]){ "a", "a" }));
        assert_null(metrics_histogram(reg, "fs_h", "h", 1, (const char *[]){ "le" }, 1,
                                      (const double[]){ 1 }));
        /* Buckets must be finite and strictly increasing. */
        assert_null(metrics_histogram(reg, "fs_h", "h", 0, NULL, 2, (const double[]){ 1, 1 }));
        assert_null(metrics_histogram(reg, "fs_h", "h", 0, NULL, 1, (const double[]){ INFINITY }));
        assert_null(metrics_histogram(reg, "fs_h", "h", 0, NULL, 0, NULL));
        assert_non_null(metrics_histogram(reg, "fs_h", "h", 0, NULL, 2, (const double[]){ -1, 1 }));
        /* NULL metrics are refused, not crashed on. */
        assert_int_equal(metrics_inc(NULL, NULL, 1), -EINVAL);
        metrics_reset(NULL);
        metrics_free(reg);
        metrics_free(NULL);
}

static void test_series_bound(void **state)
{
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        struct metric *g, *c, *drop;
        char name[32];
        double v;

        metrics_set_max_series(reg, 100);
        g = metrics_gauge(reg, "fs_many", "Many.", 1, (const char *[]){ "id" });
        c = metrics_counter(reg, "fs_more_total", "More.", 1, (const char *[]){ "id" });
        for (int i = 0; i < 150; i++) {
                snprintf(name, sizeof(name), "s%03d", i);
                int r = metrics_set(g, (const char *[]){ name }, i);
                assert_int_equal(r, i < 100 ? 0 : -ENOSPC);
        }
        /* Existing series still update at the bound. */
        assert_int_equal(metrics_set(g, (const char *[]){ "s000" }, 42), 0);
        assert_int_equal(metrics_get(g, (const char *[]){ "s000" }, &v), 0);
        assert_true(v == 42);
        assert_int_equal(metrics_series_count(g), 100);
        assert_int_equal(metrics_inc(c, (const char *[]){ "only" }, 1), 0);

        drop = metrics_counter(reg, METRICS_DROPPED_NAME, "Label sets dropped because a metric "
                               "reached its series limit.", 1, (const char *[]){ "metric" });
        assert_non_null(drop);
        assert_int_equal(metrics_get(drop, (const char *[]){ "fs_many" }, &v), 0);
        assert_true(v == 50);
        assert_int_equal(metrics_get(drop, (const char *[]){ "fs_more_total" }, &v), -ENOENT);
        render(reg, &b);
        assert_contains(buffer_str(&b),
                "forgescale_metrics_dropped_series_total{metric=\"fs_many\"} 50\n");
        assert_contains(buffer_str(&b), "fs_many{id=\"s099\"} 99\n");
        assert_null(strstr(buffer_str(&b), "s100"));

        /* A reset frees room for new series. */
        metrics_reset(g);
        assert_int_equal(metrics_set(g, (const char *[]){ "fresh" }, 1), 0);

        /* Rendering into a too small buffer reports it. */
        struct buffer small = BUFFER_INIT(64);
        assert_int_equal(metrics_render(reg, &small), -EMSGSIZE);
        buffer_done(&small);
        buffer_done(&b);
        metrics_free(reg);
}

static void test_many_series_hashing(void **state)
{
        struct metrics *reg = metrics_new();
        struct metric *c = metrics_counter(reg, "fs_hash_total", "h", 2, (const char *[]){ "a", "b" });
        char x[16], y[16];
        double v;

        /* ("ab","") and ("a","b") are different series. */
        assert_int_equal(metrics_inc(c, (const char *[]){ "ab", "" }, 1), 0);
        assert_int_equal(metrics_inc(c, (const char *[]){ "a", "b" }, 2), 0);
        assert_int_equal(metrics_series_count(c), 2);
        for (int i = 0; i < 5000; i++) {
                snprintf(x, sizeof(x), "%d", i % 71);
                snprintf(y, sizeof(y), "%d", i);
                assert_int_equal(metrics_inc(c, (const char *[]){ x, y }, 1), 0);
        }
        assert_int_equal(metrics_series_count(c), 5002);
        assert_int_equal(metrics_get(c, (const char *[]){ "a", "b" }, &v), 0);
        assert_true(v == 2);
        assert_int_equal(metrics_get(c, (const char *[]){ "13", "4983" }, &v), 0);
        assert_true(v == 1);
        metrics_free(reg);
}

/* One gauge with a series per pool, rebuilt before each scrape as the
 * daemon does: every one of 1,000 pools is set, read back and rendered in
 * order, twice over a reset. */
static void test_gauge_thousand_pools(void **state)
{
        enum { NPOOLS = 1000 };
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        struct metric *g = metrics_gauge(reg, "fs_pool_jobs_waiting", "Waiting jobs.", 1,
                                         (const char *[]){ "pool" });
        char name[32], line[96];
        const char *text, *at;
        double v;

        assert_non_null(g);
        for (int round = 0; round < 2; round++) {
                metrics_reset(g);
                for (int i = 0; i < NPOOLS; i++) {
                        snprintf(name, sizeof(name), "pool-%04d", i);
                        assert_int_equal(metrics_set(g, (const char *[]){ name }, i + round), 0);
                }
                assert_int_equal(metrics_series_count(g), NPOOLS);
                for (int i = 0; i < NPOOLS; i++) {
                        snprintf(name, sizeof(name), "pool-%04d", i);
                        assert_int_equal(metrics_get(g, (const char *[]){ name }, &v), 0);
                        assert_true(v == i + round);
                }
                text = render(reg, &b);
                at = text;
                for (int i = 0; i < NPOOLS; i++) {
                        snprintf(line, sizeof(line), "fs_pool_jobs_waiting{pool=\"pool-%04d\"} %d\n",
                                 i, i + round);
                        at = strstr(at, line);
                        if (!at)
                                print_error("round %d: missing or out of order: %s", round, line);
                        assert_non_null(at);
                }
                assert_null(strstr(text, METRICS_DROPPED_NAME "{"));
        }
        buffer_done(&b);
        metrics_free(reg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_buffer_bounds),
                cmocka_unit_test(test_counter_gauge_render),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_histogram),
                cmocka_unit_test(test_registration_rules),
                cmocka_unit_test(test_series_bound),
                cmocka_unit_test(test_many_series_hashing),
                cmocka_unit_test(test_gauge_thousand_pools),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
