/* provider.h: the one interface through which forgescale runs workers.
 * A provider type is a `static const struct provider_ops` (local, container,
 * kubernetes, ssh, external); the core never switches on a provider's name,
 * only on its capability flags. Every operation is asynchronous: it starts
 * work on the event loop and reports through the instance's event callback.
 *
 * What a provider must never do: talk to the forge, touch the state store,
 * or log above debug (it returns -errno; the caller logs once). Secrets
 * reach a worker only as files the provider places (spec->token), never in
 * argv or env. docs/providers.md describes the contract for implementers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_provider;
struct loop;
struct provider;

#define PROVIDER_STOP_GRACE_DEFAULT_MS 10000

enum provider_event_type {
        PROVIDER_EV_STARTED = 1,  /* worker is running; ref is now valid */
        PROVIDER_EV_EXITED,       /* worker ended; exit says how */
        PROVIDER_EV_FAILED,       /* worker could not be started; error set */
};

/* How a worker ended, as data: a shell-style 128+N is the core's business. */
enum provider_exit_kind {
        PROVIDER_EXIT_UNKNOWN,    /* the provider cannot know (adopted worker) */
        PROVIDER_EXIT_CODE,       /* exited on its own: code is 0..255 */
        PROVIDER_EXIT_SIGNAL,     /* killed: signal is the terminating signal */
};

struct provider_exit {
        enum provider_exit_kind kind;
        int code;                 /* CODE only, else 0 */
        int signal;               /* SIGNAL only, else 0 */
};

/* Why an engine would not run a worker, as a category the core counts
 * (forgescale_launches_total{result=NAME}) and a person acts on with the
 * event's detail. A closed set so the metric's cardinality stays bounded. */
enum provider_failure {
        PROVIDER_FAIL_NONE = 0,
        PROVIDER_FAIL_UNREACHABLE,   /* the engine did not answer: socket gone,
                                      * connection refused, timeout */
        PROVIDER_FAIL_IMAGE,         /* image missing or cannot be pulled */
        PROVIDER_FAIL_QUOTA,         /* a quota or resource limit refused it */
        PROVIDER_FAIL_REJECTED,      /* the engine refused the request (4xx) */
        PROVIDER_FAIL_UNSCHEDULABLE, /* accepted but never placed */
        PROVIDER_FAIL_ENGINE,        /* anything else the engine reported */
};

struct provider_event {
        enum provider_event_type type;
        const char *instance;     /* instance name */
        const char *ref;          /* provider reference to persist */
        struct provider_exit exit;/* EXITED */
        int error;                /* FAILED: -errno */
        /* FAILED: why it could not start. EXITED: set when the provider
         * knows the worker never ran or the engine ended it (a pod still
         * pending when stopped, OOMKilled); NONE otherwise. */
        enum provider_failure failure;
        const char *detail;       /* one sentence for the log, the engine's
                                   * message included, or NULL; borrowed */
};

typedef void (*provider_event_cb)(void *ud, const struct provider_event *ev);

/* What to run. Everything is borrowed for the duration of create() only. */
struct provider_spec {
        const char *instance;           /* unique name, also the runner name */
        const char *pool;
        const char *workdir;            /* the instance's folder (exists, 0700) */
        const char *const *argv;        /* NULL-terminated worker argv, any length */
        const char *const *env;         /* NULL-terminated "K=V", any length: the
                                         * worker's whole environment apart from
                                         * what the provider documents adding */
        const char *token;              /* runner token bytes, or NULL: the
                                         * provider places them where
                                         * token_path() said */
        size_t token_len;
        const char *log_path;           /* worker stdout+stderr */
        size_t log_max;                 /* cap for log_path in bytes */
};

/* A provider's view of one of its instances. */
struct provider_listing {
        const char *instance;
        const char *ref;
        bool running;
};
/* items and their strings are valid only during the callback. */
typedef void (*provider_list_cb)(void *ud, int error,
                                 const struct provider_listing *items, size_t n);

/* Capability flags; the core checks these, never the type name.
 * ADOPT: at start the core calls adopt() for every live row (by ref, or by
 *        name with an empty ref); without it such rows are finished as lost.
 * LIST:  the core calls list() with its controller prefix in the orphan
 *        sweep to find instances no live row owns. */
#define PROVIDER_CAP_ADOPT   0x1u
#define PROVIDER_CAP_LIST    0x2u

struct provider_ops {
        const char *type;
        unsigned caps;

