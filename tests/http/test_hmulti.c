/* test_hmulti.c: the loop-driven HTTP client against small libmicrohttpd
 * servers started by the test, one on 127.0.0.1 and two on unix sockets in
 * a private temporary directory. The servers run on their own threads (a
 * thread per connection, so a handler may sleep or stream slowly); hmulti
 * runs in a real event loop on the test's thread. Covers unix-socket
 * origins, streamed bodies (chunk bound, total cap, abort, cancel, error
 * answers), per-origin admission, the long-lived class, and TLS material
 * given in memory (CA, client certificate and key) against a TLS server
 * that checks client certificates (certificates made with `openssl`). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "http/hmulti.h"
#include "loop/loop.h"

/* ---- servers (their own threads) ------------------------------------- */

struct srv {
        struct MHD_Daemon *d;
        char sock[108];          /* unix socket path, or "" */
        uint16_t port;
        atomic_int active;       /* requests between access and completion */
        atomic_int peak;
        atomic_int forever;      /* /forever streams still open */
};

static atomic_bool stopping;
static char tmpdir[64];
static struct srv tcp, ux1, ux2;

static long long qnum(struct MHD_Connection *c, const char *key, long long dflt)
{
        const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
        char *end;
        long long n;

        if (!v)
                return dflt;
        errno = 0;
        n = strtoll(v, &end, 10);
        return errno || *end || n < 0 ? dflt : n;
}

static unsigned char pattern_byte(uint64_t pos)
{
        return (unsigned char)((pos * 7 + 3) & 0xff);
}

struct stream {
        struct srv *s;
        uint64_t total;          /* UINT64_MAX: until the client leaves */
        size_t piece;
        int every_ms;
        bool forever;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct stream *st = cls;
        size_t n = st->piece < max ? st->piece : max;

        if (atomic_load(&stopping))
                return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->forever) {
                if (pos)
                        usleep(100 * 1000);
                memcpy(buf, "tick\n", 5);
                return 5;
        }
        if (pos >= st->total)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (pos && st->every_ms)
                usleep((useconds_t)st->every_ms * 1000);
        if (n > st->total - pos)
                n = (size_t)(st->total - pos);
        for (size_t i = 0; i < n; i++)
                buf[i] = (char)pattern_byte(pos + i);
        return (ssize_t)n;
}

static void stream_free(void *cls)
{
        struct stream *st = cls;

        if (st->forever)
                atomic_fetch_sub(&st->s->forever, 1);
        free(st);
}

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body,
                              size_t len)
{
        struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
                                                                 MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret = MHD_queue_response(c, status, r);

        MHD_destroy_response(r);
        return ret;
}

