/* main.c: kube-fake's entry point: the command line, the TLS material, the
 * loopback listening socket, and the single-threaded loop that serves HTTP,
 * reaps pods' processes (SIGCHLD through a signalfd) and ticks the
 * simulation. Owns process lifetime: on SIGTERM/SIGINT every pod process is
 * killed before exit. Never listens on anything but 127.0.0.1 or ::1. */
#include "kfake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/rfc3339.h"

#define TICK_MS 50
#define MAX_PEM (1u << 20)

int64_t kf_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *kf_timestamp(char *buf, size_t n)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (rfc3339_format(ts.tv_sec, 0, 0, buf, n) < 0)
                snprintf(buf, n, "1970-01-01T00:00:00Z");
        return buf;
}

static void usage(FILE *f)
{
        fprintf(f,
                "usage: kube-fake serve --listen 127.0.0.1:0 --root DIR --token-file FILE\n"
                "                       --tls-cert CERT.pem --tls-key KEY.pem [--client-ca CA.pem]\n"
                "                       [--log-level error|warn|info|debug]\n"
                "\n"
                "A strict fake Kubernetes API server (Secrets, batch/v1 Jobs, Pods) for tests:\n"
                "pods run as local processes under DIR. See tools/kube-fake/README.md.\n");
}

static int open_listener(const char *addr, int *ret_port)
{
        struct hostport hp;
        struct sockaddr_storage ss, bound;
        socklen_t len, blen = sizeof(bound);
        const char *why = NULL;
        int fd, one = 1, r;

        if (hostport_parse(addr, 0, &hp, &why) < 0)
                return -EINVAL;
        hostport_sockaddr(&hp, &ss, &len);
        if (ss.ss_family == AF_INET6 ?
                    !IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr) :
                    ((struct sockaddr_in *)&ss)->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
                return -EADDRNOTAVAIL;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0 ||
            getsockname(fd, (struct sockaddr *)&bound, &blen) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_port = bound.ss_family == AF_INET6 ?
                            ntohs(((struct sockaddr_in6 *)&bound)->sin6_port) :
                            ntohs(((struct sockaddr_in *)&bound)->sin_port);
        return fd;
}

static int serve(struct kf *kf, const char *listen_addr, const char *cert, const char *key,
                 const char *ca)
{
        char *cert_pem = NULL, *key_pem = NULL, *ca_pem = NULL;
        size_t len;
        struct httpd *h = NULL;
        sigset_t set;
        int sfd = -1, fd, rc = 1, r;

        if ((r = fs_read_file(cert, MAX_PEM, &cert_pem, &len)) < 0 ||
            (r = fs_read_file(key, MAX_PEM, &key_pem, &len)) < 0 ||
            (ca && (r = fs_read_file(ca, MAX_PEM, &ca_pem, &len)) < 0)) {
                log_error("kube-fake", "cannot read the TLS files", KERR(r));
                goto out;
        }
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
                log_error("kube-fake", "signalfd failed", KERR(-errno));
                goto out;
        }
        fd = open_listener(listen_addr, &kf->port);
        if (fd < 0) {
                log_error("kube-fake", "cannot listen (loopback only)", KS("address", listen_addr),
                          KERR(fd));
                rc = 2;
                goto out;
        }
        kf->client_ca = ca != NULL;
        h = httpd_start(kf, fd, cert_pem, key_pem, ca_pem);
        if (!h) {
                close(fd);
                log_error("kube-fake", "cannot start the HTTPS server (bad certificate or key?)");
                goto out;
        }
        printf("listening on https://127.0.0.1:%d\n", kf->port);
        fflush(stdout);
        log_info("kube-fake", "started", KI("port", kf->port), KS("root", kf->root));

        int64_t next_tick = 0;
        for (;;) {
                int64_t now = kf_now_ms();
                int wait = next_tick > now ? (int)(next_tick - now) : 0;
                bool sig = httpd_run(h, sfd, wait);
                bool stop = false;
                if (sig) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                                        stop = true;
                        pid_t pid;
                        int status;
                        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
                                pods_reaped(kf, pid, status);
                }
                if (stop)
                        break;
                if (kf_now_ms() >= next_tick) {
                        pods_tick(kf);
                        store_watches_tick(kf);
                        for (struct kstream *s = kf->streams; s; s = s->next)
                                if (s->suspended) {
                                        if (httpd_peer_gone(s->conn))
                                                s->left = 0;
                                        s->suspended = false;
                                        httpd_wake(s->conn);
                                }
                        next_tick = kf_now_ms() + TICK_MS;
                }
        }
        log_info("kube-fake", "stopping");
        rc = 0;
out:
        pods_kill_all(kf);
        httpd_stop(h);
        if (sfd >= 0)
                close(sfd);
        free(cert_pem);
        free(key_pem);
        free(ca_pem);
        return rc;
}

int main(int argc, char **argv)
{
        const char *listen_addr = NULL, *root = NULL, *token = NULL, *cert = NULL, *key = NULL;
        const char *ca = NULL, *level = "info";
        enum log_level lvl;
        /* A real cluster's first list never says "0" (which clients read as
         * "any version"): start as if the namespace had just been made. */
        struct kf kf = { .schedulable = true, .rv = 1 };
        int rc;

        log_init(LOG_INFO, LOG_FMT_LOGFMT);
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
                if (strcmp(argv[i], "--listen") == 0)
                        dst = &listen_addr;
                else if (strcmp(argv[i], "--root") == 0)
                        dst = &root;
                else if (strcmp(argv[i], "--token-file") == 0)
                        dst = &token;
                else if (strcmp(argv[i], "--tls-cert") == 0)
                        dst = &cert;
                else if (strcmp(argv[i], "--tls-key") == 0)
                        dst = &key;
                else if (strcmp(argv[i], "--client-ca") == 0)
                        dst = &ca;
                else if (strcmp(argv[i], "--log-level") == 0)
                        dst = &level;
                if (!dst || i + 1 >= argc) {
                        fprintf(stderr, "kube-fake: unknown or incomplete option '%s'\n", argv[i]);
                        usage(stderr);
                        return 2;
                }
                *dst = argv[++i];
        }
        if (!listen_addr || !root || !token || !cert || !key) {
                fprintf(stderr, "kube-fake: --listen, --root, --token-file, --tls-cert and "
                        "--tls-key are required\n");
                return 2;
        }
        if (log_level_parse(level, &lvl) < 0) {
                fprintf(stderr, "kube-fake: bad --log-level '%s'\n", level);
                return 2;
        }
        log_init(lvl, LOG_FMT_LOGFMT);
        kf.root = strdup(root);
        kf.token_file = strdup(token);
        kf.stats = json_object();
        kf.rejected = json_array();
        snprintf(kf.unsched_msg, sizeof(kf.unsched_msg), "0/1 nodes are available");
        for (int r = 0; r < KR_N; r++)
                kf.objs[r] = json_object();
        if (!kf.root || !kf.token_file || !kf.stats || !kf.rejected) {
                fprintf(stderr, "kube-fake: out of memory\n");
                return 1;
        }
        if (fs_mkdir_p(root, 0755) < 0) {
                fprintf(stderr, "kube-fake: cannot create --root %s\n", root);
                return 1;
        }
        rc = serve(&kf, listen_addr, cert, key, ca);
        while (kf.faults) {
                struct kfault *f = kf.faults;
                kf.faults = f->next;
                free(f->path_prefix);
                free(f->message);
                free(f);
        }
        store_free(&kf);
        json_decref(kf.stats);
        json_decref(kf.rejected);
        free(kf.root);
        free(kf.token_file);
        return rc;
}
