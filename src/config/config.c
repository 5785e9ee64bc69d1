/* config.c: the configuration key table and everything driven by it:
 * YAML (libfyaml events) to a small positioned tree, then one walk over the
 * table that converts values, applies defaults, detects unknown and
 * duplicate keys and runs the cross-key checks, collecting every error.
 * Never prints, logs or exits; never trusts the input (size, depth and
 * collection sizes are capped; user text in messages is escaped). */
#include "config/config.h"
#include "config/config_internal.h"

#include "util/duration.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/secret.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libfyaml.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_ITEMS 1024          /* entries of any one mapping or list */
#define MAX_STRING 4096         /* bytes of any one scalar */
_Static_assert(MAX_STRING <= CONFIG_MAX_ARG_BYTES, "a runner.command item is a scalar");
#define MAX_KEYS 32             /* keys of any one section of the table */
#define LOOKAHEAD_MAX (128u << 10) /* bytes libfyaml may read past the last event */
#define LOOKAHEAD_DEEP (16u << 10) /* the same once '[' and '{' nest deeper than allowed */
#define FEED_CHUNK 4096u        /* bytes handed to libfyaml per read */
#define DURATION_MAX (30LL * 24 * 3600 * 1000)

/* ---- positioned YAML tree ------------------------------------------- */

enum ykind { YN_NULL, YN_SCALAR, YN_SEQ, YN_MAP, YN_BAD };

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

static void ynode_free(struct ynode *y)
{
        if (!y)
                return;
        for (size_t i = 0; i < y->n; i++)
                ynode_free(y->kids[i]);
        free(y->kids);
        free(y->s);
        free(y);
}

static size_t map_pairs(const struct ynode *y)
{
        return y->n / 2;
}

/* ---- errors ------------------------------------------------------------ */

struct err {
        int line, col;
        size_t seq;
        bool warning;
        char *msg;
};

/* Errors and warnings of one call, flushed sorted into a config_diag. */
struct errlist {
        struct err *v;
        size_t n, cap;
        size_t n_errors;        /* entries of v that are errors */
        size_t dropped;         /* over CONFIG_MAX_ERRORS, not kept */
        size_t dropped_errors;
        bool oom;
};

static void errlist_done(struct errlist *l)
{
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i].msg);
        free(l->v);
        memset(l, 0, sizeof(*l));
}

static void errlist_addv(struct errlist *l, bool warning, int line, int col,
                         const char *fmt, va_list ap)
{
        char *msg;

        if (l->n >= CONFIG_MAX_ERRORS) {
                l->dropped++;
                if (!warning)
                        l->dropped_errors++;
                return;
        }
        if (vasprintf(&msg, fmt, ap) < 0) {
                l->oom = true;
                return;
        }
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 16;
                struct err *nv = realloc(l->v, ncap * sizeof(*nv));
                if (!nv) {
                        free(msg);
                        l->oom = true;
                        return;
                }
                l->v = nv;
                l->cap = ncap;
        }
        l->v[l->n] = (struct err){ .line = line, .col = col, .seq = l->n,
                                   .warning = warning, .msg = msg };
        l->n++;
        if (!warning)
                l->n_errors++;
}

/* True when the list holds an error (kept or dropped), not only warnings. */
static bool errlist_failed(const struct errlist *l)
{
        return l->n_errors > 0 || l->dropped_errors > 0;
}