/* /hello: echoes Host and path. /delay?ms=: answers after a sleep.
 * /stream?bytes=&piece=&every=: a patterned body, chunked.
 * /forever: "tick\n" every 100 ms until the client leaves.
 * /status?code=&size=: that status with size bytes of 'e'. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *up,
                                  size_t *up_size, void **con_cls)
{
        struct srv *s = cls;
        static int seen;
        char msg[256];

        if (!*con_cls) {
                int n = atomic_fetch_add(&s->active, 1) + 1;
                int p = atomic_load(&s->peak);
                while (n > p && !atomic_compare_exchange_weak(&s->peak, &p, n))
                        ;
                *con_cls = &seen;
                return MHD_YES;
        }
        if (strcmp(url, "/hello") == 0 || strcmp(url, "/v1.43/hello") == 0) {
                const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
                int n = snprintf(msg, sizeof(msg), "host=%s path=%s", host ? host : "-", url);
                return answer(c, 200, msg, (size_t)n);
        }
        if (strcmp(url, "/delay") == 0) {
                usleep((useconds_t)qnum(c, "ms", 100) * 1000);
                return answer(c, 200, "slept", 5);
        }
        if (strcmp(url, "/stream") == 0 || strcmp(url, "/forever") == 0) {
                struct stream *st = calloc(1, sizeof(*st));
                struct MHD_Response *r;
                enum MHD_Result ret;

                if (!st)
                        return MHD_NO;
                st->s = s;
                st->forever = strcmp(url, "/forever") == 0;
                st->total = (uint64_t)qnum(c, "bytes", 1000);
                st->piece = (size_t)qnum(c, "piece", 4096);
                st->every_ms = (int)qnum(c, "every", 0);
                if (st->forever)
                        atomic_fetch_add(&s->forever, 1);
                r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, st,
                                                      stream_free);
                ret = MHD_queue_response(c, 200, r);
                MHD_destroy_response(r);
                return ret;
        }
        if (strcmp(url, "/throttle") == 0) {
                struct MHD_Response *r = MHD_create_response_from_buffer(4, (void *)"slow",
                                                                         MHD_RESPMEM_PERSISTENT);
                enum MHD_Result ret;
                MHD_add_response_header(r, "Retry-After", qnum(c, "date", 0) ? "Wed, 21 Oct 2026 07:28:00 GMT" : " 7");
                ret = MHD_queue_response(c, 429, r);
                MHD_destroy_response(r);
                return ret;
        }
        if (strcmp(url, "/status") == 0) {
                size_t n = (size_t)qnum(c, "size", 10);
                char *b = malloc(n + 1);
                enum MHD_Result ret;

                if (!b)
                        return MHD_NO;
                memset(b, 'e', n);
                ret = answer(c, (unsigned)qnum(c, "code", 404), b, n);
                free(b);
                return ret;
        }
        return answer(c, 404, "nope", 4);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        struct srv *s = cls;

        if (*con_cls)
                atomic_fetch_sub(&s->active, 1);
        *con_cls = NULL;
}

static void srv_start(struct srv *s, const char *unix_name)
{
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
        int fd;

        memset(s, 0, sizeof(*s));
        if (unix_name) {
                struct sockaddr_un a = { .sun_family = AF_UNIX };
                snprintf(s->sock, sizeof(s->sock), "%s/%s", tmpdir, unix_name);
                snprintf(a.sun_path, sizeof(a.sun_path), "%s", s->sock);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(fd >= 0);
                assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        } else {
                struct sockaddr_in a = { .sin_family = AF_INET,
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof(a);
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                assert_true(fd >= 0);
                assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
                assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
                s->port = ntohs(a.sin_port);
        }
        assert_int_equal(listen(fd, 64), 0);
        s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                MHD_OPTION_LISTEN_SOCKET, fd,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                MHD_OPTION_END);
        assert_non_null(s->d);
}

static void srv_stop(struct srv *s)
{
        MHD_stop_daemon(s->d);
        if (s->sock[0])
                unlink(s->sock);
}

static int group_setup(void **state)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_hmulti.XXXXXX");
        if (!mkdtemp(tmpdir))
                return -1;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        srv_start(&tcp, NULL);
        srv_start(&ux1, "one.sock");
        srv_start(&ux2, "two.sock");
        return 0;
}

static int group_teardown(void **state)
{
        atomic_store(&stopping, true);
        srv_stop(&tcp);
        srv_stop(&ux1);
        srv_stop(&ux2);
        rmdir(tmpdir);
        curl_global_cleanup();
        return 0;
}

/* ---- client side (the loop's thread) ---------------------------------- */

static struct loop *L;
static struct hmulti *HM;

static int setup(void **state)
{
        if (loop_new(&L) < 0 || hmulti_new(L, NULL, &HM) < 0)
                return -1;
        return 0;
}

