/* bench_local.c: micro benchmark of the local provider on a real loop.
 * Measures (1) launches per second for N `true` workers created back to
 * back, and (2) the daemon-side cost (RSS, fds) of N live `sleep` workers,
 * then how fast they all stop. Every worker it starts is stopped and
 * reported before it exits (unless a step fails).
 * Usage: bench_local [N [DIR]]   (N workers per phase, default 1000; the
 * working folder and logs go to a new folder under DIR, default /tmp) */
#include <dirent.h>
#include <malloc.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loop/loop.h"
#include "provider/provider.h"
#include "util/fsutil.h"

static int nstarted, nexited, nbad;

static void on_event(void *ud, const struct provider_event *ev)
{
        if (ev->type == PROVIDER_EV_STARTED)
                nstarted++;
        else if (ev->type == PROVIDER_EV_EXITED)
                nexited++;
        else
                nbad++;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This process's own CPU time (user + system), children excluded. */
static double cpu_s(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static long status_kb(const char *key)
{
        char line[256];
        long v = -1;
        size_t klen = strlen(key);
        FILE *fp = fopen("/proc/self/status", "re");

        if (!fp)
                return -1;
        while (fgets(line, sizeof(line), fp))
                if (strncmp(line, key, klen) == 0 && line[klen] == ':')
                        v = strtol(line + klen + 1, NULL, 10);
        fclose(fp);
        return v;
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1;   /* the directory's own fd */
}

static int wait_exited(struct loop *l, int n, double timeout_s)
{
        double end = now_s() + timeout_s;

        while (nexited < n) {
                if (now_s() > end)
                        return -ETIMEDOUT;
                int r = loop_run_once(l, 50);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int launch(struct provider *p, const char *dir, const char *prefix, int k,
                  const char *const *argv)
{
        char name[64], logp[512];

        snprintf(name, sizeof(name), "%s-%05d", prefix, k);
        snprintf(logp, sizeof(logp), "%s/%s.log", dir, name);
        struct provider_spec spec = {
                .instance = name, .pool = "bench", .workdir = dir,
                .argv = argv, .log_path = logp, .log_max = 1 << 20,
        };
        return p->ops->create(p, &spec, on_event, NULL);
}

int main(int argc, char **argv)
{
        int n = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 1000;
        const char *base = argc > 2 ? argv[2] : "/tmp";
        char dir[512];
        struct loop *l = NULL;
        struct provider p = { .ops = &provider_local_ops };
        const char *const tru[] = { "true", NULL };
        const char *const slp[] = { "sleep", "1000", NULL };
        double t0, t1, t2, c0, c1;
        int r, rc = 1;

        snprintf(dir, sizeof(dir), "%s/fs-bench-local-XXXXXX", base);
        if (n <= 0 || n > 100000 || !mkdtemp(dir)) {
                fprintf(stderr, "usage: bench_local [N [DIR]]\n");
                return 2;
        }
        long rss0 = status_kb("VmRSS");
        int fds0 = count_fds();
        if ((r = loop_new(&l)) < 0 || (r = p.ops->init(&p, l, NULL)) < 0) {
                fprintf(stderr, "init: %s\n", strerror(-r));
                goto out;
        }

        /* (1) live workers: what they cost the daemon */
        long rss1 = status_kb("VmRSS");
        size_t heap1 = mallinfo2().uordblks;
        t0 = now_s();
        for (int k = 0; k < n; k++) {
                if ((r = launch(&p, dir, "s", k, slp)) < 0) {
                        fprintf(stderr, "create sleep %d: %s\n", k, strerror(-r));
                        n = k;
                        break;
                }
        }
        t1 = now_s();
        while (nstarted < n && now_s() < t1 + 60)
                loop_run_once(l, 50);
        long rss2 = status_kb("VmRSS");
        size_t heap2 = mallinfo2().uordblks;
        int fds2 = count_fds();
        printf("live: %d x `sleep 1000` started in %.3f s (%.0f/s); daemon VmRSS %ld kB before "
               "init, %ld kB after init, %ld kB with %d live; heap in use +%zu bytes "
               "(%.0f bytes/worker); fds %d before init, %d with %d live\n",
               n, t1 - t0, n / (t1 - t0), rss0, rss1, rss2, n, heap2 - heap1,
               (double)(heap2 - heap1) / n, fds0, fds2, n);

        t0 = now_s();
        p.stop_grace_ms = 5000;
        for (int k = 0; k < n; k++) {
                char name[64];
                snprintf(name, sizeof(name), "s-%05d", k);
                p.ops->stop(&p, name);
        }
        if ((r = wait_exited(l, n, 60)) < 0) {
                fprintf(stderr, "waiting for stops: %s\n", strerror(-r));
                goto out;
        }
        printf("stop: %d live workers SIGTERMed and reported in %.3f s\n", n, now_s() - t0);
        nstarted = nexited = 0;

        /* (2) launch rate */
        c0 = cpu_s();
        t0 = now_s();
        for (int k = 0; k < n; k++) {
                if ((r = launch(&p, dir, "t", k, tru)) < 0) {
                        fprintf(stderr, "create %d: %s\n", k, strerror(-r));
                        goto out;
                }
        }
        t1 = now_s();
        if ((r = wait_exited(l, n, 60)) < 0) {
                fprintf(stderr, "waiting for exits: %s\n", strerror(-r));
                goto out;
        }
        t2 = now_s();
        c1 = cpu_s();
        printf("launch: %d x `true`: create() loop %.3f s = %.0f launches/s (%.0f us each); "
               "all %d exits reported after %.3f s = %.0f/s; daemon CPU %.0f us per launch\n",
               n, t1 - t0, n / (t1 - t0), (t1 - t0) * 1e6 / n, nexited, t2 - t0, n / (t2 - t0),
               (c1 - c0) * 1e6 / n);
        printf("daemon VmHWM %ld kB\n", status_kb("VmHWM"));

        rc = nbad ? 1 : 0;
out:
        p.ops->done(&p);        /* after a failure this leaves workers running */
        loop_free(l);
        if (fs_rm_rf(dir) < 0)
                rc = 1;
        return rc;
}
