/* workerspec.h: the command line and environment of one worker, built from
 * the pool's runner settings and the paths the worker itself sees (its
 * provider says where its token file is). Pure: no I/O, sizes taken from
 * the inputs, nothing truncated. Never holds a secret: the token travels as
 * a file path only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

struct workerspec_in {
        const struct config_runner *runner;  /* command, env, label_scheme */
        const struct config_strv *labels;    /* the pool's labels */
        const char *pool;
        const char *instance;                /* also the runner name */
        const char *forge_url;               /* what the worker connects to */
        const char *runner_uuid;
        const char *token_path;              /* as the worker sees it */
        const char *handle;                  /* NULL or "": a warm runner */
};

/* argv and env are NULL-terminated; env holds "NAME=value" entries. */
struct workerspec {
        char **argv;
        size_t argc;
        char **env;
        size_t envc;
};

/* Returns 0 and *ret (release with workerspec_done), or -ENOMEM. */
int workerspec_build(const struct workerspec_in *in, struct workerspec *ret);
void workerspec_done(struct workerspec *ws);