static int teardown(void **state)
{
        size_t timers;

        hmulti_free(HM);
        HM = NULL;
        timers = loop_timer_count(L);
        loop_free(L);
        if (timers) {
                fprintf(stderr, "%zu loop timers left after hmulti_free\n", timers);
                return -1;
        }
        return 0;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_for(int64_t ms)
{
        int64_t end = now_ms() + ms;

        while (now_ms() < end)
                assert_int_equal(loop_run_once(L, 10), 0);
}

static bool run_until(const int *count, int want, int64_t ms)
{
        int64_t end = now_ms() + ms;

        while (*count < want && now_ms() < end)
                assert_int_equal(loop_run_once(L, 10), 0);
        return *count >= want;
}

struct res {
        int calls;
        int err;
        long status;
        char body[512];
        size_t len;
        /* streaming */
        int chunks;
        size_t bytes;
        size_t biggest;
        bool pattern_ok;
        int abort_after;         /* return -ECANCELED after this many chunks */
        struct hmulti_xfer *cancel_me;  /* cancelled from inside on_data */
        struct hmulti *free_me;         /* freed from inside on_data */
        bool data_after_done;
};

static void on_done(void *ud, int err, long status, const char *body, size_t len,
                    long long total)
{
        struct res *r = ud;

        r->calls++;
        r->err = err;
        r->status = status;
        r->len = len;
        if (err == 0) {
                assert_non_null(body);
                snprintf(r->body, sizeof(r->body), "%s", body);
        } else {
                assert_null(body);
        }
}

static void on_never(void *ud, int err, long status, const char *body, size_t len,
                     long long total)
{
        fail_msg("completion after cancel");
}

static int on_data(void *ud, const void *buf, size_t n)
{
        struct res *r = ud;
        const unsigned char *p = buf;

        if (r->calls)
                r->data_after_done = true;
        if (r->bytes == 0)
                r->pattern_ok = true;
        for (size_t i = 0; i < n; i++)
                if (p[i] != pattern_byte(r->bytes + i))
                        r->pattern_ok = false;
        r->chunks++;
        r->bytes += n;
        if (n > r->biggest)
                r->biggest = n;
        if (r->cancel_me) {
                hmulti_cancel(r->cancel_me);
                r->cancel_me = NULL;
                return 0;
        }
        if (r->free_me) {
                hmulti_free(r->free_me);
                r->free_me = NULL;
                return 0;
        }
        if (r->abort_after && r->chunks >= r->abort_after)
                return -ECANCELED;
        return 0;
}

/* on_data for the /forever ticks: counts them. */
static int on_tick(void *ud, const void *buf, size_t n)
{
        struct res *r = ud;

        r->chunks++;
        r->bytes += n;
        return 0;
}

static void tcp_url(char *out, size_t n, const char *path)
{
        snprintf(out, n, "http://127.0.0.1:%u%s", tcp.port, path);
}

static void origin_of_tcp(char *out, size_t n)
{
        snprintf(out, n, "http://127.0.0.1:%u", tcp.port);
}

static void origin_of_unix(char *out, size_t n, const struct srv *s)
{
        snprintf(out, n, "unix:%s", s->sock);
}

/* ---- unix-socket origins ----------------------------------------------- */

static void test_unix_socket(void **state)
{
        struct res r = { 0 };
        struct hmulti_req req = { .url = "http://docker/v1.43/hello", .unix_socket = ux1.sock };

        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 5000));
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "host=docker path=/v1.43/hello");

        /* Nobody listening at that path. */
        char gone[160];
        snprintf(gone, sizeof(gone), "%s/none.sock", tmpdir);
        memset(&r, 0, sizeof(r));
        req.unix_socket = gone;
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 5000));
        assert_int_equal(r.err, -ECONNREFUSED);

        /* Refused up front. */
        char longp[HMULTI_UNIX_PATH_MAX + 2];
        memset(longp, 'a', sizeof(longp) - 1);
        longp[0] = '/';
        longp[sizeof(longp) - 1] = '\0';
        const char *bad[] = { "relative.sock", "", longp };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                req.unix_socket = bad[i];
                assert_int_equal(hmulti_start(HM, &req, on_never, NULL, NULL), -EINVAL);
        }
        req.unix_socket = ux1.sock;
        req.url = "https://docker/v1.43/hello";
        assert_int_equal(hmulti_start(HM, &req, on_never, NULL, NULL), -EINVAL);
        assert_int_equal(hmulti_inflight(HM), 0);
}

/* Admission is per socket path: one transfer at a time on the first
 * socket leaves the second socket and the TCP origin alone. */
