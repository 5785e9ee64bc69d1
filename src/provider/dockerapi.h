/* dockerapi.h: the Docker Engine API (v1.41, as Docker and `podman system
 * service` serve it) as data: the body of a container create, the answers
 * forgescale reads (create, inspect, list, wait, pull progress), the
 * engine's error message, and the decoder of the 8-byte-framed stdout/
 * stderr log stream. Pure: no I/O, no state beyond what the caller passes,
 * never logs. container.c is its only user in the daemon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOCKERAPI_VERSION "v1.41"
#define DOCKERAPI_ID_MAX 128            /* container ids are 64 hex digits */
#define DOCKERAPI_NAME_MAX 128          /* names forgescale gives are shorter */

/* Labels on every container forgescale creates. */
#define DOCKERAPI_LABEL_INSTANCE "forgescale.instance"
#define DOCKERAPI_LABEL_POOL "forgescale.pool"
#define DOCKERAPI_LABEL_MANAGED "forgescale.managed"

struct dockerapi_ulimit {
        const char *name;               /* "nofile" */
        int64_t soft, hard;
};

/* What a container is made of. Everything is borrowed. */
struct dockerapi_create {
        const char *image;
        const char *instance;           /* also the container's name */
        const char *pool;               /* NULL: "" */
        const char *const *argv;        /* argv[0] becomes the Entrypoint, the
                                         * rest Cmd: the image's own entrypoint
                                         * never wraps the worker */
        const char *const *env;         /* "K=V", NULL-terminated, may be NULL */
        const char *const *env_extra;   /* added after env, NULL-terminated, may be NULL */
        const char *const *binds;       /* "host:container[:ro]", NULL-terminated */
        const char *network;            /* NetworkMode, NULL: the engine's default */
        int64_t nano_cpus;              /* 0: unset */
        int64_t memory;                 /* bytes, 0: unset */
        int64_t pids_limit;             /* 0: unset */
        const struct dockerapi_ulimit *ulimits;
        size_t n_ulimits;
        const char *runtime;            /* NULL: the engine's default */
        const char *user;               /* NULL: the image's */
        bool init;                      /* an init process as PID 1 */
        const char *log_path;           /* label forgescale.log, NULL: none */
        const char *log_max;            /* label forgescale.log_max, NULL: none */
};

/* The JSON body of POST /containers/create. Returns 0 with *ret (malloc'd,
 * NUL-terminated, the caller frees), -EINVAL (missing image, instance or
 * argv[0]) or -ENOMEM. */
int dockerapi_create_body(const struct dockerapi_create *c, char **ret);

/* The "Id" of a create answer into id[DOCKERAPI_ID_MAX]. 0 or -EBADMSG. */
int dockerapi_parse_created(const char *body, size_t len, char *id);

/* What forgescale reads of GET /containers/{id}/json. */
struct dockerapi_inspect {
        char id[DOCKERAPI_ID_MAX];
        char name[DOCKERAPI_NAME_MAX];          /* without the leading '/' */
        char instance[DOCKERAPI_NAME_MAX];      /* label, "" when absent */
        bool managed;                           /* forgescale.managed=1 */
        bool running;                           /* State.Running (or paused, restarting) */
        bool oom_killed;
        int exit_code;
        char status[32];                        /* State.Status */
        char error[256];                        /* State.Error, "" when none */
};

/* 0, or -EBADMSG when the body is no container object (an id or a state
 * missing or of the wrong type). */
int dockerapi_parse_inspect(const char *body, size_t len, struct dockerapi_inspect *ret);

/* The value of label `name` of an inspect answer (Config.Labels) into
 * buf[n]; "" when absent, not a string or too long. Returns buf. */
const char *dockerapi_inspect_label(const char *body, size_t len, const char *name,
                                    char *buf, size_t n);

/* How a container ended, as the provider reports it (docs/providers.md):
 * an engine gives a death by signal N as exit code 128+N, which a
 * worker's own `exit 137` also gives, so it is a signal only when sent
 * has bit (1u << N) (the provider sent N) or the engine says OOMKilled
 * (then SIGKILL, *ret_oom true). Codes outside 0..255 are UNKNOWN. */
struct provider_exit;
void dockerapi_exit(const struct dockerapi_inspect *in, unsigned sent,
                    struct provider_exit *ret, bool *ret_oom);

/* An engine's refusal as a provider failure (enum provider_failure):
 * err (a transport error) -> UNREACHABLE; 404 naming an image -> IMAGE; a
 * message naming a quota, an exceeded limit or insufficient resources ->
 * QUOTA; other 4xx -> REJECTED; anything else -> ENGINE. */
int dockerapi_classify(int err, long status, const char *msg);

/* One entry of GET /containers/json. */
struct dockerapi_listed {
        char id[DOCKERAPI_ID_MAX];
        char instance[DOCKERAPI_NAME_MAX];
        bool running;
};

/* The containers of a list answer that carry forgescale.managed=1 and
 * whose forgescale.instance label starts with prefix (NULL or "": any):
 * anything else is another controller's or nobody's and is left out.
 * Returns 0 with *ret (malloc'd array, the caller frees; NULL when none)
 * and *ret_n, -EBADMSG for a body that is no array, or -ENOMEM. Entries
 * of the wrong shape are skipped. */
int dockerapi_parse_list(const char *body, size_t len, const char *prefix,
                         struct dockerapi_listed **ret, size_t *ret_n);

/* StatusCode of a wait answer. 0 or -EBADMSG. */
int dockerapi_parse_wait(const char *body, size_t len, int *ret_code);

/* A pull's progress stream (JSON objects, one a line): the first error it
 * reports into buf[n]. True when it holds one. */
bool dockerapi_pull_error(const char *body, size_t len, char *buf, size_t n);

/* The engine's "message" of an error answer into buf[n], or the start of
 * the body when it is not JSON, printable and on one line; "" for an
 * empty body. Returns buf. */
const char *dockerapi_error_message(const char *body, size_t len, char *buf, size_t n);

/* ---- the multiplexed log stream ------------------------------------------ */

/* Frames: 1 byte stream (0 stdin, 1 stdout, 2 stderr), 3 zero bytes, a
 * 4-byte big-endian payload length, the payload. A zeroed struct starts. */
struct dockerapi_demux {
        unsigned char hdr[8];
        size_t hlen;                    /* header bytes held */
        uint32_t left;                  /* payload bytes of the frame still due */
        int stream;
};

/* Payload bytes of stream (1 or 2), borrowed for the call; a negative
 * return aborts the feed with that value. */
typedef int (*dockerapi_demux_cb)(void *ud, int stream, const void *buf, size_t n);

/* Feeds n bytes of the stream, cut anywhere. Returns 0, the callback's
 * negative value, or -EPROTO for a header that is no frame header (a TTY
 * stream, garbage). */
int dockerapi_demux_feed(struct dockerapi_demux *d, const void *buf, size_t n,
                         dockerapi_demux_cb cb, void *ud);

/* ---- URL pieces ---------------------------------------------------------------- */

/* Percent-encodes s (RFC 3986 unreserved characters kept) into buf[n].
 * 0 or -ENAMETOOLONG. */
int dockerapi_escape(const char *s, char *buf, size_t n);
