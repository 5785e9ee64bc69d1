/* config_internal.h: what the files of src/config share: the positioned
 * YAML tree (config_yaml.c), error collection (config_diag.c), the key table
 * types and the walk over them (config_walk.c), the table itself
 * (config_schema.c). Not part of the public API: only files in src/config
 * include it; its functions are prefixed config__. */
#pragma once

#include "config/config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MAX_ITEMS 1024          /* entries of any one mapping or list */
#define MAX_STRING 4096         /* bytes of any one scalar */
#define MAX_KEYS 32             /* keys of any one section of the table */

/* ---- config_yaml.c: YAML text to a positioned tree ------------------- */

enum ykind { YN_NULL, YN_SCALAR, YN_SEQ, YN_MAP, YN_BAD };

/* One node; the tree owns its kids. */
struct ynode {
        enum ykind kind;
        bool quoted;            /* scalar was quoted or a block scalar */
        bool dropped;           /* past MAX_ITEMS: owned by the builder's stack, not the tree */
        int line, col;          /* 1-based; 0 for defaults */
        char *s;                /* scalar text (NUL-terminated copy) */
        size_t len;
        struct ynode **kids;    /* SEQ: items; MAP: key, value, key, value... */
        size_t n, cap;
};

static inline size_t config__map_pairs(const struct ynode *y)
{
        return y->n / 2;
}

/* Accepts NULL. */
void config__ynode_free(struct ynode *y);

struct errlist;

/* Checks text (UTF-8, no control characters, no explicit keys) and parses
 * it into a tree. Returns 0 with *ret (NULL for an empty document), -EINVAL
 * after adding errors to errs, or -ENOMEM. Errors that leave a well-formed
 * tree (aliases, tags) are added and 0 is returned, so the caller can walk
 * the tree and report everything else too. */
int config__build_tree(const char *text, size_t len, struct errlist *errs,
                       struct ynode **ret);

/* ---- config_diag.c: errors and warnings with positions ---------------- */

struct err {
        int line, col;
        size_t seq;
        bool warning;
        char *msg;
};

/* Errors and warnings of one call, flushed sorted into a config_diag. A
 * zeroed struct is empty; release with config__errlist_done(). */
struct errlist {
        struct err *v;
        size_t n, cap;
        size_t n_errors;        /* entries of v that are errors */
        size_t dropped;         /* over CONFIG_MAX_ERRORS, not kept */
        size_t dropped_errors;
        bool oom;
};

void config__errlist_done(struct errlist *l);

/* Line 0 means no position. Past CONFIG_MAX_ERRORS messages are counted,
 * not kept; out of memory sets l->oom. */
void config__errlist_add(struct errlist *l, int line, int col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
void config__errlist_warn(struct errlist *l, int line, int col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* True when l holds an error (kept or dropped), not only warnings. */
bool config__errlist_failed(const struct errlist *l);

/* Moves the messages of l, sorted by position and prefixed with file, into
 * d (which may be NULL). Returns 0 or -ENOMEM (also when l->oom). */
int config__errlist_flush(struct errlist *l, const char *file, struct config_diag *d);
/* The end of a check: -EINVAL when l holds an error (unless r already
 * failed), the messages moved into d, l released. Returns the result. */
int config__errlist_finish(struct errlist *l, const char *file, struct config_diag *d, int r);

/* Appends one formatted message to d (NULL: nothing). 0 or -ENOMEM. */
int config__diag_addf(struct config_diag *d, bool warning, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Escapes user text for a message into buf (n >= 16): quoted, with
 * quotes, backslashes and control bytes escaped, cut with "..." when long. */
const char *config__quote(char *buf, size_t n, const char *s);

#define QBUF 96
#define Q(s) config__quote((char[QBUF]){ 0 }, QBUF, (s))
/* The same without the quotes, for names inside a list or a quoted path. */
const char *config__bare(char *buf, size_t n, const char *s);
#define B(s) config__bare((char[QBUF]){ 0 }, QBUF, (s))

/* ---- the key table's types (config_schema.c holds the table) --------- */

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
        KT_JSON,        /* char *: any YAML value as compact JSON text (quoted
                         * scalars are strings; plain ones null, true/false,
                         * integers or strings); check validates the nodes */
};

#define KF_REQUIRED   (1u << 0)
#define KF_ZERO_UNSET (1u << 1)  /* KT_INT: 0 means "not set" and is not printed */
#define KF_STRINGS    (1u << 2)  /* KT_JSON: every scalar becomes a string */

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


/* ---- config_walk.c: the walk over the key table ---------------------- */

/* State of one parse. */
struct walk {
        struct errlist *errs;
        struct config *cfg;
        const char *dir;
        char who[128];          /* `pool "linux": ` */
        char path[64];          /* `runner.` */
        char kbuf[128];
        /* Named sections (forges, providers) whose mapping is malformed:
         * references to their entries are not checked. */
        const struct section *broken[4];
        size_t n_broken;
};

/* An error (or warning) at node at (NULL: no position), prefixed with the
 * entry being walked (`pool "linux": `). */
void config__werr(struct walk *w, const struct ynode *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void config__wwarn(struct walk *w, const struct ynode *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* The key's path for messages ("runner.command"); valid until the next call. */
const char *config__kp(struct walk *w, const struct key *k);

/* A variable name: letters, digits and '_', not starting with a digit. */
bool config__env_name_ok(const char *s);

/* "a list", "a string ("x")", ... for "got ..." in messages. */
const char *config__describe(const struct ynode *y, char *buf, size_t n);
#define DESC(y) config__describe((y), (char[160]){ 0 }, 160)

static inline void *config__field(void *obj, const struct key *k)
{
        return (char *)obj + k->off;
}

/* Converts the mapping map (NULL: empty) into obj as sec describes: every
 * key converted or defaulted, unknown and duplicate keys reported, then
 * sec->finish. where is the node naming the mapping, for positions. */
void config__walk_map(struct walk *w, const struct section *sec, void *obj,
                      const struct ynode *map, const struct ynode *where);

/* True when key k applies to obj, an entry of sec (always for keys without
 * variants). */
bool config__key_applies(const struct section *sec, const struct key *k, const void *obj);

/* True when the mapping of named section sec was malformed (its entries
 * are unknown, so references to them are not checked). */
bool config__walk_broken(const struct walk *w, const struct section *sec);

/* Frees every field of obj that sec describes, recursively, then calls
 * sec->done. Does not free obj. */
void config__section_done(const struct section *sec, void *obj);

/* ---- config_schema.c: the key table ------------------------------------ */

/* The root of the key table. */
extern const struct section config__top;

/* A user or group name (portable characters, not starting with '-', at
 * most 32) or a numeric id below (uid_t)-1; *ret_numeric says which. */
bool config__account_ok(const char *s, bool *ret_numeric);

/* ---- config_print.c ------------------------------------------------------ */

/* Writes s as a YAML scalar: plain when that is unambiguous, otherwise
 * double-quoted with escapes. */
void config__yaml_scalar(FILE *f, const char *s);
