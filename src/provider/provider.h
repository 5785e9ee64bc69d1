/* provider.h: the one interface through which forgescale runs workers.
 * A provider type is a `static const struct provider_ops` (local, container,
 * kubernetes, ssh, external); the core never switches on a provider's name,
 * only on its capability flags. Every operation is asynchronous: it starts
 * work on the event loop and reports through the instance's event callback.
 *
 * What a provider must never do: talk to the forge, touch the state store,
 * or log above debug (it returns -errno; the caller logs once). Secrets
 * reach a worker only as files (spec->token_file), never in argv or env. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct provider;

enum provider_event_type {
        PROVIDER_EV_STARTED = 1,  /* worker is running; ref is now valid */
        PROVIDER_EV_EXITED,       /* worker ended; exit_code/signal set */
        PROVIDER_EV_FAILED,       /* worker could not be started; error set */
};

struct provider_event {
        enum provider_event_type type;
        const char *instance;     /* instance name */
        const char *ref;          /* provider reference to persist (STARTED) */
        int exit_code;            /* EXITED: exit status, -1 if unknown */
        int signal;               /* EXITED: terminating signal, 0 if none */
        int error;                /* FAILED: -errno */
};

typedef void (*provider_event_cb)(void *ud, const struct provider_event *ev);

/* What to run. All strings are borrowed for the duration of create(). */
struct provider_spec {
        const char *instance;           /* unique name, also the runner name */
        const char *pool;
        const char *workdir;            /* the instance's folder (exists, 0700) */
        const char *const *argv;        /* NULL-terminated worker argv */
        const char *const *env;         /* NULL-terminated "K=V" extra env */
        const char *token_file;         /* secret file the worker reads */
        const char *log_path;           /* worker stdout+stderr */
        size_t log_max;                 /* cap for log_path in bytes */
};

/* A provider's view of one of its instances, for orphan reaping. */
struct provider_listing {
        const char *instance;
        const char *ref;
        bool running;
};
/* items and their strings are valid only during the callback. */
typedef void (*provider_list_cb)(void *ud, int error,
                                 const struct provider_listing *items, size_t n);

#define PROVIDER_CAP_ADOPT   0x1u  /* can re-attach to instances after restart */
#define PROVIDER_CAP_LIST    0x2u  /* can enumerate its instances */

struct provider_ops {
        const char *type;
        unsigned caps;

        /* Sets up p->ctx; the loop outlives the provider. done() leaves
         * workers running (a restart adopts them) and must not be called
         * from an event callback. */
        int (*init)(struct provider *p, struct loop *loop);
        void (*done)(struct provider *p);

        /* Starts a worker. Returns 0 when the start is under way (events
         * follow through cb, never from inside create()) or -errno when
         * nothing was started (no event follows). Providers that can tell
         * at once (local: exec errors) report failures here rather than as
         * FAILED. cb stays registered until EXITED or FAILED. */
        int (*create)(struct provider *p, const struct provider_spec *spec,
                      provider_event_cb cb, void *ud);

        /* Asks the worker to stop: SIGTERM (or the provider's equivalent),
         * then a forced kill after grace_ms. EXITED follows. -ENOENT when
         * the instance is unknown or already gone. */
        int (*stop)(struct provider *p, const char *instance, int64_t grace_ms);

        /* Re-attaches to an instance that a previous run of the daemon
         * started, from the ref it persisted. 0: watched again, EXITED will
         * follow; -ESRCH: it is gone (no event follows). An empty ref asks
         * the provider to find the instance by name if it can (the daemon
         * died before saving the ref); ref() then gives the ref found. */
        int (*adopt)(struct provider *p, const char *instance, const char *ref,
                     provider_event_cb cb, void *ud);

        /* Enumerates the provider's instances (prefix-filtered). Optional. */
        int (*list)(struct provider *p, const char *prefix, provider_list_cb cb, void *ud);

        /* The reference of a tracked instance as soon as it is known
         * (local: right after create() returns), so the caller can persist
         * it before the worker does anything; NULL when not known yet.
         * Optional: without it the ref comes with STARTED. */
        const char *(*ref)(struct provider *p, const char *instance);

        /* Forgets an instance's leftovers (container, pod, files) after it
         * exited. Optional; local needs nothing. */
        int (*cleanup)(struct provider *p, const char *instance, const char *ref);
};

struct provider {
        const struct provider_ops *ops;
        char *name;                     /* config name, e.g. "here" */
        int max_instances;              /* 0 = unlimited */
        void *ctx;
};

/* Registered provider types. */
extern const struct provider_ops provider_local_ops;

/* Looks a type up by name; NULL when unknown. */
const struct provider_ops *provider_ops_find(const char *type);