static void errlist_add(struct errlist *l, int line, int col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void errlist_add(struct errlist *l, int line, int col, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        errlist_addv(l, false, line, col, fmt, ap);
        va_end(ap);
}

static void errlist_warn(struct errlist *l, int line, int col, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static void errlist_warn(struct errlist *l, int line, int col, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        errlist_addv(l, true, line, col, fmt, ap);
        va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
        const struct err *x = a, *y = b;

        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        if (x->col != y->col)
                return x->col < y->col ? -1 : 1;
        return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int diag_push(struct config_diag *d, char *msg, bool warning)
{
        struct config_msg *nv = realloc(d->msgs, (d->n + 1) * sizeof(*nv));

        if (!nv) {
                free(msg);
                return -ENOMEM;
        }
        d->msgs = nv;
        d->msgs[d->n++] = (struct config_msg){ .text = msg, .warning = warning };
        return 0;
}

static int diag_vaddf(struct config_diag *d, bool warning, const char *fmt, va_list ap)
{
        char *msg;

        if (!d)
                return 0;
        if (vasprintf(&msg, fmt, ap) < 0)
                return -ENOMEM;
        return diag_push(d, msg, warning);
}

static int diag_addf(struct config_diag *d, bool warning, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int diag_addf(struct config_diag *d, bool warning, const char *fmt, ...)
{
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = diag_vaddf(d, warning, fmt, ap);
        va_end(ap);
        return r;
}

/* Moves the sorted messages of l into d, formatted with the file name. */
static int errlist_flush(struct errlist *l, const char *file, struct config_diag *d)
{
        int r = 0;

        if (l->n)
                qsort(l->v, l->n, sizeof(l->v[0]), err_cmp);
        for (size_t i = 0; d && i < l->n && r >= 0; i++) {
                const struct err *e = &l->v[i];
                const char *sev = e->warning ? "warning: " : "";

                if (e->line > 0)
                        r = diag_addf(d, e->warning, "%s:%d:%d: %s%s", file, e->line,
                                      e->col, sev, e->msg);
                else
                        r = diag_addf(d, e->warning, "%s: %s%s", file, sev, e->msg);
        }
        if (d && r >= 0 && l->dropped)
                r = diag_addf(d, l->dropped_errors == 0, "%s: %zu more %s not shown", file,
                              l->dropped, l->dropped_errors ? "errors" : "warnings");
        if (l->oom)
                r = -ENOMEM;
        return r;
}

void config_diag_done(struct config_diag *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                free(d->msgs[i].text);
        free(d->msgs);
        d->msgs = NULL;
        d->n = 0;
}

size_t config_diag_errors(const struct config_diag *d)
{
        size_t n = 0;

        for (size_t i = 0; d && i < d->n; i++)
                if (!d->msgs[i].warning)
                        n++;
        return n;
}

/* Escapes user text for a message: quotes, backslashes and control bytes
 * are escaped, and long values are cut with "...". */
static const char *quote_into(char *buf, size_t n, const char *s)
{
        /* Room after the loop: one 2-byte escape past max, "...", '"', NUL. */
        size_t o = 0, max = n - 7;

        buf[o++] = '"';
        for (; s && *s && o < max; s++) {
                unsigned char c = (unsigned char)*s;
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char)c;
                } else if (c < 0x20 || c == 0x7f) {
                        if (o + 4 >= max)
                                break;
                        snprintf(buf + o, n - o, "\\x%02x", c);
                        o += 4;
                } else {
                        buf[o++] = (char)c;
                }
        }
        if (s && *s) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}

#define QBUF 96
#define Q(s) quote_into((char[QBUF]){ 0 }, QBUF, (s))

/* ---- building the tree from libfyaml events ------------------------------ */

struct builder {
        struct errlist *errs;
        struct ynode *root;
        struct ynode *stack[CONFIG_MAX_DEPTH + 1];
        size_t depth;
        int docs;
        bool failed;
        int last_line, last_col;

        /* The text is handed to libfyaml in chunks so that its look-ahead
         * can be bounded: to tell whether a flow collection ("[...]",
         * "{...}") is a mapping key, libfyaml scans it whole before
         * producing an event, holding every token (up to ~300 bytes per
         * byte of text) in memory: a 1 MiB "[[[[..." costs ~300 MB, a
         * 1 MiB single-line "[{a: b}, ...]" ~200 MB. */
        const char *text;
        size_t len;
        size_t fed;             /* bytes handed to libfyaml so far */
        size_t consumed;        /* input offset where the last event ended */
        int cur_line, cur_col;  /* 0-based line and column of consumed */
        size_t flow_end;        /* offset after the last '[' or '{' fed outside a comment */
        int flow_depth;         /* '[' and '{' minus ']' and '}' fed outside comments */
        bool flow_too_deep;     /* flow_depth went past CONFIG_MAX_DEPTH */
        bool in_comment, after_blank;
        bool starved;           /* look-ahead limit hit: input cut short */
        size_t starved_at;      /* consumed when that happened */
};

static void noop_diag_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
}

static bool is_null_text(const char *s)
{
        return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
               strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Adds y to the collection being built. A collection keeps at most one
 * entry more than MAX_ITEMS (enough for the walk to report "more than");
 * later entries, and everything inside them, are dropped as they come so
 * that a huge list costs no memory. Takes y. */
static int attach(struct builder *b, struct ynode *y)
{
        struct ynode *top;
        size_t keep;

        if (b->depth == 0) {
                if (b->root) {
                        ynode_free(y);
                        return -EINVAL;
                }
                b->root = y;
                return 0;
        }
        top = b->stack[b->depth - 1];
        keep = (MAX_ITEMS + 1) * (top->kind == YN_MAP ? 2 : 1);
        if (top->dropped || top->n >= keep) {
                y->dropped = true;
                if (y->kind != YN_MAP && y->kind != YN_SEQ)
                        ynode_free(y);
                return 0;
        }
        if (top->n == top->cap) {
                size_t ncap = top->cap ? top->cap * 2 : 8;
                struct ynode **nk = realloc(top->kids, ncap * sizeof(*nk));
                if (!nk) {
                        ynode_free(y);
                        return -ENOMEM;
                }
                top->kids = nk;
                top->cap = ncap;
        }
        top->kids[top->n++] = y;
        return 0;
}

static void position_of(struct builder *b, struct fy_event *e, struct ynode *y)
{
        const struct fy_mark *m = fy_event_start_mark(e);

        if (m && m->line >= 0) {
                y->line = m->line + 1;
                y->col = m->column + 1;
                b->last_line = y->line;
                b->last_col = y->col;
        } else {
                /* An empty value has no token: point at its key. */
                y->line = b->last_line;
                y->col = b->last_col;
        }
}

/* Moves b->consumed forward to a mark's 0-based line and column (marks'
 * input_pos is relative to libfyaml's current buffer, not to the text).
 * Events come in text order, so the walk is linear overall. */
static void advance_to(struct builder *b, int line, int col)
{
        while (b->consumed < b->fed &&
               (b->cur_line < line || (b->cur_line == line && b->cur_col < col))) {
                unsigned char c = (unsigned char)b->text[b->consumed];
                if (c == '\n') {
                        if (b->cur_line == line)
                                break;  /* a column past the end of the line */
                        b->cur_line++;
                        b->cur_col = 0;
                } else if ((c & 0xc0) != 0x80) {
                        b->cur_col++;
                }
                b->consumed++;
        }
        /* The rest of a UTF-8 character belongs with its first byte. */
        while (b->consumed < b->fed && ((unsigned char)b->text[b->consumed] & 0xc0) == 0x80)
                b->consumed++;
}

static int on_event(struct builder *b, struct fy_event *e)
{
        struct fy_token *tag = NULL, *tok = NULL;
        const struct fy_mark *end = fy_event_end_mark(e);
        struct ynode *y;
        enum ykind kind;
        int r;

        if (end)
                advance_to(b, end->line, end->column);

        switch (e->type) {
        case FYET_DOCUMENT_START:
                if (++b->docs > 1) {
                        const struct fy_mark *m = fy_event_start_mark(e);
                        errlist_add(b->errs, m ? m->line + 1 : b->last_line + 1, 1,
                                    "more than one YAML document; put the whole configuration in one document");
                        return -EINVAL;
                }
                return 0;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
                if (b->depth > 0) {
                        struct ynode *done = b->stack[--b->depth];
                        if (done->dropped)
                                ynode_free(done);
                }
                return 0;
        case FYET_MAPPING_START:
        case FYET_SEQUENCE_START:
        case FYET_SCALAR:
        case FYET_ALIAS:
                break;
        default:
                return 0;
        }

        y = calloc(1, sizeof(*y));
        if (!y)
                return -ENOMEM;
        position_of(b, e, y);
        if (e->type == FYET_MAPPING_START) {
                y->kind = YN_MAP;
                tag = e->mapping_start.tag;
        } else if (e->type == FYET_SEQUENCE_START) {
                y->kind = YN_SEQ;
                tag = e->sequence_start.tag;
        } else if (e->type == FYET_ALIAS) {
                /* The alias mark is at the name; point at the '*'. */
                y->kind = YN_BAD;
                errlist_add(b->errs, y->line, y->col > 1 ? y->col - 1 : y->col,
                            "YAML aliases (*name) are not supported; write the value out");
        } else {
                size_t len = 0;
                const char *text = NULL;

                tok = e->scalar.value;
                tag = e->scalar.tag;
                if (tok)
                        text = fy_token_get_text(tok, &len);
                if (!text) {
                        text = "";
                        len = 0;
                }
                if (len > MAX_STRING) {
                        errlist_add(b->errs, y->line, y->col,
                                    "value is longer than %d bytes", MAX_STRING);
                        y->kind = YN_BAD;
                } else {
                        y->s = malloc(len + 1);
                        if (!y->s) {
                                free(y);
                                return -ENOMEM;
                        }
                        memcpy(y->s, text, len);
                        y->s[len] = '\0';
                        y->len = len;
                        y->quoted = tok && fy_token_scalar_style(tok) != FYSS_PLAIN;
                        y->kind = (!y->quoted && is_null_text(y->s)) ? YN_NULL : YN_SCALAR;
                }
        }
        if (tag) {
                const struct fy_mark *tm = fy_token_start_mark(tag);
                errlist_add(b->errs, tm ? tm->line + 1 : y->line, tm ? tm->column + 1 : y->col,
                            "YAML tags (!!type) are not supported; remove the tag");
                if (y->kind == YN_SCALAR || y->kind == YN_NULL)
                        y->kind = YN_BAD;
        }
        if ((y->kind == YN_MAP || y->kind == YN_SEQ) && b->depth >= CONFIG_MAX_DEPTH) {
                errlist_add(b->errs, y->line, y->col,
                            "YAML nesting is deeper than %d levels", CONFIG_MAX_DEPTH);
                ynode_free(y);
                return -EINVAL;
        }
        kind = y->kind;
        r = attach(b, y);       /* takes y */
        if (r < 0)
                return r;
        if (kind == YN_MAP || kind == YN_SEQ)
                b->stack[b->depth++] = y;
        return 0;
}

/* Length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not
 * valid UTF-8 (overlong forms, surrogates and values above U+10FFFF are
 * invalid). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
        unsigned c = p[0];
        size_t l;
        unsigned cp, min;

        if (c < 0x80)
                return 1;
        if ((c & 0xe0) == 0xc0) {
                l = 2;
                cp = c & 0x1f;
                min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
                l = 3;
                cp = c & 0x0f;
                min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
                l = 4;
                cp = c & 0x07;
                min = 0x10000;
        } else {
                return 0;
        }
        if (l > n)
                return 0;
        for (size_t i = 1; i < l; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return l;
}

static bool is_blank_at(const unsigned char *p, size_t i, size_t len)
{
        return i >= len || p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r';
}

/* Column (0-based offset) of an explicit-key indicator ("? " or the ": "
 * that follows it on the next line) that starts a block-context node on the
 * line at p[i], or SIZE_MAX. Only indentation,
 * "- " sequence markers and a "---" document marker may precede it. */
static size_t explicit_key_at(const unsigned char *p, size_t i, size_t len)
{
        size_t j = i;

        if (i == 0 && len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
                i = j = 3;      /* byte order mark */

        for (;;) {
                while (j < len && (p[j] == ' ' || p[j] == '\t'))
                        j++;
                if (j == i && j + 3 <= len && memcmp(p + j, "---", 3) == 0 &&
                    is_blank_at(p, j + 3, len)) {
                        j += 3;
                        continue;
                }
                if (j + 1 < len && p[j] == '-' && (p[j + 1] == ' ' || p[j + 1] == '\t')) {
                        j++;
                        continue;
                }
                break;
        }
        /* "? key" and its ": value" line are the explicit-key form. */
        if (j < len && (p[j] == '?' || p[j] == ':') && is_blank_at(p, j + 1, len))
                return j - i;
        return SIZE_MAX;
}

/* Returns true (with the position and a reason) when text is not valid
 * UTF-8, holds a control character YAML does not allow, or uses block
 * explicit keys, which crash libfyaml 0.7 in some tab/block-scalar forms
 * and are never needed in this configuration. */
static bool text_check(const char *text, size_t len, int *ret_line, int *ret_col,
                       const char **ret_what)
{
        const unsigned char *p = (const unsigned char *)text;
        int line = 1, col = 1;

        for (size_t i = 0; i < len;) {
                size_t l = utf8_len(p + i, len - i);
                if (col == 1) {
                        size_t k = explicit_key_at(p, i, len);
                        if (k != SIZE_MAX) {
                                *ret_what = "explicit mapping keys (\"? key\") are not supported; write key: value";
                                col += (int)k;
                                goto bad;
                        }
                }
                if (l == 0) {
                        *ret_what = "the file is not valid UTF-8 text";
                        goto bad;
                }
                if (p[i] == 0) {
                        *ret_what = "the file contains a NUL byte; it is not a text file";
                        goto bad;
                }
                if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t' && p[i] != '\r') || p[i] == 0x7f) {
                        *ret_what = "the file contains a control character; it is not a text file";
                        goto bad;
                }
                if (p[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
                i += l;
        }
        return false;
bad:
        *ret_line = line;
        *ret_col = col;
        return true;
}

/* Parses text into a tree. Returns 0 with *ret (NULL for an empty
 * document), -EINVAL after adding errors, or -ENOMEM. */
/* libfyaml's input callback: the next chunk of the text, or end of input
 * (0) once it reads LOOKAHEAD_MAX past the last event. Never returns -1:
 * libfyaml 0.7 retries forever on that. */
static ssize_t feed(void *user, void *buf, size_t count)
{
        struct builder *b = user;
        size_t n = b->len - b->fed;

        size_t ahead = b->fed - b->consumed;

        /* Only a flow collection makes libfyaml hold tokens without
         * producing events; long comments or blank runs cost nothing. A
         * '[' inside a comment is never a flow indicator (inside a quoted
         * scalar it is counted, which only errs on the side of stopping).
         * Nesting too deep is an error anyway: cutting the input there
         * early lets the events read so far report it. Otherwise a
         * minified JSON configuration legitimately needs a whole line of
         * look-ahead, hence the larger general limit. */
        if (n > 0 && b->flow_end > b->consumed &&
            (ahead >= LOOKAHEAD_MAX || (b->flow_too_deep && ahead >= LOOKAHEAD_DEEP))) {
                b->starved = true;
                b->starved_at = b->consumed;
                return 0;
        }
        if (n > count)
                n = count;
        if (n > FEED_CHUNK)
                n = FEED_CHUNK;
        memcpy(buf, b->text + b->fed, n);
        for (size_t i = b->fed; i < b->fed + n; i++) {
                char c = b->text[i];
                if (b->in_comment) {
                        b->in_comment = c != '\n';
                } else if (c == '#' && b->after_blank) {
                        b->in_comment = true;
                } else if (c == '[' || c == '{') {
                        b->flow_end = i + 1;
                        if (++b->flow_depth > CONFIG_MAX_DEPTH)
                                b->flow_too_deep = true;
                } else if ((c == ']' || c == '}') && b->flow_depth > 0) {
                        b->flow_depth--;
                }
                b->after_blank = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        }
        b->fed += n;
        return (ssize_t)n;
}

/* 1-based line and column (in characters) of byte offset off. */
static void offset_pos(const char *text, size_t off, int *ret_line, int *ret_col)
{
        int line = 1, col = 1;

        for (size_t i = 0; i < off; i++) {
                if (text[i] == '\n') {
                        line++;
                        col = 1;
                } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                        col++;
                }
        }
        *ret_line = line;
        *ret_col = col;
}

static void report_starved(struct builder *b)
{
        size_t off = b->starved_at;
        int line, col;

        /* Point at the collection libfyaml was scanning. */
        while (off < b->fed && b->text[off] != '[' && b->text[off] != '{') {
                if (b->text[off] == '#' && (off == 0 || isspace((unsigned char)b->text[off - 1])))
                        while (off < b->fed && b->text[off] != '\n')
                                off++;
                else
                        off++;
        }
        if (off >= b->fed)
                off = b->starved_at;
        offset_pos(b->text, off, &line, &col);
        if (b->flow_too_deep)
                errlist_add(b->errs, line, col,
                            "YAML nesting is deeper than %d levels (counting the '[' and '{' that follow)",
                            CONFIG_MAX_DEPTH);
        else
                errlist_add(b->errs, line, col,
                            "this flow collection ([...] or {...}) is too long to parse: more than %u KiB must be read before its first value; write it over several lines, one item per line",
                            LOOKAHEAD_MAX >> 10);
}

static int build_tree(const char *text, size_t len, struct errlist *errs,
                      struct ynode **ret)
{
        struct builder b = { .errs = errs, .text = text, .len = len, .after_blank = true };
        struct fy_diag_cfg dcfg;
        struct fy_diag *diag = NULL;
        struct fy_parser *fyp = NULL;
        struct fy_event *e;
        const char *what = NULL;
        int bline = 0, bcol = 0;
        bool bad;
        int r = 0;

        /* libfyaml 0.7 can loop forever on invalid UTF-8 (seen in
         * directives), so the text is checked before it sees it. */
        bad = text_check(text, len, &bline, &bcol, &what);
        if (bad) {
                errlist_add(errs, bline, bcol, "%s", what);
                return -EINVAL;
        }

        fy_diag_cfg_default(&dcfg);
        dcfg.fp = NULL;
        dcfg.output_fn = noop_diag_output;
        dcfg.colorize = false;
        diag = fy_diag_create(&dcfg);
        if (!diag)
                return -ENOMEM;
        fy_diag_set_collect_errors(diag, true);

        struct fy_parse_cfg pcfg = {
                .flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_DISABLE_MMAP_OPT |
                         FYPCF_JSON_NONE,
                .diag = diag,
        };
        fyp = fy_parser_create(&pcfg);
        if (!fyp) {
                r = -ENOMEM;
                goto out;
        }
        /* An empty string is not accepted as input by libfyaml. */
        if (len == 0)
                goto out;
        if (fy_parser_set_input_callback(fyp, &b, feed) != 0) {
                r = -ENOMEM;
                goto out;
        }
        while ((e = fy_parser_parse(fyp))) {
                r = on_event(&b, e);
                fy_parser_event_free(fyp, e);
                if (r < 0)
                        break;
        }
        /* A nesting error found in what was read wins: it is the cause. */
        if (r == 0 && b.starved) {
                report_starved(&b);
                r = -EINVAL;
        }
        if (r == 0 && fy_parser_get_stream_error(fyp)) {
                struct fy_diag_error *de;
                void *it = NULL;
                bool any = false;

                while ((de = fy_diag_errors_iterate(diag, &it))) {
                        if (de->type < FYET_ERROR)
                                continue;
                        errlist_add(errs, de->line > 0 ? de->line : 1,
                                    de->column > 0 ? de->column : 1,
                                    "YAML syntax error: %s", de->msg ? de->msg : "invalid YAML");
                        any = true;
                }
                if (!any)
                        errlist_add(errs, b.last_line ? b.last_line : 1,
                                    b.last_col ? b.last_col : 1, "YAML syntax error");
                r = -EINVAL;
        }
out:
        /* Errors recorded so far (aliases, tags) leave a well-formed tree:
         * the caller still walks it, so every other problem is reported too. */
        if (r == 0) {
                *ret = b.root;
                b.root = NULL;
        }
        /* Dropped collections still open belong to the stack, not the tree. */
        for (size_t i = 0; i < b.depth; i++)
                if (b.stack[i]->dropped)
                        ynode_free(b.stack[i]);
        ynode_free(b.root);
        fy_parser_destroy(fyp);
        fy_diag_destroy(diag);
        return r;
}

/* ---- the walk -------------------------------------------------------------- */

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

static void werr(struct walk *w, const struct ynode *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void werr(struct walk *w, const struct ynode *at, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        errlist_add(w->errs, at ? at->line : 0, at ? at->col : 0, "%s%s", w->who, msg);
}

static void wwarn(struct walk *w, const struct ynode *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void wwarn(struct walk *w, const struct ynode *at, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        errlist_warn(w->errs, at ? at->line : 0, at ? at->col : 0, "%s%s", w->who, msg);
}

/* Appends "name." to the key path of nested sections; the caller saves and
 * restores the previous path. Section names are short table constants. */
static void path_push(struct walk *w, const char *name)
{
        size_t l = strlen(w->path);
        int r = snprintf(w->path + l, sizeof(w->path) - l, "%s.", name);

        if (r < 0 || (size_t)r >= sizeof(w->path) - l)
                w->path[l] = '\0';
}

static const char *kp(struct walk *w, const struct key *k)
{
        snprintf(w->kbuf, sizeof(w->kbuf), "%s%s", w->path, k->name);
        return w->kbuf;
}

/* YAML's idea of an integer ("+3" included), for describing values. */
static bool is_int_text(const char *s)
{
        if (*s == '-' || *s == '+')
                s++;
        if (!*s)
                return false;
        for (; *s; s++)
                if (!isdigit((unsigned char)*s))
                        return false;
        return true;
}

static bool is_bool_text(const char *s, bool *ret)
{
        static const char *const t[] = { "true", "True", "TRUE" };
        static const char *const f[] = { "false", "False", "FALSE" };

        for (size_t i = 0; i < 3; i++) {
                if (strcmp(s, t[i]) == 0) {
                        *ret = true;
                        return true;
                }
                if (strcmp(s, f[i]) == 0) {
                        *ret = false;
                        return true;
                }
        }
        return false;
}

/* "a list", "a string ("x")", ... for "got ..." in messages. */
static const char *describe(const struct ynode *y, char *buf, size_t n)
{
        bool bv;

        switch (y->kind) {
        case YN_MAP:
                return "a mapping";
        case YN_SEQ:
                return "a list";
        case YN_NULL:
                return "nothing";
        case YN_BAD:
                return "an unsupported value";
        case YN_SCALAR:
                break;
        }
        if (!y->quoted && is_int_text(y->s))
                snprintf(buf, n, "an integer (%s)", Q(y->s));
        else if (!y->quoted && is_bool_text(y->s, &bv))
                snprintf(buf, n, "a boolean (%s)", Q(y->s));
        else
                snprintf(buf, n, "a string (%s)", Q(y->s));
        return buf;
}

#define DESC(y) describe((y), (char[160]){ 0 }, 160)

static void *field(void *obj, const struct key *k)
{
        return (char *)obj + k->off;
}

static void strv_done(struct config_strv *v)
{
        for (size_t i = 0; i < v->n; i++)
                free(v->v[i]);
        free(v->v);
        v->v = NULL;
        v->n = 0;
}

static void envv_done(struct config_envv *v)
{
        for (size_t i = 0; i < v->n; i++) {
                free(v->v[i].name);
                free(v->v[i].value);
        }
        free(v->v);
        v->v = NULL;
        v->n = 0;
}

static void walk_map(struct walk *w, const struct section *sec, void *obj,
                     const struct ynode *map, const struct ynode *where);

static bool string_ok(struct walk *w, const struct key *k, const struct ynode *v)
{
        if (v->len != strlen(v->s)) {
                werr(w, v, "%s contains a NUL character", kp(w, k));
                return false;
        }
        return true;
}

static bool wrong_type(struct walk *w, const struct key *k, const struct ynode *v,
                       const char *want)
{
        werr(w, v, "%s must be %s, got %s", kp(w, k), want, DESC(v));
        return false;
}

static bool convert_list(struct walk *w, const struct key *k, const struct ynode *v,
                         struct config_strv *out)
{
        struct config_strv nv = { 0 };
        bool ok = true;

        if (v->kind != YN_SEQ)
                return wrong_type(w, k, v, "a list of strings");
        if (v->n > MAX_ITEMS) {
                werr(w, v, "%s has more than %d items", kp(w, k), MAX_ITEMS);
                return false;
        }
        nv.v = calloc(v->n ? v->n : 1, sizeof(char *));
        if (!nv.v) {
                w->errs->oom = true;
                return false;
        }
        for (size_t i = 0; i < v->n; i++) {
                const struct ynode *it = v->kids[i];
                if (it->kind == YN_BAD) {
                        ok = false;     /* already reported */
                        continue;
                }
                if (it->kind != YN_SCALAR) {
                        werr(w, it, "%s item %zu must be a string, got %s",
                             kp(w, k), i + 1, DESC(it));
                        ok = false;
                        continue;
                }
                if (!string_ok(w, k, it)) {
                        ok = false;
                        continue;
                }
                nv.v[nv.n] = strdup(it->s);
                if (!nv.v[nv.n]) {
                        w->errs->oom = true;
                        ok = false;
                        break;
                }
                nv.n++;
        }
        if (!ok) {
                strv_done(&nv);
                return false;
        }
        strv_done(out);
        *out = nv;
        return true;
}

static bool env_name_ok(const char *s)
{
        if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '_'))
                        return false;
        return true;
}

static bool convert_env(struct walk *w, const struct key *k, const struct ynode *v,
                        struct config_envv *out)
{
        struct config_envv nv = { 0 };
        size_t np;
        bool ok = true;

        if (v->kind != YN_MAP)
                return wrong_type(w, k, v, "a mapping of NAME: value");
        np = map_pairs(v);
        if (np > MAX_ITEMS) {
                werr(w, v, "%s has more than %d entries", kp(w, k), MAX_ITEMS);
                return false;
        }
        nv.v = calloc(np ? np : 1, sizeof(*nv.v));
        if (!nv.v) {
                w->errs->oom = true;
                return false;
        }
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = v->kids[2 * i], *vy = v->kids[2 * i + 1];
                bool dup = false;

                if (ky->kind != YN_SCALAR || !env_name_ok(ky->s) || ky->len != strlen(ky->s)) {
                        werr(w, ky, "%s: %s is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                             kp(w, k), ky->kind == YN_SCALAR ? Q(ky->s) : DESC(ky));
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = v->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                werr(w, ky, "%s: duplicate variable %s (first at %d:%d)",
                                     kp(w, k), Q(ky->s), pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup) {
                        ok = false;
                        continue;
                }
                if (vy->kind != YN_SCALAR && vy->kind != YN_NULL) {
                        werr(w, vy, "%s.%s must be a string, got %s", kp(w, k), ky->s, DESC(vy));
                        ok = false;
                        continue;
                }
                if (vy->kind == YN_SCALAR && vy->len != strlen(vy->s)) {
                        werr(w, vy, "%s.%s contains a NUL character", kp(w, k), ky->s);
                        ok = false;
                        continue;
                }
                nv.v[nv.n].name = strdup(ky->s);
                nv.v[nv.n].value = strdup(vy->kind == YN_SCALAR ? vy->s : "");
                nv.n++;
                if (!nv.v[nv.n - 1].name || !nv.v[nv.n - 1].value) {
                        w->errs->oom = true;
                        ok = false;
                        break;
                }
        }
        if (!ok) {
                envv_done(&nv);
                return false;
        }
        envv_done(out);
        *out = nv;
        return true;
}

static bool name_ok(const char *s, size_t len)
{
        if (len == 0 || len > CONFIG_NAME_MAX || len != strlen(s))
                return false;
        /* Names become path components (instance folders, metrics). */
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
                        return false;
        return true;
}

bool config__walk_broken(const struct walk *w, const struct section *sec)
{
        for (size_t i = 0; i < w->n_broken; i++)
                if (w->broken[i] == sec)
                        return true;
        return false;
}

static void convert_named(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const struct section *sub = k->sub;
        void **arr = field(obj, k);
        size_t *cnt = (size_t *)((char *)obj + k->count_off);
        char saved_who[sizeof(w->who)];
        size_t np;
        char *base;

        if (v->kind != YN_MAP) {
                wrong_type(w, k, v, "a mapping of NAME: settings");
                goto bad;
        }
        np = map_pairs(v);
        if (np == 0) {
                werr(w, v, "%s is empty; define at least one %s", kp(w, k), sub->name);
                goto bad;
        }
        if (np > MAX_ITEMS) {
                werr(w, v, "%s has more than %d entries", kp(w, k), MAX_ITEMS);
                goto bad;
        }
        base = calloc(np, sub->size);
        if (!base) {
                w->errs->oom = true;
                return;
        }
        *arr = base;
        *cnt = 0;
        memcpy(saved_who, w->who, sizeof(saved_who));
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = v->kids[2 * i], *vy = v->kids[2 * i + 1];
                char *entry = base + *cnt * sub->size;
                struct config_pos *pos = (struct config_pos *)(entry + sub->pos_off);
                bool dup = false;

                if (ky->kind != YN_SCALAR) {
                        werr(w, ky, "%s names must be strings, got %s", sub->name, DESC(ky));
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = v->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                werr(w, ky, "duplicate %s %s (first at %d:%d)",
                                     sub->name, Q(ky->s), pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup)
                        continue;
                if (!name_ok(ky->s, ky->len))
                        werr(w, ky, "%s name %s is invalid; use 1 to %d letters, digits, '-', '_' or '.', other than \".\" and \"..\"",
                             sub->name, Q(ky->s), CONFIG_NAME_MAX);
                /* The name is the first member of every named entry. */
                *(char **)entry = strdup(ky->s);
                if (!*(char **)entry) {
                        w->errs->oom = true;
                        break;
                }
                pos->line = ky->line;
                pos->col = ky->col;
                (*cnt)++;
                snprintf(w->who, sizeof(w->who), "%s %s: ", sub->name, Q(ky->s));
                if (vy->kind == YN_MAP || vy->kind == YN_NULL) {
                        walk_map(w, sub, entry, vy->kind == YN_MAP ? vy : NULL, ky);
                } else if (vy->kind != YN_BAD) {
                        memcpy(w->who, saved_who, sizeof(saved_who));
                        werr(w, vy, "%s %s must be a mapping of settings, got %s",
                             sub->name, Q(ky->s), DESC(vy));
                }
                memcpy(w->who, saved_who, sizeof(saved_who));
        }
        return;
bad:
        if (w->n_broken < sizeof(w->broken) / sizeof(w->broken[0]))
                w->broken[w->n_broken++] = sub;
}

static bool convert(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        void *f = field(obj, k);
        int64_t n;
        bool b;
        int r;

        if (v->kind == YN_BAD)
                return false;   /* already reported */

        switch (k->type) {
        case KT_STR:
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a string");
                if (!string_ok(w, k, v))
                        return false;
                if (v->len == 0) {
                        werr(w, v, "%s must not be empty", kp(w, k));
                        return false;
                }
                {
                        char *s = strdup(v->s);
                        if (!s) {
                                w->errs->oom = true;
                                return false;
                        }
                        free(*(char **)f);
                        *(char **)f = s;
                }
                break;
        case KT_INT: {
                char *end;
                if (v->kind != YN_SCALAR || v->quoted || !is_int_text(v->s))
                        return wrong_type(w, k, v, "an integer");
                /* Integers are plain decimal: strtoll would take "+3"
                 * (and leading blanks), YAML 1.1 would not agree on "+3". */
                if (v->s[0] == '+') {
                        werr(w, v, "%s must be a plain decimal integer, without '+' (got %s)",
                             kp(w, k), Q(v->s));
                        return false;
                }
                errno = 0;
                n = strtoll(v->s, &end, 10);
                if (errno == ERANGE || *end || n < k->min || n > k->max) {
                        if (k->max < INT64_MAX)
                                werr(w, v, "%s must be between %lld and %lld (got %s)", kp(w, k),
                                     (long long)k->min, (long long)k->max, v->s);
                        else
                                werr(w, v, "%s must be ≥ %lld (got %s)", kp(w, k),
                                     (long long)k->min, v->s);
                        return false;
                }
                *(int64_t *)f = n;
                break;
        }
        case KT_DURATION: {
                char a[32], b2[32];
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a duration such as 30s");
                r = duration_parse(v->s, &n);
                if (r == -ERANGE || (r == 0 && n > k->max)) {
                        duration_format(k->max, a, sizeof(a));
                        werr(w, v, "%s %s is too long; the maximum is %s", kp(w, k), Q(v->s), a);
                        return false;
                }
                if (r < 0) {
                        werr(w, v, "%s %s is not a duration; write numbers with units (d, h, m, s, ms), each unit once and largest first, e.g. 30s or 1h30m",
                             kp(w, k), Q(v->s));
                        return false;
                }
                if (n < k->min) {
                        duration_format(k->min, a, sizeof(a));
                        duration_format(n, b2, sizeof(b2));
                        if (k->min == 1)
                                werr(w, v, "%s must be greater than 0 (got %s)", kp(w, k), b2);
                        else
                                werr(w, v, "%s must be at least %s (got %s)", kp(w, k), a, b2);
                        return false;
                }
                *(int64_t *)f = n;
                break;
        }
        case KT_BOOL:
                if (v->kind != YN_SCALAR || v->quoted || !is_bool_text(v->s, &b))
                        return wrong_type(w, k, v, "true or false");
                *(bool *)f = b;
                break;
        case KT_ENUM: {
                size_t i, cnt = 0;
                char list[256];
                size_t o = 0;
                const char *sug;
                if (v->kind != YN_SCALAR)
                        return wrong_type(w, k, v, "a string");
                for (i = 0; k->enums[i]; i++)
                        if (strcmp(k->enums[i], v->s) == 0) {
                                *(int *)f = (int)i;
                                return k->check ? k->check(w, k, v, obj) : true;
                        }
                cnt = i;
                list[0] = '\0';
                for (i = 0; i < cnt; i++) {
                        int wr = snprintf(list + o, sizeof(list) - o, "%s%s",
                                          i == 0 ? "" : (i + 1 == cnt ? " or " : ", "),
                                          k->enums[i]);
                        if (wr < 0 || (size_t)wr >= sizeof(list) - o)
                                break;
                        o += (size_t)wr;
                }
                sug = config_suggest(v->s, k->enums, cnt);
                if (sug)
                        werr(w, v, "%s %s is invalid; did you mean \"%s\"? (use %s)",
                             kp(w, k), Q(v->s), sug, list);
                else
                        werr(w, v, "%s %s is invalid; use %s", kp(w, k), Q(v->s), list);
                return false;
        }
        case KT_LIST:
                if (!convert_list(w, k, v, f))
                        return false;
                break;
        case KT_ENV:
                if (!convert_env(w, k, v, f))
                        return false;
                break;
        case KT_SECTION: {
                char saved[sizeof(w->path)];
                if (v->kind != YN_MAP)
                        return wrong_type(w, k, v, "a mapping");
                memcpy(saved, w->path, sizeof(saved));
                path_push(w, k->name);
                walk_map(w, k->sub, f, v, v);
                memcpy(w->path, saved, sizeof(saved));
                return true;
        }
        case KT_NAMED:
                convert_named(w, k, v, obj);
                return true;
        case KT_REFUSED:
                return false;
        }
        return k->check ? k->check(w, k, v, obj) : true;
}

static void ynode_unposition(struct ynode *y)
{
        y->line = y->col = 0;
        for (size_t i = 0; i < y->n; i++)
                ynode_unposition(y->kids[i]);
}

static bool apply_default(struct walk *w, const struct key *k, void *obj)
{
        struct errlist derr = { 0 };
        struct ynode *t = NULL;
        bool ok = false;
        int r;

        r = build_tree(k->def, strlen(k->def), &derr, &t);
        if (r < 0 || !t) {
                if (r == -ENOMEM)
                        w->errs->oom = true;
                else
                        werr(w, NULL, "internal error: the default of %s does not parse", kp(w, k));
        } else {
                /* Defaults have no position in the file, nor has anything
                 * inside one (the implicit provider's name and type). */
                ynode_unposition(t);
                ok = convert(w, k, t, obj);
        }
        ynode_free(t);
        errlist_done(&derr);
        return ok;
}

static const char *key_names(const struct section *sec, char *buf, size_t n)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < sec->n_keys; i++) {
                int wr;
                if (sec->keys[i].type == KT_REFUSED)
                        continue;
                wr = snprintf(buf + o, n - o, "%s%s", o ? ", " : "", sec->keys[i].name);
                if (wr < 0 || (size_t)wr >= n - o)
                        break;
                o += (size_t)wr;
        }
        return buf;
}

static void unknown_key(struct walk *w, const struct section *sec, const struct ynode *ky)
{
        const char *cands[MAX_KEYS];
        size_t nc = 0;
        const char *sug;
        char names[512];
        const char *where = sec == &config__top ? " at top level" : "";

        for (size_t i = 0; i < sec->n_keys && nc < MAX_KEYS; i++)
                if (sec->keys[i].type != KT_REFUSED)
                        cands[nc++] = sec->keys[i].name;
        sug = config_suggest(ky->s, cands, nc);
        if (sug)
                werr(w, ky, "unknown key \"%s%s\"%s; did you mean \"%s%s\"?",
                     w->path, ky->s, where, w->path, sug);
        else
                werr(w, ky, "unknown key \"%s%s\"%s; valid keys are: %s",
                     w->path, ky->s, where, key_names(sec, names, sizeof(names)));
}

bool config__key_applies(const struct section *sec, const struct key *k, const void *obj)
{
        int v;

        if (!k->variants || !sec->variant)
                return true;
        v = *(const int *)((const char *)obj + sec->variant->off);
        return v >= 0 && v < 32 && (k->variants & KV(v));
}

/* "local", "local or ssh": the variant values a key is for. */
static const char *variant_names(const struct key *var, unsigned bits, char *buf, size_t n)
{
        size_t o = 0, left = 0;

        for (size_t i = 0; var->enums[i]; i++)
                if (bits & KV(i))
                        left++;
        buf[0] = '\0';
        for (size_t i = 0; var->enums[i] && i < 32; i++) {
                int wr;
                if (!(bits & KV(i)))
                        continue;
                wr = snprintf(buf + o, n - o, "%s%s", o == 0 ? "" : left == 1 ? " or " : ", ",
                              var->enums[i]);
                if (wr < 0 || (size_t)wr >= n - o)
                        break;
                o += (size_t)wr;
                left--;
        }
        return buf;
}

/* Keys given for a variant they do not apply to ("user" on an ssh
 * provider). Skipped when the variant key itself is broken (reported). */
static void check_variants(struct walk *w, const struct section *sec, void *obj,
                           const struct ynode *const *seen_k, const struct ynode *const *seen_v,
                           bool variant_known)
{
        char names[128];

        if (!variant_known)
                return;
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                if (!seen_k[i] || !seen_v[i] || seen_v[i]->kind == YN_NULL ||
                    config__key_applies(sec, k, obj))
                        continue;
                werr(w, seen_k[i], "key \"%s%s\" is only for %ss of %s %s",
                     w->path, k->name, sec->name, sec->variant->name,
                     variant_names(sec->variant, k->variants, names, sizeof(names)));
        }
}

static void walk_map(struct walk *w, const struct section *sec, void *obj,
                     const struct ynode *map, const struct ynode *where)
{
        const struct ynode *seen_k[MAX_KEYS] = { 0 }, *seen_v[MAX_KEYS] = { 0 };
        bool converted[MAX_KEYS] = { 0 };
        size_t np = map ? map_pairs(map) : 0;

        if (np > MAX_ITEMS) {
                werr(w, map, "%s mapping has more than %d keys", sec->name, MAX_ITEMS);
                np = 0;
        }
        for (size_t i = 0; i < np; i++) {
                const struct ynode *ky = map->kids[2 * i], *vy = map->kids[2 * i + 1];
                bool dup = false;
                size_t idx;

                if (ky->kind != YN_SCALAR || ky->len != strlen(ky->s)) {
                        if (ky->kind != YN_BAD)
                                werr(w, ky, "keys must be plain strings, got %s", DESC(ky));
                        continue;
                }
                for (size_t j = 0; j < i; j++) {
                        const struct ynode *pk = map->kids[2 * j];
                        if (pk->kind == YN_SCALAR && strcmp(pk->s, ky->s) == 0) {
                                werr(w, ky, "duplicate key \"%s%s\"%s (first at %d:%d)",
                                     w->path, ky->s,
                                     sec == &config__top ? " at top level" : "",
                                     pk->line, pk->col);
                                dup = true;
                                break;
                        }
                }
                if (dup)
                        continue;
                for (idx = 0; idx < sec->n_keys; idx++)
                        if (strcmp(sec->keys[idx].name, ky->s) == 0)
                                break;
                if (idx == sec->n_keys) {
                        unknown_key(w, sec, ky);
                        continue;
                }
                seen_k[idx] = ky;
                seen_v[idx] = vy;
        }

        for (size_t idx = 0; idx < sec->n_keys; idx++) {
                const struct key *k = &sec->keys[idx];
                const struct ynode *vy = seen_v[idx];

                if (k->type == KT_REFUSED) {
                        if (seen_k[idx])
                                werr(w, seen_v[idx]->kind == YN_NULL ? seen_k[idx] : seen_v[idx],
                                     "%s: %s", kp(w, k), k->doc);
                        continue;
                }
                if (vy && vy->kind != YN_NULL) {
                        converted[idx] = convert(w, k, vy, obj);
                } else if (k->type == KT_SECTION) {
                        char saved[sizeof(w->path)];
                        memcpy(saved, w->path, sizeof(saved));
                        path_push(w, k->name);
                        walk_map(w, k->sub, field(obj, k), NULL, seen_k[idx] ? seen_k[idx] : where);
                        memcpy(w->path, saved, sizeof(saved));
                } else if (k->def) {
                        converted[idx] = apply_default(w, k, obj);
                } else if (k->flags & KF_REQUIRED) {
                        if (seen_k[idx])
                                werr(w, seen_k[idx], "%s has no value; e.g. %s", kp(w, k), k->example);
                        else
                                werr(w, where, "missing required key \"%s\"; e.g. %s",
                                     kp(w, k), k->example);
                }
        }
        if (sec->variant)
                check_variants(w, sec, obj, seen_k, seen_v,
                               converted[sec->variant - sec->keys]);
        if (sec->finish)
                sec->finish(w, obj, seen_k, seen_v, where);
}

/* ---- validators --------------------------------------------------------------- */

static const struct ynode *vpos(const struct ynode *const *k, const struct ynode *const *v,
                                size_t i, const struct ynode *fallback)
{
        if (v[i] && v[i]->kind != YN_NULL)
                return v[i];
        if (k[i])
                return k[i];
        return fallback;
}

static char *resolve(const char *dir, const char *p)
{
        char *out;

        if (p[0] == '/' || !dir || strcmp(dir, ".") == 0)
                return strdup(p);
        if (asprintf(&out, "%s/%s", dir, p) < 0)
                return NULL;
        return out;
}

int config_listen_parse(const char *s, char **ret_host, int *ret_port)
{
        const char *colon, *ps;
        char host[64];
        unsigned char bin[16];
        size_t hl;
        long port = 0;
        char *h;

        if (!s)
                return -EINVAL;
        if (s[0] == '[') {
                const char *rb = strchr(s, ']');
                if (!rb || rb[1] != ':')
                        return -EINVAL;
                hl = (size_t)(rb - s - 1);
                if (hl == 0 || hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, hl);
                host[hl] = '\0';
                if (inet_pton(AF_INET6, host, bin) != 1)
                        return -EINVAL;
                ps = rb + 2;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                hl = (size_t)(colon - s);
                if (hl == 0 || hl >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, hl);
                host[hl] = '\0';
                if (strcmp(host, "localhost") != 0 && inet_pton(AF_INET, host, bin) != 1)
                        return -EINVAL;
                ps = colon + 1;
        }
        if (!*ps)
                return -EINVAL;
        for (const char *p = ps; *p; p++) {
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                if (port <= 65535)
                        port = port * 10 + (*p - '0');
        }
        if (port > 65535)
                return -ERANGE;
        h = strdup(host);
        if (!h)
                return -ENOMEM;
        *ret_host = h;
        *ret_port = (int)port;
        return 0;
}

/* host as returned by config_listen_parse: "localhost", an IPv4 or an IPv6
 * literal. 127.0.0.0/8 and ::1 are loopback; so is ::ffff:127.x.y.z. */
static bool is_loopback(const char *host)
{
        unsigned char a[16];

        if (strcmp(host, "localhost") == 0)
                return true;
        if (inet_pton(AF_INET, host, a) == 1)
                return a[0] == 127;
        if (inet_pton(AF_INET6, host, a) != 1)
                return false;
        if (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0)
                return true;
        return memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0 && a[12] == 127;
}

static bool check_listen(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config *cfg = obj;
        char *host;
        int port, r;

        r = config_listen_parse(cfg->listen, &host, &port);
        if (r == -ENOMEM) {
                w->errs->oom = true;
                return false;
        }
        if (r == -ERANGE) {
                werr(w, v, "%s %s: port %s is out of range; use 0 to 65535 (0 picks a free port)",
                     kp(w, k), Q(cfg->listen), Q(strrchr(cfg->listen, ':') + 1));
                return false;
        }
        if (r < 0) {
                werr(w, v, "%s %s is not a listen address; use HOST:PORT with an IP address or localhost, e.g. 127.0.0.1:9464 or [::1]:9464",
                     kp(w, k), Q(cfg->listen));
                return false;
        }
        free(cfg->listen_host);
        cfg->listen_host = host;
        cfg->listen_port = port;
        if (!is_loopback(host))
                wwarn(w, v, "%s %s is not a loopback address: the HTTP API (metrics, status, demand) has no authentication, so anyone who can reach it can read it; listen on 127.0.0.1 or [::1], or restrict access with a firewall",
                      kp(w, k), Q(cfg->listen));
        return true;
}

/* The optional ":PORT" of a URL's authority (host, "[v6]" or either with a
 * port): 1 to 65535, digits only. curl would otherwise fail at the first
 * request, far from the configuration. */
static bool url_port_ok(struct walk *w, const struct key *k, const struct ynode *v,
                        const char *url, const char *auth, size_t alen)
{
        const char *end = auth + alen, *colon = NULL, *rb;
        char port[16];
        size_t pl;
        long n = 0;

        if (auth[0] == '[') {
                rb = memchr(auth, ']', alen);
                if (!rb) {
                        werr(w, v, "%s %s has an unclosed '[' in its host", kp(w, k), Q(url));
                        return false;
                }
                if (rb + 1 < end && rb[1] != ':') {
                        werr(w, v, "%s %s has text after the ']' of its host", kp(w, k), Q(url));
                        return false;
                }
                if (rb + 1 < end)
                        colon = rb + 1;
        } else {
                colon = memchr(auth, ':', alen);
        }
        if (!colon)
                return true;
        pl = (size_t)(end - colon - 1);
        snprintf(port, sizeof(port), "%.*s%s", (int)(pl < 8 ? pl : 8), colon + 1, pl > 8 ? "..." : "");
        if (pl == 0) {
                werr(w, v, "%s %s has an empty port; remove the ':' or give a port", kp(w, k), Q(url));
                return false;
        }
        for (const char *p = colon + 1; p < end; p++) {
                if (!isdigit((unsigned char)*p)) {
                        werr(w, v, "%s %s: port %s is not a number", kp(w, k), Q(url), Q(port));
                        return false;
                }
                if (n <= 65535)
                        n = n * 10 + (*p - '0');
        }
        if (n < 1 || n > 65535) {
                werr(w, v, "%s %s: port %s is out of range; use 1 to 65535", kp(w, k), Q(url), Q(port));
                return false;
        }
        return true;
}

static bool check_url(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_forge *f = obj;
        char *u = f->url;
        const char *sep = strstr(u, "://");
        const char *auth = sep ? sep + 3 : u;
        size_t skip, n, alen = strcspn(auth, "/?#");

        /* Checked first, and the value is not echoed: it holds a password. */
        if (memchr(auth, '@', alen)) {
                werr(w, v, "%s must not hold credentials (user:password@); use token_file or token_env",
                     kp(w, k));
                return false;
        }
        if (strncasecmp(u, "https://", 8) == 0) {
                skip = 8;
        } else if (strncasecmp(u, "http://", 7) == 0) {
                skip = 7;
        } else {
                werr(w, v, "%s %s must start with http:// or https://", kp(w, k), Q(u));
                return false;
        }
        for (const char *p = u; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                        werr(w, v, "%s %s contains whitespace or a control character", kp(w, k), Q(u));
                        return false;
                }
        if (alen == 0) {
                werr(w, v, "%s %s has no host name", kp(w, k), Q(u));
                return false;
        }
        if (strpbrk(u, "?#")) {
                werr(w, v, "%s %s must not have a query or fragment", kp(w, k), Q(u));
                return false;
        }
        if (!url_port_ok(w, k, v, u, auth, alen))
                return false;
        /* Normalise: lower-case scheme, no trailing slashes. */
        for (size_t i = 0; i < skip; i++)
                u[i] = (char)tolower((unsigned char)u[i]);
        n = strlen(u);
        while (n > skip && u[n - 1] == '/')
                u[--n] = '\0';
        return true;
}

int config_scope_parse(const char *s, struct config_scope *ret_scope)
{
        struct config_scope sc = { 0 };
        const char *parts[3];
        size_t lens[3];
        size_t np = 0;
        const char *p = s;

        if (!s || !*s)
                return -EINVAL;
        for (;;) {
                const char *slash = strchr(p, '/');
                size_t l = slash ? (size_t)(slash - p) : strlen(p);
                if (np == 3)
                        return -EINVAL;
                parts[np] = p;
                lens[np++] = l;
                if (!slash)
                        break;
                p = slash + 1;
        }
        for (size_t i = 1; i < np; i++) {
                if (lens[i] == 0 || lens[i] > 100)
                        return -EINVAL;
                for (size_t j = 0; j < lens[i]; j++) {
                        char c = parts[i][j];
                        if (!(isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.'))
                                return -EINVAL;
                }
        }
#define IS(str) (lens[0] == strlen(str) && strncmp(parts[0], str, lens[0]) == 0)
        if (IS("instance") && np == 1)
                sc.kind = CONFIG_SCOPE_INSTANCE;
        else if (IS("user") && np == 1)
                sc.kind = CONFIG_SCOPE_USER;
        else if (IS("org") && np == 2)
                sc.kind = CONFIG_SCOPE_ORG;
        else if (IS("repo") && np == 3)
                sc.kind = CONFIG_SCOPE_REPO;
        else
                return -EINVAL;
#undef IS
        if (np >= 2) {
                sc.owner = strndup(parts[1], lens[1]);
                if (!sc.owner)
                        return -ENOMEM;
        }
        if (np == 3) {
                sc.repo = strndup(parts[2], lens[2]);
                if (!sc.repo) {
                        free(sc.owner);
                        return -ENOMEM;
                }
        }
        *ret_scope = sc;
        return 0;
}

void config_scope_done(struct config_scope *s)
{
        if (!s)
                return;
        free(s->owner);
        free(s->repo);
        s->owner = s->repo = NULL;
}

static bool check_scope(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_pool *p = obj;
        struct config_scope sc;
        int r;

        r = config_scope_parse(p->scope_text, &sc);
        if (r == -ENOMEM) {
                w->errs->oom = true;
                return false;
        }
        if (r < 0) {
                werr(w, v, "%s %s is invalid; use instance, user, org/NAME or repo/OWNER/NAME",
                     kp(w, k), Q(p->scope_text));
                return false;
        }
        config_scope_done(&p->scope);
        p->scope = sc;
        return true;
}

static bool check_labels(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_pool *p = obj;
        bool ok = true;

        if (p->labels.n == 0) {
                werr(w, v, "%s is empty; a pool needs at least one label (jobs with an empty runs-on never match a runner)",
                     kp(w, k));
                return false;
        }
        if (p->labels.n > CONFIG_MAX_LABELS) {
                werr(w, v, "%s has %zu items; a pool has at most %d labels",
                     kp(w, k), p->labels.n, CONFIG_MAX_LABELS);
                return false;
        }
        /* The list converted without errors, so items map 1:1 to nodes. */
        for (size_t i = 0; i < p->labels.n; i++) {
                const char *l = p->labels.v[i];
                const struct ynode *at = i < v->n ? v->kids[i] : v;
                bool bad = false;

                if (!*l) {
                        werr(w, at, "%s item %zu is an empty string", kp(w, k), i + 1);
                        ok = false;
                        continue;
                }
                for (const char *c = l; *c; c++)
                        if (isspace((unsigned char)*c) || *c == ',' || *c == ':' ||
                            (unsigned char)*c < 0x20 || *c == 0x7f)
                                bad = true;
                if (bad || strlen(l) > 255) {
                        werr(w, at, "%s: %s is not a valid label name; use no whitespace, ',' or ':' and at most 255 bytes (the scheme goes in runner.label_scheme)",
                             kp(w, k), Q(l));
                        ok = false;
                        continue;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(p->labels.v[j], l) == 0) {
                                const struct ynode *first = j < v->n ? v->kids[j] : v;
                                werr(w, at, "%s: %s is listed twice (first at %d:%d)",
                                     kp(w, k), Q(l), first->line, first->col);
                                ok = false;
                                break;
                        }
        }
        return ok;
}

static bool check_command(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;

        if (rn->command.n == 0) {
                werr(w, v, "%s is empty; give the program and its arguments, e.g. [/usr/local/bin/forgejo-runner]",
                     kp(w, k));
                return false;
        }
        /* forgescale appends up to 2 * CONFIG_MAX_LABELS + 12 arguments. */
        if (rn->command.n > CONFIG_MAX_COMMAND_ARGS) {
                werr(w, v, "%s has %zu items; at most %d (the program and its arguments)",
                     kp(w, k), rn->command.n, CONFIG_MAX_COMMAND_ARGS);
                return false;
        }
        for (size_t i = 0; i < rn->command.n; i++) {
                const struct ynode *at = i < v->n ? v->kids[i] : v;
                if (!*rn->command.v[i]) {
                        werr(w, at, "%s item %zu is an empty string", kp(w, k), i + 1);
                        return false;
                }
                /* Also refused earlier as a scalar over MAX_STRING. */
                if (strlen(rn->command.v[i]) > CONFIG_MAX_ARG_BYTES) {
                        werr(w, at, "%s item %zu is longer than %d bytes",
                             kp(w, k), i + 1, CONFIG_MAX_ARG_BYTES);
                        return false;
                }
        }
        return true;
}

static bool check_runner_env(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;

        /* The daemon adds its own FORGESCALE_* variables next to these. */
        if (rn->env.n > CONFIG_MAX_RUNNER_ENV) {
                werr(w, v, "%s has %zu entries; at most %d", kp(w, k), rn->env.n, CONFIG_MAX_RUNNER_ENV);
                return false;
        }
        return true;
}

static bool check_label_scheme(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        struct config_runner *rn = obj;
        const char *s = rn->label_scheme;
        bool ok;

        ok = strcmp(s, "host") == 0 ||
             ((strncmp(s, "docker://", 9) == 0 && s[9]) ||
              (strncmp(s, "lxc://", 6) == 0 && s[6])) ||
             strcmp(s, "docker") == 0 || strcmp(s, "lxc") == 0;
        for (const char *c = s; ok && *c; c++)
                if ((unsigned char)*c <= ' ' || *c == ',' || *c == 0x7f)
                        ok = false;
        if (!ok) {
                werr(w, v, "%s %s is invalid; use host, docker://IMAGE or lxc://DISTRO:RELEASE",
                     kp(w, k), Q(s));
                return false;
        }
        return true;
}

static bool check_env_name(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)field(obj, k);

        if (!env_name_ok(s)) {
                werr(w, v, "%s %s is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                     kp(w, k), Q(s));
                return false;
        }
        return true;
}

/* A user or group name as useradd/groupadd accept it (portable set, not
 * starting with '-'), or a numeric id below (uid_t)-1. */
static bool account_ok(const char *s, bool *ret_numeric)
{
        size_t n = strlen(s);
        bool digits = true;

        if (n == 0 || n > 32 || s[0] == '-')
                return false;
        for (const char *c = s; *c; c++) {
                if (!isdigit((unsigned char)*c))
                        digits = false;
                if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.' || *c == '-'))
                        return false;
        }
        if (digits) {
                char *end;
                unsigned long long v;
                errno = 0;
                v = strtoull(s, &end, 10);
                if (errno || *end || v >= 4294967295ULL)
                        return false;
        }
        *ret_numeric = digits;
        return true;
}

static bool check_account(struct walk *w, const struct key *k, const struct ynode *v, void *obj)
{
        const char *s = *(char **)field(obj, k);
        bool numeric;

        if (!account_ok(s, &numeric)) {
                werr(w, v, "%s %s is not a %s name or a numeric id; names are letters, digits, '_', '.' and '-' (at most 32, not starting with '-')",
                     kp(w, k), Q(s), strcmp(k->name, "group") == 0 ? "group" : "user");
                return false;
        }
        return true;
}

static void forge_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                         const struct ynode *const *sv, const struct ynode *where);
static void forge_done(void *obj);
static void provider_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                            const struct ynode *const *sv, const struct ynode *where);
static void pool_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                        const struct ynode *const *sv, const struct ynode *where);
static void pool_done(void *obj);
static void top_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                       const struct ynode *const *sv, const struct ynode *where);
static void top_done(void *obj);

