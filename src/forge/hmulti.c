/* hmulti.c: see hmulti.h. The only file that drives curl's multi interface;
 * it maps curl's socket and timer callbacks onto the loop and turns finished
 * transfers into one completion callback each. User callbacks run only from
 * the loop's fd/timer callbacks, never from inside a curl callback, so they
 * may start, cancel and free freely. Never logs above debug. */
#include "forge/hmulti.h"

#include "loop/loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

struct hmulti {
        struct loop *loop;
        CURLM *multi;
        struct loop_timer *timer;        /* curl's single timeout */
        struct hmulti_xfer *xfers;       /* in flight, doubly linked */
        size_t inflight;
        int *fds;                        /* fds watched in the loop */
        size_t nfds, capfds;
        unsigned depth;                  /* nesting of loop callbacks */
        bool free_pending;               /* hmulti_free() ran in a callback */
        bool destroying;
        struct hmulti_stats stats;
};

struct hmulti_xfer {
        struct hmulti *hm;
        struct hmulti_xfer *prev, *next;
        CURL *easy;
        struct curl_slist *hdrs;
        struct loop_timer *deadline;     /* covers time queued for a connection */
        char *buf;
        size_t len, cap, max;
        long long total_count;
        bool overflow;
        bool oom;
        bool sensitive;
        hmulti_cb cb;
        void *ud;
};

/* ---- fd bookkeeping ---------------------------------------------------- */

static ssize_t fd_find(const struct hmulti *hm, int fd)
{
        for (size_t i = 0; i < hm->nfds; i++)
                if (hm->fds[i] == fd)
                        return (ssize_t)i;
        return -1;
}

static int fd_track(struct hmulti *hm, int fd)
{
        if (hm->nfds == hm->capfds) {
                size_t ncap = hm->capfds ? hm->capfds * 2 : 16;
                int *n = realloc(hm->fds, ncap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                hm->fds = n;
                hm->capfds = ncap;
        }
        hm->fds[hm->nfds++] = fd;
        hm->stats.sockets_watched = hm->nfds;
        if (hm->nfds > hm->stats.sockets_watched_peak)
                hm->stats.sockets_watched_peak = hm->nfds;
        return 0;
}

static void fd_untrack(struct hmulti *hm, size_t i)
{
        hm->fds[i] = hm->fds[--hm->nfds];
        hm->stats.sockets_watched = hm->nfds;
}

/* ---- transfer lifetime ------------------------------------------------- */

static void xfer_unlink(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;

        if (x->prev)
                x->prev->next = x->next;
        else
                hm->xfers = x->next;
        if (x->next)
                x->next->prev = x->prev;
        x->prev = x->next = NULL;
        hm->inflight--;
}

/* Detaches x from curl and the loop and frees it; x must be unlinked. */
static void xfer_free(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;

        if (x->deadline)
                loop_timer_cancel(hm->loop, x->deadline);
        if (x->easy) {
                curl_multi_remove_handle(hm->multi, x->easy);
                curl_easy_cleanup(x->easy);
        }
        if (x->sensitive) {
                for (struct curl_slist *s = x->hdrs; s; s = s->next)
                        explicit_bzero(s->data, strlen(s->data));
                if (x->buf)
                        explicit_bzero(x->buf, x->cap);
        }
        curl_slist_free_all(x->hdrs);
        free(x->buf);
        free(x);
}

static void destroy(struct hmulti *hm)
{
        hm->destroying = true;
        while (hm->xfers) {
                struct hmulti_xfer *x = hm->xfers;
                xfer_unlink(x);
                xfer_free(x);
        }
        /* Closes the cached connections; curl may report REMOVE for some. */
        curl_multi_cleanup(hm->multi);
        for (size_t i = 0; i < hm->nfds; i++)
                loop_io_del(hm->loop, hm->fds[i]);
        if (hm->timer)
                loop_timer_cancel(hm->loop, hm->timer);
        free(hm->fds);
        free(hm);
}

static void enter(struct hmulti *hm)
{
        hm->depth++;
}

/* Returns false when hm was released and must not be touched again. */
static bool leave(struct hmulti *hm)
{
        if (--hm->depth == 0 && hm->free_pending) {
                destroy(hm);
                return false;
        }
        return true;
}

static int map_curl_error(const struct hmulti_xfer *x, CURLcode cc)
{
        if (x->overflow || cc == CURLE_FILESIZE_EXCEEDED)
                return -EMSGSIZE;
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return -EPROTO;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_WRITE_ERROR:
                return x->oom ? -ENOMEM : -EIO;
        default:
                return -EIO;
        }
}

