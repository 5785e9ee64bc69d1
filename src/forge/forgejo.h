/* forgejo.h: typed, asynchronous Forgejo (>= 15.0) REST calls over hmulti:
 * version, job listing, runner create/get/list/delete at the four scopes.
 * Owns request building (paths, URL encoding, label queries), response
 * caps, status mapping and runner paging; every body goes through the
 * strict parsers of forgejo_json.h, so bad input from the network is an
 * error with a reason, never a crash. Never logs above debug; never
 * stores, logs or reports the API token or a created runner's token. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "forge/forgejo_json.h"

struct hmulti;
struct forgejo;
struct forgejo_call;

/* ---- scopes ------------------------------------------------------------ */

enum forgejo_scope_kind {
        FORGEJO_SCOPE_INSTANCE = 0,
        FORGEJO_SCOPE_ORG,
        FORGEJO_SCOPE_USER,
        FORGEJO_SCOPE_REPO,
};

#define FORGEJO_NAME_MAX 128     /* bytes of an owner or repo name, NUL included */

struct forgejo_scope {
        enum forgejo_scope_kind kind;
        char owner[FORGEJO_NAME_MAX];    /* org name or repo owner; "" otherwise */
        char repo[FORGEJO_NAME_MAX];     /* repo name; "" otherwise */
};

/* Parses the configuration syntax ("instance", "user", "org/NAME",
 * "repo/OWNER/NAME") with the grammar of util/scope.h, the one `check`
 * applies. Returns 0 or -EINVAL; *ret is set only on success. */
int forgejo_scope_parse(const char *s, struct forgejo_scope *ret);

/* Prints the configuration syntax back ("org/acme"). */
void forgejo_scope_format(const struct forgejo_scope *sc, char *buf, size_t n);

/* The runner API prefix with URL-encoded names:
 * "/api/v1/admin/actions/runners", "/api/v1/orgs/acme/actions/runners",
 * "/api/v1/user/actions/runners", "/api/v1/repos/acme/app/actions/runners".
 * Returns the length, -ENAMETOOLONG when buf is too small, -EINVAL for an
 * invalid scope. */
int forgejo_scope_runners_path(const struct forgejo_scope *sc, char *buf, size_t n);
/* The same prefix followed by "/jobs". */
int forgejo_scope_jobs_path(const struct forgejo_scope *sc, char *buf, size_t n);

/* Percent-encodes everything but RFC 3986 unreserved characters
 * (A-Z a-z 0-9 - . _ ~). Returns the length or -ENAMETOOLONG. */
int forgejo_urlencode(const char *s, char *buf, size_t n);

/* Builds the query string of a job listing, without '?':
 * labels NULL → "" (key omitted: every waiting/running job of the scope);
 * labels = { NULL } → "labels=" (only jobs without runs_on);
 * else "labels=a,b" with each label URL-encoded.
 * A label that is empty or contains ',' cannot be expressed: -EINVAL.
 * Returns the length or -ENAMETOOLONG. */
int forgejo_labels_query(const char *const *labels, char *buf, size_t n);

/* ---- results ----------------------------------------------------------- */

/* Every completion gets one of these. err is 0 or:
 *   -EACCES (401), -EPERM (403), -ENOENT (404), -EINVAL (400/422),
 *   -EEXIST (409), -EAGAIN (429), -EREMOTEIO (5xx), -EPROTO (any other
 *   unexpected status, or a TLS failure), -EBADMSG (the body does not have
 *   the documented shape), -EFBIG (a job listing over max_listing: reason
 *   "listing larger than N bytes"), or a transport error from hmulti
 *   (-ETIMEDOUT, -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH, -EMSGSIZE for
 *   any other body over max_response, -ENOMEM, -EIO).
 * status is the HTTP status (0 when no response arrived). reason is a short
 * printable text for the caller's single log line ("" on success); it never
 * holds a token. route is the route pattern, e.g.
 * "GET /api/v1/orgs/{org}/actions/runners/jobs" (static storage). */
struct forgejo_result {
        int err;
        long status;
        const char *route;
        char reason[160];
};

/* On failure the payload pointer is NULL and res->err < 0. */
typedef void (*forgejo_version_cb)(void *ud, const struct forgejo_result *res,
                                   const struct forgejo_version *v);
typedef void (*forgejo_jobs_cb)(void *ud, const struct forgejo_result *res,
                                const struct forgejo_job_list *jobs);
typedef void (*forgejo_created_cb)(void *ud, const struct forgejo_result *res,
                                   struct forgejo_runner_created *created);
typedef void (*forgejo_runner_cb)(void *ud, const struct forgejo_result *res,
                                  const struct forgejo_runner *runner);
typedef void (*forgejo_runners_cb)(void *ud, const struct forgejo_result *res,
                                   const struct forgejo_runner_list *list);
typedef void (*forgejo_done_cb)(void *ud, const struct forgejo_result *res);
/* token: NULL unless res->err is 0; wiped when the callback returns. */
typedef void (*forgejo_reg_token_cb)(void *ud, const struct forgejo_result *res, const char *token);

/* Called once per completed request, before the call's own callback (not
 * for cancelled calls): for forgescale_forge_requests_total{forge,route,code}.
 * code is the status as text ("200") or "error" when no response arrived. */
struct forgejo_event {
        const char *forge;               /* forgejo_opts.name */
        const char *route;               /* "GET /api/v1/user/actions/runners/jobs" */
        long status;                     /* 0 when no response */
        const char *code;
        int err;                         /* the call's result err */
        int64_t duration_ms;
};
typedef void (*forgejo_hook_cb)(void *ud, const struct forgejo_event *ev);

