/* rfc3339.h: RFC 3339 timestamps to and from seconds + nanoseconds since
 * the Unix epoch, over the range of a protobuf Timestamp (years 0001 to
 * 9999, UTC). Pure calendar arithmetic: never uses the time zone database,
 * the locale or libc's normalising time conversions, so an impossible date
 * is an error instead of silently becoming another day. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Bytes a formatted timestamp needs, NUL included:
 * "9999-12-31T23:59:59.999999999Z". */
#define RFC3339_BUF 31

/* Fraction digits: RFC3339_FRAC_AUTO prints 0, 3, 6 or 9 digits, the
 * fewest that are exact (protojson's rule); 0..9 print exactly that many
 * (truncating, never rounding up into the next second). */
#define RFC3339_FRAC_AUTO (-1)

/* Writes "YYYY-MM-DDTHH:MM:SS[.f]Z" into buf. Returns the length;
 * -ERANGE when sec is outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59Z;
 * -EINVAL when nsec is outside [0, 1e9) or frac is not AUTO or 0..9;
 * -ENOBUFS when n is too small (buf then holds ""). */
int rfc3339_format(int64_t sec, int32_t nsec, int frac, char *buf, size_t n);

/* Parses s[0..len): "YYYY-MM-DD" 'T' "HH:MM:SS", an optional '.' and 1 to 9
 * fraction digits, then 'Z' or "+HH:MM"/"-HH:MM" ('t' and 'z' are taken
 * too, RFC 3339 section 5.6). The day must exist in its month; leap seconds
 * (":60"), more than 9 fraction digits, and instants outside the range
 * above after applying the offset are rejected.
 * Returns 0 with the outputs set, or -EINVAL (outputs untouched). */
int rfc3339_parse(const char *s, size_t len, int64_t *ret_sec, int32_t *ret_nsec);