static void test_unix_admission_per_path(void **state)
{
        struct hmulti_origin_opts one = { .max_transfers = 1 };
        struct hmulti_origin_stats st;
        char o1[160], o2[160], ot[64];
        struct res slow[3], other = { 0 }, t = { 0 };
        struct hmulti_req req = { .url = "http://d/delay?ms=600", .unix_socket = ux1.sock };
        int done = 0;

        memset(slow, 0, sizeof(slow));
        origin_of_unix(o1, sizeof(o1), &ux1);
        origin_of_unix(o2, sizeof(o2), &ux2);
        origin_of_tcp(ot, sizeof(ot));
        assert_int_equal(hmulti_origin_config(HM, o1, &one), 0);
        atomic_store(&ux1.peak, 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(hmulti_start(HM, &req, on_done, &slow[i], NULL), 0);
        assert_int_equal(hmulti_origin_get_stats(HM, o1, &st), 0);
        assert_int_equal(st.active, 1);
        assert_int_equal(st.queued, 2);

        int64_t t0 = now_ms();
        struct hmulti_req r2 = { .url = "http://d/hello", .unix_socket = ux2.sock };
        assert_int_equal(hmulti_start(HM, &r2, on_done, &other, NULL), 0);
        char url[128];
        tcp_url(url, sizeof(url), "/hello");
        struct hmulti_req rt = { .url = url };
        assert_int_equal(hmulti_start(HM, &rt, on_done, &t, NULL), 0);
        assert_int_equal(hmulti_origin_get_stats(HM, o2, &st), 0);
        assert_int_equal(st.active, 1);
        assert_true(run_until(&other.calls, 1, 5000));
        assert_true(run_until(&t.calls, 1, 5000));
        assert_true(now_ms() - t0 < 500); /* before the first slow one ends */
        assert_int_equal(other.status, 200);
        assert_string_equal(other.body, "host=d path=/hello");
        assert_int_equal(t.status, 200);

        for (int i = 0; i < 3; i++) {
                assert_true(run_until(&slow[i].calls, 1, 5000));
                assert_int_equal(slow[i].status, 200);
                done++;
        }
        assert_true(now_ms() - t0 >= 1750); /* three rounds of 600 ms */
        assert_int_equal(atomic_load(&ux1.peak), 1);
        assert_int_equal(hmulti_origin_get_stats(HM, o1, &st), 0);
        assert_int_equal(st.active_peak, 1);
        assert_int_equal(done, 3);
}

/* ---- streamed bodies --------------------------------------------------- */

static void test_stream_body(void **state)
{
        char url[160];
        struct res r = { 0 };
        struct hmulti_req req = { .url = url, .on_data = on_data };

        /* 20 MiB, more than the buffered default cap, in bounded chunks;
         * the completion comes after the last byte, with an empty body. */
        tcp_url(url, sizeof(url), "/stream?bytes=20971520&piece=65536");
        req.timeout_ms = 30000;
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 30000));
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, 0);
        assert_string_equal(r.body, "");
        assert_int_equal(r.bytes, 20971520);
        assert_true(r.pattern_ok);
        assert_true(r.biggest <= HMULTI_DEFAULT_CHUNK);
        assert_true(r.chunks >= (int)(20971520 / HMULTI_DEFAULT_CHUNK));
        assert_false(r.data_after_done);

        /* A small chunk cap is raised to curl's largest piece, and held. */
        memset(&r, 0, sizeof(r));
        tcp_url(url, sizeof(url), "/stream?bytes=1000000&piece=100000");
        req.chunk_max = 1000;
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 10000));
        assert_int_equal(r.err, 0);
        assert_int_equal(r.bytes, 1000000);
        assert_true(r.pattern_ok);
        assert_true(r.biggest <= HMULTI_MIN_CHUNK);
        req.chunk_max = 0;

        /* Slow pieces arrive as they come, before the end. */
        memset(&r, 0, sizeof(r));
        tcp_url(url, sizeof(url), "/stream?bytes=5000&piece=1000&every=150");
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        run_for(200);
        assert_true(r.bytes >= 1000);
        assert_true(r.bytes < 5000);
        assert_int_equal(r.calls, 0);
        assert_true(run_until(&r.calls, 1, 5000));
        assert_int_equal(r.bytes, 5000);
        assert_true(r.pattern_ok);

        /* A total cap when asked. */
        memset(&r, 0, sizeof(r));
        tcp_url(url, sizeof(url), "/stream?bytes=1000000");
        req.max_response = 100000;
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 10000));
        assert_int_equal(r.err, -EMSGSIZE);
        assert_true(r.bytes <= 100000);
        req.max_response = 0;
}

