/* hash.h: the one string hash of the project (FNV-1a, 64 bits), for the
 * in-memory tables: strmap, the local provider's instances, metric series,
 * the simulator's maps. Not for anything an attacker could aim collisions
 * at without a seed, nor for anything persisted. Pure, header-only. */
#pragma once

#include <stdint.h>

#define HASH_FNV_OFFSET 1469598103934665603ULL
#define HASH_FNV_PRIME  1099511628211ULL

/* Folds one byte into a running hash that started at hash_start(seed). */
static inline uint64_t hash_byte(uint64_t h, unsigned char c)
{
        return (h ^ c) * HASH_FNV_PRIME;
}

static inline uint64_t hash_start(uint64_t seed)
{
        return HASH_FNV_OFFSET ^ seed;
}

static inline uint64_t hash_str(const char *s, uint64_t seed)
{
        uint64_t h = hash_start(seed);

        for (; *s; s++)
                h = hash_byte(h, (unsigned char)*s);
        return h;
}

/* A final avalanche, for tables that take bucket = h & (n - 1): FNV's low
 * bits alone mix poorly. */
static inline uint64_t hash_mix(uint64_t h)
{
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        return h;
}