/* Unlinks x, calls its callback once and frees it. Runs only from loop
 * callbacks (inside enter/leave). */
static void finish(struct hmulti_xfer *x, int err)
{
        struct hmulti *hm = x->hm;
        long status = 0;

        xfer_unlink(x);
        if (x->deadline) {
                loop_timer_cancel(hm->loop, x->deadline);
                x->deadline = NULL;
        }
        curl_multi_remove_handle(hm->multi, x->easy);
        if (err == 0) {
                curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
                if (!x->buf) {
                        x->buf = calloc(1, 1);
                        x->cap = 1;
                        if (!x->buf)
                                err = -ENOMEM;
                }
        }
        if (err == 0)
                x->cb(x->ud, 0, status, x->buf, x->len, x->total_count);
        else
                x->cb(x->ud, err, 0, NULL, 0, -1);
        xfer_free(x);
}

static void drain(struct hmulti *hm)
{
        CURLMsg *m;
        int left;

        while (!hm->free_pending && (m = curl_multi_info_read(hm->multi, &left))) {
                if (m->msg != CURLMSG_DONE)
                        continue;
                CURL *e = m->easy_handle;
                CURLcode cc = m->data.result;
                void *priv = NULL;
                curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
                struct hmulti_xfer *x = priv;
                if (!x)
                        continue;
                finish(x, cc == CURLE_OK ? 0 : map_curl_error(x, cc));
        }
}

/* ---- loop side --------------------------------------------------------- */

static void on_io(struct loop *l, int fd, unsigned events, void *ud)
{
        struct hmulti *hm = ud;
        int mask = 0, running;

        if (events & LOOP_READ)
                mask |= CURL_CSELECT_IN;
        if (events & LOOP_WRITE)
                mask |= CURL_CSELECT_OUT;
        enter(hm);
        curl_multi_socket_action(hm->multi, fd, mask, &running);
        drain(hm);
        leave(hm);
}

