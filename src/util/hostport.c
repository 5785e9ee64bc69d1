/* hostport.c: see hostport.h. The one parser of listen and connect
 * addresses; callers add their own policy (loopback only, no "any") on the
 * parsed result. Never resolves names and never touches a socket. */
#include "util/hostport.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static int fail(const char **ret_why, const char *why)
{
        if (ret_why)
                *ret_why = why;
        return -EINVAL;
}

/* 1 to 5 decimal digits, at most 65535: no sign, no spaces. */
/* 0, -EINVAL (not a number), or -ERANGE (digits, but above 65535: the
 * caller can name the value). */
static int parse_port(const char *s, uint16_t *ret)
{
        unsigned long v = 0;
        size_t n = strlen(s);

        if (!n)
                return -EINVAL;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return -EINVAL;
                if (v <= 65535)
                        v = v * 10 + (unsigned long)(*s - '0');
        }
        if (v > 65535)
                return -ERANGE;
        if (n > 5)      /* 000080: not how a port is written */
                return -EINVAL;
        *ret = (uint16_t)v;
        return 0;
}

int hostport_parse(const char *s, unsigned flags, struct hostport *ret, const char **ret_why)
{
        struct hostport hp = { .family = AF_UNSPEC };
        unsigned char bin[sizeof(struct in6_addr)];
        const char *hs, *ps;
        size_t hl;

        if (!s || !*s)
                return fail(ret_why, "expected HOST:PORT, e.g. 127.0.0.1:9464");
        if (s[0] == '[') {
                const char *rb = strchr(s, ']');
                if (!rb || rb[1] != ':')
                        return fail(ret_why, "expected [IPv6]:PORT, e.g. [::1]:9464");
                hs = s + 1;
                hl = (size_t)(rb - hs);
                ps = rb + 2;
                if (hl == 0 || hl >= sizeof(hp.host))
                        return fail(ret_why, "not an IPv6 address in the brackets");
                memcpy(hp.host, hs, hl);
                if (inet_pton(AF_INET6, hp.host, bin) != 1)
                        return fail(ret_why, "not an IPv6 address in the brackets");
                hp.family = AF_INET6;
        } else {
                const char *colon = strrchr(s, ':');
                if (!colon)
                        return fail(ret_why, "expected HOST:PORT, e.g. 127.0.0.1:9464");
                hs = s;
                hl = (size_t)(colon - s);
                ps = colon + 1;
                if (memchr(hs, ':', hl))
                        return fail(ret_why, "an IPv6 address needs brackets, e.g. [::1]:9464");
                if (hl == 0 && !(flags & HOSTPORT_ANY_HOST))
                        return fail(ret_why, "missing host before the port, e.g. 127.0.0.1:9464");
                if (hl >= sizeof(hp.host))
                        return fail(ret_why, "host must be an IP address or localhost");
                memcpy(hp.host, hs, hl);
                if (hl && strcmp(hp.host, "localhost") != 0) {
                        if (inet_pton(AF_INET, hp.host, bin) != 1)
                                return fail(ret_why, "host must be an IP address or localhost");
                        hp.family = AF_INET;
                }
        }
        int r = parse_port(ps, &hp.port);
        if (r < 0) {
                if (ret_why)
                        *ret_why = "port must be a number from 0 to 65535";
                return r;
        }
        *ret = hp;
        return 0;
}

int hostport_sockaddr(const struct hostport *hp, struct sockaddr_storage *ret_addr,
                      socklen_t *ret_len)
{
        struct sockaddr_storage ss;

        memset(&ss, 0, sizeof(ss));
        if (hp->family == AF_INET6 || hp->host[0] == '\0') {
                struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons(hp->port);
                if (hp->host[0])
                        (void)inet_pton(AF_INET6, hp->host, &a6->sin6_addr);
                else
                        a6->sin6_addr = in6addr_any;
                *ret_len = sizeof(*a6);
        } else {
                struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
                a4->sin_family = AF_INET;
                a4->sin_port = htons(hp->port);
                if (hp->family == AF_INET)
                        (void)inet_pton(AF_INET, hp->host, &a4->sin_addr);
                else
                        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK); /* localhost */
                *ret_len = sizeof(*a4);
        }
        *ret_addr = ss;
        return 0;
}

int hostport_format(const struct hostport *hp, char *buf, size_t n)
{
        int r = snprintf(buf, n, hp->family == AF_INET6 ? "[%s]:%u" : "%s:%u", hp->host,
                         (unsigned)hp->port);

        return r < 0 || (size_t)r >= n ? -ENOBUFS : 0;
}
