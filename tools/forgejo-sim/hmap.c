/* hmap.c: a string-keyed chained hash map with a per-map random seed, used
 * for every name, uuid, token and handle lookup of the simulator.
 * Owns its entries and key copies, never the values. Not thread-safe: the
 * caller's lock protects it. */
#include "sim.h"
#include "util/hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define HMAP_MIN_BUCKETS 64


int hmap_init(struct hmap *m)
{
        memset(m, 0, sizeof(*m));
        m->buckets = calloc(HMAP_MIN_BUCKETS, sizeof(*m->buckets));
        if (!m->buckets)
                return -ENOMEM;
        m->n_buckets = HMAP_MIN_BUCKETS;
        if (getrandom(&m->seed, sizeof(m->seed), GRND_NONBLOCK) != (ssize_t)sizeof(m->seed))
                m->seed = (uint64_t)(uintptr_t)m ^ 0x9e3779b97f4a7c15ULL;
        return 0;
}

void hmap_done(struct hmap *m)
{
        if (!m->buckets)
                return;
        for (size_t i = 0; i < m->n_buckets; i++) {
                struct hmap_entry *e = m->buckets[i];
                while (e) {
                        struct hmap_entry *next = e->next;
                        free(e->key);
                        free(e);
                        e = next;
                }
        }
        free(m->buckets);
        memset(m, 0, sizeof(*m));
}

static void grow(struct hmap *m)
{
        size_t nb = m->n_buckets * 2;
        struct hmap_entry **b = calloc(nb, sizeof(*b));

        if (!b)
                return; /* keep working with longer chains */
        for (size_t i = 0; i < m->n_buckets; i++) {
                struct hmap_entry *e = m->buckets[i];
                while (e) {
                        struct hmap_entry *next = e->next;
                        size_t k = (size_t)(e->hash & (nb - 1));
                        e->next = b[k];
                        b[k] = e;
                        e = next;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->n_buckets = nb;
}

int hmap_add(struct hmap *m, const char *key, void *value)
{
        struct hmap_entry *e = calloc(1, sizeof(*e));

        if (!e)
                return -ENOMEM;
        e->key = strdup(key);
        if (!e->key) {
                free(e);
                return -ENOMEM;
        }
        e->hash = hash_mix(hash_str(key, m->seed));
        e->value = value;
        if (m->n >= m->n_buckets)
                grow(m);
        size_t k = (size_t)(e->hash & (m->n_buckets - 1));
        e->next = m->buckets[k];
        m->buckets[k] = e;
        m->n++;
        return 0;
}

struct hmap_entry *hmap_find(const struct hmap *m, const char *key)
{
        uint64_t h = hash_mix(hash_str(key, m->seed));

        for (struct hmap_entry *e = m->buckets[h & (m->n_buckets - 1)]; e; e = e->next)
                if (e->hash == h && strcmp(e->key, key) == 0)
                        return e;
        return NULL;
}

struct hmap_entry *hmap_next_same(const struct hmap_entry *cur)
{
        for (struct hmap_entry *e = cur->next; e; e = e->next)
                if (e->hash == cur->hash && strcmp(e->key, cur->key) == 0)
                        return e;
        return NULL;
}

void *hmap_get(const struct hmap *m, const char *key)
{
        struct hmap_entry *e = hmap_find(m, key);

        return e ? e->value : NULL;
}

void hmap_remove(struct hmap *m, const char *key, const void *value)
{
        uint64_t h = hash_mix(hash_str(key, m->seed));
        struct hmap_entry **pp = &m->buckets[h & (m->n_buckets - 1)];

        for (; *pp; pp = &(*pp)->next) {
                struct hmap_entry *e = *pp;
                if (e->hash == h && e->value == value && strcmp(e->key, key) == 0) {
                        *pp = e->next;
                        free(e->key);
                        free(e);
                        m->n--;
                        return;
                }
        }
}

void hmap_foreach(const struct hmap *m, void (*fn)(struct hmap_entry *e, void *arg), void *arg)
{
        for (size_t i = 0; i < m->n_buckets; i++)
                for (struct hmap_entry *e = m->buckets[i]; e; e = e->next)
                        fn(e, arg);
}