static void on_timer(struct loop *l, void *ud)
{
        struct hmulti *hm = ud;
        int running;

        hm->timer = NULL;
        enter(hm);
        curl_multi_socket_action(hm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        drain(hm);
        leave(hm);
}

static void on_deadline(struct loop *l, void *ud)
{
        struct hmulti_xfer *x = ud;
        struct hmulti *hm = x->hm;

        x->deadline = NULL;
        enter(hm);
        finish(x, -ETIMEDOUT);
        leave(hm);
}

/* ---- curl side --------------------------------------------------------- */

static int on_curl_socket(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
        struct hmulti *hm = userp;
        ssize_t i = fd_find(hm, s);
        unsigned ev = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (i >= 0) {
                        loop_io_del(hm->loop, s);
                        fd_untrack(hm, (size_t)i);
                }
                return 0;
        }
        if (hm->destroying)
                return 0;
        if (what & CURL_POLL_IN)
                ev |= LOOP_READ;
        if (what & CURL_POLL_OUT)
                ev |= LOOP_WRITE;
        if (i >= 0) {
                r = loop_io_mod(hm->loop, s, ev);
                if (r >= 0)
                        return 0;
                /* The fd number was closed and reused behind our back. */
                loop_io_del(hm->loop, s);
                r = loop_io_add(hm->loop, s, ev, on_io, hm);
                return r < 0 ? -1 : 0;
        }
        r = loop_io_add(hm->loop, s, ev, on_io, hm);
        if (r == -EEXIST) {
                loop_io_del(hm->loop, s);
                r = loop_io_add(hm->loop, s, ev, on_io, hm);
        }
        if (r < 0)
                return -1;
        if (fd_track(hm, s) < 0) {
                loop_io_del(hm->loop, s);
                return -1;
        }
        return 0;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
        struct hmulti *hm = userp;

        if (hm->timer) {
                loop_timer_cancel(hm->loop, hm->timer);
                hm->timer = NULL;
        }
        if (timeout_ms < 0 || hm->destroying)
                return 0;
        hm->timer = loop_timer_add(hm->loop, timeout_ms, on_timer, hm);
        return hm->timer ? 0 : -1;
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
        struct hmulti *hm = clientp;
        int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

        if (fd < 0)
                return CURL_SOCKET_BAD;
        hm->stats.sockets_opened++;
        return fd;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
        struct hmulti_xfer *x = ud;
        size_t n = sz * nm;

        if (n > x->max - x->len) {
                x->overflow = true;
                return 0;
        }
        if (x->len + n + 1 > x->cap) {
                size_t ncap = x->cap ? x->cap : 1024;
                while (ncap < x->len + n + 1)
                        ncap *= 2;
                if (ncap > x->max + 1)
                        ncap = x->max + 1;
                char *b = malloc(ncap);
                if (!b) {
                        x->oom = true;
                        return 0;
                }
                if (x->buf) {
                        memcpy(b, x->buf, x->len);
                        if (x->sensitive)
                                explicit_bzero(x->buf, x->cap);
                        free(x->buf);
                }
                x->buf = b;
                x->cap = ncap;
        }
        memcpy(x->buf + x->len, p, n);
        x->len += n;
        x->buf[x->len] = '\0';
        return n;
}

static long long parse_count(const char *p, size_t n)
{
        long long v = 0;
        size_t i = 0;

        while (i < n && (p[i] == ' ' || p[i] == '\t'))
                i++;
        size_t start = i;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
                if (v > (INT64_MAX - 9) / 10)
                        return -1;
                v = v * 10 + (p[i] - '0');
                i++;
        }
        if (i == start)
                return -1;
        while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
                i++;
        return i == n ? v : -1;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
        struct hmulti_xfer *x = ud;
        size_t n = sz * nm;
        static const char tc[] = "x-total-count:";

        /* A new status line starts a new response (e.g. after a 100). */
        if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
                x->total_count = -1;
        else if (n > sizeof(tc) - 1 && strncasecmp(p, tc, sizeof(tc) - 1) == 0)
                x->total_count = parse_count(p + sizeof(tc) - 1, n - (sizeof(tc) - 1));
        return n;
}

/* ---- public API -------------------------------------------------------- */

int hmulti_new(struct loop *l, const struct hmulti_opts *opts, struct hmulti **ret)
{
        struct hmulti *hm = calloc(1, sizeof(*hm));
        long per_host = opts && opts->max_host_connections > 0 ? opts->max_host_connections
                                                               : HMULTI_DEFAULT_MAX_HOST_CONNECTIONS;

        if (!hm)
                return -ENOMEM;
        hm->loop = l;
        hm->multi = curl_multi_init();
        if (!hm->multi) {
                free(hm);
                return -ENOMEM;
        }
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETDATA, hm);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERDATA, hm);
        curl_multi_setopt(hm->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
        if (opts && opts->max_total_connections > 0)
                curl_multi_setopt(hm->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                  opts->max_total_connections);
        *ret = hm;
        return 0;
}

void hmulti_free(struct hmulti *hm)
{
        if (!hm)
                return;
        if (hm->depth > 0) {
                /* Inside a completion callback: stop everything now, release
                 * the structure once the loop callback unwinds. */
                hm->free_pending = true;
                while (hm->xfers) {
                        struct hmulti_xfer *x = hm->xfers;
                        xfer_unlink(x);
                        xfer_free(x);
                }
                return;
        }
        destroy(hm);
}