/* ---- the key table ---------------------------------------------------------- */

static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };
static const char *const log_formats[] = { "logfmt", "json", NULL };
static const char *const forge_kinds[] = { "forgejo", "gitea", NULL };
static const char *const provider_types[] = { "local", "container", "kubernetes", "ssh", "external", NULL };
static const char *const pool_modes[] = { "queue", "broker", NULL };

_Static_assert(sizeof(enum log_level) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_forge_kind) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_provider_type) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum config_pool_mode) == sizeof(int), "enums are stored as int");
_Static_assert(offsetof(struct config_forge, name) == 0, "name first");
_Static_assert(offsetof(struct config_provider, name) == 0, "name first");
_Static_assert(offsetof(struct config_pool, name) == 0, "name first");

#define ENTRY(st, fld) .off = offsetof(st, fld)

#define N_NAMES(a) (sizeof(a) / sizeof((a)[0]) - 1)     /* without the NULL */

const char *config_provider_type_name(enum config_provider_type t)
{
        return (unsigned)t < N_NAMES(provider_types) ? provider_types[t] : NULL;
}

const char *config_pool_mode_name(enum config_pool_mode m)
{
        return (unsigned)m < N_NAMES(pool_modes) ? pool_modes[m] : NULL;
}

/* Appends ", name" (or "name" first) to buf; text past cap is dropped. */
static void list_add(char *buf, size_t cap, size_t *o, const char *name)
{
        int wr = snprintf(buf + *o, cap - *o, "%s%s", *o ? ", " : "", name);

        if (wr > 0 && (size_t)wr < cap - *o)
                *o += (size_t)wr;
}

