/* podman.c: a private Podman engine for tests (see podman.h). Owns the
 * service process, its storage folder, containers.conf and test image.
 * Never runs podman without --root (the machine's own storage stays
 * untouched) and never leaves the service behind: it dies with the test
 * process. */
#include "podman.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"

#define PODMAN_BIN "/usr/bin/podman"
#define BUSYBOX_BIN "/bin/busybox"

static void sleep_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

/* argv for podman with the private storage flags, then args. */
static int build_argv(const struct podman *pm, const char *const *args, const char **argv, size_t max)
{
        static char root[PATH_MAX], run[PATH_MAX], tmp[PATH_MAX];
        size_t n = 0;

        snprintf(root, sizeof(root), "%s/root", pm->dir);
        snprintf(run, sizeof(run), "%s/run", pm->dir);
        snprintf(tmp, sizeof(tmp), "%s/tmp", pm->dir);
        const char *fixed[] = { PODMAN_BIN, "--root", root, "--runroot", run, "--tmpdir", tmp,
                                "--storage-driver", "vfs", "--events-backend", "file",
                                "--cgroup-manager", "cgroupfs" };
        for (size_t k = 0; k < sizeof(fixed) / sizeof(fixed[0]); k++)
                argv[n++] = fixed[k];
        for (size_t k = 0; args[k]; k++) {
                if (n + 2 > max)
                        return -E2BIG;
                argv[n++] = args[k];
        }
        argv[n] = NULL;
        return 0;
}

static pid_t spawn(const struct podman *pm, const char *const *argv, int outfd)
{
        pid_t parent = getpid();
        pid_t pid = fork();

        if (pid != 0)
                return pid < 0 ? -errno : pid;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(127);
        /* Image copies (import, pull) keep a blob cache in
         * /var/lib/containers/cache whatever --root says: podman runs in
         * a mount namespace of its own where /var/lib is an empty tmpfs,
         * so nothing of the machine's is read or written. */
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount("tmpfs", "/var/lib", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
                _exit(126);
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(outfd >= 0 ? outfd : devnull, 1) < 0 ||
            dup2(devnull, 2) < 0)
                _exit(127);
        setenv("CONTAINERS_CONF", pm->conf, 1);
        /* Nothing of the user's containers configuration or registries. */
        setenv("CONTAINERS_REGISTRIES_CONF", "/dev/null", 1);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
}

int podman_cli(const struct podman *pm, char **out, const char *const *args)
{
        const char *argv[64];
        char path[PATH_MAX];
        int fd = -1, st, r;
        pid_t pid;

        r = build_argv(pm, args, argv, 64);
        if (r < 0)
                return r;
        if (out) {
                snprintf(path, sizeof(path), "%s/cli.out", pm->dir);
                fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0)
                        return -errno;
        }
        pid = spawn(pm, argv, fd);
        if (pid < 0) {
                if (fd >= 0)
                        close(fd);
                return pid;
        }
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR) {
                        st = -1;
                        break;
                }
        if (fd >= 0) {
                close(fd);
                size_t len;
                if (fs_read_file(path, 1 << 20, out, &len) < 0)
                        *out = NULL;
        }
        return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -ECHILD;
}

/* A busybox rootfs, tarred, imported: a 2 MB image without a registry.
 * /lib and /lib64 point into /usr so a host /usr mounted read-only runs
 * the host's dynamically linked binaries. */
static int make_image(struct podman *pm)
{
        char rootfs[PATH_MAX], tarp[PATH_MAX], cmd[PATH_MAX * 3];
        int r;

        snprintf(rootfs, sizeof(rootfs), "%s/rootfs", pm->dir);
        snprintf(tarp, sizeof(tarp), "%s/rootfs.tar", pm->dir);
        snprintf(cmd, sizeof(cmd),
                 "set -e; R='%s'; mkdir -p \"$R\"/bin \"$R\"/etc \"$R\"/proc \"$R\"/sys \"$R\"/dev \"$R\"/tmp "
                 "\"$R\"/usr \"$R\"/run; cp " BUSYBOX_BIN " \"$R\"/bin/busybox; "
                 "for a in $(\"$R\"/bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox \"$R\"/bin/$a; done; "
                 "ln -s usr/lib \"$R\"/lib; ln -s usr/lib64 \"$R\"/lib64; "
                 "echo 'root:x:0:0:root:/root:/bin/sh' > \"$R\"/etc/passwd; "
                 "echo 'root:x:0:' > \"$R\"/etc/group; chmod 1777 \"$R\"/tmp; "
                 "tar -C \"$R\" -cf '%s' .",
                 rootfs, tarp);
        r = system(cmd);
        if (r != 0)
                return -EIO;
        const char *args[] = { "import", tarp, PODMAN_TEST_IMAGE, NULL };
        r = podman_cli(pm, NULL, args);
        fs_rm_rf(rootfs);
        unlink(tarp);
        return r == 0 ? 0 : -EIO;
}

