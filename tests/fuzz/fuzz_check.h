/* fuzz_check.h: what every fuzz target shares: FUZZ_CHECK, which turns a
 * broken promise into an abort that libFuzzer records as a crash, and
 * fuzz_sink(), which keeps results observable so the compiler cannot drop
 * the work that produced them. Header only; never used outside tests/fuzz. */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

__attribute__((noreturn, format(printf, 3, 4)))
static inline void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "FUZZ CHECK FAILED at %s:%d: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        abort();
}

#define FUZZ_CHECK(cond, ...)                                                   \
        do {                                                                    \
                if (!(cond))                                                    \
                        fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);             \
        } while (0)

static volatile uint64_t fuzz_sink_state;

/* Folds n bytes into a volatile, which the optimiser must keep. */
static inline void fuzz_sink(const void *p, size_t n)
{
        const unsigned char *b = p;
        uint64_t h = fuzz_sink_state;

        for (size_t i = 0; i < n; i++)
                h = (h ^ b[i]) * UINT64_C(0x100000001b3);
        fuzz_sink_state = h;
}

static inline void fuzz_sink_i64(int64_t v)
{
        fuzz_sink(&v, sizeof(v));
}