static const char *runnable_types(bool (*type_ok)(enum config_provider_type, void *), void *ud,
                                  char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < N_NAMES(provider_types); i++)
                if (type_ok((enum config_provider_type)i, ud))
                        list_add(buf, cap, &o, provider_types[i]);
        return o ? buf : "none";
}

static const char *runnable_modes(bool (*mode_ok)(enum config_pool_mode, void *), void *ud,
                                  char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < N_NAMES(pool_modes); i++)
                if (mode_ok((enum config_pool_mode)i, ud))
                        list_add(buf, cap, &o, pool_modes[i]);
        return o ? buf : "none";
}

int config_check_runnable(const struct config *cfg,
                          bool (*type_ok)(enum config_provider_type t, void *ud),
                          bool (*mode_ok)(enum config_pool_mode m, void *ud),
                          void *ud, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        char q[QBUF], list[128];
        int r = 0, fr;

        for (size_t i = 0; i < cfg->n_providers; i++) {
                const struct config_provider *p = &cfg->providers[i];
                if (!type_ok || type_ok(p->type, ud))
                        continue;
                errlist_add(&errs, p->type_pos.line, p->type_pos.col,
                            "provider %s: type %s cannot run in this build of forgescale; types it can run: %s",
                            quote_into(q, sizeof(q), p->name), config_provider_type_name(p->type),
                            runnable_types(type_ok, ud, list, sizeof(list)));
        }
        for (size_t i = 0; i < cfg->n_pools; i++) {
                const struct config_pool *p = &cfg->pools[i];
                const struct config_pos *at = p->mode_pos.line ? &p->mode_pos : &p->pos;
                if (!mode_ok || mode_ok(p->mode, ud))
                        continue;
                errlist_add(&errs, at->line, at->col,
                            "pool %s: mode %s%s cannot run in this build of forgescale; modes it can run: %s",
                            quote_into(q, sizeof(q), p->name), config_pool_mode_name(p->mode),
                            p->mode_pos.line ? "" : " (the default)",
                            runnable_modes(mode_ok, ud, list, sizeof(list)));
        }
        if (errlist_failed(&errs))
                r = -EINVAL;
        fr = errlist_flush(&errs, cfg->path, reterr_diag);
        if (fr < 0)
                r = fr;
        errlist_done(&errs);
        return r;
}

