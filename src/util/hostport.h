/* hostport.h: "HOST:PORT" addresses as the configuration, the daemon's
 * HTTP server and forgejo-sim write them: HOST is an IPv4 address, an IPv6
 * address in brackets or "localhost", PORT 0 to 65535. Pure: parses and
 * converts, never resolves a name (no DNS), never opens a socket, never
 * logs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HOSTPORT_HOST_MAX 46            /* INET6_ADDRSTRLEN */

/* hostport_parse() flags */
#define HOSTPORT_ANY_HOST 0x1u          /* ":PORT" means every interface */

struct hostport {
        char host[HOSTPORT_HOST_MAX];   /* without brackets; "" for ":PORT" */
        uint16_t port;
        int family;                     /* AF_INET, AF_INET6, or AF_UNSPEC for
                                         * "localhost" and "" */
};

/* Parses s. Returns 0 with *ret set, or -EINVAL (-ERANGE for a port of
 * digits above 65535) with *ret_why (when ret_why is not NULL) set to a
 * reason a person can act on, a static string such as "an IPv6 address
 * needs brackets, e.g. [::1]:9464". */
int hostport_parse(const char *s, unsigned flags, struct hostport *ret, const char **ret_why);

/* The socket address: numeric hosts as written, "localhost" as 127.0.0.1,
 * "" as the IPv6 any address (dual stack when bound with IPV6_V6ONLY 0).
 * Returns 0. */
int hostport_sockaddr(const struct hostport *hp, struct sockaddr_storage *ret_addr,
                      socklen_t *ret_len);

/* Writes "host:port" ("[v6]:port", ":port") into buf. Returns 0 or
 * -ENOBUFS when n is too small (buf then holds a truncated string). */
int hostport_format(const struct hostport *hp, char *buf, size_t n);
