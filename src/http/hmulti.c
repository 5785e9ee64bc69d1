/* hmulti.c: see hmulti.h. The only file that drives curl's multi interface;
 * it maps curl's socket and timer callbacks onto the loop, admits transfers
 * per origin and class, hands streamed bodies over in bounded chunks and
 * turns finished transfers into one completion callback each. User
 * callbacks (data and completion) run only from the loop's fd/timer
 * callbacks, never from inside a curl callback, so they may start, cancel
 * and free freely; a curl write callback only fills the chunk buffer and
 * pauses the transfer when it is full. Never logs above debug. */
#include "http/hmulti.h"

#include "loop/loop.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

enum { Q_URGENT, Q_NORMAL, Q_LONG, Q_N };

/* One per origin ever requested or configured ("scheme://host:port" or
 * "unix:/path"); the daemon talks to a handful of forges and engines, so a
 * list that lives as long as hm is enough. */
struct origin {
        struct origin *next;
        size_t active;                   /* ordinary and urgent, handed to curl */
        size_t active_long;              /* long-lived, handed to curl */
        size_t cap;                      /* max_transfers */
        size_t cap_long;                 /* max_long_lived */
        size_t nqueued[Q_N];
        size_t active_peak, active_long_peak;
        struct hmulti_xfer *head[Q_N], *tail[Q_N];
        bool is_unix;                    /* key compared byte for byte */
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
        size_t per_host;                 /* default max_transfers per origin */
        size_t per_host_long;            /* default max_long_lived per origin */
        struct hmulti_xfer *spend_head, *spend_tail; /* streamed bytes to hand over */
        struct hmulti_xfer *cur;         /* whose on_data runs; NULLed if cancelled */
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
        int cls;                         /* Q_URGENT, Q_NORMAL or Q_LONG */
        bool queued;
        CURL *easy;                      /* only once admitted */
        /* The request, copied by hmulti_start() and applied on admission. */
        char *url;
        char *unix_path;
        char method[17];
        char *body;
        size_t body_len;
        bool has_body;
        char *ca_file;
        struct curl_blob blob[3];        /* CA, client certificate, client key */
        bool insecure;
        long timeout_ms;
        struct curl_slist *hdrs;
        struct loop_timer *deadline;     /* covers time queued for a connection */
        char *buf;
        size_t len, cap, max;
        long long total_count;
        long retry_after;                /* Retry-After seconds, -1 when absent */
        long *retry_after_out;
        bool overflow;
        bool oom;
        bool sensitive;
        /* Streaming: a 2xx body goes through sbuf (at most scap bytes, the
         * chunk) to on_data; a full sbuf pauses the transfer until the loop
         * has handed it over. */
        hmulti_data_cb on_data;
        bool decided;                    /* 2xx or not is known */
        bool streaming;
        bool paused;
        bool spending;                   /* on hm's spend list */
        char *sbuf;
        size_t slen, scap;
        size_t stotal, smax;             /* smax 0: no total cap */
        struct hmulti_xfer *sprev, *snext;
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

#define UNIX_PREFIX "unix:"

static bool is_http_url(const char *s)
{
        return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* Length of the "scheme://authority" prefix of an http(s) URL. */
static size_t origin_len(const char *url)
{
        const char *p = strstr(url, "://");

        p = p ? p + 3 : url;
        return (size_t)(p + strcspn(p, "/?#") - url);
}

static bool unix_path_ok(const char *p)
{
        return p[0] == '/' && strlen(p) <= HMULTI_UNIX_PATH_MAX;
}

/* Splits an origin as the API takes it ("http[s]://host[:port][/...]" or
 * "unix:/path") into its key. Returns 0 or -EINVAL. */
static int origin_parse(const char *s, size_t *ret_len, bool *ret_unix)
{
        size_t n;

        if (!s)
                return -EINVAL;
        if (strncmp(s, UNIX_PREFIX, strlen(UNIX_PREFIX)) == 0) {
                if (!unix_path_ok(s + strlen(UNIX_PREFIX)))
                        return -EINVAL;
                *ret_len = strlen(s);
                *ret_unix = true;
                return 0;
        }
        if (!is_http_url(s))
                return -EINVAL;
        n = origin_len(s);
        if (s[n - 1] == '/') /* "http://" and no host */
                return -EINVAL;
        *ret_len = n;
        *ret_unix = false;
        return 0;
}

static struct origin *origin_find(const struct hmulti *hm, const char *key, size_t n, bool is_unix)
{
        for (struct origin *o = hm->origins; o; o = o->next) {
                if (o->keylen != n || o->is_unix != is_unix)
                        continue;
                if (is_unix ? memcmp(o->key, key, n) == 0 : strncasecmp(o->key, key, n) == 0)
                        return o;
        }
        return NULL;
}

static struct origin *origin_get(struct hmulti *hm, const char *key, size_t n, bool is_unix)
{
        struct origin *o = origin_find(hm, key, n, is_unix);

        if (o)
                return o;
        o = calloc(1, sizeof(*o) + n + 1);
        if (!o)
                return NULL;
        memcpy(o->key, key, n);
        o->keylen = n;
        o->is_unix = is_unix;
        o->cap = hm->per_host;
        o->cap_long = hm->per_host_long;
        o->next = hm->origins;
        hm->origins = o;
        return o;
}

/* With two or more slots per origin, one is kept for urgent requests, so a
 * listing finds a connection even when a backlog of registrations holds
 * all the others. Long-lived requests count against their own budget. */
static bool can_admit(const struct origin *o, int cls)
{
        size_t cap = o->cap;

        if (cls == Q_LONG)
                return o->active_long < o->cap_long;
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
        o->nqueued[x->cls]++;
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
        o->nqueued[x->cls]--;
        x->qprev = x->qnext = NULL;
        x->queued = false;
        x->hm->stats.queued--;
}

/* ---- streamed bytes waiting for the loop ---------------------------- */

static void spend_add(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;

        if (x->spending)
                return;
        x->snext = NULL;
        x->sprev = hm->spend_tail;
        if (hm->spend_tail)
                hm->spend_tail->snext = x;
        else
                hm->spend_head = x;
        hm->spend_tail = x;
        x->spending = true;
}

static void spend_remove(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;

        if (!x->spending)
                return;
        if (x->sprev)
                x->sprev->snext = x->snext;
        else
                hm->spend_head = x->snext;
        if (x->snext)
                x->snext->sprev = x->sprev;
        else
                hm->spend_tail = x->sprev;
        x->sprev = x->snext = NULL;
        x->spending = false;
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
        spend_remove(x);
        if (hm->cur == x)
                hm->cur = NULL;
        if (x->queued) {
                q_remove(x);
        } else if (x->easy) {
                if (x->cls == Q_LONG)
                        x->org->active_long--;
                else
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
                if (x->sbuf)
                        explicit_bzero(x->sbuf, x->scap);
                if (x->body)
                        explicit_bzero(x->body, x->body_len);
        }
        for (size_t i = 0; i < 3; i++) {
                /* Keys are secret whatever the request says. */
                if (x->blob[i].data)
                        explicit_bzero(x->blob[i].data, x->blob[i].len);
                free(x->blob[i].data);
        }
        curl_slist_free_all(x->hdrs);
        free(x->url);
        free(x->unix_path);
        free(x->sbuf);
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
        if (x->retry_after_out)
                *x->retry_after_out = err == 0 ? x->retry_after : -1;
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

                if (o->head[Q_URGENT] && can_admit(o, Q_URGENT))
                        cls = Q_URGENT;
                else if (o->head[Q_NORMAL] && can_admit(o, Q_NORMAL))
                        cls = Q_NORMAL;
                else if (o->head[Q_LONG] && can_admit(o, Q_LONG))
                        cls = Q_LONG;
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

/* Hands x's buffered stream bytes to on_data and lets curl go on if the
 * full buffer had paused it. Runs only from loop callbacks. Returns false
 * when x is gone: cancelled or aborted by the callback, or hm freed. */
static bool deliver_one(struct hmulti_xfer *x)
{
        struct hmulti *hm = x->hm;

        spend_remove(x);
        if (x->slen) {
                size_t n = x->slen;
                int r;

                x->slen = 0;
                hm->cur = x;
                r = x->on_data(x->ud, x->sbuf, n);
                if (hm->cur != x || hm->free_pending)
                        return false;
                hm->cur = NULL;
                if (x->sensitive)
                        explicit_bzero(x->sbuf, n);
                if (r < 0) {
                        finish(x, r);
                        return false;
                }
        }
        if (x->paused) {
                CURLcode cc;

                x->paused = false;
                /* curl hands what it held back to on_body right away,
                 * which may fill the buffer and queue x again. When on_body
                 * refuses it (cap, memory), curl reports it here and
                 * nowhere else: the transfer would sit there. */
                cc = curl_easy_pause(x->easy, CURLPAUSE_CONT);
                if (cc != CURLE_OK) {
                        finish(x, map_curl_error(x, cc));
                        return false;
                }
        }
        return true;
}

static void deliver(struct hmulti *hm)
{
        while (!hm->free_pending && hm->spend_head)
                (void)deliver_one(hm->spend_head);
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
                /* The last bytes go before the completion. */
                if (x->spending && !deliver_one(x))
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
        deliver(hm);
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
        deliver(hm);
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

/* A streamed 2xx body: only buffers the bytes for the loop to hand over
 * (see deliver_one); user code never runs inside curl. */
static size_t stream_body(struct hmulti_xfer *x, const char *p, size_t n)
{
        if (x->smax && n > x->smax - x->stotal) {
                x->overflow = true;
                return 0;
        }
        if (n > x->scap - x->slen) {
                /* curl never hands over more than HMULTI_MIN_CHUNK at once,
                 * so an empty buffer always takes a piece. */
                if (x->slen == 0) {
                        x->overflow = true;
                        return 0;
                }
                x->paused = true;
                return CURL_WRITEFUNC_PAUSE;
        }
        if (!x->sbuf) {
                x->sbuf = malloc(x->scap);
                if (!x->sbuf) {
                        x->oom = true;
                        return 0;
                }
        }
        memcpy(x->sbuf + x->slen, p, n);
        x->slen += n;
        x->stotal += n;
        spend_add(x);
        return n;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
        struct hmulti_xfer *x = ud;
        size_t n = sz * nm;

        if (x->on_data && !x->decided) {
                long status = 0;
                curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
                x->decided = true;
                x->streaming = status >= 200 && status <= 299;
                if (!x->streaming)
                        x->max = HMULTI_MAX_ERROR_BODY;
        }
        if (x->streaming)
                return stream_body(x, p, n);
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
        static const char ra[] = "retry-after:";

        /* A new status line starts a new response (e.g. after a 100). */
        if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
                x->total_count = -1;
                x->retry_after = -1;
        } else if (x->cls == Q_LONG && x->deadline && (p[0] == '\r' || p[0] == '\n')) {
                /* The end of a header block: once a final answer is in, a
                 * long-lived transfer runs until it ends or is cancelled. */
                long status = 0;
                curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
                if (status >= 200) {
                        loop_timer_cancel(x->hm->loop, x->deadline);
                        x->deadline = NULL;
                }
        }
        else if (n > sizeof(tc) - 1 && strncasecmp(p, tc, sizeof(tc) - 1) == 0)
                x->total_count = parse_count(p + sizeof(tc) - 1, n - (sizeof(tc) - 1));
        else if (n > sizeof(ra) - 1 && strncasecmp(p, ra, sizeof(ra) - 1) == 0) {
                /* Only the delta-seconds form; an HTTP date counts as absent. */
                long long v = parse_count(p + sizeof(ra) - 1, n - (sizeof(ra) - 1));
                x->retry_after = v < 0 ? -1 : v > 86400 ? 86400 : (long)v;
        }
        return n;
}

/* ---- public API -------------------------------------------------------- */

int hmulti_new(struct loop *l, const struct hmulti_opts *opts, struct hmulti **ret)
{
        struct hmulti *hm = calloc(1, sizeof(*hm));
        long per_host = opts && opts->max_host_connections > 0 ? opts->max_host_connections
                                                               : HMULTI_DEFAULT_MAX_HOST_CONNECTIONS;
        long per_host_long = opts && opts->max_long_lived > 0 ? opts->max_long_lived
                                                              : HMULTI_DEFAULT_MAX_LONG_LIVED;

        if (!hm)
                return -ENOMEM;
        hm->loop = l;
        hm->per_host = (size_t)per_host;
        hm->per_host_long = (size_t)per_host_long;
        hm->multi = curl_multi_init();
        if (!hm->multi) {
                free(hm);
                return -ENOMEM;
        }
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
        curl_multi_setopt(hm->multi, CURLMOPT_SOCKETDATA, hm);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
        curl_multi_setopt(hm->multi, CURLMOPT_TIMERDATA, hm);
        /* No per-host cap in curl: admission above bounds each origin, and
         * curl's cap is per host name, which unix-socket origins share. */
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
        /* A long-lived transfer's deadline timer covers it until its
         * headers are in; after that only a cancel ends it. */
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, x->cls == Q_LONG ? 0L : x->timeout_ms);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, x->timeout_ms);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, hm);
        /* A streamed body's cap is checked as it flows (an error body
         * has a cap of its own). */
        if (!x->on_data)
                curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
        /* Only http(s), never a redirect: following one could carry the
         * Authorization header to another host. */
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        if (x->unix_path &&
            curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, x->unix_path) != CURLE_OK)
                goto oom;
        if (x->cls == Q_LONG && !x->unix_path) {
                /* A peer gone without a FIN must not leave a watch hanging. */
                curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
                curl_easy_setopt(c, CURLOPT_TCP_KEEPIDLE, 60L);
                curl_easy_setopt(c, CURLOPT_TCP_KEEPINTVL, 30L);
        }
        if (x->ca_file)
                curl_easy_setopt(c, CURLOPT_CAINFO, x->ca_file);
        /* x owns the blobs until it is freed (after the handle): no copy. */
        if (x->blob[0].data && curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &x->blob[0]) != CURLE_OK)
                goto oom;
        if (x->blob[1].data) {
                if (curl_easy_setopt(c, CURLOPT_SSLCERT_BLOB, &x->blob[1]) != CURLE_OK)
                        goto oom;
                curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
        }
        if (x->blob[2].data) {
                if (curl_easy_setopt(c, CURLOPT_SSLKEY_BLOB, &x->blob[2]) != CURLE_OK)
                        goto oom;
                curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
        }
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
        if (x->cls == Q_LONG) {
                if (++x->org->active_long > x->org->active_long_peak)
                        x->org->active_long_peak = x->org->active_long;
        } else if (++x->org->active > x->org->active_peak) {
                x->org->active_peak = x->org->active;
        }
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

        char ukey[sizeof(UNIX_PREFIX) + HMULTI_UNIX_PATH_MAX];
        const char *key;
        size_t keylen;

        if (hm->free_pending || hm->destroying)
                return -ESHUTDOWN;
        if (!cb || !req->url || !method_ok(m) || !is_http_url(req->url) ||
            (req->urgent && req->long_lived))
                return -EINVAL;
        if (req->unix_socket) {
                /* TLS over a local socket is not a thing engines do. */
                if (!unix_path_ok(req->unix_socket) || strncasecmp(req->url, "http://", 7) != 0)
                        return -EINVAL;
                keylen = (size_t)snprintf(ukey, sizeof(ukey), UNIX_PREFIX "%s", req->unix_socket);
                key = ukey;
        } else {
                key = req->url;
                keylen = origin_len(req->url);
        }
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->hm = hm;
        x->cb = cb;
        x->ud = ud;
        x->total_count = -1;
        x->retry_after = -1;
        x->retry_after_out = req->retry_after_s;
        x->sensitive = req->sensitive;
        x->cls = req->urgent ? Q_URGENT : req->long_lived ? Q_LONG : Q_NORMAL;
        x->timeout_ms = timeout;
        x->insecure = req->insecure;
        x->max = req->max_response ? req->max_response : HMULTI_DEFAULT_MAX_RESPONSE;
        if (x->max > SIZE_MAX / 4)
                x->max = SIZE_MAX / 4;
        x->on_data = req->on_data;
        if (x->on_data) {
                x->smax = req->max_response;
                x->scap = req->chunk_max ? req->chunk_max : HMULTI_DEFAULT_CHUNK;
                if (x->scap < HMULTI_MIN_CHUNK)
                        x->scap = HMULTI_MIN_CHUNK;
                if (x->scap > SIZE_MAX / 4)
                        x->scap = SIZE_MAX / 4;
        }
        memcpy(x->method, m, strlen(m) + 1);
        x->url = strdup(req->url);
        x->ca_file = req->ca_file ? strdup(req->ca_file) : NULL;
        x->unix_path = req->unix_socket ? strdup(req->unix_socket) : NULL;
        oom = !x->url || (req->ca_file && !x->ca_file) || (req->unix_socket && !x->unix_path);
        {
                const char *src[3] = { req->ca_pem, req->cert_pem, req->key_pem };
                size_t len[3] = { req->ca_pem_len, req->cert_pem_len, req->key_pem_len };
                for (size_t i = 0; i < 3 && !oom; i++) {
                        if (!len[i] || !src[i])
                                continue;
                        if (!(x->blob[i].data = malloc(len[i]))) {
                                oom = true;
                                break;
                        }
                        memcpy(x->blob[i].data, src[i], len[i]);
                        x->blob[i].len = len[i];
                        x->blob[i].flags = CURL_BLOB_NOCOPY;
                }
        }
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
        if (oom || !(x->org = origin_get(hm, key, keylen, req->unix_socket != NULL))) {
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
        if (!x->org->head[x->cls] && can_admit(x->org, x->cls)) {
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

/* Admits queued transfers on the next loop pass, where a failed admission
 * can call back. Best effort: without the timer the queue still moves when
 * another transfer ends. */
static void kick_soon(struct hmulti *hm)
{
        if (hm->kick || hm->free_pending || hm->destroying)
                return;
        for (struct origin *o = hm->origins; o; o = o->next) {
                if (o->head[Q_URGENT] || o->head[Q_NORMAL] || o->head[Q_LONG]) {
                        hm->kick = loop_timer_add(hm->loop, 0, on_kick, hm);
                        return;
                }
        }
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
        if (had_slot)
                kick_soon(hm);
}

int hmulti_origin_config(struct hmulti *hm, const char *origin,
                         const struct hmulti_origin_opts *opts)
{
        struct origin *o;
        size_t n;
        bool is_unix;

        if (!opts || opts->max_transfers < 0 || opts->max_long_lived < 0 ||
            origin_parse(origin, &n, &is_unix) < 0)
                return -EINVAL;
        o = origin_get(hm, origin, n, is_unix);
        if (!o)
                return -ENOMEM;
        o->cap = opts->max_transfers ? (size_t)opts->max_transfers : hm->per_host;
        o->cap_long = opts->max_long_lived ? (size_t)opts->max_long_lived : hm->per_host_long;
        kick_soon(hm);
        return 0;
}

int hmulti_origin_get_stats(const struct hmulti *hm, const char *origin,
                            struct hmulti_origin_stats *ret)
{
        const struct origin *o;
        size_t n;
        bool is_unix;

        if (origin_parse(origin, &n, &is_unix) < 0)
                return -EINVAL;
        o = origin_find(hm, origin, n, is_unix);
        if (!o)
                return -ENOENT;
        *ret = (struct hmulti_origin_stats){
                .active = o->active,
                .active_long = o->active_long,
                .queued = o->nqueued[Q_URGENT] + o->nqueued[Q_NORMAL],
                .queued_long = o->nqueued[Q_LONG],
                .active_peak = o->active_peak,
                .active_long_peak = o->active_long_peak,
        };
        return 0;
}

size_t hmulti_inflight(const struct hmulti *hm)
{
        return hm->inflight;
}

void hmulti_get_stats(const struct hmulti *hm, struct hmulti_stats *ret)
{
        *ret = hm->stats;
}
