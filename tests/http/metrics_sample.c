/* metrics_sample.c: prints a registry that exercises every feature of the
 * metrics renderer (labels needing escapes, empty and invalid-UTF-8 label
 * values, label-less metrics, histograms, dropped series) so the output can
 * be checked by `promtool check metrics`. */
#include <math.h>
#include <stdio.h>

#include "http/buffer.h"
#include "http/metrics.h"

int main(void)
{
        struct metrics *reg = metrics_new();
        struct buffer b = BUFFER_INIT(1 << 20);
        const double lat[] = { 0.005, 0.01, 0.1, 0.5, 1, 2.5, 10, 60, 3600 };
        struct metric *launch, *idle, *up, *latency, *tiny, *capped;
        char id[16];
        int rc = 1;

        if (!reg)
                return 1;
        metrics_set_max_series(reg, 5);
        launch = metrics_counter(reg, "forgescale_launches_total", "Runner launches by pool and result.",
                                 2, (const char *[]){ "pool", "result" });
        idle = metrics_gauge(reg, "forgescale_runners_idle", "Idle runners per pool; help with \\ and\nnewline.",
                             1, (const char *[]){ "pool" });
        up = metrics_gauge(reg, "forgescale_up", "Whether the daemon is up.", 0, NULL);
        latency = metrics_histogram(reg, "forgescale_request_duration_seconds", "Forge request latency.",
                                    1, (const char *[]){ "endpoint" }, sizeof(lat) / sizeof(lat[0]), lat);
        tiny = metrics_histogram(reg, "forgescale_tiny_seconds", "A label-less histogram.", 0, NULL,
                                 2, (const double[]){ 1e-6, 1e6 });
        capped = metrics_gauge(reg, "forgescale_capped", "Hits the series limit.", 1, (const char *[]){ "id" });
        if (!launch || !idle || !up || !latency || !tiny || !capped)
                goto out;

        metrics_inc(launch, (const char *[]){ "linux", "ok" }, 3);
        metrics_inc(launch, (const char *[]){ "linux", "error" }, 1);
        metrics_inc(launch, (const char *[]){ "we\"ird\\pool\nname", "ok" }, 1);
        metrics_inc(launch, (const char *[]){ "", "" }, 0.5);
        metrics_set(idle, (const char *[]){ "linux" }, 4);
        metrics_set(idle, (const char *[]){ "bad\xff\xfeutf8" }, -2.25);
        metrics_set(idle, (const char *[]){ "nan" }, NAN);
        metrics_set(idle, (const char *[]){ "inf" }, INFINITY);
        metrics_set(up, NULL, 1);
        metrics_observe(latency, (const char *[]){ "/api/v1/repos" }, 0.003);
        metrics_observe(latency, (const char *[]){ "/api/v1/repos" }, 0.2);
        metrics_observe(latency, (const char *[]){ "/api/v1/repos" }, 7200);
        metrics_observe(latency, (const char *[]){ "fetch \"task\"" }, 1);
        metrics_observe(tiny, NULL, 0.5);
        for (int i = 0; i < 8; i++) {
                snprintf(id, sizeof(id), "%d", i);
                metrics_set(capped, (const char *[]){ id }, i);
        }
        if (metrics_render(reg, &b) < 0)
                goto out;
        fwrite(buffer_str(&b), 1, b.len, stdout);
        rc = 0;
out:
        buffer_done(&b);
        metrics_free(reg);
        return rc;
}