static const struct key log_keys[] = {
        { .name = "level", .type = KT_ENUM, .def = "info", ENTRY(struct config_log, level),
          .enums = log_levels,
          .doc = "Lowest level written: error, warn, info or debug. `forgescale run --log-level` overrides it." },
        { .name = "format", .type = KT_ENUM, .def = "logfmt", ENTRY(struct config_log, format),
          .enums = log_formats,
          .doc = "Line format on stderr: logfmt (key=value) or json (one object per line). `--log-format` overrides it." },
};

static const struct section log_section = {
        .name = "log", .title = "log",
        .doc = "Logging of `forgescale run`. Registered secrets (tokens) are replaced by `[REDACTED]` in every line.",
        .keys = log_keys, .n_keys = sizeof(log_keys) / sizeof(log_keys[0]),
};

enum { FK_URL, FK_TOKEN_FILE, FK_TOKEN_ENV, FK_TOKEN, FK_KIND, FK_TIMEOUT, FK_CA_FILE, FK_INSECURE };

static const struct key forge_keys[] = {
        [FK_URL] = { .name = "url", .type = KT_STR, .flags = KF_REQUIRED,
          ENTRY(struct config_forge, url), .check = check_url, .type_doc = "URL",
          .example = "url: https://forgejo.example.org",
          .doc = "Base URL of the Forgejo or Gitea instance, http:// or https://, with an optional port (1 to 65535). Trailing slashes are dropped." },
        [FK_TOKEN_FILE] = { .name = "token_file", .type = KT_STR, ENTRY(struct config_forge, token_file),
          .type_doc = "path",
          .doc = "Regular file holding the API token alone on one line (at most 4096 bytes); refused when every user can write it, a warning when group or others can read it. Relative paths are resolved against the configuration file's folder. Exactly one of `token_file` and `token_env` is required." },
        [FK_TOKEN_ENV] = { .name = "token_env", .type = KT_STR, ENTRY(struct config_forge, token_env),
          .check = check_env_name, .type_doc = "variable name",
          .doc = "Name of the environment variable holding the API token." },
        [FK_TOKEN] = { .name = "token", .type = KT_REFUSED,
          .doc = "an inline token is refused; put it in a file and use token_file, or use token_env" },
        [FK_KIND] = { .name = "kind", .type = KT_ENUM, .def = "forgejo", ENTRY(struct config_forge, kind),
          .enums = forge_kinds,
          .doc = "Server software. Queue mode needs Forgejo ≥ 15; a gitea forge can only serve broker-mode pools." },
        [FK_TIMEOUT] = { .name = "timeout", .type = KT_DURATION, .def = "10s",
          ENTRY(struct config_forge, timeout_ms), .min = 100, .max = 10 * 60 * 1000,
          .doc = "Time limit of one API request." },
        [FK_CA_FILE] = { .name = "ca_file", .type = KT_STR, ENTRY(struct config_forge, ca_file),
          .type_doc = "path",
          .doc = "PEM file of certificate authorities to trust instead of the system store. TLS verification is always on unless `insecure_skip_verify` is true." },
        [FK_INSECURE] = { .name = "insecure_skip_verify", .type = KT_BOOL, .def = "false",
          ENTRY(struct config_forge, insecure_skip_verify),
          .doc = "Skip TLS certificate verification. For tests only." },
};

static const struct section forge_section = {
        .name = "forge", .title = "forges.NAME",
        .doc = "A Forgejo or Gitea instance and the token forgescale uses on it. Pools refer to forges by NAME.",
        .keys = forge_keys, .n_keys = sizeof(forge_keys) / sizeof(forge_keys[0]),
        .size = sizeof(struct config_forge), .pos_off = offsetof(struct config_forge, pos),
        .finish = forge_finish, .done = forge_done,
};

enum { PRK_TYPE, PRK_MAX_INSTANCES, PRK_STOP_GRACE, PRK_USER, PRK_GROUP };

