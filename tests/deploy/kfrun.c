/* kfrun.c: starts kube-fake for a shell test (tests/deploy/manifests.sh)
 * through the C harness (tests/support/kubefake.h: temp folder, CA,
 * certificates, token), writes a token kubeconfig for namespace
 * "forgescale", prints its path on stdout and keeps the fake running until
 * stdin reaches EOF, then stops it. Never talks to the API itself. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kubefake.h"

int main(void)
{
        struct kubefake_opts opts = { .ns = "forgescale" };
        struct kubefake *kf = NULL;
        char path[4096], buf[256];
        int r;

        r = kubefake_start(&opts, &kf);
        if (r < 0) {
                fprintf(stderr, "kfrun: cannot start kube-fake: %s\n", strerror(-r));
                return 1;
        }
        snprintf(path, sizeof(path), "%s/kubeconfig", kubefake_dir(kf));
        r = kubefake_write_kubeconfig(kf, path, false);
        if (r < 0) {
                fprintf(stderr, "kfrun: cannot write %s: %s\n", path, strerror(-r));
                kubefake_stop(kf);
                return 1;
        }
        printf("%s\n", path);
        fflush(stdout);
        errno = 0;
        while (read(STDIN_FILENO, buf, sizeof(buf)) > 0 || errno == EINTR)
                errno = 0;
        r = kubefake_stop(kf);
        if (r < 0) {
                fprintf(stderr, "kfrun: kube-fake did not end cleanly: %s\n", strerror(-r));
                return 1;
        }
        return 0;
}