int podman_api(const struct podman *pm, const char *method, const char *path,
               const char *body, long *ret_status, char **ret_body)
{
        char url[2048];
        struct curl_slist *h = NULL;
        char *buf = NULL;
        size_t len = 0;
        FILE *mem;
        CURL *c;
        int r = 0;

        c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        mem = open_memstream(&buf, &len);
        if (!mem) {
                curl_easy_cleanup(c);
                return -ENOMEM;
        }
        snprintf(url, sizeof(url), "http://podman/v1.41%s", path);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, pm->sock);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
        if (body) {
                h = curl_slist_append(NULL, "Content-Type: application/json");
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        } else if (strcmp(method, "POST") == 0) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        }
        CURLcode cc = curl_easy_perform(c);
        fclose(mem);
        if (cc != CURLE_OK) {
                r = cc == CURLE_COULDNT_CONNECT ? -ECONNREFUSED : cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        } else {
                long st = 0;
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
                if (ret_status)
                        *ret_status = st;
        }
        curl_slist_free_all(h);
        curl_easy_cleanup(c);
        if (r == 0 && ret_body) {
                *ret_body = buf;
                buf = NULL;
        }
        free(buf);
        return r;
}

int podman_count_managed(const struct podman *pm, const char *prefix)
{
        long st = 0;
        char *body = NULL;
        int r = podman_api(pm, "GET", "/containers/json?all=true", NULL, &st, &body);
        json_t *root, *c;
        size_t k;
        int n = 0;

        if (r < 0)
                return r;
        root = json_loads(body ? body : "", 0, NULL);
        free(body);
        if (st != 200 || !json_is_array(root)) {
                json_decref(root);
                return -EIO;
        }
        json_array_foreach(root, k, c) {
                json_t *l = json_object_get(c, "Labels");
                const char *m = json_string_value(json_object_get(l, "forgescale.managed"));
                const char *in = json_string_value(json_object_get(l, "forgescale.instance"));
                if (m && strcmp(m, "1") == 0 && (!prefix || (in && strncmp(in, prefix, strlen(prefix)) == 0)))
                        n++;
        }
        json_decref(root);
        return n;
}

int podman_service_start(struct podman *pm)
{
        char uri[160];
        const char *args[] = { "system", "service", "--time=0", uri, NULL };
        const char *argv[64];
        int r;

        unlink(pm->sock);
        snprintf(uri, sizeof(uri), "unix://%s", pm->sock);
        r = build_argv(pm, args, argv, 64);
        if (r < 0)
                return r;
        pid_t pid = spawn(pm, argv, -1);
        if (pid < 0)
                return pid;
        pm->pid = pid;
        for (int k = 0; k < 200; k++) {
                long st = 0;
                if (podman_api(pm, "GET", "/version", NULL, &st, NULL) == 0 && st == 200)
                        return 0;
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        pm->pid = 0;
                        return -ECHILD;
                }
                sleep_ms(50);
        }
        podman_service_stop(pm);
        return -ETIMEDOUT;
}

void podman_service_stop(struct podman *pm)
{
        if (!pm || pm->pid <= 0)
                return;
        kill(pm->pid, SIGTERM);
        for (int k = 0; k < 100; k++) {
                if (waitpid(pm->pid, NULL, WNOHANG) == pm->pid) {
                        pm->pid = 0;
                        return;
                }
                sleep_ms(20);
        }
        kill(pm->pid, SIGKILL);
        while (waitpid(pm->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pm->pid = 0;
}

int podman_start(const char *dir, struct podman **ret)
{
        struct podman *pm;
        FILE *f;
        int r;

        if (access(PODMAN_BIN, X_OK) < 0 || access(BUSYBOX_BIN, X_OK) < 0)
                return -ENOENT;
        pm = calloc(1, sizeof(*pm));
        if (!pm)
                return -ENOMEM;
        snprintf(pm->dir, sizeof(pm->dir), "%s/podman", dir);
        if (strlen(pm->dir) + 10 > sizeof(pm->sock)) {
                free(pm);
                return -ENAMETOOLONG;
        }
        memcpy(pm->sock, pm->dir, strlen(pm->dir));
        memcpy(pm->sock + strlen(pm->dir), "/api.sock", sizeof("/api.sock"));
        snprintf(pm->conf, sizeof(pm->conf), "%s/containers.conf", pm->dir);
        r = fs_mkdir_p(pm->dir, 0700);
        if (r < 0)
                goto err;
        f = fopen(pm->conf, "we");
        if (!f) {
                r = -errno;
                goto err;
        }
        /* crun fails on these hybrid-cgroup machines; the hard limits are
         * below Podman's defaults and root cannot raise them. */
        fprintf(f, "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n"
                   "[engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n"
                   "events_logger = \"file\"\n");
        fclose(f);
        r = make_image(pm);
        if (r < 0)
                goto err;
        r = podman_service_start(pm);
        if (r < 0)
                goto err;
        *ret = pm;
        return 0;
err:
        podman_free(pm);
        return r;
}

void podman_free(struct podman *pm)
{
        if (!pm)
                return;
        const char *rm[] = { "rm", "-af", "-t", "0", NULL };
        (void)podman_cli(pm, NULL, rm);
        podman_service_stop(pm);
        fs_rm_rf(pm->dir);
        free(pm);
}