static void test_stream_abort_and_cancel(void **state)
{
        char url[160];
        struct res r = { .abort_after = 2 };
        struct hmulti_req req = { .url = url, .on_data = on_data };
        struct hmulti_xfer *x = NULL;

        /* on_data says stop: the completion carries its error. */
        tcp_url(url, sizeof(url), "/stream?bytes=10000000&piece=16384&every=5");
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 10000));
        assert_int_equal(r.err, -ECANCELED);
        assert_int_equal(r.chunks, 2);
        run_for(100);
        assert_int_equal(r.chunks, 2);
        assert_false(r.data_after_done);

        /* Cancelled from inside its own on_data: nothing more is called. */
        memset(&r, 0, sizeof(r));
        assert_int_equal(hmulti_start(HM, &req, on_never, &r, &x), 0);
        r.cancel_me = x;
        int one = 0;
        while (r.chunks < 1 && one++ < 500)
                assert_int_equal(loop_run_once(L, 10), 0);
        assert_int_equal(r.chunks, 1);
        run_for(200);
        assert_int_equal(r.chunks, 1);
        assert_int_equal(hmulti_inflight(HM), 0);

        /* hm freed from inside on_data, with other transfers running. */
        struct hmulti *own = NULL;
        assert_int_equal(hmulti_new(L, NULL, &own), 0);
        memset(&r, 0, sizeof(r));
        r.free_me = own;
        assert_int_equal(hmulti_start(own, &req, on_never, &r, NULL), 0);
        struct hmulti_req other = { .url = url, .on_data = on_tick };
        struct res o = { 0 };
        assert_int_equal(hmulti_start(own, &other, on_never, &o, NULL), 0);
        one = 0;
        while (r.chunks < 1 && one++ < 500)
                assert_int_equal(loop_run_once(L, 10), 0);
        assert_int_equal(r.chunks, 1);
        int seen = o.chunks;
        run_for(200);
        assert_int_equal(r.chunks, 1);
        assert_true(o.chunks <= seen + 1); /* at most what was already buffered */
}

/* A streamed request whose answer is not 2xx gets the body buffered: an
 * engine's error message, bounded. */
static void test_stream_error_answer(void **state)
{
        char url[160];
        struct res r = { 0 };
        struct hmulti_req req = { .url = url, .on_data = on_data };

        tcp_url(url, sizeof(url), "/status?code=404&size=40");
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 5000));
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 404);
        assert_int_equal(r.len, 40);
        assert_int_equal(r.chunks, 0);

        memset(&r, 0, sizeof(r));
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/status?code=500&size=%u", tcp.port,
                 HMULTI_MAX_ERROR_BODY + 1);
        assert_int_equal(hmulti_start(HM, &req, on_done, &r, NULL), 0);
        assert_true(run_until(&r.calls, 1, 5000));
        assert_int_equal(r.err, -EMSGSIZE);
        assert_int_equal(r.chunks, 0);
}

/* ---- admission classes ------------------------------------------------- */

static bool forever_open(int n)
{
        int64_t end = now_ms() + 5000;

        while (atomic_load(&tcp.forever) != n && now_ms() < end)
                assert_int_equal(loop_run_once(L, 10), 0);
        return atomic_load(&tcp.forever) == n;
}

/* Long-lived waits have their own budget: with every long-lived slot of
 * an origin taken, ordinary and urgent calls to it still go through at
 * once. A long-lived transfer outlives its timeout once its headers are
 * in; a queued one does not. */
static void test_long_lived_budget(void **state)
{
        struct hmulti_origin_opts oo = { .max_transfers = 2, .max_long_lived = 2 };
        struct hmulti_origin_stats st;
        char origin[64], furl[160], hurl[160];
        struct res w[3], quick[3];
        struct hmulti_xfer *wx[3];

        memset(w, 0, sizeof(w));
        memset(quick, 0, sizeof(quick));
        origin_of_tcp(origin, sizeof(origin));
        assert_int_equal(hmulti_origin_config(HM, origin, &oo), 0);
        tcp_url(furl, sizeof(furl), "/forever");
        tcp_url(hurl, sizeof(hurl), "/hello");
        struct hmulti_req lr = { .url = furl, .long_lived = true, .timeout_ms = 800,
                                 .on_data = on_tick };
        for (int i = 0; i < 3; i++)
                assert_int_equal(hmulti_start(HM, &lr, on_done, &w[i], &wx[i]), 0);
        assert_true(forever_open(2));
        assert_int_equal(hmulti_origin_get_stats(HM, origin, &st), 0);
        assert_int_equal(st.active_long, 2);
        assert_int_equal(st.queued_long, 1);
        assert_int_equal(st.active, 0);

        /* Two ordinary (one slot kept for urgent, so one at a time) and an
         * urgent one: all done quickly. */
        int64_t t0 = now_ms();
        struct hmulti_req hr = { .url = hurl };
        struct hmulti_req ur = { .url = hurl, .urgent = true };
        assert_int_equal(hmulti_start(HM, &hr, on_done, &quick[0], NULL), 0);
        assert_int_equal(hmulti_start(HM, &hr, on_done, &quick[1], NULL), 0);
        assert_int_equal(hmulti_start(HM, &ur, on_done, &quick[2], NULL), 0);
        for (int i = 0; i < 3; i++) {
                assert_true(run_until(&quick[i].calls, 1, 5000));
                assert_int_equal(quick[i].status, 200);
        }
        assert_true(now_ms() - t0 < 700); /* starved, they would wait for ever */

        /* Past the 800 ms timeout: the queued one has timed out, the two
         * running ones still stream. */
        assert_true(run_until(&w[2].calls, 1, 3000));
        assert_int_equal(w[2].err, -ETIMEDOUT);
        int before = w[0].chunks;
        run_for(500);
        assert_int_equal(w[0].calls + w[1].calls, 0);
        assert_true(w[0].chunks > before);
        assert_true(w[1].chunks > 5);

        hmulti_cancel(wx[0]);
        hmulti_cancel(wx[1]);
        assert_true(forever_open(0));
        assert_int_equal(hmulti_inflight(HM), 0);
        assert_int_equal(hmulti_origin_get_stats(HM, origin, &st), 0);
        assert_int_equal(st.active_long, 0);
        assert_int_equal(st.active_long_peak, 2);
}

