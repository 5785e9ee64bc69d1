/* settings.h: everything forgejo-sim-runner is told before it runs: the
 * command line, the optional YAML configuration (-c) and the connection
 * (flags, `server.connections` or a `.runner` file; exactly one source).
 * Owns the runner token (loaded through secret.h, wiped on release).
 * Never logs the token; errors are returned as text for main to print. */
#pragma once

#include "forge/rpcodec.h"
#include "forge/rproto.h"

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/* The forgejo-runner release whose one-job behaviour this runner follows. */
#define SETTINGS_RUNNER_VERSION "12.8.0"

enum settings_cmd {
        SETTINGS_CMD_NONE = 0,
        SETTINGS_CMD_HELP,
        SETTINGS_CMD_VERSION,
        SETTINGS_CMD_ONE_JOB,
};

struct settings {
        enum settings_cmd cmd;

        /* command line */
        char *config_file;
        char *flag_url;
        char *flag_uuid;
        char *flag_token_url;
        struct rp_strlist flag_labels;  /* name[:scheme[:arg]] */
        char *handle;                   /* --handle, NULL = any job */
        bool wait;                      /* --wait/-w */
        char *log_level;                /* --log-level, NULL = config */
        char *flag_codec;               /* --codec, NULL = config */

        /* configuration (defaults as forgejo-runner) */
        int64_t fetch_interval_ms;      /* runner.fetch_interval, 2s */
        int64_t fetch_timeout_ms;       /* runner.fetch_timeout, 5s */
        int64_t report_interval_ms;     /* runner.report_interval, 1s */
        int64_t timeout_ms;             /* runner.timeout, 3h */
        int64_t retry_max;              /* runner.report_retry.max_retries, 10 */
        int64_t retry_initial_ms;       /* runner.report_retry.initial_delay, 100ms */
        int64_t retry_max_delay_ms;     /* runner.report_retry.max_delay, 0 = none */
        char *runner_file;              /* runner.file, ".runner" */
        char *workdir_parent;           /* host.workdir_parent, NULL = $TMPDIR */
        char *config_log_level;         /* log.level */
        struct rp_strlist config_labels;/* runner.labels */
        char *config_codec;             /* runner.codec */

        /* effective connection */
        char *url;
        char *uuid;
        char *token;                    /* secret */
        struct rp_strlist labels;       /* full label strings */
        struct rp_strlist label_names;  /* scheme stripped, for Declare */
        enum rpcodec codec;             /* --codec, else runner.codec, else proto */
};

#define SETTINGS_ERR_MAX 512

/* Parses argv into s (zeroed first, defaults applied). Returns 0 or
 * -EINVAL with a message in err; release s with settings_done either way. */
int settings_parse_args(struct settings *s, int argc, char **argv, char *err, size_t errlen);

/* Reads the configuration file and resolves the connection and labels.
 * Returns 0 or a negative errno with a message in err. */
int settings_resolve(struct settings *s, char *err, size_t errlen);

void settings_done(struct settings *s);

/* Name part of a label "name[:scheme[:arg]]" as a new string; NULL on OOM. */
char *settings_label_name(const char *label);

/* The usage text. */
extern const char settings_usage[];
