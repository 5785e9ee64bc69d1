/* contract_container.c: the contract suite's factory for the container
 * provider, against a private Podman service (tests/support/podman.c) on
 * a unix socket, workers in containers of a busybox image without network.
 * Containers report a signal death only as exit code 128+N. */
#include "contract.h"
#include "podman.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct podman *pm;
static char *mounts[] = { (char *)"/usr:/usr:ro", NULL };

static int ctr_up(struct contract_env *e)
{
        int r = podman_start(e->dir, &pm);

        if (r < 0)
                return r;
        e->cfg.container.socket = pm->sock;
        e->cfg.container.image = (char *)PODMAN_TEST_IMAGE;
        e->cfg.container.pull = CONFIG_PULL_IF_MISSING;
        e->cfg.container.network = (char *)"none";
        e->cfg.container.runtime = (char *)"runc";
        /* The host's /usr (coreutils, read-only) ahead of busybox in
         * PATH: busybox's tr, exec'd as a shell's last command, reads an
         * empty /proc/self/environ, and the suite reads environ that way. */
        e->cfg.container.extra_mounts.v = mounts;
        e->cfg.container.extra_mounts.n = 1;
        return 0;
}

static void ctr_down(struct contract_env *e)
{
        podman_free(pm);
        pm = NULL;
}

static int ctr_leftovers(const struct contract_env *e, const char *workdir, const char *instance)
{
        char path[PATH_MAX];
        struct stat st;
        long status = 0;
        int n = 0;

        snprintf(path, sizeof(path), "%s/token", workdir);
        if (lstat(path, &st) == 0)
                n++;
        snprintf(path, sizeof(path), "/containers/%s/json", instance);
        if (podman_api(pm, "GET", path, NULL, &status, NULL) < 0 || status != 404)
                n++;
        return n;
}

/* As an operator would: the engine's kill, not the provider's. */
static int ctr_kill(const struct contract_env *e, const char *instance, const char *ref, int sig)
{
        char path[256];
        long status = 0;
        int r;

        snprintf(path, sizeof(path), "/containers/%s/kill?signal=%d", ref, sig);
        r = podman_api(pm, "POST", path, NULL, &status, NULL);
        if (r < 0)
                return r;
        return status == 204 ? 0 : -EIO;
}

#define HEAD "forges: {f: {url: \"http://127.0.0.1:1\", token_env: T}}\n" \
             "pools: {x: {scope: org/a, labels: [l], provider: p}}\nproviders:\n"

static const struct contract_bad_config ctr_bad[] = {
        { HEAD "  p: {type: container}\n", 4, 3, "missing required key \"image\"" },
        { HEAD "  p: {type: container, image: a, socket: run.sock}\n", 4, 42, "must be an absolute path" },
        { HEAD "  p: {type: container, image: a, memory: 12q}\n", 4, 42, "is not a memory size" },
        { HEAD "  p: {type: container, image: a, cpus: -1}\n", 4, 40, "is not a CPU count" },
        { HEAD "  p: {type: container, image: a, pull: maybe}\n", 4, 40, "pull \"maybe\" is invalid" },
        { HEAD "  p: {type: container, image: a, ulimits: {nofile: \"9:1\"}}\n", 4, 53, "is not a limit" },
        { HEAD "  p: {type: container, image: a, extra_mounts: [/x]}\n", 4, 49, "is not a mount" },
        { HEAD "  p: {type: container, image: a, user: \"a b\"}\n", 4, 41, "is not USER or USER:GROUP" },
        { HEAD "  p: {type: local, image: a}\n", 4, 20, "only for providers of type container" },
        { NULL, 0, 0, NULL },
};

const struct contract_factory contract_factory = {
        .name = "container",
        .ops = &provider_container_ops,
        .type = CONFIG_PROVIDER_CONTAINER,
        .up = ctr_up,
        .down = ctr_down,
        .leftovers = ctr_leftovers,
        .kill_worker = ctr_kill,
        .slow_ms = 2000,
        .foreign_signal_seen = false,
        .bad_configs = ctr_bad,
};
