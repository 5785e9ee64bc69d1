/* secret.c: see secret.h. */
#include "util/secret.h"
#include "util/fsutil.h"
#include "util/log.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static int finish(char *buf, char **ret)
{
        size_t n = strlen(buf);

        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                         buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = '\0';
        if (n == 0) {
                free(buf);
                return -ENODATA;
        }
        if (strpbrk(buf, "\r\n")) {
                secret_free(buf);
                return -EINVAL;
        }
        log_redact_add(buf);
        *ret = buf;
        return 0;
}

int secret_load_file(const char *path, char **ret)
{
        char *buf;
        size_t len;
        int r = fs_read_regular(path, SECRET_MAX, &buf, &len);

        if (r < 0)
                return r;
        /* A NUL would cut the token silently; leading blanks are no part
         * of a token either: a file damaged or written by hand. */
        if (strlen(buf) != len || buf[0] == ' ' || buf[0] == '\t') {
                secret_free(buf);
                return -EINVAL;
        }
        return finish(buf, ret);
}

int secret_load_env(const char *name, char **ret)
{
        const char *v = getenv(name);
        char *buf;

        if (!v)
                return -ENOENT;
        if (strlen(v) > SECRET_MAX)
                return -EFBIG;
        buf = strdup(v);
        if (!buf)
                return -ENOMEM;
        return finish(buf, ret);
}

bool secret_equal(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        volatile unsigned char diff = (unsigned char)(la != lb);

        /* Compare over b's length always so timing reveals nothing about
         * where a mismatch is; index a modulo its length to stay in bounds. */
        for (size_t i = 0; i < lb; i++)
                diff |= (unsigned char)(b[i] ^ (la ? a[i % la] : 0));
        return diff == 0;
}

void secret_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

int secret_random_hex(char *buf, size_t n)
{
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[64];

        if (n > sizeof(raw))
                return -EINVAL;
        for (size_t got = 0; got < n;) {
                ssize_t r = getrandom(raw + got, n - got, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)r;
        }
        for (size_t i = 0; i < n; i++) {
                buf[2 * i] = hex[raw[i] >> 4];
                buf[2 * i + 1] = hex[raw[i] & 15];
        }
        buf[2 * n] = '\0';
        explicit_bzero(raw, sizeof(raw));
        return 0;
}

int secret_uuid4(char buf[37])
{
        unsigned char b[16];

        for (size_t got = 0; got < sizeof(b);) {
                ssize_t r = getrandom(b + got, sizeof(b) - got, 0);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t)r;
        }
        b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
        b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
        snprintf(buf, 37,
                 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
                 b[10], b[11], b[12], b[13], b[14], b[15]);
        return 0;
}
