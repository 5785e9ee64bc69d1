/* strmap.c: see strmap.h. FNV-1a, linear probing, tombstones, load <= 1/2. */
#include "util/strmap.h"
#include "util/hash.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct strmap_slot {
        const char *key;   /* NULL = empty; TOMB = deleted */
        void *value;
        uint64_t hash;
};

static const char tomb_mark;
#define TOMB (&tomb_mark)

static uint64_t fnv(const char *s)
{
        return hash_str(s, 0);
}

static struct strmap_slot *find(const struct strmap *m, const char *key, uint64_t h)
{
        if (!m->cap)
                return NULL;
        for (size_t i = h & (m->cap - 1), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
                struct strmap_slot *s = &m->slots[i];
                if (!s->key)
                        return NULL;
                if (s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
                        return s;
        }
        return NULL;
}

void *strmap_get(const struct strmap *m, const char *key)
{
        struct strmap_slot *s = find(m, key, fnv(key));

        return s ? s->value : NULL;
}

static int grow(struct strmap *m)
{
        size_t ncap = 16;
        struct strmap_slot *old = m->slots;
        size_t oldcap = m->cap;

        while (ncap < 4 * (m->live + 1))
                ncap *= 2;
        m->slots = calloc(ncap, sizeof(*m->slots));
        if (!m->slots) {
                m->slots = old;
                return -ENOMEM;
        }
        m->cap = ncap;
        m->used = m->live;
        for (size_t i = 0; i < oldcap; i++) {
                if (!old[i].key || old[i].key == TOMB)
                        continue;
                size_t j = old[i].hash & (ncap - 1);
                while (m->slots[j].key)
                        j = (j + 1) & (ncap - 1);
                m->slots[j] = old[i];
        }
        free(old);
        return 0;
}

int strmap_put(struct strmap *m, const char *key, void *value)
{
        uint64_t h = fnv(key);
        struct strmap_slot *s = find(m, key, h);

        if (s) {
                s->key = key;
                s->value = value;
                return 0;
        }
        if ((m->used + 1) * 2 > m->cap && grow(m) < 0)
                return -ENOMEM;
        size_t i = h & (m->cap - 1);
        while (m->slots[i].key && m->slots[i].key != TOMB)
                i = (i + 1) & (m->cap - 1);
        if (!m->slots[i].key)
                m->used++;
        m->slots[i] = (struct strmap_slot){ .key = key, .value = value, .hash = h };
        m->live++;
        return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
        struct strmap_slot *s = find(m, key, fnv(key));
        void *v;

        if (!s)
                return NULL;
        v = s->value;
        s->key = TOMB;
        s->value = NULL;
        m->live--;
        return v;
}

size_t strmap_size(const struct strmap *m)
{
        return m->live;
}

void strmap_done(struct strmap *m)
{
        free(m->slots);
        *m = (struct strmap)STRMAP_INIT;
}

int strmap_next(const struct strmap *m, size_t *pos, const char **ret_key, void **ret_value)
{
        while (*pos < m->cap) {
                struct strmap_slot *s = &m->slots[(*pos)++];
                if (s->key && s->key != TOMB) {
                        if (ret_key)
                                *ret_key = s->key;
                        if (ret_value)
                                *ret_value = s->value;
                        return 1;
                }
        }
        return 0;
}