/* Without configuration: 8 ordinary/urgent and 8 long-lived per origin. */
static void test_default_budgets(void **state)
{
        char origin[64], furl[160], durl[160];
        struct hmulti_origin_stats st;
        struct res w[9], d[9];
        struct hmulti_xfer *wx[9];

        memset(w, 0, sizeof(w));
        memset(d, 0, sizeof(d));
        origin_of_tcp(origin, sizeof(origin));
        tcp_url(furl, sizeof(furl), "/forever");
        tcp_url(durl, sizeof(durl), "/delay?ms=500");
        struct hmulti_req lr = { .url = furl, .long_lived = true, .on_data = on_tick };
        struct hmulti_req dr = { .url = durl };
        for (int i = 0; i < 9; i++) {
                assert_int_equal(hmulti_start(HM, &lr, on_done, &w[i], &wx[i]), 0);
                assert_int_equal(hmulti_start(HM, &dr, on_done, &d[i], NULL), 0);
        }
        assert_int_equal(hmulti_origin_get_stats(HM, origin, &st), 0);
        assert_int_equal(st.active_long, HMULTI_DEFAULT_MAX_LONG_LIVED);
        assert_int_equal(st.queued_long, 1);
        assert_int_equal(st.active, HMULTI_DEFAULT_MAX_HOST_CONNECTIONS - 1);
        assert_int_equal(st.queued, 2);
        for (int i = 0; i < 9; i++) {
                assert_true(run_until(&d[i].calls, 1, 5000));
                assert_int_equal(d[i].status, 200);
        }
        assert_true(forever_open(8));
        hmulti_cancel(wx[0]); /* the ninth takes its slot */
        assert_true(run_until(&w[8].chunks, 1, 5000));
        for (int i = 1; i < 9; i++)
                hmulti_cancel(wx[i]);
        assert_true(forever_open(0));
        assert_int_equal(hmulti_inflight(HM), 0);
}

/* A larger budget set while requests wait admits them at once. */
static void test_origin_config_live(void **state)
{
        struct hmulti_origin_opts one = { .max_transfers = 1 }, three = { .max_transfers = 3 };
        struct hmulti_origin_stats st;
        char origin[64], url[160];
        struct res r[4];

        memset(r, 0, sizeof(r));
        origin_of_tcp(origin, sizeof(origin));
        /* A URL is taken for its origin, case-insensitively. */
        snprintf(url, sizeof(url), "HTTP://127.0.0.1:%u/any/path?q=1", tcp.port);
        assert_int_equal(hmulti_origin_config(HM, url, &one), 0);
        tcp_url(url, sizeof(url), "/delay?ms=400");
        struct hmulti_req req = { .url = url };
        for (int i = 0; i < 4; i++)
                assert_int_equal(hmulti_start(HM, &req, on_done, &r[i], NULL), 0);
        assert_int_equal(hmulti_origin_get_stats(HM, origin, &st), 0);
        assert_int_equal(st.active, 1);
        assert_int_equal(st.queued, 3);
        assert_int_equal(hmulti_origin_config(HM, origin, &three), 0);
        run_for(50);
        assert_int_equal(hmulti_origin_get_stats(HM, origin, &st), 0);
        assert_int_equal(st.active, 2); /* one of three kept for urgent */
        assert_int_equal(st.queued, 2);
        for (int i = 0; i < 4; i++)
                assert_true(run_until(&r[i].calls, 1, 5000));
        assert_int_equal(hmulti_inflight(HM), 0);
}

