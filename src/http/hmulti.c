/* hmulti.c: see hmulti.h. The only file that drives curl's multi interface;
 * it maps curl's socket and timer callbacks onto the loop, admits transfers
 * per origin and turns finished transfers into one completion callback each.
 * User callbacks run only from the loop's fd/timer callbacks, never from
 * inside a curl callback, so they may start, cancel and free freely. Never
 * logs above debug. */
#include "http/hmulti.h"

#include "loop/loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum { Q_URGENT, Q_NORMAL };

/* One per scheme://host:port ever requested; the daemon talks to a handful
 * of forges, so a list that lives as long as hm is enough. */
struct origin {
        struct origin *next;
        size_t active;                   /* transfers handed to curl */
        struct hmulti_xfer *head[2], *tail[2];
        size_t keylen;
        char key[];
};

struct hmulti {
        struct loop *loop;
        CURLM *multi;
        struct loop_timer *timer;        /* curl's single timeout */
        struct loop_timer *kick;         /* admit queued transfers (after a cancel) */
        struct hmulti_xfer *xfers;       /* queued and in flight, doubly linked */
        struct origin *origins;
        size_t inflight;
        size_t active;
        size_t per_host;                 /* admission cap per origin */
        int *fds;                        /* fds watched in the loop */
        size_t nfds, capfds;
        unsigned depth;                  /* nesting of loop callbacks */
        bool free_pending;               /* hmulti_free() ran in a callback */
        bool destroying;
        struct hmulti_stats stats;
};

struct hmulti_xfer {
        struct hmulti *hm;
        struct hmulti_xfer *prev, *next; /* hm->xfers */
        struct hmulti_xfer *qprev, *qnext; /* origin queue while queued */
        struct origin *org;
        int cls;                         /* Q_URGENT or Q_NORMAL */
        bool queued;
        CURL *easy;                      /* only once admitted */
        /* The request, copied by hmulti_start() and applied on admission. */
        char *url;
        char method[17];
        char *body;
        size_t body_len;
        bool has_body;
        char *ca_file;
        bool insecure;
        long timeout_ms;
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

/* ---- origins and admission --------------------------------------------- */

/* Length of the "scheme://authority" prefix of an http(s) URL. */
static size_t origin_len(const char *url)
{
        const char *p = strstr(url, "://");

        p = p ? p + 3 : url;
        return (size_t)(p + strcspn(p, "/?#") - url);
}

static struct origin *origin_get(struct hmulti *hm, const char *url)
{
        size_t n = origin_len(url);
        struct origin *o;

        for (o = hm->origins; o; o = o->next)
                if (o->keylen == n && strncasecmp(o->key, url, n) == 0)
                        return o;
        o = calloc(1, sizeof(*o) + n + 1);
        if (!o)
                return NULL;
        memcpy(o->key, url, n);
        o->keylen = n;
        o->next = hm->origins;
        hm->origins = o;
        return o;
}

/* With two or more connections per origin, one is kept for urgent
 * requests, so a listing finds a connection even when a backlog of
 * registrations holds all the others. */
static bool can_admit(const struct hmulti *hm, const struct origin *o, int cls)
{
        size_t cap = hm->per_host;

        if (cls == Q_NORMAL && cap > 1)
                cap--;
        return o->active < cap;
}

static void q_push(struct hmulti_xfer *x)
{
        struct origin *o = x->org;
        struct hmulti *hm = x->hm;

        x->qnext = NULL;
        x->qprev = o->tail[x->cls];
        if (o->tail[x->cls])
                o->tail[x->cls]->qnext = x;
        else
                o->head[x->cls] = x;
        o->tail[x->cls] = x;
        x->queued = true;
        hm->stats.queued_total++;
        if (++hm->stats.queued > hm->stats.queued_peak)
                hm->stats.queued_peak = hm->stats.queued;
}

static void q_remove(struct hmulti_xfer *x)
{
        struct origin *o = x->org;

        if (x->qprev)
                x->qprev->qnext = x->qnext;
        else
                o->head[x->cls] = x->qnext;
        if (x->qnext)
                x->qnext->qprev = x->qprev;
        else
                o->tail[x->cls] = x->qprev;
        x->qprev = x->qnext = NULL;
        x->queued = false;
        x->hm->stats.queued--;
}

/* ---- transfer lifetime ------------------------------------------------- */

/* Takes x out of hm's accounting: the transfer list, its origin's queue or
 * its admission slot. */
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
        if (x->queued) {
                q_remove(x);
        } else if (x->easy) {
                x->org->active--;
                hm->active--;
        }
}