static bool method_ok(const char *m)
{
        size_t n = strlen(m);

        if (n == 0 || n > 16)
                return false;
        for (size_t i = 0; i < n; i++)
                if (m[i] < 'A' || m[i] > 'Z')
                        return false;
        return true;
}

int hmulti_start(struct hmulti *hm, const struct hmulti_req *req, hmulti_cb cb, void *ud,
                 struct hmulti_xfer **ret)
{
        const char *m = req->method ? req->method : "GET";
        long timeout = req->timeout_ms > 0 ? req->timeout_ms : HMULTI_DEFAULT_TIMEOUT_MS;
        struct hmulti_xfer *x = NULL;
        CURL *c;
        int r;

        if (hm->free_pending || hm->destroying)
                return -ESHUTDOWN;
        if (!cb || !req->url || !method_ok(m) ||
            (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0))
                return -EINVAL;
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->hm = hm;
        x->cb = cb;
        x->ud = ud;
        x->total_count = -1;
        x->sensitive = req->sensitive;
        x->max = req->max_response ? req->max_response : HMULTI_DEFAULT_MAX_RESPONSE;
        if (x->max > SIZE_MAX / 4)
                x->max = SIZE_MAX / 4;
        x->easy = c = curl_easy_init();
        if (!c) {
                r = -ENOMEM;
                goto err;
        }
        for (const char *const *p = req->headers; p && *p; p++) {
                struct curl_slist *n = curl_slist_append(x->hdrs, *p);
                if (!n) {
                        r = -ENOMEM;
                        goto err;
                }
                x->hdrs = n;
        }
        /* "Expect: 100-continue" would cost a round trip per POST. */
        struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");
        if (!n) {
                r = -ENOMEM;
                goto err;
        }
        x->hdrs = n;

        if (curl_easy_setopt(c, CURLOPT_URL, req->url) != CURLE_OK) {
                r = -ENOMEM;
                goto err;
        }
        curl_easy_setopt(c, CURLOPT_PRIVATE, x);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, hm);
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
        /* Only http(s), never a redirect: following one could carry the
         * Authorization header to another host. */
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        if (req->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
        if (req->insecure) {
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (strcmp(m, "GET") == 0) {
                curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        } else {
                if (strcmp(m, "HEAD") == 0)
                        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
                else if (strcmp(m, "POST") != 0)
                        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
                if (req->body || strcmp(m, "POST") == 0) {
                        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                                         (curl_off_t)(req->body ? req->body_len : 0));
                        if (curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS,
                                             req->body ? req->body : "") != CURLE_OK) {
                                r = -ENOMEM;
                                goto err;
                        }
                }
        }

        x->deadline = loop_timer_add(hm->loop, timeout, on_deadline, x);
        if (!x->deadline) {
                r = -ENOMEM;
                goto err;
        }
        if (curl_multi_add_handle(hm->multi, c) != CURLM_OK) {
                r = -ENOMEM;
                goto err;
        }
        x->next = hm->xfers;
        if (hm->xfers)
                hm->xfers->prev = x;
        hm->xfers = x;
        hm->inflight++;
        hm->stats.started++;
        if (ret)
                *ret = x;
        return 0;
err:
        if (x->deadline)
                loop_timer_cancel(hm->loop, x->deadline);
        x->deadline = NULL;
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
        if (x->sensitive)
                for (struct curl_slist *s = x->hdrs; s; s = s->next)
                        explicit_bzero(s->data, strlen(s->data));
        curl_slist_free_all(x->hdrs);
        free(x);
        return r;
}

void hmulti_cancel(struct hmulti_xfer *x)
{
        if (!x)
                return;
        xfer_unlink(x);
        xfer_free(x);
}

size_t hmulti_inflight(const struct hmulti *hm)
{
        return hm->inflight;
}

void hmulti_get_stats(const struct hmulti *hm, struct hmulti_stats *ret)
{
        *ret = hm->stats;
}
