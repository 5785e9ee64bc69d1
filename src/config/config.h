/* config.h: the forgescale configuration as a typed, owned struct, and the
 * parser that builds it from YAML. Every key is declared once in a table
 * (config_schema.c) that drives parsing, defaults, validation, printing and
 * the reference documentation. Never prints, logs or exits: every problem,
 * error or warning, comes back as a "FILE:LINE:COL: message" in a struct
 * config_diag. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/log.h"

#define CONFIG_MAX_FILE_SIZE (1u << 20) /* larger files are refused */
#define CONFIG_MAX_DEPTH 32             /* deeper YAML nesting is refused */
#define CONFIG_MAX_ERRORS 100           /* later errors are summarised */
#define CONFIG_NAME_MAX 63              /* forge, provider and pool names */

/* Limits the daemon relies on: a configuration that passes is one `run`
 * can serve without truncating anything. */
#define CONFIG_MAX_LABELS 64            /* labels of one pool, and distinct labels of one listing */
#define CONFIG_MAX_LISTINGS 64          /* distinct (forge, scope) pairs, each polled as one listing */
#define CONFIG_MAX_COMMAND_ARGS 64      /* items of runner.command */
#define CONFIG_MAX_ARG_BYTES 4096       /* bytes of one runner.command item */
#define CONFIG_MAX_RUNNER_ENV 48        /* entries of runner.env */

/* A 1-based position in the configuration file; 0/0 when the value came
 * from a default. */
struct config_pos {
        int line;
        int col;
};

/* One message: "FILE:LINE:COL: message" (or "FILE: message" when no
 * position applies); warnings read "FILE:LINE:COL: warning: message". */
struct config_msg {
        char *text;                     /* owned */
        bool warning;                   /* true: does not make the configuration invalid */
};

/* Collected messages, sorted by position. Errors make the call that added
 * them fail; warnings do not (a call can succeed and still add warnings,
 * which the caller should show or log). Owned; release with
 * config_diag_done(). A zeroed struct is an empty list. */
struct config_diag {
        struct config_msg *msgs;
        size_t n;
};

void config_diag_done(struct config_diag *d);

/* Number of messages in d that are errors (not warnings). */
size_t config_diag_errors(const struct config_diag *d);

struct config_strv {
        char **v;
        size_t n;
};

struct config_env {
        char *name;
        char *value;
};

struct config_envv {
        struct config_env *v;
        size_t n;
};

/* The numeric values of these enums are the index of their name in the
 * key table; do not reorder without changing config_schema.c. */
enum config_forge_kind { CONFIG_FORGE_FORGEJO = 0, CONFIG_FORGE_GITEA };

enum config_provider_type {
        CONFIG_PROVIDER_LOCAL = 0,
        CONFIG_PROVIDER_CONTAINER,
        CONFIG_PROVIDER_KUBERNETES,
        CONFIG_PROVIDER_SSH,
        CONFIG_PROVIDER_EXTERNAL,
};

enum config_pool_mode { CONFIG_MODE_QUEUE = 0, CONFIG_MODE_BROKER };

enum config_scope_kind {
        CONFIG_SCOPE_INSTANCE = 0,
        CONFIG_SCOPE_ORG,
        CONFIG_SCOPE_USER,
        CONFIG_SCOPE_REPO,
};

/* instance: no names; org: owner = organisation; user: no names (the
 * token's user); repo: owner and repo. Strings are owned. */
struct config_scope {
        enum config_scope_kind kind;
        char *owner;
        char *repo;
};

struct config_log {
        enum log_level level;
        enum log_format format;
};

struct config_forge {
        char *name;                     /* first member: see config_schema.c */
        char *url;                      /* scheme://host[:port][/path], no trailing '/' */
        char *token_file;               /* as written, or NULL */
        char *token_env;                /* or NULL; exactly one of the two is set */
        enum config_forge_kind kind;
        int64_t timeout_ms;
        char *ca_file;                  /* as written, or NULL */
        bool insecure_skip_verify;

        /* Derived. */
        char *token_path;               /* token_file resolved against the config's folder */
        char *ca_path;                  /* ca_file resolved likewise, or NULL */
        struct config_pos pos;          /* of the forge's name */
        struct config_pos token_pos;    /* of the token_file/token_env value */
        struct config_pos ca_pos;       /* of the ca_file value */
        char *token;                    /* NULL until config_load_tokens(); secret */
};

/* Keys of `type: local` providers (NULL for other types). */
struct config_provider_local {
        char *user;                     /* run workers as this account (name or numeric
                                         * uid), or NULL (the daemon's) */
        char *group;                    /* and this group (name or numeric gid), or NULL
                                         * (the user's primary group) */
        struct config_pos user_pos;     /* of the values; 0/0 when unset */
        struct config_pos group_pos;
};

