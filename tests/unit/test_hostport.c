/* test_hostport.c: "HOST:PORT" parsing (every accepted form, every reason
 * for a refusal), socket addresses and formatting. Pure code. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "util/hostport.h"

static void accepted(void **state)
{
        static const struct {
                const char *in;
                unsigned flags;
                const char *host;
                unsigned port;
                int family;
                const char *formatted;
        } ok[] = {
                { "127.0.0.1:9464", 0, "127.0.0.1", 9464, AF_INET, "127.0.0.1:9464" },
                { "0.0.0.0:0", 0, "0.0.0.0", 0, AF_INET, "0.0.0.0:0" },
                { "localhost:65535", 0, "localhost", 65535, AF_UNSPEC, "localhost:65535" },
                { "[::1]:80", 0, "::1", 80, AF_INET6, "[::1]:80" },
                { "[::]:00080", 0, "::", 80, AF_INET6, "[::]:80" },
                { "[fe80::1:2]:1", 0, "fe80::1:2", 1, AF_INET6, "[fe80::1:2]:1" },
                { ":9464", HOSTPORT_ANY_HOST, "", 9464, AF_UNSPEC, ":9464" },
        };
        struct hostport hp;
        char buf[64];

        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
                const char *why = NULL;
                if (hostport_parse(ok[i].in, ok[i].flags, &hp, &why) != 0)
                        fail_msg("\"%s\" refused: %s", ok[i].in, why);
                assert_string_equal(hp.host, ok[i].host);
                assert_int_equal(hp.port, ok[i].port);
                assert_int_equal(hp.family, ok[i].family);
                assert_int_equal(hostport_format(&hp, buf, sizeof(buf)), 0);
                assert_string_equal(buf, ok[i].formatted);
        }
        assert_int_equal(hostport_parse("[::1]:1", 0, &hp, NULL), 0);
        assert_int_equal(hostport_format(&hp, buf, 5), -ENOBUFS);
}

static void refused(void **state)
{
        static const struct {
                const char *in;
                const char *why;        /* a word of the reason */
        } bad[] = {
                { "", "HOST:PORT" },
                { "127.0.0.1", "HOST:PORT" },
                { ":9464", "missing host" },
                { "127.0.0.1:", "port" },
                { "127.0.0.1:-1", "port" },
                { "127.0.0.1:+80", "port" },
                { "127.0.0.1: 80", "port" },
                { "127.0.0.1:80x", "port" },
                { "127.0.0.1:000080", "port" },
                { "::1:80", "brackets" },
                { "[::1]", "[IPv6]:PORT" },
                { "[::1]80", "[IPv6]:PORT" },
                { "[]:80", "IPv6" },
                { "[nope]:1", "IPv6" },
                { "[127.0.0.1]:1", "IPv6" },
                { "1.2.3:80", "IP address or localhost" },
                { "example.com:80", "IP address or localhost" },
                { "LOCALHOST:80", "IP address or localhost" },
                { " 127.0.0.1:80", "IP address or localhost" },
        };
        struct hostport hp = { .port = 7 };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                const char *why = NULL;
                if (hostport_parse(bad[i].in, 0, &hp, &why) != -EINVAL)
                        fail_msg("\"%s\" accepted", bad[i].in);
                assert_non_null(why);
                if (!strstr(why, bad[i].why))
                        fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", bad[i].in, why, bad[i].why);
        }
        assert_int_equal(hostport_parse(NULL, 0, &hp, NULL), -EINVAL);
        /* Digits out of range are told apart, so the value can be named. */
        const char *why = NULL;
        assert_int_equal(hostport_parse("127.0.0.1:65536", 0, &hp, &why), -ERANGE);
        assert_non_null(strstr(why, "65535"));
        assert_int_equal(hostport_parse("[::1]:99999999999", 0, &hp, NULL), -ERANGE);
        assert_int_equal(hp.port, 7); /* untouched on failure */
}

static void sockaddrs(void **state)
{
        struct hostport hp;
        struct sockaddr_storage ss;
        socklen_t len;
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&ss;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;

        assert_int_equal(hostport_parse("10.1.2.3:9464", 0, &hp, NULL), 0);
        assert_int_equal(hostport_sockaddr(&hp, &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(len, sizeof(struct sockaddr_in));
        assert_int_equal(ntohs(a4->sin_port), 9464);
        assert_int_equal(ntohl(a4->sin_addr.s_addr), 0x0a010203);

        assert_int_equal(hostport_parse("localhost:1", 0, &hp, NULL), 0);
        assert_int_equal(hostport_sockaddr(&hp, &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(ntohl(a4->sin_addr.s_addr), INADDR_LOOPBACK);

        assert_int_equal(hostport_parse("[::1]:2", 0, &hp, NULL), 0);
        assert_int_equal(hostport_sockaddr(&hp, &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(len, sizeof(struct sockaddr_in6));
        assert_true(IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr));
        assert_int_equal(ntohs(a6->sin6_port), 2);

        assert_int_equal(hostport_parse(":3", HOSTPORT_ANY_HOST, &hp, NULL), 0);
        assert_int_equal(hostport_sockaddr(&hp, &ss, &len), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_true(IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr));
        assert_int_equal(ntohs(a6->sin6_port), 3);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(accepted),
                cmocka_unit_test(refused),
                cmocka_unit_test(sockaddrs),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