/* ---- client ------------------------------------------------------------ */

/* The default cap on a job listing's body. Forgejo does not paginate the
 * listing (forgejo-api.md section 1.2), so the body grows with the queue:
 * a job measured 210 bytes (one label, no needs) to 354 bytes (needs,
 * three labels, run_id, html_url). 64 MiB holds 100,000 jobs of up to 671
 * bytes. The parser holds the body and the result (forgejo_json.h): about
 * 40 MB besides a 35 MB body for 100,000 jobs, and 5 us of CPU per job. */
#define FORGEJO_LISTING_MAX (64u << 20)

struct forgejo_opts {
        const char *name;                /* forge name for the hook; copied */
        const char *base_url;            /* "https://code.example/" (path ok); copied */
        const char *token;               /* borrowed: must stay valid and unchanged
                                          * while the client lives; NULL = anonymous */
        long timeout_ms;                 /* per request; 10 s when <= 0 */
        size_t max_response;             /* per response but job listings;
                                          * 8 MiB when 0 */
        size_t max_listing;              /* per job listing;
                                          * FORGEJO_LISTING_MAX when 0 */
        const char *ca_file;             /* copied; optional */
        bool insecure;
};

/* hm is borrowed and must outlive the client (free clients first).
 * Returns 0, -EINVAL (base URL not http(s)://host[...] or with a query,
 * fragment, spaces or control characters; token with control characters)
 * or -ENOMEM. */
int forgejo_new(struct hmulti *hm, const struct forgejo_opts *opts, struct forgejo **ret);
/* Cancels calls in flight without calling their callbacks. Accepts NULL.
 * May be called from one of this client's callbacks. */
void forgejo_free(struct forgejo *f);

void forgejo_set_hook(struct forgejo *f, forgejo_hook_cb cb, void *ud);
size_t forgejo_inflight(const struct forgejo *f);

/* Every call: returns 0 and starts the request (ret, when non-NULL, gets a
 * handle valid until the callback starts or forgejo_cancel()); or -EINVAL,
 * -ENAMETOOLONG, -ENOMEM, -ESHUTDOWN, and then cb is never called. */
void forgejo_cancel(struct forgejo_call *c);

/* GET <scope>/actions/runners/registration-token: the token a runner
 * registers with (runner protocol Register) in that scope. */
int forgejo_registration_token(struct forgejo *f, const struct forgejo_scope *sc,
                               forgejo_reg_token_cb cb, void *ud, struct forgejo_call **ret);

/* GET /api/v1/version. */
int forgejo_version(struct forgejo *f, forgejo_version_cb cb, void *ud, struct forgejo_call **ret);

/* GET <scope>/actions/runners/jobs[?labels=...]; labels as for
 * forgejo_labels_query(). */
int forgejo_list_jobs(struct forgejo *f, const struct forgejo_scope *sc,
                      const char *const *labels, forgejo_jobs_cb cb, void *ud,
                      struct forgejo_call **ret);

/* POST <scope>/actions/runners {name, description, ephemeral}; 201 expected.
 * description may be NULL (""). */
int forgejo_runner_create(struct forgejo *f, const struct forgejo_scope *sc, const char *name,
                          const char *description, bool ephemeral, forgejo_created_cb cb,
                          void *ud, struct forgejo_call **ret);

/* GET <scope>/actions/runners/{id}; -ENOENT when not visible from the scope. */
int forgejo_runner_get(struct forgejo *f, const struct forgejo_scope *sc, int64_t id,
                       forgejo_runner_cb cb, void *ud, struct forgejo_call **ret);

/* DELETE <scope>/actions/runners/{id}; 204 expected; -ENOENT when gone. */
int forgejo_runner_delete(struct forgejo *f, const struct forgejo_scope *sc, int64_t id,
                          forgejo_done_cb cb, void *ud, struct forgejo_call **ret);

/* GET <scope>/actions/runners?page=P&limit=L (page >= 1, 1 <= limit <= 1000).
 * The list carries page, limit, page_count and total_count (X-Total-Count).
 * The server may cap limit (Forgejo's MAX_RESPONSE_ITEMS, 50 by default)
 * and a broken one may ignore page: walk the pages with forgejo_pager. */
int forgejo_runner_list(struct forgejo *f, const struct forgejo_scope *sc, int page, int limit,
                        forgejo_runners_cb cb, void *ud, struct forgejo_call **ret);

/* Paging through GET .../runners (the orphan sweep). Per page: stop when it
 * is empty; when it repeats the previous page (same count, first and last
 * id: a server that ignores page); when X-Total-Count is known and that
 * many elements were seen; without X-Total-Count, when it is shorter than
 * limit; and after FORGEJO_PAGER_MAX_PAGES pages whatever the server says. */
#define FORGEJO_PAGER_MAX_PAGES 10000
struct forgejo_pager {
        int page;                        /* the page to ask for next */
        int limit;
        unsigned long long seen;         /* elements of the pages so far */
        size_t prev_count;
        int64_t prev_first, prev_last;
        const char *stop;                /* why paging ended (static text) */
        bool incomplete;                 /* ended on a repeated page or the page
                                          * limit: some runners may be unseen */
};
void forgejo_pager_init(struct forgejo_pager *p, int limit);
/* Takes the page just received (asked as p->page). Returns true, with
 * p->page advanced, when the next page should be asked; false when the
 * listing is complete, with p->stop set. */
bool forgejo_pager_next(struct forgejo_pager *p, const struct forgejo_runner_list *l);