/* Keys of `type: kubernetes` providers. The mapping-valued keys are kept as
 * compact JSON text (KT_JSON), already checked; NULL when unset. */
struct config_provider_kubernetes {
        char *kubeconfig;               /* as written, or NULL: in-cluster service account */
        char *context;                  /* kubeconfig context, or NULL: current-context */
        char *namespace;                /* or NULL: the kubeconfig's/service account's, else "default" */
        char *image;                    /* required for this type */
        char *service_account;          /* or NULL */
        char *resources;                /* JSON {"requests":{...},"limits":{...}} */
        char *node_selector;            /* JSON object of strings */
        char *tolerations;              /* JSON array of objects */
        char *pod_template;             /* JSON object merged into the pod spec */
        int64_t ttl_after_finished_ms;  /* 0: unset */
        int64_t active_deadline_ms;     /* 0: unset */

        /* Derived. */
        char *kubeconfig_path;          /* kubeconfig resolved against the config's folder */
};

struct config_provider {
        char *name;
        enum config_provider_type type;
        int64_t max_instances;          /* 0 = unlimited */
        int64_t stop_grace_ms;          /* SIGTERM (or equivalent) to forced kill, 0..10m */
        struct config_provider_local local;
        struct config_provider_kubernetes kubernetes;

        bool implicit;                  /* the built-in "local" provider */
        struct config_pos pos;
        struct config_pos type_pos;     /* of the type value; 0/0 for the implicit provider */
};

struct config_runner {
        struct config_strv command;     /* argv prefix; "one-job ..." is appended */
        struct config_envv env;
        char *label_scheme;             /* passed as --label NAME:SCHEME */
};

struct config_pool {
        char *name;
        char *forge_name;               /* always set after parsing (key "forge") */
        char *provider_name;            /* always set after parsing (key "provider") */
        char *scope_text;               /* as written (key "scope") */
        struct config_strv labels;
        enum config_pool_mode mode;
        int64_t min_idle;
        int64_t max_runners;
        int64_t poll_interval_ms;
        int64_t idle_timeout_ms;
        int64_t bootstrap_timeout_ms;
        struct config_runner runner;

        /* Derived. */
        struct config_scope scope;
        size_t forge_idx;               /* index into config.forges */
        size_t provider_idx;            /* index into config.providers */
        const struct config_forge *forge;       /* borrowed from the config */
        const struct config_provider *provider; /* borrowed from the config */
        struct config_pos pos;
        struct config_pos mode_pos;     /* of the mode value; 0/0 when defaulted */
};

enum config_broker_codec { CONFIG_CODEC_PROTO = 0, CONFIG_CODEC_JSON };

/* The broker endpoint (top-level `broker:`): where pools of mode broker
 * serve the tasks they fetched to their workers. Always filled in, with
 * defaults when the section is absent; its cross checks (address taken by
 * `listen`, a wildcard without url, a non-loopback address) apply only when
 * some pool has mode broker (`used`). */
struct config_broker {
        char *listen;                   /* HOST:PORT, IPv6 hosts in brackets */
        char *url;                      /* how workers reach it: as written, else
                                         * http://<listen>; NULL when not written and
                                         * listen is a wildcard (an error when used)
                                         * or has port 0 (the daemon derives it from
                                         * the port it bound) */
        int64_t worker_retries;         /* 0..10: fresh workers tried for a task after
                                         * one never connects within bootstrap_timeout */
        enum config_broker_codec codec; /* upstream runner-protocol codec */

        /* Derived. */
        char *listen_host;              /* without brackets */
        int listen_port;                /* 0 = any free port */
        bool url_set;                   /* url was written, not derived */
        bool used;                      /* some pool has mode broker */
        struct config_pos pos;          /* of the `broker` key; 0/0 when absent */
        struct config_pos listen_pos;   /* of the values; 0/0 when defaulted */
        struct config_pos url_pos;
};

struct config {
        char *path;                     /* as given to config_load() */
        char *dir;                      /* folder relative paths are resolved against */
        char *listen;                   /* HOST:PORT, IPv6 hosts in brackets */
        char *state_dir;                /* as written */
        struct config_log log;
        struct config_broker broker;
        struct config_forge *forges;
        size_t n_forges;
        struct config_provider *providers;
        size_t n_providers;
        struct config_pool *pools;
        size_t n_pools;

        /* Derived. */
        char *listen_host;              /* without brackets */
        int listen_port;                /* 0 = any free port */
        char *state_path;               /* state_dir resolved against dir */
        struct config_pos state_pos;    /* of the state_dir value; 0/0 when defaulted */
};

/* Reads (at most CONFIG_MAX_FILE_SIZE bytes), parses and validates the
 * file. Relative paths inside it are resolved against the file's folder.
 * Returns 0 and *ret_cfg (the caller frees it with config_free()).
 * On failure returns -EINVAL (invalid configuration), -EFBIG (file too
 * large), -errno (unreadable) or -ENOMEM, and appends every problem found
 * to *reterr_diag when it is not NULL. ret_cfg is untouched on failure. */
