/* fsutil.c: see fsutil.h. All fds are O_CLOEXEC. */
#include "util/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_fd(int fd, size_t max, char **ret, size_t *ret_len);

int fs_read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

        if (fd < 0)
                return -errno;
        return read_fd(fd, max, ret, ret_len);
}

int fs_read_regular(const char *path, size_t max, char **ret, size_t *ret_len)
{
        struct stat st;
        int fd, r;

        /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        else
                return read_fd(fd, max, ret, ret_len);
        close(fd);
        return r;
}

/* Reads fd to its end and closes it. */
static int read_fd(int fd, size_t max, char **ret, size_t *ret_len)
{
        char *buf = NULL;
        size_t len = 0, cap = 0;
        int r;

        for (;;) {
                if (len + 1 >= cap) {
                        size_t ncap = cap ? cap * 2 : 4096;
                        if (ncap > max + 2)
                                ncap = max + 2;
                        if (ncap <= len + 1) {
                                r = -EFBIG;
                                goto err;
                        }
                        char *n = realloc(buf, ncap);
                        if (!n) {
                                r = -ENOMEM;
                                goto err;
                        }
                        buf = n;
                        cap = ncap;
                }
                ssize_t rd = read(fd, buf + len, cap - len - 1);
                if (rd < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto err;
                }
                if (rd == 0)
                        break;
                len += (size_t)rd;
                if (len > max) {
                        r = -EFBIG;
                        goto err;
                }
        }
        close(fd);
        if (!buf) {
                buf = malloc(1);
                if (!buf)
                        return -ENOMEM;
        }
        buf[len] = '\0';
        *ret = buf;
        if (ret_len)
                *ret_len = len;
        return 0;
err:
        close(fd);
        free(buf);
        return r;
}

/* write(2) until done; -errno on failure. */
static int write_all(int fd, const void *data, size_t len)
{
        const char *p = data;

        while (len > 0) {
                ssize_t w = write(fd, p, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += w;
                len -= (size_t)w;
        }
        return 0;
}

int fs_write_file_0600(const char *path, const void *data, size_t len)
{
        char tmp[PATH_MAX];
        int fd, r;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        if ((r = write_all(fd, data, len)) < 0)
                goto err;
        if (fsync(fd) < 0) {
                r = -errno;
                goto err;
        }
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                goto err;
        }
        fd = -1;
        if (rename(tmp, path) < 0) {
                r = -errno;
                goto err;
        }
        return 0;
err:
        if (fd >= 0)
                close(fd);
        unlink(tmp);
        return r;
}

int fs_write_secret(const char *path, const void *data, size_t len)
{
        int fd, r;

        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r < 0)
                unlink(path);
        return r;
}

int fs_mkdir_p(const char *path, mode_t mode)
{
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n == 0)
                return -EINVAL;
        if (n >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int rm_at(int dirfd, const char *name)
{
        struct stat st;
        int r = 0;

        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (S_ISDIR(st.st_mode)) {
                int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0)
                        return -errno;
                DIR *d = fdopendir(fd);
                if (!d) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                struct dirent *de;
                while ((de = readdir(d))) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        int rr = rm_at(fd, de->d_name);
                        if (rr < 0 && r == 0)
                                r = rr;
                }
                closedir(d);
                if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
                        r = -errno;
                return r;
        }
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

int fs_rm_rf(const char *path)
{
        return rm_at(AT_FDCWD, path);
}

int fs_lock_pidfile(const char *path, int *ret_fd, long *ret_holder)
{
        char buf[32];
        int fd, r;
        ssize_t n;

        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        /* flock, not fcntl locks: those belong to the process and vanish when
         * any fd of the file is closed (SQLite opens and closes files). */
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                r = -errno;
                if (r == -EWOULDBLOCK && ret_holder) {
                        n = pread(fd, buf, sizeof(buf) - 1, 0);
                        buf[n > 0 ? n : 0] = '\0';
                        *ret_holder = strtol(buf, NULL, 10);
                }
                close(fd);
                return r;
        }
        n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}
