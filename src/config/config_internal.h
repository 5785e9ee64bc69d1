/* config_internal.h: the key table types shared by config.c (parsing,
 * validation) and config_print.c (printing, reference docs). Not part of the
 * public API: only files in src/config include it. */
#pragma once

#include "config/config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum key_type {
        KT_STR,         /* char * */
        KT_INT,         /* int64_t, plain decimal integer in [min, max] */
        KT_DURATION,    /* int64_t milliseconds, in [min, max] */
        KT_BOOL,        /* bool */
        KT_ENUM,        /* an enum stored as int; names in enums[] */
        KT_LIST,        /* struct config_strv */
        KT_ENV,         /* struct config_envv */
        KT_SECTION,     /* a nested mapping, embedded struct described by sub */
        KT_NAMED,       /* NAME -> mapping; array of sub->size at off, count at count_off */
        KT_REFUSED,     /* never accepted; doc is the reason and the fix */
};

#define KF_REQUIRED   (1u << 0)
#define KF_ZERO_UNSET (1u << 1)  /* KT_INT: 0 means "not set" and is not printed */

struct walk;
struct ynode;
struct key;

/* Extra validation after a value was converted and stored in obj. Reports
 * its own errors; returns false when it did. v may come from a default. */
typedef bool (*key_check_fn)(struct walk *w, const struct key *k,
                             const struct ynode *v, void *obj);

struct key {
        const char *name;
        enum key_type type;
        unsigned flags;
        const char *def;            /* default as YAML text, NULL = none */
        size_t off;                 /* of the field in the section's struct */
        const char *const *enums;   /* KT_ENUM: NULL-terminated names */
        int64_t min, max;           /* KT_INT, KT_DURATION (ms) */
        key_check_fn check;
        const struct section *sub;  /* KT_SECTION, KT_NAMED */
        size_t count_off;           /* KT_NAMED: offset of the size_t count */
        const char *type_doc;       /* overrides the type name in docs/messages */
        const char *example;        /* shown when a required key is missing */
        const char *doc;
        /* Keys of some variants only (e.g. of providers of type local): a
         * bit per value of the section's variant key, (1u << value); 0 =
         * every variant. */
        unsigned variants;
};

#define KV(v) (1u << (v))

/* Cross-key checks of one mapping once every key was converted. seen_k and
 * seen_v hold, per key index, the key and value nodes (NULL when absent);
 * where is the node naming the mapping (for positions). */
typedef void (*section_finish_fn)(struct walk *w, void *obj,
                                  const struct ynode *const *seen_k,
                                  const struct ynode *const *seen_v,
                                  const struct ynode *where);

struct section {
        const char *name;           /* "forge", "pool", ...: used in messages */
        const char *title;          /* reference heading: "pools.NAME.runner" */
        const char *doc;
        const struct key *keys;
        size_t n_keys;
        size_t size;                /* KT_NAMED entries: sizeof the struct */
        size_t pos_off;             /* KT_NAMED entries: offset of struct config_pos */
        section_finish_fn finish;
        void (*done)(void *obj);    /* frees derived fields the table does not know */
        /* The KT_ENUM key of keys[] ("type") whose value decides which
         * keys with variants apply; NULL when the section has none. */
        const struct key *variant;
};

/* True when key k applies to obj, an entry of sec (always for keys without
 * variants). */
bool config__key_applies(const struct section *sec, const struct key *k, const void *obj);

/* True when the mapping of named section sec was malformed (its entries
 * are unknown, so references to them are not checked). */
bool config__walk_broken(const struct walk *w, const struct section *sec);

/* The root of the key table. */
extern const struct section config__top;

/* Frees every field of obj that sec describes, recursively, then calls
 * sec->done. Does not free obj. */
void config__section_done(const struct section *sec, void *obj);

/* Writes s as a YAML scalar: plain when that is unambiguous, otherwise
 * double-quoted with escapes. */
void config__yaml_scalar(FILE *f, const char *s);