static void wipe_str(char *s)
{
        if (s)
                explicit_bzero(s, strlen(s));
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
                        wipe_str(s->data);
                if (x->buf)
                        explicit_bzero(x->buf, x->cap);
                if (x->body)
                        explicit_bzero(x->body, x->body_len);
        }
        curl_slist_free_all(x->hdrs);
        free(x->url);
        free(x->body);
        free(x->ca_file);
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
        if (hm->kick)
                loop_timer_cancel(hm->loop, hm->kick);
        while (hm->origins) {
                struct origin *o = hm->origins;
                hm->origins = o->next;
                free(o);
        }
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

/* Unlinks x, calls its callback once and frees it, without admitting
 * anything. Runs only from loop callbacks (inside enter/leave). */
static void complete(struct hmulti_xfer *x, int err)
{
        struct hmulti *hm = x->hm;
        long status = 0;

        xfer_unlink(x);
        if (x->deadline) {
                loop_timer_cancel(hm->loop, x->deadline);
                x->deadline = NULL;
        }
        if (x->easy) {
                /* Hands the connection back to the cache before the
                 * callback, which may start the next request on it. */
                curl_multi_remove_handle(hm->multi, x->easy);
                if (err == 0)
                        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        }
        if (err == 0 && !x->buf) {
                x->buf = calloc(1, 1);
                x->cap = 1;
                if (!x->buf)
                        err = -ENOMEM;
        }
        if (err == 0)
                x->cb(x->ud, 0, status, x->buf, x->len, x->total_count);
        else
                x->cb(x->ud, err, 0, NULL, 0, -1);
        xfer_free(x);
}

static int admit(struct hmulti_xfer *x);

/* Admits queued transfers of o while it has free slots, urgent ones first.
 * Runs only from loop callbacks: a transfer that cannot be admitted (no
 * memory for its curl handle) completes with its error here. */
static void dispatch(struct hmulti *hm, struct origin *o)
{
        while (!hm->free_pending && !hm->destroying) {
                int cls;

                if (o->head[Q_URGENT] && can_admit(hm, o, Q_URGENT))
                        cls = Q_URGENT;
                else if (o->head[Q_NORMAL] && can_admit(hm, o, Q_NORMAL))
                        cls = Q_NORMAL;
                else
                        return;
                struct hmulti_xfer *x = o->head[cls];
                q_remove(x);
                int r = admit(x);
                if (r < 0)
                        complete(x, r);
        }
}

