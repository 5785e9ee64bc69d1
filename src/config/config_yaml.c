/* config_yaml.c: YAML text to the small positioned tree the walk reads:
 * checks the text libfyaml must not see (invalid UTF-8, control bytes,
 * explicit keys), feeds libfyaml in chunks with a bounded look-ahead, and
 * builds nodes from its events with depth and size caps. Never interprets
 * values (that is the walk's job); never trusts the input. */
#include "config/config.h"
#include "config/config_internal.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define LOOKAHEAD_MAX (128u << 10) /* bytes libfyaml may read past the last event */
#define LOOKAHEAD_DEEP (16u << 10) /* the same once '[' and '{' nest deeper than allowed */
#define FEED_CHUNK 4096u        /* bytes handed to libfyaml per read */

/* ---- positioned YAML tree ------------------------------------------- */

void config__ynode_free(struct ynode *y)
{
        if (!y)
                return;
        for (size_t i = 0; i < y->n; i++)
                config__ynode_free(y->kids[i]);
        free(y->kids);
        free(y->s);
        free(y);
}

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
                        config__ynode_free(y);
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
                        config__ynode_free(y);
                return 0;
        }
        if (top->n == top->cap) {
                size_t ncap = top->cap ? top->cap * 2 : 8;
                struct ynode **nk = realloc(top->kids, ncap * sizeof(*nk));
                if (!nk) {
                        config__ynode_free(y);
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
                        config__errlist_add(b->errs, m ? m->line + 1 : b->last_line + 1, 1,
                                            "more than one YAML document; put the whole configuration in one document");
                        return -EINVAL;
                }
                return 0;
        case FYET_MAPPING_END:
        case FYET_SEQUENCE_END:
                if (b->depth > 0) {
                        struct ynode *done = b->stack[--b->depth];
                        if (done->dropped)
                                config__ynode_free(done);
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
                config__errlist_add(b->errs, y->line, y->col > 1 ? y->col - 1 : y->col,
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
                        config__errlist_add(b->errs, y->line, y->col,
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
                config__errlist_add(b->errs, tm ? tm->line + 1 : y->line, tm ? tm->column + 1 : y->col,
                                    "YAML tags (!!type) are not supported; remove the tag");
                if (y->kind == YN_SCALAR || y->kind == YN_NULL)
                        y->kind = YN_BAD;
        }
        if ((y->kind == YN_MAP || y->kind == YN_SEQ) && b->depth >= CONFIG_MAX_DEPTH) {
                config__errlist_add(b->errs, y->line, y->col,
                                    "YAML nesting is deeper than %d levels", CONFIG_MAX_DEPTH);
                config__ynode_free(y);
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
                config__errlist_add(b->errs, line, col,
                                    "YAML nesting is deeper than %d levels (counting the '[' and '{' that follow)",
                                    CONFIG_MAX_DEPTH);
        else
                config__errlist_add(b->errs, line, col,
                                    "this flow collection ([...] or {...}) is too long to parse: more than %u KiB must be read before its first value; write it over several lines, one item per line",
                                    LOOKAHEAD_MAX >> 10);
}

int config__build_tree(const char *text, size_t len, struct errlist *errs,
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
                config__errlist_add(errs, bline, bcol, "%s", what);
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
                        config__errlist_add(errs, de->line > 0 ? de->line : 1,
                                            de->column > 0 ? de->column : 1,
                                            "YAML syntax error: %s", de->msg ? de->msg : "invalid YAML");
                        any = true;
                }
                if (!any)
                        config__errlist_add(errs, b.last_line ? b.last_line : 1,
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
                        config__ynode_free(b.stack[i]);
        config__ynode_free(b.root);
        fy_parser_destroy(fyp);
        fy_diag_destroy(diag);
        return r;
}
