/* hmulti.h: asynchronous HTTP requests driven by the daemon's event loop
 * (libcurl multi socket API mapped onto loop_io_* and one loop timer), to
 * TCP origins (http/https) and to unix-socket origins (Docker and Podman
 * Engine APIs). Owns the curl multi handle, its connection cache, the
 * per-origin admission queues and every transfer in flight. Never blocks,
 * never logs above debug, never keeps a request header or response after a
 * transfer, and knows nothing about what it talks to.
 *
 * Origins: "scheme://host[:port]" for a URL, "unix:<path>" for a request
 * sent over a unix socket. Admission is per origin, in three classes:
 *  - ordinary and urgent requests share max_transfers; the rest wait in
 *    hmulti's own FIFO, which holds only the copied request (no curl
 *    handle, no buffers), so a burst of thousands costs a few hundred bytes
 *    each. With two or more, one slot is kept for urgent requests: a demand
 *    listing never waits behind a backlog of registrations and deletions.
 *  - long-lived requests (watches, log follows, event streams) have a
 *    budget of their own (max_long_lived), so a wait that lasts hours never
 *    takes a slot from the short calls to the same origin.
 * Defaults (no hmulti_origin_config): 8 ordinary/urgent, one of them kept
 * for urgent, and 8 long-lived per origin. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct hmulti;
struct hmulti_xfer;

#define HMULTI_DEFAULT_TIMEOUT_MS 10000L
#define HMULTI_DEFAULT_MAX_RESPONSE (8u << 20)
#define HMULTI_DEFAULT_MAX_HOST_CONNECTIONS 8L
#define HMULTI_DEFAULT_MAX_LONG_LIVED 8L
/* Streamed bodies: the most bytes handed to one on_data call. curl hands
 * over up to 16 KiB at once, so a smaller chunk is raised to that. */
#define HMULTI_DEFAULT_CHUNK (64u << 10)
#define HMULTI_MIN_CHUNK (16u << 10)
/* A streamed request's non-2xx answer is buffered (it is an error message,
 * not a stream) up to this size. */
#define HMULTI_MAX_ERROR_BODY (64u << 10)
/* Longest unix socket path (sun_path without its NUL). */
#define HMULTI_UNIX_PATH_MAX 107

struct hmulti_opts {
        long max_host_connections;   /* per-origin max_transfers default;
                                      * HMULTI_DEFAULT_MAX_HOST_CONNECTIONS when 0 */
        long max_total_connections;  /* 0: no total cap */
        long max_long_lived;         /* per-origin max_long_lived default;
                                      * HMULTI_DEFAULT_MAX_LONG_LIVED when 0 */
};

/* Admission of one origin (hmulti_origin_config). */
struct hmulti_origin_opts {
        long max_transfers;          /* ordinary and urgent transfers at once; with
                                      * 2 or more one is kept for urgent ones;
                                      * 0: hmulti_opts.max_host_connections */
        long max_long_lived;         /* long-lived transfers at once, apart from
                                      * max_transfers; 0: hmulti_opts.max_long_lived */
};

/* Streamed body bytes, in order, at most chunk_max at a time; buf is
 * borrowed for the call. Return 0 to go on or a negative errno to abort the
 * transfer: its completion callback then gets that value as err. Runs from
 * the loop like the completion callback, so it may start and cancel
 * transfers (its own too: then nothing more is called) and free hm. */
typedef int (*hmulti_data_cb)(void *ud, const void *buf, size_t n);

/* Everything is copied by hmulti_start(); the caller may release it as soon
 * as hmulti_start() returns. */
