/* main.c: forgejo-sim entry point: command line, the loopback listening
 * socket, signal handling and the 250 ms tick that applies time-based
 * rules on a real clock (a test clock moves only by POST /_sim/clock).
 * Owns process lifetime: everything started here is stopped and freed
 * here. Never listens on anything but 127.0.0.1 or ::1. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fs_version.h"
#include "util/duration.h"
#include "util/hostport.h"
#include "util/log.h"

#define DEFAULT_ZOMBIE_TIMEOUT "600s"
#define REAP_INTERVAL_MS 250
#define LISTEN_BACKLOG 1024

static void usage(FILE *f)
{
        fprintf(f,
                "usage: forgejo-sim serve --listen ADDR:PORT [--zombie-timeout DURATION]\n"
                "                         [--forgejo-version V] [--log-level error|warn|info|debug]\n"
                "                         [--test-clock]\n"
                "       forgejo-sim --version\n"
                "\n"
                "An in-memory stand-in for a Forgejo 15 server: the Actions REST API,\n"
                "the runner protocol and a control API under /_sim/.\n"
                "\n"
                "  --listen ADDR:PORT      127.0.0.1:PORT, [::1]:PORT or localhost:PORT;\n"
                "                          PORT 0 picks a free port\n"
                "  --zombie-timeout D      stop running tasks without UpdateTask/UpdateLog\n"
                "                          for longer than D (default %s)\n"
                "  --forgejo-version V     version reported by /api/v1/version (default %s);\n"
                "                          only the answer changes, not the behaviour\n"
                "  --log-level L           default info\n"
                "  --test-clock            freeze the simulator's clock; only\n"
                "                          POST /_sim/clock {\"advance_ms\": N} moves it (tests)\n",
                DEFAULT_ZOMBIE_TIMEOUT, SIM_VERSION_STRING);
}

const char *sim_forgejo_version = SIM_VERSION_STRING;

/* Parses a loopback listen address. Returns 0, or -EINVAL with a reason. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
                        const char **why)
{
        struct hostport hp;
        bool loopback;

        if (hostport_parse(s, 0, &hp, why) < 0)
                return -EINVAL;
        hostport_sockaddr(&hp, ss, len);
        if (ss->ss_family == AF_INET6)
                loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ss)->sin6_addr);
        else
                loopback = ((struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
        if (!loopback) {
                *why = "only 127.0.0.1, localhost and [::1] are allowed";
                return -EINVAL;
        }
        return 0;
}

/* Binds and listens; returns the fd and the bound port, or -errno. */
static int open_listener(const struct sockaddr_storage *ss, socklen_t len, int *ret_port)
{
        int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1, r;
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);

        if (fd < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ss->ss_family == AF_INET6)
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0 ||
            getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        if (bound.ss_family == AF_INET6)
                *ret_port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        else
                *ret_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        return fd;
}

static int serve(const char *listen_addr, int64_t zombie_ms, bool test_clock)
{
        struct sockaddr_storage ss;
        socklen_t sslen;
        const char *why = NULL;
        struct sim *s = NULL;
        struct httpd *h = NULL;
        sigset_t set;
        int fd, port = 0, sig = 0, rc = 1;

        if (parse_listen(listen_addr, &ss, &sslen, &why) < 0) {
                log_error("sim", "bad --listen", KS("value", listen_addr), KS("reason", why));
                return 2;
        }
        /* Block the stop signals in every thread; this one waits for them. */
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);

        s = state_new(zombie_ms, test_clock);
        if (!s) {
                log_error("sim", "out of memory");
                return 1;
        }
        fd = open_listener(&ss, sslen, &port);
        if (fd < 0) {
                log_error("sim", "cannot listen", KS("address", listen_addr), KERR(fd));
                goto out;
        }
        snprintf(s->server_url, sizeof(s->server_url), "http://%s:%d",
                 ss.ss_family == AF_INET6 ? "[::1]" : "127.0.0.1", port);
        h = httpd_start(s, fd);
        if (!h) {
                log_error("sim", "cannot start the HTTP server", KS("address", listen_addr));
                goto out;
        }
        log_info("sim", "started", KS("url", s->server_url), KI("zombie_timeout_ms", zombie_ms),
                 KS("clock", test_clock ? "test" : "real"));
        printf("listening on %s\n", s->server_url);
        fflush(stdout);

        for (;;) {
                struct timespec ts = { .tv_sec = 0, .tv_nsec = REAP_INTERVAL_MS * 1000000L };
                sig = sigtimedwait(&set, NULL, &ts);
                if (sig == SIGTERM || sig == SIGINT)
                        break;
                if (sig < 0 && errno != EAGAIN && errno != EINTR) {
                        log_error("sim", "sigtimedwait failed", KERR(-errno));
                        goto out;
                }
                /* A test clock stands still between advances, and each
                 * advance applies the rules itself: a tick would find
                 * nothing, and must not race a test. */
                if (test_clock)
                        continue;
                pthread_mutex_lock(&s->lock);
                size_t n = state_tick(s);
                pthread_mutex_unlock(&s->lock);
                if (n)
                        log_info("sim", "stopped zombie tasks", KI("count", n));
        }
        log_info("sim", "stopping", KS("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
        rc = 0;
out:
        httpd_stop(h);
        state_free(s);
        return rc;
}

int main(int argc, char **argv)
{
        const char *listen_addr = NULL, *zombie = DEFAULT_ZOMBIE_TIMEOUT, *level = "info";
        enum log_level lvl;
        int64_t zombie_ms;
        bool test_clock = false;

        log_init(LOG_INFO, LOG_FMT_LOGFMT);
        if (argc >= 2 && (strcmp(argv[1], "--version") == 0)) {
                printf("forgejo-sim %s (Forgejo %s)\n", FORGESCALE_VERSION, SIM_VERSION_STRING);
                return 0;
        }
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                usage(stdout);
                return 0;
        }
        if (argc < 2 || strcmp(argv[1], "serve") != 0) {
                usage(stderr);
                return 2;
        }
        for (int i = 2; i < argc; i++) {
                const char **dst = NULL;
                if (strcmp(argv[i], "--test-clock") == 0) {
                        test_clock = true;
                        continue;
                }
                if (strcmp(argv[i], "--listen") == 0)
                        dst = &listen_addr;
                else if (strcmp(argv[i], "--zombie-timeout") == 0)
                        dst = &zombie;
                else if (strcmp(argv[i], "--log-level") == 0)
                        dst = &level;
                else if (strcmp(argv[i], "--forgejo-version") == 0)
                        dst = &sim_forgejo_version;
                if (!dst || i + 1 >= argc) {
                        fprintf(stderr, "forgejo-sim: %s argument: %s\n",
                                dst ? "missing value for" : "unknown", argv[i]);
                        usage(stderr);
                        return 2;
                }
                *dst = argv[++i];
        }
        if (!listen_addr) {
                fprintf(stderr, "forgejo-sim: --listen is required\n");
                usage(stderr);
                return 2;
        }
        if (duration_parse(zombie, &zombie_ms) < 0 || zombie_ms <= 0) {
                fprintf(stderr, "forgejo-sim: --zombie-timeout: '%s' is not a positive duration "
                        "like 600s or 2s\n", zombie);
                return 2;
        }
        if (log_level_parse(level, &lvl) < 0) {
                fprintf(stderr, "forgejo-sim: --log-level: '%s' is not error|warn|info|debug\n", level);
                return 2;
        }
        log_init(lvl, LOG_FMT_LOGFMT);
        return serve(listen_addr, zombie_ms, test_clock);
}
