/* strmap.h: an open-addressing hash map from borrowed C strings to
 * pointers. The map never copies or frees keys: a key must stay valid while
 * its entry exists (store it inside the value). Never logs. */
#pragma once

#include <stddef.h>

struct strmap {
        struct strmap_slot *slots;
        size_t cap;     /* power of two, 0 when empty */
        size_t used;    /* live + tombstones */
        size_t live;
};

#define STRMAP_INIT { NULL, 0, 0, 0 }

/* Returns the value or NULL. */
void *strmap_get(const struct strmap *m, const char *key);
/* Inserts or replaces. Returns 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value);
/* Removes and returns the value (NULL when absent). */
void *strmap_del(struct strmap *m, const char *key);
size_t strmap_size(const struct strmap *m);
void strmap_done(struct strmap *m);

/* Iteration: *pos starts at 0; returns 0 at the end. */
int strmap_next(const struct strmap *m, size_t *pos, const char **ret_key, void **ret_value);
