/* hmulti.h: asynchronous HTTP requests driven by the daemon's event loop
 * (libcurl multi socket API mapped onto loop_io_* and one loop timer).
 * Owns the curl multi handle, its connection cache (keep-alive, a per-host
 * connection cap), the queue of requests waiting for a connection and every
 * transfer in flight. Never blocks, never logs above debug, never keeps a
 * request header or response after a transfer.
 *
 * Admission: at most max_host_connections transfers per origin (scheme,
 * host, port) are handed to curl at once; the rest wait in hmulti's own
 * FIFO, which holds only the copied request (no curl handle, no buffers),
 * so a burst of thousands of requests costs a few hundred bytes each
 * instead of a curl handle and its 16 KiB buffers. One of those connections
 * is kept for urgent requests: a demand listing never waits behind a
 * backlog of registrations and deletions. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct hmulti;
struct hmulti_xfer;

#define HMULTI_DEFAULT_TIMEOUT_MS 10000L
#define HMULTI_DEFAULT_MAX_RESPONSE (8u << 20)
#define HMULTI_DEFAULT_MAX_HOST_CONNECTIONS 8L

struct hmulti_opts {
        long max_host_connections;   /* HMULTI_DEFAULT_MAX_HOST_CONNECTIONS when 0 */
        long max_total_connections;  /* 0: no total cap */
};

/* Everything is copied by hmulti_start(); the caller may release it as soon
 * as hmulti_start() returns. */
struct hmulti_req {
        const char *method;              /* "GET" when NULL */
        const char *url;                 /* http:// or https:// only */
        const char *const *headers;      /* NULL-terminated "Name: value" list */
        const char *body;                /* may be NULL */
        size_t body_len;
        long timeout_ms;                 /* whole request, queueing included;
                                          * HMULTI_DEFAULT_TIMEOUT_MS when <= 0 */
        size_t max_response;             /* HMULTI_DEFAULT_MAX_RESPONSE when 0 */
        const char *ca_file;             /* optional CA bundle */
        bool insecure;                   /* skip TLS verification */
        bool sensitive;                  /* zero headers, body and the
                                          * response before they are freed */
        bool urgent;                     /* ahead of every non-urgent request
                                          * of its origin, and may use the
                                          * connection kept for urgent ones */
};

/* Completion. err is 0 when an HTTP response arrived (any status; status
 * holds it), else -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EMSGSIZE (body
 * above max_response), -ENOMEM or -EIO, and status is 0. body is
 * NUL-terminated (never NULL on success, "" when empty), borrowed and valid
 * only during the call. total_count is the X-Total-Count header or -1.
 * The xfer handle is invalid from the moment the callback starts. The
 * callback may start and cancel other transfers and may call hmulti_free(). */
typedef void (*hmulti_cb)(void *ud, int err, long status, const char *body, size_t len,
                          long long total_count);

/* Returns 0 with *ret owned by the caller (release with hmulti_free), or
 * -ENOMEM. opts may be NULL. The loop is borrowed and must outlive hm.
 * curl_global_init() must have run (httpc_global_init()). */
int hmulti_new(struct loop *l, const struct hmulti_opts *opts, struct hmulti **ret);

/* Cancels every transfer in flight (no callbacks), removes its fd watchers
 * and timer, and frees hm. Accepts NULL. Safe from within a completion
 * callback (the release is deferred until the callback returns). */
void hmulti_free(struct hmulti *hm);

/* Starts a request. Returns 0 and, when ret is non-NULL, a handle that stays
 * valid until the callback starts or hmulti_cancel(); -EINVAL for a missing
 * url or a scheme other than http/https; -ENOMEM; -ESHUTDOWN after
 * hmulti_free() was called from a callback. On failure cb is never called. */
int hmulti_start(struct hmulti *hm, const struct hmulti_req *req, hmulti_cb cb, void *ud,
                 struct hmulti_xfer **ret);

/* Aborts a transfer; its callback is never called. Accepts NULL. */
void hmulti_cancel(struct hmulti_xfer *x);

/* Transfers started and not yet completed or cancelled (queued ones
 * included). */
size_t hmulti_inflight(const struct hmulti *hm);

struct hmulti_stats {
        unsigned long long started;        /* transfers started */
        unsigned long long queued_total;   /* of which waited in the queue */
        size_t active_peak;                /* most transfers handed to curl at once */
        size_t queued;                     /* waiting in the queue now */
        size_t queued_peak;
        unsigned long long sockets_opened; /* connections ever opened */
        size_t sockets_watched;            /* fds watched in the loop now */
        size_t sockets_watched_peak;
};
void hmulti_get_stats(const struct hmulti *hm, struct hmulti_stats *ret);