int config_load(const char *path, struct config **ret_cfg,
                struct config_diag *reterr_diag);

/* The same for text already in memory. name is used in messages; dir is the
 * folder relative paths are resolved against (NULL = current folder). */
int config_parse(const char *name, const char *text, size_t len,
                 const char *dir, struct config **ret_cfg,
                 struct config_diag *reterr_diag);

/* Accepts NULL. Overwrites loaded tokens before freeing them. */
void config_free(struct config *cfg);

/* Checks the files and variables the configuration refers to: every forge's
 * token (file or environment variable; read, checked, discarded), every
 * ca_file (a readable regular file), state_dir (config_check_state_dir)
 * and the accounts local providers run workers as (user and group names
 * must exist on this machine).
 * Token values read are registered for log redaction. Returns 0 (perhaps
 * with warnings, e.g. a token file others can read), or -EINVAL with one
 * message per problem. */
int config_check_files(const struct config *cfg, struct config_diag *reterr_diag);

/* Checks state_dir (state_path) when it exists: it must be a folder that
 * not every user can write (anyone could replace the database or the
 * instance folders). A missing folder passes: the daemon creates it with
 * mode 0700. config_check_files() calls it; the daemon calls it again once
 * the folder exists, before using it. Returns 0, -EINVAL with a message, or
 * -ENOMEM. */
int config_check_state_dir(const struct config *cfg, struct config_diag *reterr_diag);

/* Loads every forge's token into forge->token (registered for redaction).
 * Returns 0, or -EINVAL with one message per unusable token; on failure no
 * token is kept. */
int config_load_tokens(struct config *cfg, struct config_diag *reterr_diag);

/* Checks what this build can run: every provider's type through type_ok
 * and every pool's mode through mode_ok (either may be NULL: all
 * runnable), both called with ud. The configuration itself may be valid
 * and still name a type or mode that is not built in. Returns 0, or
 * -EINVAL with a message at each type or mode value that cannot run
 * (naming those that can), or -ENOMEM. */
int config_check_runnable(const struct config *cfg,
                          bool (*type_ok)(enum config_provider_type t, void *ud),
                          bool (*mode_ok)(enum config_pool_mode m, void *ud),
                          void *ud, struct config_diag *reterr_diag);

/* The configuration names of a provider type and a pool mode ("local",
 * "queue"), from the key table; NULL for a value outside the enum. */
const char *config_provider_type_name(enum config_provider_type t);
const char *config_pool_mode_name(enum config_pool_mode m);

/* Writes the effective configuration (defaults filled in, durations
 * normalised) as YAML that config_load() accepts. Token values are never
 * printed, only where they come from. Returns 0 or -EIO. */
int config_print(const struct config *cfg, FILE *f);

/* Writes the Markdown reference of every key (type, default, description),
 * generated from the key table. */
void config_print_reference(FILE *f);

/* Whether two providers are configured alike: name, type and every key of
 * that type. A reload that changes a provider needs a restart. */
bool config_provider_same(const struct config_provider *a, const struct config_provider *b);
/* The same for forges, tokens included (compared in constant time; a forge
 * whose token is not loaded never equals another). */
bool config_forge_same(const struct config_forge *a, const struct config_forge *b);
/* The same for the broker section: every key (derived url included) and
 * whether a pool uses it. The endpoint is bound, and workers are told its
 * URL, at start. */
bool config_broker_same(const struct config_broker *a, const struct config_broker *b);

/* Pure helpers, exported for the tests. */

/* Levenshtein edit distance (insert, delete, substitute), where swapping two
 * adjacent characters also counts as one edit (optimal string alignment), so
 * "lgo" is 1 away from "log". Strings longer than 64 bytes give SIZE_MAX. */
size_t config_levenshtein(const char *a, const char *b);

/* Returns the candidate closest to word when it is close enough to be a
 * likely typo, else NULL. The result is borrowed from cands. */
const char *config_suggest(const char *word, const char *const *cands, size_t n);

/* Parses "instance", "user", "org/NAME" or "repo/OWNER/NAME". NAME and
 * OWNER are 1-100 characters of [A-Za-z0-9_.-]. Returns 0 or -EINVAL,
 * -ENOMEM. *ret_scope is set only on success; release it with
 * config_scope_done(). */
int config_scope_parse(const char *s, struct config_scope *ret_scope);
void config_scope_done(struct config_scope *s);

/* Parses "HOST:PORT" where HOST is an IPv4 literal, "[IPv6]" or "localhost"
 * and PORT is 0-65535. Returns 0 with a malloc'd host (no brackets), or
 * -ERANGE (PORT is digits but above 65535), -EINVAL, -ENOMEM. */
int config_listen_parse(const char *s, char **ret_host, int *ret_port);