        /* Sets up p->ctx and reads the provider's own keys from cfg
         * (borrowed; NULL means every default), including p->max_instances
         * and p->stop_grace_ms. The loop outlives the provider. On failure
         * p->ctx stays NULL and p->error may say why. done() leaves workers
         * running (a restart adopts them), accepts a provider whose init()
         * failed and must not be called from an event callback. */
        int (*init)(struct provider *p, struct loop *loop, const struct config_provider *cfg);
        void (*done)(struct provider *p);

        /* Where the worker of `instance`, whose folder is workdir, reads its
         * runner token, as the worker sees that path. Pure: no I/O, no
         * state; the core puts the path into argv/env before create().
         * 0, -EINVAL, or -ENAMETOOLONG when it does not fit in buf[n]. */
        int (*token_path)(struct provider *p, const char *instance, const char *workdir,
                          char *buf, size_t n);

        /* Places spec->token and starts a worker. Returns 0 when the start is
         * under way (events follow through cb, never from inside create())
         * or -errno when nothing was started and nothing was left behind (no
         * event follows; p->error may say why). Providers that can tell at
         * once (local: exec errors) report failures here rather than as
         * FAILED. cb stays registered until EXITED or FAILED. */
        int (*create)(struct provider *p, const struct provider_spec *spec,
                      provider_event_cb cb, void *ud);

        /* Asks the worker to stop: SIGTERM (or the provider's equivalent),
         * then a forced kill p->stop_grace_ms later (the default when 0).
         * EXITED follows. -ENOENT when the instance is unknown or gone. */
        int (*stop)(struct provider *p, const char *instance);

        /* Re-attaches to an instance that a previous run of the daemon
         * started, from the ref it persisted. 0: watched again, EXITED will
         * follow (no STARTED); -ESRCH: it is gone (no event follows). An
         * empty ref asks the provider to find the instance by name (the
         * daemon died before saving the ref); ref() then gives the ref
         * found. log_path and log_max are the worker log's as create() was
         * given them (NULL: none, for a worker only to be stopped): a
         * provider that copies the worker's output goes on writing there.
         * Optional (caps ADOPT). */
        int (*adopt)(struct provider *p, const char *instance, const char *ref,
                     const char *log_path, size_t log_max, provider_event_cb cb, void *ud);

        /* Enumerates, from the loop, the instances of this provider whose
         * name starts with prefix ("" or NULL: all), including those no
         * create()/adopt() of this run knows about: the orphan sweep's
         * view. Returns 0 (cb follows exactly once, unless done() comes
         * first) or -errno (no call). Optional (caps LIST). */
        int (*list)(struct provider *p, const char *prefix, provider_list_cb cb, void *ud);

        /* The reference of a tracked instance as soon as it is known
         * (local: right after create() returns), so the caller can persist
         * it before the worker does anything; NULL when not known yet.
         * Optional: without it the ref comes with STARTED. */
        const char *(*ref)(struct provider *p, const char *instance);

        /* Removes what the provider left of an instance (token file,
         * container, pod) once EXITED or FAILED was reported, or when
         * adopt() said it is gone; workdir is the one given to create().
         * 0 also when there was nothing left; -EBUSY while it still runs. */
        int (*cleanup)(struct provider *p, const char *instance, const char *ref,
                       const char *workdir);
};

#define PROVIDER_ERROR_MAX 256

struct provider {
        const struct provider_ops *ops;
        char *name;                     /* config name, e.g. "here"; the core's */
        int max_instances;              /* 0 = unlimited; set by init() */
        int64_t stop_grace_ms;          /* set by init(); read at every stop() */
        bool other_account;             /* set by init(): workers run as another
                                         * account than the daemon, so the paths
                                         * the core hands them must be reachable */
        /* Why the last init(), create() or adopt() failed, for the
         * caller's log line; "" when -errno says it all. */
        char error[PROVIDER_ERROR_MAX];
        enum provider_failure failure;  /* with error, when create() returns
                                         * -errno; NONE when it is not an
                                         * engine's refusal */
        void *ctx;
};

/* Registered provider types. */
extern const struct provider_ops provider_local_ops;
extern const struct provider_ops provider_container_ops;
extern const struct provider_ops provider_kubernetes_ops;   /* kubernetes.c */

/* The metric label of a failure: "unreachable", "image", "quota",
 * "rejected", "unschedulable", "engine"; NULL for NONE. */
const char *provider_failure_name(enum provider_failure f);

/* Looks a type up by name; NULL when unknown. */
const struct provider_ops *provider_ops_find(const char *type);

/* For init() implementations: the keys every provider type shares
 * (max_instances, stop_grace_ms, with their defaults), from cfg or NULL. */
void provider_init_common(struct provider *p, const struct config_provider *cfg);