static const struct key provider_keys[] = {
        [PRK_TYPE] = { .name = "type", .type = KT_ENUM, .flags = KF_REQUIRED, ENTRY(struct config_provider, type),
          .enums = provider_types, .example = "type: local",
          .doc = "How instances are made: local (processes on this machine), container, kubernetes, ssh or external. `check` refuses a type this build cannot run." },
        [PRK_MAX_INSTANCES] = { .name = "max_instances", .type = KT_INT, .flags = KF_ZERO_UNSET,
          ENTRY(struct config_provider, max_instances), .min = 1, .max = 100000,
          .doc = "Most instances alive at once across every pool using this provider. Unset means unlimited." },
        [PRK_STOP_GRACE] = { .name = "stop_grace", .type = KT_DURATION, .def = "10s",
          ENTRY(struct config_provider, stop_grace_ms), .min = 0, .max = 10 * 60 * 1000,
          .doc = "Time an instance gets to stop after being asked to (SIGTERM or the provider's equivalent) before it is killed." },
        [PRK_USER] = { .name = "user", .type = KT_STR, ENTRY(struct config_provider, local.user),
          .check = check_account, .variants = KV(CONFIG_PROVIDER_LOCAL), .type_doc = "account",
          .doc = "Run workers as this account, a user name or a numeric uid, instead of the daemon's own. `check` verifies that a named account exists on the machine." },
        [PRK_GROUP] = { .name = "group", .type = KT_STR, ENTRY(struct config_provider, local.group),
          .check = check_account, .variants = KV(CONFIG_PROVIDER_LOCAL), .type_doc = "group",
          .doc = "Run workers with this group, a group name or a numeric gid. Unset: the primary group of `user`. `check` verifies that a named group exists on the machine." },
};

static const struct section provider_section = {
        .name = "provider", .title = "providers.NAME",
        .doc = "Where runner instances are created. When `providers` is absent, one provider named `local` of type local exists.",
        .keys = provider_keys, .n_keys = sizeof(provider_keys) / sizeof(provider_keys[0]),
        .size = sizeof(struct config_provider), .pos_off = offsetof(struct config_provider, pos),
        .finish = provider_finish, .variant = &provider_keys[PRK_TYPE],
};

static const struct key runner_keys[] = {
        { .name = "command", .type = KT_LIST, .def = "[forgejo-runner]",
          ENTRY(struct config_runner, command), .check = check_command, .type_doc = "list of strings",
          .doc = "Program and leading arguments (argv, no shell): at most 64 items of at most 4096 bytes. forgescale appends `one-job --url … --label NAME:SCHEME … --handle … --wait`." },
        { .name = "env", .type = KT_ENV, .def = "{}", ENTRY(struct config_runner, env),
          .check = check_runner_env,
          .doc = "Extra environment variables for the runner process, at most 48." },
        { .name = "label_scheme", .type = KT_STR, .def = "host", ENTRY(struct config_runner, label_scheme),
          .check = check_label_scheme, .type_doc = "string",
          .doc = "How the runner executes jobs: host, docker://IMAGE or lxc://DISTRO:RELEASE. Each pool label is passed as `--label LABEL:SCHEME`." },
};

static const struct section runner_section = {
        .name = "runner", .title = "pools.NAME.runner",
        .doc = "How a runner process is started for one job. Optional: the default runs `forgejo-runner one-job` from PATH with host labels.",
        .keys = runner_keys, .n_keys = sizeof(runner_keys) / sizeof(runner_keys[0]),
};

enum {
        PK_FORGE, PK_SCOPE, PK_LABELS, PK_MODE, PK_PROVIDER, PK_MIN_IDLE, PK_MAX_RUNNERS,
        PK_POLL, PK_IDLE, PK_BOOTSTRAP, PK_RUNNER,
};

static const struct key pool_keys[] = {
        [PK_FORGE] = { .name = "forge", .type = KT_STR, ENTRY(struct config_pool, forge_name),
          .type_doc = "forge name",
          .doc = "Forge whose jobs this pool serves. May be left out when exactly one forge is defined." },
        [PK_SCOPE] = { .name = "scope", .type = KT_STR, .flags = KF_REQUIRED,
          ENTRY(struct config_pool, scope_text), .check = check_scope, .type_doc = "scope",
          .example = "scope: org/acme",
          .doc = "Where runners are registered and jobs are looked for: `instance` (needs a site admin token), `org/NAME`, `user` (the token's user) or `repo/OWNER/NAME`." },
        [PK_LABELS] = { .name = "labels", .type = KT_LIST, .flags = KF_REQUIRED,
          ENTRY(struct config_pool, labels), .check = check_labels, .type_doc = "list of strings",
          .example = "labels: [docker, ubuntu-latest]",
          .doc = "Label names the pool's runners declare. A job is served when every value of its runs-on is among them. Names are non-empty, unique, without whitespace, ',' or ':'. At most 64 per pool, and at most 64 distinct labels over the pools that share a forge and scope (they are listed together)." },
        [PK_MODE] = { .name = "mode", .type = KT_ENUM, .def = "queue", ENTRY(struct config_pool, mode),
          .enums = pool_modes,
          .doc = "queue: poll the forge's waiting-jobs API and start one runner per job (needs Forgejo ≥ 15). broker: forgescale answers the runner protocol itself." },
        [PK_PROVIDER] = { .name = "provider", .type = KT_STR, ENTRY(struct config_pool, provider_name),
          .type_doc = "provider name",
          .doc = "Provider that creates this pool's instances. May be left out when exactly one provider exists (including the implicit `local`)." },
        [PK_MIN_IDLE] = { .name = "min_idle", .type = KT_INT, .def = "0", ENTRY(struct config_pool, min_idle),
          .min = 0, .max = 10000,
          .doc = "Idle runners kept waiting for jobs at all times; at most max_runners." },
        [PK_MAX_RUNNERS] = { .name = "max_runners", .type = KT_INT, .def = "10",
          ENTRY(struct config_pool, max_runners), .min = 0, .max = 10000,
          .doc = "Most runners of this pool alive at once, idle or busy. 0 makes the pool observe-only: its demand is watched and exported (metrics, `/v1/pools/NAME/demand` for KEDA) but nothing is launched." },
        [PK_POLL] = { .name = "poll_interval", .type = KT_DURATION, .def = "2s",
          ENTRY(struct config_pool, poll_interval_ms), .min = 100, .max = DURATION_MAX,
          .doc = "Time between two polls of the waiting-jobs API." },
        [PK_IDLE] = { .name = "idle_timeout", .type = KT_DURATION, .def = "5m",
          ENTRY(struct config_pool, idle_timeout_ms), .min = 0, .max = DURATION_MAX,
          .doc = "An idle runner beyond min_idle is removed after this long without a job." },
        [PK_BOOTSTRAP] = { .name = "bootstrap_timeout", .type = KT_DURATION, .def = "10m",
          ENTRY(struct config_pool, bootstrap_timeout_ms), .min = 1000, .max = DURATION_MAX,
          .doc = "An instance that has not started its runner within this time is destroyed." },
        [PK_RUNNER] = { .name = "runner", .type = KT_SECTION, ENTRY(struct config_pool, runner),
          .sub = &runner_section, .type_doc = "mapping",
          .doc = "How the runner process is started; see below." },
};

static const struct section pool_section = {
        .name = "pool", .title = "pools.NAME",
        .doc = "A set of runners with the same labels, serving one scope of one forge.",
        .keys = pool_keys, .n_keys = sizeof(pool_keys) / sizeof(pool_keys[0]),
        .size = sizeof(struct config_pool), .pos_off = offsetof(struct config_pool, pos),
        .finish = pool_finish, .done = pool_done,
};

enum { TK_LISTEN, TK_STATE_DIR, TK_LOG, TK_FORGES, TK_PROVIDERS, TK_POOLS };

static const struct key top_keys[] = {
        [TK_LISTEN] = { .name = "listen", .type = KT_STR, .def = "127.0.0.1:9464",
          ENTRY(struct config, listen), .check = check_listen, .type_doc = "address",
          .doc = "HOST:PORT of the HTTP endpoint for /metrics, /healthz and /v1/…; HOST is an IP address (IPv6 in brackets) or localhost. Port 0 picks a free port. The API has no authentication: an address other than loopback (127.0.0.0/8, ::1, localhost) draws a warning from `check` and at start." },
        [TK_STATE_DIR] = { .name = "state_dir", .type = KT_STR, .def = "./forgescale-state",
          ENTRY(struct config, state_dir), .type_doc = "path",
          .doc = "Folder for the SQLite database and per-instance files, created with mode 0700. An existing folder that every user can write is refused. Relative paths are resolved against the configuration file's folder." },
        [TK_LOG] = { .name = "log", .type = KT_SECTION, ENTRY(struct config, log), .sub = &log_section,
          .type_doc = "mapping", .doc = "Logging; see below." },
        [TK_FORGES] = { .name = "forges", .type = KT_NAMED, .flags = KF_REQUIRED, ENTRY(struct config, forges),
          .count_off = offsetof(struct config, n_forges), .sub = &forge_section,
          .example = "forges: {main: {url: https://forgejo.example.org, token_file: /etc/forgescale/token}}",
          .doc = "The forges, by name." },
        [TK_PROVIDERS] = { .name = "providers", .type = KT_NAMED, .def = "{local: {type: local}}",
          ENTRY(struct config, providers), .count_off = offsetof(struct config, n_providers),
          .sub = &provider_section,
          .doc = "The providers, by name. When absent: one provider `local` of type local." },
        [TK_POOLS] = { .name = "pools", .type = KT_NAMED, .flags = KF_REQUIRED, ENTRY(struct config, pools),
          .count_off = offsetof(struct config, n_pools), .sub = &pool_section,
          .example = "pools: {linux: {scope: org/acme, labels: [docker]}}",
          .doc = "The pools, by name." },
};

const struct section config__top = {
        .name = "top level", .title = "Top level",
        .doc = "Keys at the top of the file.",
        .keys = top_keys, .n_keys = sizeof(top_keys) / sizeof(top_keys[0]),
        .finish = top_finish, .done = top_done,
};

/* ---- cross-key checks ---------------------------------------------------------- */

static void forge_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                         const struct ynode *const *sv, const struct ynode *where)
{
        struct config_forge *f = obj;

        if (f->token_file && f->token_env) {
                const struct ynode *a = sk[FK_TOKEN_FILE], *b = sk[FK_TOKEN_ENV];
                const struct ynode *second = (a->line > b->line ||
                                              (a->line == b->line && a->col > b->col)) ? a : b;
                werr(w, second, "token_file and token_env are both set; keep only one");
        } else if (!f->token_file && !f->token_env && !sk[FK_TOKEN] &&
                   !(sv[FK_TOKEN_FILE] && sv[FK_TOKEN_FILE]->kind != YN_NULL) &&
                   !(sv[FK_TOKEN_ENV] && sv[FK_TOKEN_ENV]->kind != YN_NULL)) {
                werr(w, where, "missing token: set token_file (a file holding the token) or token_env (an environment variable holding it)");
        }
        if (f->token_file) {
                f->token_path = resolve(w->dir, f->token_file);
                if (!f->token_path)
                        w->errs->oom = true;
                f->token_pos = (struct config_pos){ sv[FK_TOKEN_FILE]->line, sv[FK_TOKEN_FILE]->col };
        } else if (f->token_env) {
                f->token_pos = (struct config_pos){ sv[FK_TOKEN_ENV]->line, sv[FK_TOKEN_ENV]->col };
        }
        if (f->ca_file) {
                f->ca_path = resolve(w->dir, f->ca_file);
                if (!f->ca_path)
                        w->errs->oom = true;
                f->ca_pos = (struct config_pos){ sv[FK_CA_FILE]->line, sv[FK_CA_FILE]->col };
        }
}

static void forge_done(void *obj)
{
        struct config_forge *f = obj;

        free(f->token_path);
        free(f->ca_path);
        secret_free(f->token);
        f->token_path = f->ca_path = f->token = NULL;
}

static struct config_pos pos_of_value(const struct ynode *const *sv, size_t i)
{
        if (sv[i] && sv[i]->kind != YN_NULL)
                return (struct config_pos){ sv[i]->line, sv[i]->col };
        return (struct config_pos){ 0, 0 };
}

static void provider_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                            const struct ynode *const *sv, const struct ynode *where)
{
        struct config_provider *p = obj;

        p->type_pos = pos_of_value(sv, PRK_TYPE);
        p->local.user_pos = pos_of_value(sv, PRK_USER);
        p->local.group_pos = pos_of_value(sv, PRK_GROUP);
}

static char *names_list(const void *arr, size_t n, size_t size, char *buf, size_t cap)
{
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                const char *name = *(char *const *)((const char *)arr + i * size);
                int wr = snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", name ? name : "");
                if (wr < 0 || (size_t)wr >= cap - o) {
                        if (cap > 4)
                                memcpy(buf + cap - 4, "...", 4);
                        break;
                }
                o += (size_t)wr;
        }
        return buf;
}

/* Resolves a pool's reference to a forge or provider. Returns the index or
 * SIZE_MAX (error reported). */
static size_t resolve_ref(struct walk *w, const char *what, char **name,
                          const void *arr, size_t n, size_t size, bool broken,
                          const struct ynode *at_value, const struct ynode *where)
{
        char list[256];
        const char *cands[MAX_ITEMS];
        const char *sug;

        if (broken || n == 0)
                return SIZE_MAX;
        if (!*name) {
                if (n == 1) {
                        *name = strdup(*(char *const *)arr);
                        if (!*name)
                                w->errs->oom = true;
                        return *name ? 0 : SIZE_MAX;
                }
                werr(w, where, "missing key \"%s\"; there is more than one %s (%s), name the one to use",
                     what, what, names_list(arr, n, size, list, sizeof(list)));
                return SIZE_MAX;
        }
        for (size_t i = 0; i < n; i++) {
                cands[i] = *(char *const *)((const char *)arr + i * size);
                if (cands[i] && strcmp(cands[i], *name) == 0)
                        return i;
        }
        sug = config_suggest(*name, cands, n);
        if (sug)
                werr(w, at_value, "%s %s is not defined; did you mean \"%s\"?", what, Q(*name), sug);
        else
                werr(w, at_value, "%s %s is not defined; defined %ss: %s", what, Q(*name), what,
                     names_list(arr, n, size, list, sizeof(list)));
        return SIZE_MAX;
}

