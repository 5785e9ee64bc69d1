/* podman.h: test harness for a private Podman engine: `podman system
 * service` on a unix socket under a temporary folder, with its own storage
 * (--root/--runroot/--tmpdir, vfs), runtime runc and the ulimits these
 * machines need (a containers.conf of its own), and an image built from
 * the host's static busybox (localhost/forgescale-test:latest). The
 * service dies with the test process (PR_SET_PDEATHSIG); podman_free()
 * removes every container and the folder. Never touches the machine's
 * own Podman state (/var/lib/containers): every podman command it runs
 * names the private storage. Never asserts. */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PODMAN_TEST_IMAGE "localhost/forgescale-test:latest"

struct podman {
        char dir[PATH_MAX / 4];          /* everything lives here */
        char sock[108];                  /* the API socket */
        char conf[PATH_MAX / 2];         /* containers.conf */
        pid_t pid;                       /* the service; 0 when stopped */
};

/* Makes dir/podman (dir must exist), imports the test image and starts the
 * service. 0, -ENOENT (no podman on this machine), -ETIMEDOUT (the socket
 * never answered) or -errno. On failure nothing is left running. */
int podman_start(const char *dir, struct podman **ret);

/* Stops the service (SIGTERM, then SIGKILL) and waits for it; containers
 * keep running under their conmon, as with a real engine restart. */
void podman_service_stop(struct podman *pm);

/* Starts the service again on the same socket and storage. 0 or -errno. */
int podman_service_start(struct podman *pm);

/* Removes every container (`podman rm -af`), stops the service and
 * removes the folder. Accepts NULL. */
void podman_free(struct podman *pm);

/* One blocking call to the engine's API (path after /v1.41, e.g.
 * "/containers/json?all=true"). 0 with *ret_status and *ret_body (owned,
 * NUL-terminated, may be NULL when ret_body is NULL), or -errno. */
int podman_api(const struct podman *pm, const char *method, const char *path,
               const char *body, long *ret_status, char **ret_body);

/* Containers (any state) carrying forgescale.managed=1 and, when prefix is
 * not NULL, an instance label starting with it; -errno on failure. */
int podman_count_managed(const struct podman *pm, const char *prefix);

/* Runs `podman <private storage flags> args...` to completion, output to
 * /dev/null unless out (owned, NUL-terminated) is wanted. Returns the exit
 * status or -errno. */
int podman_cli(const struct podman *pm, char **out, const char *const *args);
