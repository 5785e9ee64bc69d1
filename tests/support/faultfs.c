/* faultfs.c: an LD_PRELOAD shim that makes writes to chosen files fail with
 * ENOSPC while a control file exists, so end-to-end tests can take the
 * daemon's state database away at a moment of their choosing (a full disk)
 * without any test hook in the daemon. Environment: FAULTFS_CONTROL (the
 * control file's path), FAULTFS_MATCH (a substring of the paths to fail).
 * Only for tests; never links into the daemon. */
/* Both pwrite and pwrite64 are defined here: without this, glibc renames
 * one to the other. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static bool failing(int fd)
{
        const char *ctl = getenv("FAULTFS_CONTROL"), *match = getenv("FAULTFS_MATCH");
        char link[64], path[4096];
        ssize_t n;

        if (!ctl || !match || access(ctl, F_OK) != 0)
                return false;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0)
                return false;
        path[n] = '\0';
        return strstr(path, match) != NULL;
}

#define REAL(name, ret, ...)                                                  \
        static ret (*real_##name)(__VA_ARGS__);                               \
        if (!real_##name)                                                     \
                real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
        REAL(pwrite, ssize_t, int, const void *, size_t, off_t);
        if (failing(fd)) {
                errno = ENOSPC;
                return -1;
        }
        return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
        REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
        if (failing(fd)) {
                errno = ENOSPC;
                return -1;
        }
        return real_pwrite64(fd, buf, n, off);
}

ssize_t write(int fd, const void *buf, size_t n)
{
        REAL(write, ssize_t, int, const void *, size_t);
        if (fd > 2 && failing(fd)) {
                errno = ENOSPC;
                return -1;
        }
        return real_write(fd, buf, n);
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
        REAL(writev, ssize_t, int, const struct iovec *, int);
        if (fd > 2 && failing(fd)) {
                errno = ENOSPC;
                return -1;
        }
        return real_writev(fd, iov, n);
}