static void test_origin_config_invalid(void **state)
{
        struct hmulti_origin_opts ok = { .max_transfers = 2 }, neg = { .max_transfers = -1 };
        struct hmulti_origin_stats st;
        static const char *const bad[] = {
                "ftp://x", "http://", "https://", "unix:", "unix:relative", "docker", "",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (hmulti_origin_config(HM, bad[i], &ok) != -EINVAL)
                        fail_msg("origin \"%s\" accepted", bad[i]);
        assert_int_equal(hmulti_origin_config(HM, NULL, &ok), -EINVAL);
        assert_int_equal(hmulti_origin_config(HM, "http://x", NULL), -EINVAL);
        assert_int_equal(hmulti_origin_config(HM, "http://x", &neg), -EINVAL);
        assert_int_equal(hmulti_origin_get_stats(HM, "http://never.example", &st), -ENOENT);
        assert_int_equal(hmulti_origin_get_stats(HM, "gopher://x", &st), -EINVAL);
        assert_int_equal(hmulti_origin_config(HM, "unix:/run/x.sock", &ok), 0);
        assert_int_equal(hmulti_origin_get_stats(HM, "unix:/run/x.sock", &st), 0);
        assert_int_equal(st.active + st.queued + st.active_long + st.queued_long, 0);

        struct hmulti_req both = { .url = "http://x/", .urgent = true, .long_lived = true };
        assert_int_equal(hmulti_start(HM, &both, on_never, NULL, NULL), -EINVAL);
}

/* ---- TLS with a client certificate ------------------------------------ */

/* Answers "client CN" when the peer showed a certificate the server's trust
 * list verifies, 403 otherwise. */
static enum MHD_Result on_tls_request(void *cls, struct MHD_Connection *c, const char *url,
                                      const char *method, const char *version, const char *data,
                                      size_t *size, void **con_cls)
{
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t tls = ci ? (gnutls_session_t)ci->tls_session : NULL;
        const gnutls_datum_t *peers;
        unsigned n = 0, status = 1;
        char cn[128] = "", body[160];
        size_t cnlen = sizeof(cn) - 1;
        gnutls_x509_crt_t crt;

        if (tls && (peers = gnutls_certificate_get_peers(tls, &n)) && n > 0 &&
            gnutls_certificate_verify_peers2(tls, &status) == 0 && status == 0 &&
            gnutls_x509_crt_init(&crt) == 0) {
                if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0)
                        gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cnlen);
                gnutls_x509_crt_deinit(crt);
        }
        if (!cn[0])
                return answer(c, 403, "no client certificate", 21);
        snprintf(body, sizeof(body), "client %s", cn);
        return answer(c, 200, body, strlen(body));
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
        char p[256];
        FILE *f;
        char *buf = calloc(1, 1 << 16);

        snprintf(p, sizeof(p), "%s/%s", dir, name);
        f = fopen(p, "re");
        assert_non_null(f);
        *len = fread(buf, 1, (1 << 16) - 1, f);
        fclose(f);
        return buf;
}

struct tls_res {
        int done, err;
        long status;
        char body[128];
};

static void on_tls_done(void *ud, int err, long status, const char *body, size_t len, long long tc)
{
        struct tls_res *r = ud;

        r->done++;
        r->err = err;
        r->status = status;
        snprintf(r->body, sizeof(r->body), "%s", body ? body : "");
}