/* Completes x and gives its slot to the next queued transfer. */
static void finish(struct hmulti_xfer *x, int err)
{
        struct hmulti *hm = x->hm;
        struct origin *o = x->org;

        complete(x, err);
        dispatch(hm, o);
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

/* Admits what a cancelled transfer's slot let in: hmulti_cancel() may run
 * outside any loop callback, where a failed admission could not call back. */
static void on_kick(struct loop *l, void *ud)
{
        struct hmulti *hm = ud;

        hm->kick = NULL;
        enter(hm);
        for (struct origin *o = hm->origins; o; o = o->next)
                dispatch(hm, o);
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
        hm->per_host = (size_t)per_host;
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

/* Creates x's curl handle from its copied request and hands it to curl.
 * Returns 0 or -ENOMEM (x then has no handle and holds no slot). */
static int admit(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;
        const char *m = x->method;
        CURL *c = curl_easy_init();

        if (!c)
                return -ENOMEM;
        if (curl_easy_setopt(c, CURLOPT_URL, x->url) != CURLE_OK)
                goto oom;
        curl_easy_setopt(c, CURLOPT_PRIVATE, x);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms);
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
        if (x->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, x->ca_file);
        if (x->insecure) {
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
                if (x->has_body) {
                        /* x owns the body until it is freed: no copy. */
                        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
                        curl_easy_setopt(c, CURLOPT_POSTFIELDS, x->body);
                }
        }
        if (curl_multi_add_handle(hm->multi, c) != CURLM_OK)
                goto oom;
        x->easy = c;
        x->org->active++;
        if (++hm->active > hm->stats.active_peak)
                hm->stats.active_peak = hm->active;
        return 0;
oom:
        curl_easy_cleanup(c);
        return -ENOMEM;
}

int hmulti_start(struct hmulti *hm, const struct hmulti_req *req, hmulti_cb cb, void *ud,
                 struct hmulti_xfer **ret)
{
        const char *m = req->method ? req->method : "GET";
        long timeout = req->timeout_ms > 0 ? req->timeout_ms : HMULTI_DEFAULT_TIMEOUT_MS;
        struct hmulti_xfer *x = NULL;
        bool oom = false;
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
        x->cls = req->urgent ? Q_URGENT : Q_NORMAL;
        x->timeout_ms = timeout;
        x->insecure = req->insecure;
        x->max = req->max_response ? req->max_response : HMULTI_DEFAULT_MAX_RESPONSE;
        if (x->max > SIZE_MAX / 4)
                x->max = SIZE_MAX / 4;
        memcpy(x->method, m, strlen(m) + 1);
        x->url = strdup(req->url);
        x->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
        oom = !x->url || (req->ca_file && !x->ca_file);
        if (req->body || strcmp(m, "POST") == 0) {
                x->has_body = true;
                x->body_len = req->body ? req->body_len : 0;
                x->body = malloc(x->body_len + 1);
                if (x->body) {
                        if (x->body_len)
                                memcpy(x->body, req->body, x->body_len);
                        x->body[x->body_len] = '\0';
                } else {
                        oom = true;
                }
        }
        for (const char *const *p = req->headers; p && *p && !oom; p++) {
                struct curl_slist *n = curl_slist_append(x->hdrs, *p);
                if (!n)
                        oom = true;
                else
                        x->hdrs = n;
        }
        /* "Expect: 100-continue" would cost a round trip per POST. */
        if (!oom) {
                struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");
                if (!n)
                        oom = true;
                else
                        x->hdrs = n;
        }
        if (oom || !(x->org = origin_get(hm, req->url))) {
                r = -ENOMEM;
                goto err;
        }
        x->deadline = loop_timer_add(hm->loop, timeout, on_deadline, x);
        if (!x->deadline) {
                r = -ENOMEM;
                goto err;
        }
        /* FIFO within a class: admitted now only when none of its class
         * waits (an urgent one waiting means no slot is free at all). */
        if (!x->org->head[x->cls] && can_admit(hm, x->org, x->cls)) {
                r = admit(x);
                if (r < 0)
                        goto err;
        } else {
                q_push(x);
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
        xfer_free(x);
        return r;
}

void hmulti_cancel(struct hmulti_xfer *x)
{
        struct hmulti *hm;
        bool had_slot;

        if (!x)
                return;
        hm = x->hm;
        had_slot = !x->queued && x->easy;
        xfer_unlink(x);
        xfer_free(x);
        if (had_slot && !hm->kick && !hm->free_pending && !hm->destroying) {
                for (struct origin *o = hm->origins; o; o = o->next) {
                        if (o->head[Q_URGENT] || o->head[Q_NORMAL]) {
                                /* Best effort: without the timer the queue
                                 * still moves when another transfer ends. */
                                hm->kick = loop_timer_add(hm->loop, 0, on_kick, hm);
                                break;
                        }
                }
        }
}

size_t hmulti_inflight(const struct hmulti *hm)
{
        return hm->inflight;
}

void hmulti_get_stats(const struct hmulti *hm, struct hmulti_stats *ret)
{
        *ret = hm->stats;
}
