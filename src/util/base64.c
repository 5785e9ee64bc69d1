/* base64.c: see base64.h. Owns both alphabets and the padding rules; the
 * decoder checks every character before it writes a byte, so a bad string
 * never yields a partial result. Never does I/O, never logs. */
#include "util/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char std_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *in, size_t n)
{
        const unsigned char *p = in;
        size_t groups = n / 3 + (n % 3 != 0);
        char *out, *o;

        if (groups > (SIZE_MAX - 1) / 4)
                return NULL;
        out = malloc(4 * groups + 1);
        if (!out)
                return NULL;
        o = out;
        for (size_t i = 0; i < n; i += 3) {
                uint32_t v = (uint32_t)p[i] << 16;
                if (i + 1 < n)
                        v |= (uint32_t)p[i + 1] << 8;
                if (i + 2 < n)
                        v |= p[i + 2];
                *o++ = std_alphabet[(v >> 18) & 63];
                *o++ = std_alphabet[(v >> 12) & 63];
                *o++ = i + 1 < n ? std_alphabet[(v >> 6) & 63] : '=';
                *o++ = i + 2 < n ? std_alphabet[v & 63] : '=';
        }
        *o = '\0';
        return out;
}

/* The 6-bit value of c in the chosen alphabet, or -1. */
static int sextet(unsigned char c, bool url)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == (url ? '-' : '+'))
                return 62;
        if (c == (url ? '_' : '/'))
                return 63;
        return -1;
}

int base64_decode(const char *s, size_t len, unsigned char **ret, size_t *ret_len)
{
        bool url = false;
        size_t data = len, o = 0;
        unsigned char *out;
        uint32_t acc = 0;
        int bits = 0;

        if (!s && len)
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if (s[i] == '-' || s[i] == '_')
                        url = true;
        if (len % 4 == 0) {
                /* Padded form: at most two '=' and only at the end. */
                if (data > 0 && s[data - 1] == '=')
                        data--;
                if (data > 0 && s[data - 1] == '=')
                        data--;
        }
        if (data % 4 == 1)
                return -EINVAL;
        /* A '=' left in the data ("QQ=A", "Q===") is rejected here too. */
        for (size_t i = 0; i < data; i++)
                if (sextet((unsigned char)s[i], url) < 0)
                        return -EINVAL;
        out = malloc(data / 4 * 3 + 3);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < data; i++) {
                acc = (acc << 6) | (uint32_t)sextet((unsigned char)s[i], url);
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (unsigned char)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        out[o] = '\0';
        *ret = out;
        *ret_len = o;
        return 0;
}