static void test_tls_material_in_memory(void **state)
{
        char dir[96], cmd[2048], url[64];
        size_t ca_len, crt_len, key_len, scrt_len, skey_len;

        snprintf(dir, sizeof(dir), "%s/tls", tmpdir);
        snprintf(cmd, sizeof(cmd),
                 "set -e; mkdir -p %s; cd %s; exec >/dev/null 2>&1; "
                 "k='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'; "
                 "openssl req -x509 $k -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca; "
                 "printf 'subjectAltName=IP:127.0.0.1\\n' > srv.ext; "
                 "openssl req $k -keyout srv.key -out srv.csr -subj /CN=127.0.0.1; "
                 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 1 -extfile srv.ext; "
                 "openssl req $k -keyout cli.key -out cli.csr -subj /CN=forgescale; "
                 "openssl x509 -req -in cli.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cli.pem -days 1",
                 dir, dir);
        assert_int_equal(system(cmd), 0);
        char *ca = slurp(dir, "ca.pem", &ca_len), *crt = slurp(dir, "cli.pem", &crt_len);
        char *key = slurp(dir, "cli.key", &key_len), *scrt = slurp(dir, "srv.pem", &scrt_len);
        char *skey = slurp(dir, "srv.key", &skey_len);

        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t alen = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
        assert_int_equal(listen(fd, 16), 0);
        struct MHD_Daemon *d = MHD_start_daemon(
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_TLS, 0, NULL, NULL,
                on_tls_request, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_HTTPS_MEM_KEY, skey,
                MHD_OPTION_HTTPS_MEM_CERT, scrt, MHD_OPTION_HTTPS_MEM_TRUST, ca, MHD_OPTION_END);
        assert_non_null(d);
        snprintf(url, sizeof(url), "https://127.0.0.1:%u/who", (unsigned)ntohs(a.sin_port));

        /* The CA and the client identity from memory: verified both ways. */
        struct tls_res r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
        struct hmulti_req req = { .url = url, .ca_pem = ca, .ca_pem_len = ca_len, .cert_pem = crt,
                                  .cert_pem_len = crt_len, .key_pem = key, .key_pem_len = key_len };
        assert_int_equal(hmulti_start(HM, &req, on_tls_done, &r1, NULL), 0);
        /* The copies are hmulti's: the caller's buffers may go at once. */
        char *key_copy = strdup(key);
        memset(key, 'x', key_len);
        assert_true(run_until(&r1.done, 1, 10000));
        assert_int_equal(r1.err, 0);
        assert_int_equal(r1.status, 200);
        assert_string_equal(r1.body, "client forgescale");

        /* Without the client certificate the server refuses. */
        struct hmulti_req noid = { .url = url, .ca_pem = ca, .ca_pem_len = ca_len };
        assert_int_equal(hmulti_start(HM, &noid, on_tls_done, &r2, NULL), 0);
        assert_true(run_until(&r2.done, 1, 10000));
        assert_int_equal(r2.err, 0);
        assert_int_equal(r2.status, 403);

        /* Without the CA the server's certificate is not trusted. */
        struct hmulti_req noca = { .url = url, .cert_pem = crt, .cert_pem_len = crt_len, .key_pem = key_copy,
                                   .key_pem_len = key_len };
        assert_int_equal(hmulti_start(HM, &noca, on_tls_done, &r3, NULL), 0);
        assert_true(run_until(&r3.done, 1, 10000));
        assert_int_equal(r3.err, -EPROTO);

        hmulti_free(HM);
        HM = NULL;
        assert_int_equal(hmulti_new(L, NULL, &HM), 0);
        MHD_stop_daemon(d);
        free(ca);
        free(crt);
        free(key);
        free(key_copy);
        free(scrt);
        free(skey);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
}

/* Retry-After's seconds reach the caller; a date form and its absence are -1. */
static void test_retry_after(void **state)
{
        char url[128];
        long ra[3] = { 0, 0, 0 };
        struct tls_res r[3] = { 0 };
        const char *paths[3] = { "/throttle", "/throttle?date=1", "/hello" };

        for (int i = 0; i < 3; i++) {
                snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)tcp.port, paths[i]);
                struct hmulti_req req = { .url = url, .retry_after_s = &ra[i] };
                assert_int_equal(hmulti_start(HM, &req, on_tls_done, &r[i], NULL), 0);
        }
        assert_true(run_until(&r[0].done, 1, 5000));
        assert_true(run_until(&r[1].done, 1, 5000));
        assert_true(run_until(&r[2].done, 1, 5000));
        assert_int_equal(r[0].status, 429);
        assert_int_equal(ra[0], 7);
        assert_int_equal(ra[1], -1);
        assert_int_equal(r[2].status, 200);
        assert_int_equal(ra[2], -1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_unix_socket, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unix_admission_per_path, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_body, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_abort_and_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stream_error_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_long_lived_budget, setup, teardown),
                cmocka_unit_test_setup_teardown(test_default_budgets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_origin_config_live, setup, teardown),
                cmocka_unit_test_setup_teardown(test_origin_config_invalid, setup, teardown),
                cmocka_unit_test_setup_teardown(test_tls_material_in_memory, setup, teardown),
                cmocka_unit_test_setup_teardown(test_retry_after, setup, teardown),
        };

        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
