/* server.h: the daemon's HTTP server: libmicrohttpd in external-epoll mode
 * driven by our event loop (no MHD threads, no locks), a route table with
 * {param} path segments, bounded request bodies and deferred responses.
 * The only module that includes microhttpd.h. Never logs above debug;
 * request logging goes through the optional access-log callback. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "http/buffer.h"

struct loop;
struct http_server;
struct http_request;

/* Handler results besides -errno (answered with a 500 JSON error). */
#define HTTP_DONE  0    /* send *resp now */
#define HTTP_DEFER 1    /* answer later with http_response_send() */

#define HTTP_MAX_PARAMS 8
#define HTTP_MAX_HEADERS 16

#define HTTP_DEFAULT_MAX_CONNECTIONS 64
#define HTTP_DEFAULT_MAX_PER_CLIENT 8
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 10000
#define HTTP_DEFAULT_TIMEOUT_S 30
#define HTTP_DEFAULT_MAX_BODY (1u << 20)
#define HTTP_DEFAULT_MAX_HEADER (32u << 10)
#define HTTP_DEFAULT_MAX_RESPONSE (64u << 20)

/* One finished exchange, for the access log. All strings are borrowed for
 * the duration of the callback. */
struct http_access {
        const char *method;
        const char *path;
        const char *remote;     /* "127.0.0.1:40312", "[::1]:40312" */
        int status;             /* 0 when the connection ended without a response */
        size_t bytes_in;        /* request body bytes received */
        size_t bytes_out;       /* response body bytes */
        int64_t duration_ms;    /* headers received -> response completed */
};

typedef void (*http_access_log_fn)(const struct http_access *a, void *ud);

struct http_server_config {
        const char *listen;         /* "127.0.0.1:9464", "[::1]:9464", ":9464"; port 0 picks one */
        unsigned max_connections;   /* 0: HTTP_DEFAULT_MAX_CONNECTIONS */
        unsigned max_per_client;    /* connections per client address (more are closed
                                     * at once); 0: HTTP_DEFAULT_MAX_PER_CLIENT */
        unsigned timeout_s;         /* idle timeout per connection; 0: HTTP_DEFAULT_TIMEOUT_S */
        unsigned request_timeout_ms; /* time a client has to deliver a whole request
                                     * (headers and body), whatever its byte rate: from
                                     * accept, or from the previous answer on a kept-alive
                                     * connection; the connection is closed past it.
                                     * 0: HTTP_DEFAULT_REQUEST_TIMEOUT_MS */
        size_t max_body;            /* request body cap (413 above); 0: HTTP_DEFAULT_MAX_BODY */
        size_t max_header;          /* per-connection memory for the request line and
                                     * headers (431 above); 0: HTTP_DEFAULT_MAX_HEADER */
        size_t max_response;        /* response body cap; 0: HTTP_DEFAULT_MAX_RESPONSE */
        int listen_backlog;         /* connections the kernel queues before accept
                                     * (capped by net.core.somaxconn); 0: 128 */
        http_access_log_fn access_log;  /* optional */
        void *access_log_ud;
};

struct http_header {
        char *name;
        char *value;
};

/* What a handler fills in. The server owns it; it lives as long as the
 * request. */
struct http_response {
        int status;                 /* 200 when left 0 */
        const char *content_type;   /* borrowed, must stay valid until the response is
                                     * sent (normally a literal); "application/json" when NULL */
        struct buffer body;         /* capped at the server's max_response */
        struct http_header headers[HTTP_MAX_HEADERS];   /* via http_response_header() */
        size_t nheaders;
};

/* Called once the whole request (headers and body) has arrived. Returns
 * HTTP_DONE, HTTP_DEFER or -errno. After HTTP_DEFER the request stays
 * valid until http_response_send() or until its abort callback runs; the
 * connection is parked and, as libmicrohttpd does not watch parked
 * connections, a client that goes away is only noticed once answered: the
 * code that defers must answer within a bounded time. */
