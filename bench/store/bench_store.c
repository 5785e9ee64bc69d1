/* bench_store.c: write throughput and latency of the SQLite store for the
 * daemon's instance life cycle (1 insert + 5 updates per instance), one
 * transaction per write versus one per batch, plus the cost of the reads a
 * restart and a status scrape do on a table full of history. Writes only
 * inside the directory it is given; never deletes anything else. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

static int64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t cpu_ns(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
               ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

static void die(const char *what, int r)
{
        fprintf(stderr, "bench_store: %s: %s\n", what, strerror(-r));
        exit(1);
}

#define WRITES_PER_INSTANCE 6

/* Write number `step` of the daemon's sequence for instance i. */
static void lifecycle_step(struct store *s, struct store_instance *in, int step, int64_t i)
{
        int r;

        switch (step) {
        case 0:
                memset(in, 0, sizeof(*in));
                snprintf(in->name, sizeof(in->name), "forgescale-bench-%08" PRId64, i);
                snprintf(in->pool, sizeof(in->pool), "pool-%" PRId64, i % 4);
                snprintf(in->forge, sizeof(in->forge), "main");
                snprintf(in->scope, sizeof(in->scope), "org/acme");
                snprintf(in->provider, sizeof(in->provider), "process");
                snprintf(in->handle, sizeof(in->handle), "%016" PRIx64 "%016" PRIx64,
                         (uint64_t)i * 0x9e3779b97f4a7c15u, (uint64_t)i);
                in->state = STORE_REGISTERING;
                in->job_id = 100000 + i;
                in->created_ms = in->state_ms = in->job_seen_ms = 1700000000000 + i;
                in->exit_code = -1;
                r = store_instance_insert(s, in);
                break;
        case 1:
                in->runner_id = 5000 + i;
                snprintf(in->runner_uuid, sizeof(in->runner_uuid),
                         "1b4e28ba-2fa1-11d2-883f-%012" PRIx32, (uint32_t)i);
                r = store_instance_update(s, in);
                break;
        case 2:
                in->state = STORE_STARTING;
                snprintf(in->provider_ref, sizeof(in->provider_ref), "%" PRId64 ":%" PRId64,
                         10000 + i % 30000, 123456789 + i);
                r = store_instance_update(s, in);
                break;
        case 3:
                in->state = STORE_RUNNING;
                in->claimed_ms = in->state_ms + 900;
                r = store_instance_update(s, in);
                break;
        case 4:
                in->state = STORE_STOPPING;
                in->exit_code = 0;
                r = store_instance_update(s, in);
                break;
        default:
                in->state = STORE_DONE;
                in->runner_deleted = true;
                r = store_instance_update(s, in);
                break;
        }
        if (r < 0)
                die("write", r);
}

struct result {
        double writes_per_s;
        double cpu_us_per_write;        /* user + system */
        int64_t p50_ns, p99_ns, max_ns;   /* per transaction */
};

/* Runs n instances through their life cycle. Instances are interleaved the
 * way a busy daemon interleaves them: `inflight` of them at once, each tick
 * advancing every one by one step. batch == 0: every write commits alone;
 * otherwise one transaction per `batch` writes. */
static struct result run(struct store *s, int64_t first, int64_t n, int inflight, int batch)
{
        struct store_instance *slot = calloc((size_t)inflight, sizeof(*slot));
        int *step = calloc((size_t)inflight, sizeof(*step));
        int64_t *id = calloc((size_t)inflight, sizeof(*id));
        int64_t total = n * WRITES_PER_INSTANCE;
        int64_t *lat = calloc((size_t)total, sizeof(*lat));
        int64_t ntx = 0, writes = 0, next = first, started = 0, in_batch = 0;
        int r;

        if (!slot || !step || !id || !lat)
                die("alloc", -ENOMEM);
        for (int k = 0; k < inflight; k++)
                step[k] = -1;

        int64_t c0 = cpu_ns();
        int64_t t0 = now_ns(), tx0 = t0;
        while (writes < total) {
                for (int k = 0; k < inflight && writes < total; k++) {
                        if (step[k] < 0) {
                                if (started == n)
                                        continue;
                                step[k] = 0;
                                id[k] = next++;
                                started++;
                        }
                        if (batch && in_batch == 0) {
                                tx0 = now_ns();
                                if ((r = store_begin(s)) < 0)
                                        die("begin", r);
                        } else if (!batch) {
                                tx0 = now_ns();
                        }
                        lifecycle_step(s, &slot[k], step[k], id[k]);
                        writes++;
                        if (++step[k] == WRITES_PER_INSTANCE)
                                step[k] = -1;
                        if (batch && (++in_batch == batch || writes == total)) {
                                if ((r = store_commit(s)) < 0)
                                        die("commit", r);
                                in_batch = 0;
                                lat[ntx++] = now_ns() - tx0;
                        } else if (!batch) {
                                lat[ntx++] = now_ns() - tx0;
                        }
                }
        }
        int64_t t1 = now_ns();
        int64_t c1 = cpu_ns();

