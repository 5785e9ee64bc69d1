/* duration.h: parsing and printing of human durations ("250ms", "2s", "1h30m").
 * Pure functions; no I/O. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Parses a sequence of <integer><unit> with units d, h, m, s, ms into
 * milliseconds; each unit appears at most once, largest first ("1h30m",
 * "1m500ms"). A bare "0" is accepted. Returns 0, -EINVAL for anything else
 * (empty, unknown or missing unit, negative, a unit repeated or out of
 * order) and -ERANGE when the total does not fit in int64 milliseconds.
 * *ret_ms is set only on success. */
int duration_parse(const char *s, int64_t *ret_ms);

/* Prints ms in the shortest exact form ("1h30m", "250ms", "0s"). */
void duration_format(int64_t ms, char *buf, size_t n);
