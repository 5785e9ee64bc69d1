/* kubefake.h: test harness for kube-fake, the strict fake Kubernetes API
 * server (tools/kube-fake). Starts it as a child on 127.0.0.1 (ephemeral
 * port, binary from $KUBE_FAKE) over TLS material it makes with the openssl
 * CLI in a fresh temp folder (a CA, a server certificate for IP:127.0.0.1,
 * a client certificate with CN "forgescale"), writes kubeconfigs and
 * service-account folders, and offers libcurl helpers for the API, its
 * watches and the /_fake/ control API. The child dies with the test process
 * (PR_SET_PDEATHSIG) and kills its pods' processes when it ends. Never
 * asserts: callers check the results. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct kubefake;

struct kubefake_opts {
        bool no_client_ca;       /* start without --client-ca: certificates are not accepted */
        const char *log_level;   /* --log-level; NULL: "info" */
        const char *token;       /* the first bearer token; NULL: a random one */
        const char *ns;          /* the namespace kubeconfigs and SA folders name; NULL: "default" */
        long start_timeout_ms;   /* 10 s when 0 */
};

/* Makes the temp folder and certificates, starts "kube-fake serve" and waits
 * for its "listening on https://127.0.0.1:PORT" line. opts may be NULL.
 * Returns 0 with *ret (release with kubefake_stop); -ENOENT when $KUBE_FAKE
 * is unset, -ETIMEDOUT when no line came in time, -ECHILD when the child
 * exited first, -EIO when openssl failed, other -errno. */
int kubefake_start(const struct kubefake_opts *opts, struct kubefake **ret);

/* Stops the fake (SIGTERM, SIGKILL after 5 s), removes its temp folder
 * (kept when $KUBEFAKE_KEEP is set) and frees kf (NULL is fine). Returns 0
 * when it ended on SIGTERM, -ESRCH when it had died before, -ETIMEDOUT when
 * it needed SIGKILL, -EPROTO on another exit status. */
int kubefake_stop(struct kubefake *kf);

bool kubefake_alive(struct kubefake *kf);
pid_t kubefake_pid(const struct kubefake *kf);
int kubefake_port(const struct kubefake *kf);

/* Borrowed strings, valid until kubefake_stop(). */
const char *kubefake_url(const struct kubefake *kf);              /* "https://127.0.0.1:PORT" */
const char *kubefake_dir(const struct kubefake *kf);              /* the temp folder */
const char *kubefake_root(const struct kubefake *kf);             /* --root: DIR/root */
const char *kubefake_ca_path(const struct kubefake *kf);          /* PEM */
const char *kubefake_client_cert_path(const struct kubefake *kf); /* PEM, CN forgescale */
const char *kubefake_client_key_path(const struct kubefake *kf);  /* PEM */
const char *kubefake_token_path(const struct kubefake *kf);       /* --token-file */
const char *kubefake_token(const struct kubefake *kf);            /* its current content */

/* Replaces the token the fake accepts (it re-reads the file on every
 * request): requests with the old one get 401 from then on. */
int kubefake_rotate_token(struct kubefake *kf, const char *new_token);

/* A request to the control API: path is "/_fake/faults" or just "faults".
 * json_body may be NULL (no body). Returns the HTTP status (>= 0), or a
 * transport -errno. *resp (may be NULL) gets the parsed body or NULL;
 * the caller releases it. */
int kubefake_ctl(struct kubefake *kf, const char *method, const char *path,
                 const char *json_body, json_t **resp);

/* Writes a kubeconfig (mode 0600) for the fake: the server URL, the CA as
 * certificate-authority-data and either the current token or the client
 * certificate and key as client-certificate-data/client-key-data, all
 * inline base64. */
int kubefake_write_kubeconfig(struct kubefake *kf, const char *path, bool client_cert);

/* Writes an in-cluster service-account folder: token, ca.crt, namespace
 * (creates dir when missing). */
int kubefake_write_sa_dir(struct kubefake *kf, const char *dir);

/* ---- API helpers for tests (libcurl) ---- */

enum kubefake_auth {
        KUBEFAKE_AUTH_TOKEN = 0,     /* Authorization: Bearer <current token> */
        KUBEFAKE_AUTH_CERT,          /* the client certificate */
        KUBEFAKE_AUTH_NONE,
};

struct kubefake_resp {
        long status;
        char *body;                  /* NUL-terminated, owned */
        size_t len;
        json_t *json;                /* the parsed body or NULL */
        char warning[512];           /* the Warning header or "" */
        char retry_after[16];        /* the Retry-After header or "" */
};
void kubefake_resp_done(struct kubefake_resp *r);

/* One request to path (with its query) under the fake's URL; body may be
 * NULL. Returns 0 when a response came (any status) or a transport
 * -errno; *ret is always initialised. */
int kubefake_request(struct kubefake *kf, enum kubefake_auth auth, const char *method,
                     const char *path, const char *body, struct kubefake_resp *ret);
/* Same with an explicit bearer token (a stale one, say). */
int kubefake_request_token(struct kubefake *kf, const char *token, const char *method,
                           const char *path, const char *body, struct kubefake_resp *ret);

/* A streaming watch (path carries ?watch=1...), with the current token.
 * Returns once the response's headers arrived (the watch is registered on
 * the server), -ETIMEDOUT after 5 s without them. */
struct kubefake_watch;
int kubefake_watch_open(struct kubefake *kf, const char *path, struct kubefake_watch **ret);
/* The next event ({"type", "object"}; caller releases; a non-200 answer's
 * body, a Status, comes as one last "event"). Returns 0,
 * -ETIMEDOUT when none came within timeout_ms, -EPIPE when the stream ended
 * cleanly, -ECONNRESET when it broke, -EPROTO on a line that is not JSON. */
int kubefake_watch_next(struct kubefake_watch *w, long timeout_ms, json_t **ret_event);
/* The HTTP status of the watch (0 before headers arrived). */
long kubefake_watch_status(struct kubefake_watch *w);
void kubefake_watch_close(struct kubefake_watch *w);