static void pool_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                        const struct ynode *const *sv, const struct ynode *where)
{
        struct config_pool *p = obj;
        struct config *cfg = w->cfg;
        size_t i;

        i = resolve_ref(w, "forge", &p->forge_name, cfg->forges, cfg->n_forges,
                        sizeof(struct config_forge), config__walk_broken(w, &forge_section),
                        vpos(sk, sv, PK_FORGE, where), where);
        if (i != SIZE_MAX) {
                p->forge_idx = i;
                p->forge = &cfg->forges[i];
        }
        i = resolve_ref(w, "provider", &p->provider_name, cfg->providers, cfg->n_providers,
                        sizeof(struct config_provider), config__walk_broken(w, &provider_section),
                        vpos(sk, sv, PK_PROVIDER, where), where);
        if (i != SIZE_MAX) {
                p->provider_idx = i;
                p->provider = &cfg->providers[i];
        }
        p->mode_pos = pos_of_value(sv, PK_MODE);

        if (sv[PK_MIN_IDLE] && sv[PK_MAX_RUNNERS] && p->min_idle > p->max_runners)
                werr(w, vpos(sk, sv, PK_MAX_RUNNERS, where),
                     "max_runners must be ≥ min_idle (min_idle is %lld, max_runners is %lld)",
                     (long long)p->min_idle, (long long)p->max_runners);
        else if (p->min_idle > p->max_runners)
                werr(w, vpos(sk, sv, sv[PK_MIN_IDLE] ? PK_MIN_IDLE : PK_MAX_RUNNERS, where),
                     "max_runners must be ≥ min_idle (min_idle is %lld, max_runners is %lld%s)",
                     (long long)p->min_idle, (long long)p->max_runners,
                     sv[PK_MAX_RUNNERS] ? "" : " by default");

        if (p->forge && p->forge->kind == CONFIG_FORGE_GITEA && p->mode == CONFIG_MODE_QUEUE) {
                if (sv[PK_MODE] && sv[PK_MODE]->kind != YN_NULL)
                        werr(w, sv[PK_MODE],
                             "mode queue needs Forgejo ≥ 15 (the waiting-jobs API), but forge %s has kind gitea; use mode: broker",
                             Q(p->forge->name));
                else
                        werr(w, vpos(sk, sv, PK_FORGE, where),
                             "mode defaults to queue, which needs Forgejo ≥ 15 (the waiting-jobs API), but forge %s has kind gitea; set mode: broker",
                             Q(p->forge->name));
        }
}

static void pool_done(void *obj)
{
        struct config_pool *p = obj;

        config_scope_done(&p->scope);
        p->forge = NULL;
        p->provider = NULL;
}

/* One (forge, scope) pair: the daemon lists its waiting jobs in one request
 * that asks for the union of the labels of the pools sharing it. */
struct listing {
        size_t forge_idx;
        struct config_scope scope;
        const char *labels[CONFIG_MAX_LABELS];  /* distinct, borrowed from the pools */
        size_t n_labels;
        size_t first_pool;
        bool full;                              /* already reported */
};

static bool scope_equal(const struct config_scope *a, const struct config_scope *b)
{
        return a->kind == b->kind &&
               strcmp(a->owner ? a->owner : "", b->owner ? b->owner : "") == 0 &&
               strcmp(a->repo ? a->repo : "", b->repo ? b->repo : "") == 0;
}

/* Names of the pools of listing l, for a message. */
static const char *listing_pools(const struct config *cfg, const struct listing *l,
                                 size_t upto, char *buf, size_t cap)
{
        size_t o = 0;
        char q[QBUF];

        buf[0] = '\0';
        for (size_t i = l->first_pool; i <= upto; i++) {
                const struct config_pool *p = &cfg->pools[i];
                struct config_scope sc;
                int wr;

                if (!p->forge || p->forge_idx != l->forge_idx ||
                    config_scope_parse(p->scope_text, &sc) < 0)
                        continue;
                if (scope_equal(&sc, &l->scope)) {
                        wr = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "",
                                      quote_into(q, sizeof(q), p->name));
                        if (wr < 0 || (size_t)wr >= cap - o) {
                                memcpy(buf + cap - 4, "...", 4);
                                config_scope_done(&sc);
                                break;
                        }
                        o += (size_t)wr;
                }
                config_scope_done(&sc);
        }
        return buf;
}

/* `check` must refuse what `run` cannot serve: at most CONFIG_MAX_LISTINGS
 * listings, each asking for at most CONFIG_MAX_LABELS labels. */
static void check_listings(struct walk *w, struct config *cfg)
{
        struct listing *ls = calloc(CONFIG_MAX_LISTINGS, sizeof(*ls));
        size_t n = 0;
        bool over = false;
        char q[QBUF], names[512];

        if (!ls) {
                w->errs->oom = true;
                return;
        }
        for (size_t i = 0; i < cfg->n_pools; i++) {
                const struct config_pool *p = &cfg->pools[i];
                struct config_scope sc;
                struct listing *l = NULL;
                size_t j;

                /* Pools with a broken forge or scope were reported already. */
                if (!p->forge || config_scope_parse(p->scope_text, &sc) < 0)
                        continue;
                for (j = 0; j < n; j++)
                        if (ls[j].forge_idx == p->forge_idx && scope_equal(&ls[j].scope, &sc))
                                break;
                if (j < n) {
                        l = &ls[j];
                        config_scope_done(&sc);
                } else if (n == CONFIG_MAX_LISTINGS) {
                        if (!over)
                                errlist_add(w->errs, p->pos.line, p->pos.col,
                                            "pool %s: forge %s, scope %s would be listing number %d; forgescale polls at most %d (forge, scope) listings (pools on the same forge and scope share one)",
                                            quote_into(q, sizeof(q), p->name), Q(p->forge->name),
                                            Q(p->scope_text), CONFIG_MAX_LISTINGS + 1, CONFIG_MAX_LISTINGS);
                        over = true;
                        config_scope_done(&sc);
                        continue;
                } else {
                        l = &ls[n++];
                        l->forge_idx = p->forge_idx;
                        l->scope = sc;
                        l->first_pool = i;
                }
                /* A pool over the limit on its own was reported by check_labels. */
                if (l->full || p->labels.n > CONFIG_MAX_LABELS)
                        continue;
                for (size_t k = 0; k < p->labels.n && !l->full; k++) {
                        size_t e;
                        for (e = 0; e < l->n_labels; e++)
                                if (strcmp(l->labels[e], p->labels.v[k]) == 0)
                                        break;
                        if (e < l->n_labels)
                                continue;
                        if (l->n_labels == CONFIG_MAX_LABELS) {
                                errlist_add(w->errs, p->pos.line, p->pos.col,
                                            "pool %s: the pools on forge %s, scope %s (%s) are listed together, asking for the union of their labels: more than %d distinct labels; use at most %d, or split them over scopes",
                                            quote_into(q, sizeof(q), p->name), Q(p->forge->name),
                                            Q(p->scope_text), listing_pools(cfg, l, i, names, sizeof(names)),
                                            CONFIG_MAX_LABELS, CONFIG_MAX_LABELS);
                                l->full = true;
                                break;
                        }
                        l->labels[l->n_labels++] = p->labels.v[k];
                }
        }
        for (size_t j = 0; j < n; j++)
                config_scope_done(&ls[j].scope);
        free(ls);
}

static void top_finish(struct walk *w, void *obj, const struct ynode *const *sk,
                       const struct ynode *const *sv, const struct ynode *where)
{
        struct config *cfg = obj;

        check_listings(w, cfg);

        if (!sv[TK_PROVIDERS] || sv[TK_PROVIDERS]->kind == YN_NULL)
                for (size_t i = 0; i < cfg->n_providers; i++)
                        cfg->providers[i].implicit = true;
        if (cfg->state_dir) {
                cfg->state_path = resolve(w->dir, cfg->state_dir);
                if (!cfg->state_path)
                        w->errs->oom = true;
                if (sv[TK_STATE_DIR] && sv[TK_STATE_DIR]->kind != YN_NULL)
                        cfg->state_pos = (struct config_pos){ sv[TK_STATE_DIR]->line,
                                                              sv[TK_STATE_DIR]->col };
        }
}

static void top_done(void *obj)
{
        struct config *cfg = obj;

        free(cfg->listen_host);
        free(cfg->state_path);
        free(cfg->path);
        free(cfg->dir);
        cfg->listen_host = cfg->state_path = cfg->path = cfg->dir = NULL;
}

/* ---- generic free ------------------------------------------------------------------ */

void config__section_done(const struct section *sec, void *obj)
{
        for (size_t i = 0; i < sec->n_keys; i++) {
                const struct key *k = &sec->keys[i];
                void *f = field(obj, k);

                switch (k->type) {
                case KT_STR:
                        free(*(char **)f);
                        *(char **)f = NULL;
                        break;
                case KT_LIST:
                        strv_done(f);
                        break;
                case KT_ENV:
                        envv_done(f);
                        break;
                case KT_SECTION:
                        config__section_done(k->sub, f);
                        break;
                case KT_NAMED: {
                        char *arr = *(char **)f;
                        size_t *cnt = (size_t *)((char *)obj + k->count_off);
                        for (size_t j = 0; arr && j < *cnt; j++)
                                config__section_done(k->sub, arr + j * k->sub->size);
                        free(arr);
                        *(char **)f = NULL;
                        *cnt = 0;
                        break;
                }
                default:
                        break;
                }
        }
        /* Named entries carry their name first, outside the key table. */
        if (sec->size) {
                free(*(char **)obj);
                *(char **)obj = NULL;
        }
        if (sec->done)
                sec->done(obj);
}

void config_free(struct config *cfg)
{
        if (!cfg)
                return;
        config__section_done(&config__top, cfg);
        free(cfg);
}

/* ---- entry points -------------------------------------------------------------------- */

int config_parse(const char *name, const char *text, size_t len, const char *dir,
                 struct config **ret_cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        struct ynode *root = NULL;
        struct config *cfg = NULL;
        struct walk w = { .errs = &errs, .dir = dir };
        int r, fr;

        if (len > CONFIG_MAX_FILE_SIZE) {
                errlist_add(&errs, 0, 0, "the file is larger than %u bytes; this is not a forgescale configuration",
                            CONFIG_MAX_FILE_SIZE);
                r = -EFBIG;
                goto out;
        }
        r = build_tree(text, len, &errs, &root);
        if (r < 0)
                goto out;
        if (!root || root->kind == YN_NULL) {
                errlist_add(&errs, 0, 0, "the configuration is empty; it needs at least forges and pools");
                r = -EINVAL;
                goto out;
        }
        if (root->kind == YN_BAD) {
                r = -EINVAL;    /* already reported */
                goto out;
        }
        if (root->kind != YN_MAP) {
                char d[160];
                errlist_add(&errs, root->line, root->col,
                            "the configuration must be a mapping of keys (listen, forges, pools, ...), got %s",
                            describe(root, d, sizeof(d)));
                r = -EINVAL;
                goto out;
        }
        cfg = calloc(1, sizeof(*cfg));
        if (!cfg) {
                r = -ENOMEM;
                goto out;
        }
        cfg->path = strdup(name);
        cfg->dir = strdup(dir ? dir : ".");
        if (!cfg->path || !cfg->dir) {
                r = -ENOMEM;
                goto out;
        }
        w.cfg = cfg;
        walk_map(&w, &config__top, cfg, root, root);
        if (errs.oom)
                r = -ENOMEM;
        else if (errlist_failed(&errs))
                r = -EINVAL;
out:
        fr = errlist_flush(&errs, name, reterr_diag);
        if (r == 0 && fr < 0)
                r = fr;
        if (r == 0) {
                *ret_cfg = cfg;
                cfg = NULL;
        }
        config_free(cfg);
        ynode_free(root);
        errlist_done(&errs);
        return r;
}

int config_load(const char *path, struct config **ret_cfg, struct config_diag *reterr_diag)
{
        char *text = NULL, *dir = NULL, *slash;
        size_t len = 0;
        int r;

        r = fs_read_file(path, CONFIG_MAX_FILE_SIZE, &text, &len);
        if (r == -EFBIG) {
                diag_addf(reterr_diag, false, "%s: the file is larger than %u bytes; this is not a forgescale configuration",
                          path, CONFIG_MAX_FILE_SIZE);
                return r;
        }
        if (r < 0) {
                if (diag_addf(reterr_diag, false, "%s: cannot read the configuration: %s", path,
                              strerror(-r)) < 0)
                        return -ENOMEM;
                return r;
        }
        dir = strdup(path);
        if (!dir) {
                free(text);
                return -ENOMEM;
        }
        slash = strrchr(dir, '/');
        if (!slash) {
                free(dir);
                dir = strdup(".");
                if (!dir) {
                        free(text);
                        return -ENOMEM;
                }
        } else if (slash == dir)
                slash[1] = '\0';
        else
                *slash = '\0';
        r = config_parse(path, text, len, dir, ret_cfg, reterr_diag);
        free(dir);
        free(text);
        return r;
}

/* ---- referenced files and tokens ---------------------------------------------------- */

/* Why a referenced file cannot be used, beyond an errno: set by the
 * readers below, turned into a message by file_error(). */
struct fileproblem {
        int err;                /* -errno, or -EINVAL with why set */
        const char *why;        /* "is a FIFO, not a regular file", ... */
        bool shared;            /* readable by group or others: a warning */
        unsigned mode;          /* permission bits, for the messages */
};

