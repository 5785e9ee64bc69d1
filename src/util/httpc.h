/* httpc.h: a blocking HTTP client over libcurl with a hard timeout and a
 * hard cap on response size. One struct httpc keeps one connection alive
 * for reuse; it is not thread-safe (use one per thread). Never logs.
 * The daemon's event loop will drive curl's multi interface separately;
 * this client serves the worker, the tests and command-line tools. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define HTTPC_DEFAULT_MAX_RESPONSE (8u << 20)

struct httpc;

struct httpc_req {
        const char *method;              /* "GET" when NULL */
        const char *url;
        const char *const *headers;      /* NULL-terminated "Name: value" list */
        const char *body;                /* may be NULL */
        size_t body_len;
        long timeout_ms;                 /* whole request; 10 s when 0 */
        size_t max_response;             /* HTTPC_DEFAULT_MAX_RESPONSE when 0 */
        const char *ca_file;             /* optional */
        bool insecure;                   /* skip TLS verification */
        const char *unix_socket;         /* connect to this unix socket instead
                                          * of the URL's host (http:// only) */
};

struct httpc_resp {
        long status;
        char *body;                      /* NUL-terminated, owned */
        size_t len;
        long long total_count;           /* X-Total-Count header, -1 if absent */
        char content_type[128];
        char content_encoding[32];       /* Content-Encoding, "" if absent; the body is as sent */
        char errbuf[256];                /* transport error text on failure */
};

/* Returns NULL only on OOM. */
struct httpc *httpc_new(void);
void httpc_free(struct httpc *h);

/* Performs one request. Returns 0 when an HTTP response arrived (any
 * status), or -ETIMEDOUT, -ECONNREFUSED, -EMSGSIZE (response above the
 * cap), -ECONNRESET, -EIO (other transport errors, text in errbuf).
 * *resp is always initialised; release it with httpc_resp_done(). */
int httpc_do(struct httpc *h, const struct httpc_req *req, struct httpc_resp *resp);
void httpc_resp_done(struct httpc_resp *resp);

/* Must be called once before threads start (curl_global_init). */
void httpc_global_init(void);
