/* contract_local.c: the contract suite's factory for the local provider:
 * no engine to start, workers are this machine's processes. */
#include "contract.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static int local_leftovers(const struct contract_env *e, const char *workdir, const char *instance)
{
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof(path), "%s/token", workdir);
        return lstat(path, &st) == 0 ? 1 : 0;
}

/* The ref is "pid:starttime". */
static int local_kill(const struct contract_env *e, const char *instance, const char *ref, int sig)
{
        char *end;
        long pid = strtol(ref, &end, 10);

        if (pid <= 1 || *end != ':')
                return -EINVAL;
        return kill((pid_t)pid, sig) < 0 ? -errno : 0;
}

#define HEAD "forges: {f: {url: \"http://127.0.0.1:1\", token_env: T}}\n" \
             "pools: {x: {scope: org/a, labels: [l], provider: p}}\nproviders:\n"

static const struct contract_bad_config local_bad[] = {
        { HEAD "  p: {type: local, max_instances: -1}\n", 4, 35, "max_instances must be between" },
        { HEAD "  p: {type: local, user: no-such-account-fs}\n", 4, 26, "does not exist" },
        { HEAD "  p: {type: local, stop_grace: 11m}\n", 4, 32, "stop_grace" },
        { NULL, 0, 0, NULL },
};

const struct contract_factory contract_factory = {
        .name = "local",
        .ops = &provider_local_ops,
        .type = CONFIG_PROVIDER_LOCAL,
        .leftovers = local_leftovers,
        .kill_worker = local_kill,
        .foreign_signal_seen = true,
        .bad_configs = local_bad,
};