static const char *file_type_name(mode_t m)
{
        if (S_ISFIFO(m))
                return "is a FIFO, not a regular file";
        if (S_ISCHR(m))
                return "is a character device, not a regular file";
        if (S_ISBLK(m))
                return "is a block device, not a regular file";
        if (S_ISSOCK(m))
                return "is a socket, not a regular file";
        return "is not a regular file";
}

/* Opens a file the configuration refers to. O_NONBLOCK so that a FIFO
 * without a writer cannot hang `check`; the type is checked on the open fd
 * so it is the file that will be read. Returns the fd or -1 with *pb set. */
static int open_regular(const char *path, struct fileproblem *pb, struct stat *ret_st)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

        if (fd < 0) {
                pb->err = -errno;
                return -1;
        }
        if (fstat(fd, ret_st) < 0) {
                pb->err = -errno;
                close(fd);
                return -1;
        }
        pb->mode = (unsigned)(ret_st->st_mode & 07777);
        if (S_ISDIR(ret_st->st_mode)) {
                pb->err = -EISDIR;
                close(fd);
                return -1;
        }
        if (!S_ISREG(ret_st->st_mode)) {
                pb->err = -EINVAL;
                pb->why = file_type_name(ret_st->st_mode);
                close(fd);
                return -1;
        }
        return fd;
}

/* Checks and trims a token read from a file or a variable. Trailing
 * whitespace (the newline editors add) is dropped; anything else that is
 * not a printable, space-free single line would end up in an HTTP header
 * or fail as "unauthorized" far from its cause. Returns NULL or why not. */
static const char *token_text_problem(char *buf, size_t *len, int *ret_err)
{
        size_t n = *len;

        *ret_err = -EINVAL;
        if (memchr(buf, '\0', n))
                return "contains a NUL byte; it must hold the token alone, as text";
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
                         buf[n - 1] == ' ' || buf[n - 1] == '\t'))
                buf[--n] = '\0';
        *len = n;
        if (n == 0) {
                *ret_err = -ENODATA;
                return "is empty";
        }
        if (memchr(buf, '\n', n) || memchr(buf, '\r', n))
                return "has more than one line; it must hold the token alone";
        if (buf[0] == ' ' || buf[0] == '\t')
                return "starts with whitespace; it must hold the token alone";
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] <= ' ' || buf[i] == 0x7f)
                        return "contains a space or a control character; a token has none";
        return NULL;
}

/* Reads a token file: a regular file, not writable by others, at most
 * SECRET_MAX bytes. Returns 0 and the trimmed token (registered for
 * redaction; free with secret_free), or fills *pb. pb->shared is set in
 * both cases when group or others may read the file. */
static int read_token_file(const char *path, char **ret, struct fileproblem *pb)
{
        char *buf = NULL;
        size_t len = 0;
        struct stat st;
        int fd, err, r;
        const char *why;

        fd = open_regular(path, pb, &st);
        if (fd < 0)
                return pb->err;
        if (st.st_mode & S_IWOTH) {
                /* Anyone could swap the token for their own. */
                pb->err = -EPERM;
                pb->why = "is writable by every user";
                r = pb->err;
                goto out;
        }
        pb->shared = (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
        buf = malloc(SECRET_MAX + 2);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        for (;;) {
                ssize_t rd = read(fd, buf + len, SECRET_MAX + 1 - len);
                if (rd < 0 && errno == EINTR)
                        continue;
                if (rd < 0) {
                        pb->err = r = -errno;
                        goto out;
                }
                if (rd == 0)
                        break;
                len += (size_t)rd;
                if (len > SECRET_MAX) {
                        pb->err = r = -EFBIG;
                        goto out;
                }
        }
        buf[len] = '\0';
        why = token_text_problem(buf, &len, &err);
        if (why) {
                pb->err = r = err;
                pb->why = why;
                goto out;
        }
        log_redact_add(buf);
        *ret = buf;
        buf = NULL;
        r = 0;
out:
        if (buf) {
                explicit_bzero(buf, SECRET_MAX + 2);
                free(buf);
        }
        close(fd);
        return r;
}

static int read_token_env(const char *name, char **ret, struct fileproblem *pb)
{
        const char *v = getenv(name);
        size_t len;
        const char *why;
        char *buf;
        int err;

        if (!v)
                return pb->err = -ENOENT;
        len = strlen(v);
        if (len > SECRET_MAX)
                return pb->err = -EFBIG;
        buf = strdup(v);
        if (!buf)
                return -ENOMEM;
        why = token_text_problem(buf, &len, &err);
        if (why) {
                secret_free(buf);
                pb->why = why;
                return pb->err = err;
        }
        log_redact_add(buf);
        *ret = buf;
        return 0;
}

static void token_error(struct errlist *errs, const struct config_forge *f,
                        const struct fileproblem *pb)
{
        const struct config_pos *p = &f->token_pos;
        char q1[QBUF], q2[QBUF];

        quote_into(q1, sizeof(q1), f->name);
        if (f->token_file) {
                quote_into(q2, sizeof(q2), f->token_file);
                if (pb->err == -EPERM && pb->why)
                        errlist_add(errs, p->line, p->col,
                                    "forge %s: token_file %s %s (mode %04o), so anyone could replace the token; chmod 600 it",
                                    q1, q2, pb->why, pb->mode);
                else if (pb->why)
                        errlist_add(errs, p->line, p->col, "forge %s: token_file %s %s", q1, q2, pb->why);
                else if (pb->err == -EFBIG)
                        errlist_add(errs, p->line, p->col,
                                    "forge %s: token_file %s is larger than %d bytes", q1, q2, SECRET_MAX);
                else
                        errlist_add(errs, p->line, p->col, "forge %s: token_file %s: %s",
                                    q1, q2, strerror(-pb->err));
        } else {
                quote_into(q2, sizeof(q2), f->token_env);
                if (pb->err == -ENOENT)
                        errlist_add(errs, p->line, p->col,
                                    "forge %s: token_env: environment variable %s is not set", q1, q2);
                else if (pb->why)
                        errlist_add(errs, p->line, p->col,
                                    "forge %s: token_env: environment variable %s %s", q1, q2, pb->why);
                else if (pb->err == -EFBIG)
                        errlist_add(errs, p->line, p->col,
                                    "forge %s: token_env: environment variable %s is longer than %d bytes",
                                    q1, q2, SECRET_MAX);
                else
                        errlist_add(errs, p->line, p->col, "forge %s: token_env: %s: %s",
                                    q1, q2, strerror(-pb->err));
        }
}

/* Loads one forge's token, adding its error or its warning to errs.
 * Returns 0, -ENOMEM, or another -errno (reported). */
static int load_token(const struct config_forge *f, struct errlist *errs, char **ret)
{
        struct fileproblem pb = { 0 };
        int r;

        if (f->token_file)
                r = read_token_file(f->token_path, ret, &pb);
        else if (f->token_env)
                r = read_token_env(f->token_env, ret, &pb);
        else
                r = pb.err = -ENOENT;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                token_error(errs, f, &pb);
                return r;
        }
        if (pb.shared) {
                char q1[QBUF], q2[QBUF];
                errlist_warn(errs, f->token_pos.line, f->token_pos.col,
                             "forge %s: token_file %s can be read by other users (mode %04o); chmod 600 it",
                             quote_into(q1, sizeof(q1), f->name),
                             quote_into(q2, sizeof(q2), f->token_file), pb.mode);
        }
        return 0;
}

static void check_ca_file(const struct config_forge *f, struct errlist *errs)
{
        struct fileproblem pb = { 0 };
        struct stat st;
        char q1[QBUF], q2[QBUF];
        int fd = open_regular(f->ca_path, &pb, &st);

        if (fd >= 0) {
                close(fd);
                return;
        }
        quote_into(q1, sizeof(q1), f->name);
        quote_into(q2, sizeof(q2), f->ca_file);
        if (pb.why)
                errlist_add(errs, f->ca_pos.line, f->ca_pos.col, "forge %s: ca_file %s %s",
                            q1, q2, pb.why);
        else
                errlist_add(errs, f->ca_pos.line, f->ca_pos.col, "forge %s: ca_file %s: %s",
                            q1, q2, strerror(-pb.err));
}

static void check_state_dir(const struct config *cfg, struct errlist *errs)
{
        const struct config_pos *p = &cfg->state_pos;
        struct stat st;
        char q[QBUF];

        if (!cfg->state_path)
                return;
        quote_into(q, sizeof(q), cfg->state_dir);
        if (stat(cfg->state_path, &st) < 0) {
                if (errno != ENOENT)
                        errlist_add(errs, p->line, p->col, "state_dir %s: %s", q, strerror(errno));
                return;
        }
        if (!S_ISDIR(st.st_mode))
                errlist_add(errs, p->line, p->col, "state_dir %s is not a folder", q);
        else if (st.st_mode & S_IWOTH)
                errlist_add(errs, p->line, p->col,
                            "state_dir %s is writable by every user (mode %04o), so anyone could replace the state database or instance files; chmod 700 it or use a folder of its own",
                            q, (unsigned)(st.st_mode & 07777));
}

int config_check_state_dir(const struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0, fr;

        check_state_dir(cfg, &errs);
        if (errlist_failed(&errs))
                r = -EINVAL;
        fr = errlist_flush(&errs, cfg->path, reterr_diag);
        if (fr < 0)
                r = fr;
        errlist_done(&errs);
        return r;
}

/* A named account must exist where the daemon runs; numeric ids need no
 * entry in the user database. */
static int check_accounts(const struct config_provider *p, struct errlist *errs)
{
        char q1[QBUF], q2[QBUF];
        bool numeric;

        if (p->type != CONFIG_PROVIDER_LOCAL)
                return 0;
        quote_into(q1, sizeof(q1), p->name);
        if (p->local.user && account_ok(p->local.user, &numeric) && !numeric) {
                errno = 0;
                if (!getpwnam(p->local.user)) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        errlist_add(errs, p->local.user_pos.line, p->local.user_pos.col,
                                    "provider %s: user %s does not exist on this machine%s%s",
                                    q1, quote_into(q2, sizeof(q2), p->local.user),
                                    errno ? ": " : "", errno ? strerror(errno) : "");
                }
        }
        if (p->local.group && account_ok(p->local.group, &numeric) && !numeric) {
                errno = 0;
                if (!getgrnam(p->local.group)) {
                        if (errno == ENOMEM)
                                return -ENOMEM;
                        errlist_add(errs, p->local.group_pos.line, p->local.group_pos.col,
                                    "provider %s: group %s does not exist on this machine%s%s",
                                    q1, quote_into(q2, sizeof(q2), p->local.group),
                                    errno ? ": " : "", errno ? strerror(errno) : "");
                }
        }
        return 0;
}

int config_check_files(const struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0, fr;

        for (size_t i = 0; i < cfg->n_forges; i++) {
                const struct config_forge *f = &cfg->forges[i];
                char *tok = NULL;

                if (load_token(f, &errs, &tok) == -ENOMEM) {
                        r = -ENOMEM;
                        break;
                }
                secret_free(tok);
                if (f->ca_path)
                        check_ca_file(f, &errs);
        }
        if (r == 0)
                check_state_dir(cfg, &errs);
        for (size_t i = 0; r == 0 && i < cfg->n_providers; i++)
                r = check_accounts(&cfg->providers[i], &errs);
        if (r == 0 && (errlist_failed(&errs)))
                r = -EINVAL;
        fr = errlist_flush(&errs, cfg->path, reterr_diag);
        if (r == 0 && fr < 0)
                r = fr;
        errlist_done(&errs);
        return r;
}

int config_load_tokens(struct config *cfg, struct config_diag *reterr_diag)
{
        struct errlist errs = { 0 };
        int r = 0, fr;

        for (size_t i = 0; i < cfg->n_forges; i++) {
                struct config_forge *f = &cfg->forges[i];
                char *tok = NULL;
                int lr = load_token(f, &errs, &tok);

                if (lr == -ENOMEM) {
                        r = lr;
                        break;
                }
                if (lr < 0)
                        continue;
                secret_free(f->token);
                f->token = tok;
        }
        if (r == 0 && (errlist_failed(&errs)))
                r = -EINVAL;
        if (r < 0)
                for (size_t i = 0; i < cfg->n_forges; i++) {
                        secret_free(cfg->forges[i].token);
                        cfg->forges[i].token = NULL;
                }
        fr = errlist_flush(&errs, cfg->path, reterr_diag);
        if (r == 0 && fr < 0)
                r = fr;
        errlist_done(&errs);
        return r;
}

/* ---- small pure helpers ----------------------------------------------------------------- */

size_t config_levenshtein(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        size_t rows[3][65];
        size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

        if (la > 64 || lb > 64)
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                prev[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t *t;
                cur[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t best = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
                        if (prev[j] + 1 < best)
                                best = prev[j] + 1;
                        if (cur[j - 1] + 1 < best)
                                best = cur[j - 1] + 1;
                        /* An adjacent transposition ("lgo" for "log") is one edit. */
                        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                            prev2[j - 2] + 1 < best)
                                best = prev2[j - 2] + 1;
                        cur[j] = best;
                }
                t = prev2;
                prev2 = prev;
                prev = cur;
                cur = t;
        }
        return prev[lb];
}

const char *config_suggest(const char *word, const char *const *cands, size_t n)
{
        size_t len = strlen(word), best = SIZE_MAX, limit;
        const char *pick = NULL;

        limit = len <= 3 ? 1 : len <= 8 ? 2 : 3;
        for (size_t i = 0; i < n; i++) {
                size_t d;
                if (!cands[i])
                        continue;
                d = config_levenshtein(word, cands[i]);
                if (d < best && d <= limit && d < strlen(cands[i])) {
                        best = d;
                        pick = cands[i];
                }
        }
        return pick;
}
