/* contract.h: what a provider type brings to the contract suite
 * (contract.c): one `contract_factory` per test binary, defined in
 * contract_<type>.c, which starts and stops the engine the provider talks
 * to (a Podman service, a fake API server; nothing for local) and tells
 * the few things the contract lets differ between engines. A factory never
 * weakens an assertion; it only says which of the allowed answers its
 * engine gives. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>

#include "config/config.h"
#include "provider/provider.h"

/* The engine of one test binary, brought up once before the suite. */
struct contract_env {
        char dir[PATH_MAX / 2];         /* a fresh temporary folder for the engine */
        struct config_provider cfg;     /* type and the type's keys, filled by up();
                                         * tests set max_instances/stop_grace_ms */
        void *priv;                     /* the factory's own */
};

/* A provider configuration `forgescale check` must refuse, and a part of
 * the message it must give after "FILE:LINE:COL: ". */
struct contract_bad_config {
        const char *yaml;
        int line, col;
        const char *says;
};

struct contract_factory {
        const char *name;
        const struct provider_ops *ops;
        enum config_provider_type type;

        /* Starts the engine and fills e->cfg (e->dir exists). 0 or -errno;
         * NULL: nothing to start. down() ends it and removes whatever it
         * made; it runs even after a failed suite. */
        int (*up)(struct contract_env *e);
        void (*down)(struct contract_env *e);

        /* What the provider left of an exited instance that cleanup() must
         * remove (a token file, a container): > 0 when something is left. */
        int (*leftovers)(const struct contract_env *e, const char *workdir, const char *instance);

        /* Kills the worker from outside the provider, as an OOM killer, an
         * operator or a node failure would: 0 or -errno. */
        int (*kill_worker)(const struct contract_env *e, const char *instance, const char *ref, int sig);

        /* Added to every wait of the suite: the engine's own latency of a
         * start or stop (0 for processes). */
        int64_t slow_ms;

        /* true: a worker killed by a signal the provider did not send is
         * reported as PROVIDER_EXIT_SIGNAL (local: waitpid knows); false:
         * as PROVIDER_EXIT_CODE 128+N (a container's or pod's exit code
         * cannot tell a signal from `exit 137`). */
        bool foreign_signal_seen;

        /* true: stop() itself removes the engine's objects (kubernetes:
         * deleting its Job is the only stop after which no new pod is
         * made), so nothing is left for cleanup() after a stop. */
        bool stop_removes_leftovers;

        /* The path a worker sees for path, given to it by the provider
         * (token_path()), when the engine maps paths (kube-fake puts a
         * volume's files under its own folder); NULL: the same path. 0 or
         * -errno. */
        int (*worker_path)(const struct contract_env *e, const char *instance, const char *path,
                           char *buf, size_t n);

        /* Refused configurations, ending with { NULL }. */
        const struct contract_bad_config *bad_configs;
};

extern const struct contract_factory contract_factory;
