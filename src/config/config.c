/* config.c: the entry points of config.h: read a file (size-capped), build
 * the tree, walk the key table over it, hand out the result or every error.
 * Never prints, logs or exits; the pieces live in config_yaml.c,
 * config_walk.c, config_schema.c, config_files.c and config_diag.c. */
#include "config/config.h"
#include "config/config_internal.h"

#include "util/fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/secret.h"

int config_parse(const char *name, const char *text, size_t len, const char *dir,
                 struct config **ret_cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        struct ynode *root = NULL;
        struct config *cfg = NULL;
        struct walk w = { .errs = &errs, .dir = dir };
        int r, fr;

        if (len > CONFIG_MAX_FILE_SIZE) {
                config__errlist_add(&errs, 0, 0, "the file is larger than %u bytes; this is not a forgescale configuration",
                                    CONFIG_MAX_FILE_SIZE);
                r = -EFBIG;
                goto out;
        }
        r = config__build_tree(text, len, &errs, &root);
        if (r < 0)
                goto out;
        if (!root || root->kind == YN_NULL) {
                config__errlist_add(&errs, 0, 0, "the configuration is empty; it needs at least forges and pools");
                r = -EINVAL;
                goto out;
        }
        if (root->kind == YN_BAD) {
                r = -EINVAL;    /* already reported */
                goto out;
        }
        if (root->kind != YN_MAP) {
                char d[160];
                config__errlist_add(&errs, root->line, root->col,
                                    "the configuration must be a mapping of keys (listen, forges, pools, ...), got %s",
                                    config__describe(root, d, sizeof(d)));
                r = -EINVAL;
                goto out;
        }
        cfg = calloc(1, sizeof(*cfg));
        if (!cfg) {
                r = -ENOMEM;
                goto out;
        }
        cfg->path = strdup(name);
        cfg->dir = strdup(dir ? dir : ".");
        if (!cfg->path || !cfg->dir) {
                r = -ENOMEM;
                goto out;
        }
        w.cfg = cfg;
        config__walk_map(&w, &config__top, cfg, root, root);
        if (errs.oom)
                r = -ENOMEM;
        else if (config__errlist_failed(&errs))
                r = -EINVAL;
out:
        fr = config__errlist_flush(&errs, name, reterr_diag);
        if (r == 0 && fr < 0)
                r = fr;
        if (r == 0) {
                *ret_cfg = cfg;
                cfg = NULL;
        }
        config_free(cfg);
        config__ynode_free(root);
        config__errlist_done(&errs);
        return r;
}

int config_load(const char *path, struct config **ret_cfg, struct config_diag *reterr_diag)
{
        char *text = NULL, *dir = NULL, *slash;
        size_t len = 0;
        int r;

        r = fs_read_file(path, CONFIG_MAX_FILE_SIZE, &text, &len);
        if (r == -EFBIG) {
                config__diag_addf(reterr_diag, false, "%s: the file is larger than %u bytes; this is not a forgescale configuration",
                                  path, CONFIG_MAX_FILE_SIZE);
                return r;
        }
        if (r < 0) {
                if (config__diag_addf(reterr_diag, false, "%s: cannot read the configuration: %s", path,
                                      strerror(-r)) < 0)
                        return -ENOMEM;
                return r;
        }
        dir = strdup(path);
        if (!dir) {
                free(text);
                return -ENOMEM;
        }
        slash = strrchr(dir, '/');
        if (!slash) {
                free(dir);
                dir = strdup(".");
                if (!dir) {
                        free(text);
                        return -ENOMEM;
                }
        } else if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        r = config_parse(path, text, len, dir, ret_cfg, reterr_diag);
        free(dir);
        free(text);
        return r;
}

static bool same_str(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool config_provider_same(const struct config_provider *a, const struct config_provider *b)
{
        return same_str(a->name, b->name) && a->type == b->type &&
               a->max_instances == b->max_instances && a->stop_grace_ms == b->stop_grace_ms &&
               same_str(a->local.user, b->local.user) && same_str(a->local.group, b->local.group) &&
               same_str(a->kubernetes.kubeconfig_path, b->kubernetes.kubeconfig_path) &&
               same_str(a->kubernetes.context, b->kubernetes.context) &&
               same_str(a->kubernetes.namespace, b->kubernetes.namespace) &&
               same_str(a->kubernetes.image, b->kubernetes.image) &&
               same_str(a->kubernetes.service_account, b->kubernetes.service_account) &&
               same_str(a->kubernetes.resources, b->kubernetes.resources) &&
               same_str(a->kubernetes.node_selector, b->kubernetes.node_selector) &&
               same_str(a->kubernetes.tolerations, b->kubernetes.tolerations) &&
               same_str(a->kubernetes.pod_template, b->kubernetes.pod_template) &&
               a->kubernetes.ttl_after_finished_ms == b->kubernetes.ttl_after_finished_ms &&
               a->kubernetes.active_deadline_ms == b->kubernetes.active_deadline_ms;
}

bool config_broker_same(const struct config_broker *a, const struct config_broker *b)
{
        return same_str(a->listen, b->listen) && same_str(a->url, b->url) &&
               a->worker_retries == b->worker_retries && a->codec == b->codec &&
               a->used == b->used;
}

bool config_forge_same(const struct config_forge *a, const struct config_forge *b)
{
        return same_str(a->name, b->name) && same_str(a->url, b->url) && a->kind == b->kind &&
               a->timeout_ms == b->timeout_ms && same_str(a->ca_path, b->ca_path) &&
               a->insecure_skip_verify == b->insecure_skip_verify && a->token && b->token &&
               secret_equal(a->token, b->token);
}