        qsort(lat, (size_t)ntx, sizeof(*lat), cmp_i64);
        struct result res = {
                .writes_per_s = (double)total / ((double)(t1 - t0) / 1e9),
                .cpu_us_per_write = (double)(c1 - c0) / 1e3 / (double)total,
                .p50_ns = lat[ntx / 2],
                .p99_ns = lat[(ntx * 99) / 100],
                .max_ns = lat[ntx - 1],
        };
        free(slot);
        free(step);
        free(id);
        free(lat);
        return res;
}

static void count_cb(void *ud, const char *pool, enum store_state st, int64_t n)
{
        (void)pool;
        (void)st;
        *(int64_t *)ud += n;
}

int main(int argc, char **argv)
{
        const char *dir = argc > 1 ? argv[1] : ".";
        int64_t n = 10000;
        char path[4096];
        struct store *s = NULL;
        int r;

        if (argc > 2) {
                char *end;
                errno = 0;
                n = strtoll(argv[2], &end, 10);
                if (errno != 0 || end == argv[2] || *end != '\0')
                        n = -1;
        }
        if (argc > 3 || n <= 0 || n > 1000000) {
                fprintf(stderr, "usage: bench_store [DIR] [INSTANCES]\n");
                return 2;
        }
        snprintf(path, sizeof(path), "%s/bench-store.db", dir);
        unlink(path);

        r = store_open(path, &s);
        if (r < 0)
                die("open", r);

        static const int batches[] = { 0, 10, 100, 1200 };
        int64_t first = 0;
        printf("%" PRId64 " instances x %d writes (1 insert + 5 updates), 200 in flight\n",
               n, WRITES_PER_INSTANCE);
        printf("%-22s %10s %10s %10s %10s %10s\n", "mode", "writes/s", "cpu/write",
               "p50 tx", "p99 tx", "max tx");
        for (size_t b = 0; b < sizeof(batches) / sizeof(batches[0]); b++) {
                struct result res = run(s, first, n, 200, batches[b]);
                char mode[40];
                if (batches[b])
                        snprintf(mode, sizeof(mode), "batch of %d writes", batches[b]);
                else
                        snprintf(mode, sizeof(mode), "one tx per write");
                printf("%-22s %10.0f %8.1fus %8.1fus %8.1fus %8.1fus\n", mode,
                       res.writes_per_s, res.cpu_us_per_write,
                       (double)res.p50_ns / 1e3, (double)res.p99_ns / 1e3,
                       (double)res.max_ns / 1e3);
                first += n;
        }

        /* Reads on the resulting history: 1,000 live rows among the rest. */
        struct store_instance in;
        for (int64_t i = 0; i < 1000; i++) {
                lifecycle_step(s, &in, 0, first + i);
                lifecycle_step(s, &in, 1, first + i);
        }
        store_close(s);
        int64_t t0 = now_ns();
        r = store_open(path, &s);
        if (r < 0)
                die("reopen", r);
        printf("reopen with full history: %.2fms\n",
               (double)(now_ns() - t0) / 1e6);

        t0 = now_ns();
        struct store_instance *v = NULL;
        size_t nl = 0;
        r = store_instance_list_live(s, &v, &nl);
        if (r < 0)
                die("list_live", r);
        int64_t t1 = now_ns();
        free(v);
        int64_t total = 0;
        r = store_instance_count(s, count_cb, &total);
        if (r < 0)
                die("count", r);
        int64_t t2 = now_ns();
        r = store_prune(s, INT64_MAX);
        if (r < 0)
                die("prune", r);
        int64_t t3 = now_ns();
        printf("rows %" PRId64 ": list_live (%zu rows) %.2fms, count %.2fms, prune (%d rows) %.2fms\n",
               total, nl, (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6, r,
               (double)(t3 - t2) / 1e6);
        store_close(s);

        t0 = now_ns();
        r = store_open(path, &s);
        if (r < 0)
                die("reopen", r);
        t1 = now_ns();
        printf("reopen after prune: %.2fms\n", (double)(t1 - t0) / 1e6);
        store_close(s);
        char p2[4200];
        unlink(path);
        snprintf(p2, sizeof(p2), "%s-wal", path);
        unlink(p2);
        snprintf(p2, sizeof(p2), "%s-shm", path);
        unlink(p2);
        return 0;
}