struct hmulti_req {
        const char *method;              /* "GET" when NULL */
        const char *url;                 /* http:// or https:// only */
        const char *const *headers;      /* NULL-terminated "Name: value" list */
        const char *body;                /* may be NULL */
        size_t body_len;
        long timeout_ms;                 /* whole request, queueing included (for
                                          * long_lived: until the response headers);
                                          * HMULTI_DEFAULT_TIMEOUT_MS when <= 0 */
        size_t max_response;             /* buffered: HMULTI_DEFAULT_MAX_RESPONSE when 0;
                                          * streamed: total cap, none when 0 */
        const char *ca_file;             /* optional CA bundle */
        /* TLS material in memory, PEM (a kubeconfig's *-data fields, read
         * once): copied, and zeroed before the copy is freed. Each is used
         * when its length is not 0. ca_pem replaces ca_file; cert_pem and
         * key_pem are the client certificate and its private key. */
        const char *ca_pem;
        size_t ca_pem_len;
        const char *cert_pem;
        size_t cert_pem_len;
        const char *key_pem;
        size_t key_pem_len;
        bool insecure;                   /* skip TLS verification */
        bool sensitive;                  /* zero headers, body and the
                                          * response before they are freed */
        bool urgent;                     /* ahead of every non-urgent request
                                          * of its origin, and may use the
                                          * connection kept for urgent ones */
        bool long_lived;                 /* counted in the origin's long-lived
                                          * budget; no time limit once the
                                          * headers are in (cancel to stop); TCP
                                          * keepalive. Not with urgent. */
        const char *unix_socket;         /* connect to this unix socket (absolute
                                          * path, at most HMULTI_UNIX_PATH_MAX
                                          * bytes) instead of the URL's host;
                                          * url must then be http:// and its host
                                          * only fills the Host header. The
                                          * origin is "unix:<path>". */
        hmulti_data_cb on_data;          /* stream a 2xx body to on_data instead
                                          * of buffering it */
        size_t chunk_max;                /* most bytes per on_data call (also the
                                          * only buffer held); HMULTI_DEFAULT_CHUNK
                                          * when 0, HMULTI_MIN_CHUNK at least */
        long *retry_after_s;             /* optional: set before the completion
                                          * callback to the answer's Retry-After
                                          * in seconds (delta form), -1 when absent;
                                          * must stay valid until then */
};

/* Completion. err is 0 when an HTTP response arrived (any status; status
 * holds it), else -ETIMEDOUT, -ECONNREFUSED (also: no such unix socket),
 * -ECONNRESET, -EMSGSIZE (body above its cap), -ENOMEM, -EIO, or the value
 * an on_data callback returned to abort, and status is 0. body is
 * NUL-terminated (never NULL on success, "" when empty and for a streamed
 * 2xx body, which went to on_data), borrowed and valid only during the
 * call. total_count is the X-Total-Count header or -1.
 * The xfer handle is invalid from the moment the callback starts. The
 * callback may start and cancel other transfers and may call hmulti_free(). */
typedef void (*hmulti_cb)(void *ud, int err, long status, const char *body, size_t len,
                          long long total_count);

/* Returns 0 with *ret owned by the caller (release with hmulti_free), or
 * -ENOMEM. opts may be NULL. The loop is borrowed and must outlive hm.
 * curl_global_init() must have run (httpc_global_init()). */
int hmulti_new(struct loop *l, const struct hmulti_opts *opts, struct hmulti **ret);

/* Cancels every transfer in flight (no callbacks), removes its fd watchers
 * and timer, and frees hm. Accepts NULL. Safe from within a completion or
 * data callback (the release is deferred until the callback returns). */
void hmulti_free(struct hmulti *hm);

/* Sets the admission of origin: "http://host[:port]" or "https://..." (a
 * URL's path and query are ignored; compared case-insensitively) or
 * "unix:/path/to.sock". opts is copied. Applies to transfers started later
 * and to queued ones (a larger budget admits them on the next loop pass);
 * running transfers keep their slots. Returns 0, -EINVAL (bad origin,
 * negative value) or -ENOMEM. */
int hmulti_origin_config(struct hmulti *hm, const char *origin,
                         const struct hmulti_origin_opts *opts);

/* Starts a request. Returns 0 and, when ret is non-NULL, a handle that stays
 * valid until the callback starts or hmulti_cancel(); -EINVAL for a missing
 * url, a scheme other than http/https, a bad method, a unix_socket that is
 * not an absolute path of at most HMULTI_UNIX_PATH_MAX bytes or comes with
 * an https url, or urgent together with long_lived; -ENOMEM; -ESHUTDOWN
 * after hmulti_free() was called from a callback. On failure cb is never
 * called. */
int hmulti_start(struct hmulti *hm, const struct hmulti_req *req, hmulti_cb cb, void *ud,
                 struct hmulti_xfer **ret);

/* Aborts a transfer; neither its data nor its completion callback is
 * called again. Accepts NULL. */
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

struct hmulti_origin_stats {
        size_t active;                     /* ordinary and urgent, handed to curl */
        size_t active_long;                /* long-lived, handed to curl */
        size_t queued;                     /* ordinary and urgent, waiting */
        size_t queued_long;                /* long-lived, waiting */
        size_t active_peak;
        size_t active_long_peak;
};
/* origin as for hmulti_origin_config. Returns 0, -EINVAL or -ENOENT (no
 * request or configuration for that origin yet). */
int hmulti_origin_get_stats(const struct hmulti *hm, const char *origin,
                            struct hmulti_origin_stats *ret);