typedef int (*http_handler_fn)(struct http_request *req, struct http_response *resp, void *ud);

/* Called instead of a response when the server drops a deferred request
 * (http_server_free). req is invalid once it returns. */
typedef void (*http_abort_fn)(struct http_request *req, void *ud);

/* Parses a listen address with hostport_parse() (util/hostport.h): an IP
 * address or localhost (127.0.0.1), no DNS; ":port" means every interface
 * (IPv6 any, dual stack). Returns 0 or -EINVAL. */
int http_server_parse_listen(const char *s, struct sockaddr_storage *ret_addr,
                             socklen_t *ret_len);

/* Binds, listens and starts serving on l. cfg is copied (its strings are
 * not needed afterwards). Returns 0, -EINVAL (bad address or limits),
 * -EADDRINUSE, -EACCES, -ENOMEM or another -errno; *ret is set on success.
 * The loop must outlive the server. */
int http_server_new(struct loop *l, const struct http_server_config *cfg,
                    struct http_server **ret);

/* Stops serving: deferred requests get their abort callback (then a 503),
 * every connection is closed, the listening socket too. Must not be called
 * from inside a handler. Accepts NULL. */
void http_server_free(struct http_server *s);

/* The bound port (useful after listening on port 0). */
uint16_t http_server_port(const struct http_server *s);

/* Open client connections (idle, active and parked). */
unsigned http_server_connections(const struct http_server *s);

/* Adds a route (matched with http/router.h, first added first). method is
 * "GET", "POST", ... (GET routes also answer HEAD). pattern starts with '/'
 * and its segments are literals or "{name}" ([A-Za-z0-9_]+, at most
 * HTTP_MAX_PARAMS); a {name} segment matches one non-empty path segment.
 * Both strings are copied; ud is borrowed. Returns 0, -EINVAL (bad method
 * or pattern), -EEXIST (same method and pattern, parameter names aside,
 * already routed) or -ENOMEM. */
int http_server_route(struct http_server *s, const char *method, const char *pattern,
                      http_handler_fn fn, void *ud);

/* Request accessors. Returned strings are borrowed from the request and
 * valid until it is answered or aborted. */
const char *http_request_method(const struct http_request *req);
/* Percent-decoded path without the query string. */
const char *http_request_path(const struct http_request *req);
/* Value of a {name} segment of the matched route, or NULL. */
const char *http_request_param(const struct http_request *req, const char *name);
/* Decoded query-string value, or NULL when key is absent or has no value. */
const char *http_request_query(const struct http_request *req, const char *key);
/* Request header (case-insensitive name), or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/* The request body, NUL-terminated for convenience ("" when empty). */
const char *http_request_body(const struct http_request *req, size_t *ret_len);
const char *http_request_remote(const struct http_request *req);
/* The response object handed to the handler, to fill a deferred answer. */
struct http_response *http_request_response(struct http_request *req);
/* Registers the callback run if a deferred request is dropped. */
void http_request_on_abort(struct http_request *req, http_abort_fn fn, void *ud);

/* Sends the response of a deferred request; call it exactly once, from
 * any loop callback (including another request's handler). req is invalid
 * for the caller afterwards. */
void http_response_send(struct http_request *req);

/* Response helpers. Each returns 0, -EMSGSIZE (body over max_response),
 * -EINVAL or -ENOMEM. */
/* Sets status and content type and replaces the body with text. */
int http_response_text(struct http_response *r, int status, const char *content_type,
                       const char *text);
/* {"error":"<msg>"} with status, as application/json. */
int http_response_error(struct http_response *r, int status, const char *msg);
/* Adds a header (copied). Rejects CR/LF/NUL-broken names or values and
 * more than HTTP_MAX_HEADERS headers (-ENOSPC). */
int http_response_header(struct http_response *r, const char *name, const char *value);
