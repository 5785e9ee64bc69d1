/* rpcodec.c: see rpcodec.h. Proto bodies are checked by scan() before
 * protobuf-c unpacks them (protobuf-c has no depth or size limits and
 * gives no reason for a refusal), then mapped to JSON by to_json(); JSON
 * goes the other way through from_json() into a message protobuf-c packs.
 * The only file that includes zlib.h. Never does I/O, never logs. */
#include "forge/rpcodec.h"

#include "util/base64.h"
#include "util/rfc3339.h"
#include "util/strutil.h"

#include "google/protobuf/struct.pb-c.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "ping/v1/messages.pb-c.h"
#include "runner/v1/messages.pb-c.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define NAME_MAX_LEN 64                 /* field and entry names of the schema */
#define QUOTE_MAX 48                    /* network text quoted in a reason */

/* src/forge/proto/{ping,runner}/v1/services.proto, restated: protoc-c
 * cannot compile them (a method named Register becomes the C keyword
 * `register`). tests/unit/test_rpcodec.c checks the two agree. */
static const struct {
        const char *name;
        const ProtobufCMessageDescriptor *req, *resp;
} methods[] = {
#define RUNNER(m, req, resp)                                                    \
        { "runner.v1.RunnerService/" m, &runner__v1__##req##__descriptor,       \
          &runner__v1__##resp##__descriptor }
        { "ping.v1.PingService/Ping", &ping__v1__ping_request__descriptor,
          &ping__v1__ping_response__descriptor },
        RUNNER("Register", register_request, register_response),
        RUNNER("Declare", declare_request, declare_response),
        RUNNER("FetchTask", fetch_task_request, fetch_task_response),
        RUNNER("FetchSingleTask", fetch_single_task_request, fetch_single_task_response),
        RUNNER("UpdateTask", update_task_request, update_task_response),
        RUNNER("UpdateLog", update_log_request, update_log_response),
        RUNNER("UpdateJobSummary", update_job_summary_request, update_job_summary_response),
#undef RUNNER
};

#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* ---- names and errors ---------------------------------------------------- */

const char *rpcodec_name(enum rpcodec c)
{
        return c == RPCODEC_JSON ? "json" : "proto";
}

int rpcodec_parse_name(const char *name, enum rpcodec *ret)
{
        if (name && strcmp(name, "proto") == 0)
                *ret = RPCODEC_PROTO;
        else if (name && strcmp(name, "json") == 0)
                *ret = RPCODEC_JSON;
        else
                return -EINVAL;
        return 0;
}

const char *rpcodec_content_type(enum rpcodec c)
{
        return c == RPCODEC_JSON ? "application/json" : "application/proto";
}

static int fail(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, int r, const char *fmt, ...)
{
        va_list ap;

        if (err) {
                va_start(ap, fmt);
                vsnprintf(err, RP_ERR_MAX, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* A reason about one field: "<message>.<field>: <why>". */
static int fail_field(char *err, const ProtobufCMessageDescriptor *d, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_field(char *err, const ProtobufCMessageDescriptor *d, const char *field,
                      const char *fmt, ...)
{
        char why[RP_ERR_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        return fail(err, -EINVAL, "%s%s%s: %s", d->name, field ? "." : "", field ? field : "", why);
}

/* protoc's JSON name: each '_' dropped and the letter after it raised;
 * upper also raises the first letter (the name of a map entry type). */
static void camel(const char *name, bool upper, char *buf, size_t n)
{
        size_t o = 0;
        bool raise = upper;

        for (const char *p = name; *p && o + 1 < n; p++) {
                if (*p == '_') {
                        raise = true;
                        continue;
                }
                buf[o++] = raise ? (char)toupper((unsigned char)*p) : *p;
                raise = false;
        }
        buf[o] = '\0';
}

/* protobuf-c does not mark map entries; protoc names the entry of field
 * foo_bar "FooBarEntry" with fields key = 1 and value = 2, and the schema
 * never declares such a message by hand (messages.proto says so). */
static bool is_map(const ProtobufCFieldDescriptor *fd)
{
        const ProtobufCMessageDescriptor *d = fd->descriptor;
        char name[NAME_MAX_LEN], want[NAME_MAX_LEN + 8];

        if (fd->label != PROTOBUF_C_LABEL_REPEATED || fd->type != PROTOBUF_C_TYPE_MESSAGE ||
            d->n_fields != 2 || d->fields[0].id != 1 || d->fields[1].id != 2 ||
            strcmp(d->fields[0].name, "key") != 0 || strcmp(d->fields[1].name, "value") != 0)
                return false;
        camel(fd->name, true, name, sizeof(name));
        snprintf(want, sizeof(want), "%sEntry", name);
        return strcmp(d->short_name, want) == 0;
}

static bool is_wkt(const ProtobufCMessageDescriptor *d)
{
        return d == &google__protobuf__timestamp__descriptor ||
               d == &google__protobuf__struct__descriptor ||
               d == &google__protobuf__value__descriptor ||
               d == &google__protobuf__list_value__descriptor;
}

/* Text from the network, made printable and short, for a reason. */
static const char *quote(const char *s, size_t len, char *buf, size_t n)
{
        char tmp[QUOTE_MAX + 1];

        if (len > QUOTE_MAX)
                len = QUOTE_MAX;
        memcpy(tmp, s, len);
        tmp[len] = '\0';
        return strutil_printable(tmp, buf, n);
}

/* ---- methods ------------------------------------------------------------- */

const char *rpcodec_method(size_t i)
{
        return i < N_METHODS ? methods[i].name : NULL;
}

const ProtobufCMessageDescriptor *rpcodec_message(const char *method, enum rpcodec_dir dir)
{
        if (!method)
                return NULL;
        if (method[0] == '/')
                method++;
        for (size_t i = 0; i < N_METHODS; i++)
                if (strcmp(methods[i].name, method) == 0)
                        return dir == RPCODEC_REQUEST ? methods[i].req : methods[i].resp;
        return NULL;
}

/* ---- content types and encodings ---------------------------------------- */

static const char *skip_ows(const char *p)
{
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* [p, end) without surrounding blanks. */
static void trim(const char **p, const char **end)
{
        *p = skip_ows(*p);
        while (*end > *p && ((*end)[-1] == ' ' || (*end)[-1] == '\t'))
                (*end)--;
}

static bool token_is(const char *p, const char *end, const char *want)
{
        size_t n = strlen(want);

        return (size_t)(end - p) == n && strncasecmp(p, want, n) == 0;
}

int rpcodec_from_content_type(const char *ct, enum rpcodec *ret, char err[RP_ERR_MAX])
{
        const char *p, *end, *semi;
        enum rpcodec c;
        char q[QUOTE_MAX * 4];

        if (!ct || !*skip_ows(ct))
                return fail(err, -EINVAL, "missing Content-Type; use application/proto or application/json");
        p = ct;
        semi = strchr(ct, ';');
        end = semi ? semi : ct + strlen(ct);
        trim(&p, &end);
        if (token_is(p, end, "application/proto"))
                c = RPCODEC_PROTO;
        else if (token_is(p, end, "application/json"))
                c = RPCODEC_JSON;
        else
                return fail(err, -EINVAL,
                            "content type \"%s\" is not supported; use application/proto or application/json",
                            quote(ct, strlen(ct), q, sizeof(q)));
        /* Parameters: only a JSON charset matters (protojson is UTF-8). */
        while (semi) {
                const char *name = semi + 1, *eq, *v, *vend;
                semi = strchr(name, ';');
                vend = semi ? semi : name + strlen(name);
                eq = memchr(name, '=', (size_t)(vend - name));
                if (!eq)
                        continue;
                v = eq + 1;
                end = eq;
                trim(&name, &end);
                trim(&v, &vend);
                if (vend - v >= 2 && *v == '"' && vend[-1] == '"') {
                        v++;
                        vend--;
                }
                if (c == RPCODEC_JSON && token_is(name, end, "charset") &&
                    !token_is(v, vend, "utf-8") && !token_is(v, vend, "utf8"))
                        return fail(err, -EINVAL, "charset \"%s\" is not supported; JSON must be UTF-8",
                                    quote(v, (size_t)(vend - v), q, sizeof(q)));
        }
        *ret = c;
        return 0;
}

int rpcodec_parse_encoding(const char *ce, bool *ret_gzip, char err[RP_ERR_MAX])
{
        const char *p = ce, *end;
        char q[QUOTE_MAX * 4];

        if (!ce) {
                *ret_gzip = false;
                return 0;
        }
        end = ce + strlen(ce);
        trim(&p, &end);
        if (p == end || token_is(p, end, "identity")) {
                *ret_gzip = false;
                return 0;
        }
        if (token_is(p, end, "gzip")) {
                *ret_gzip = true;
                return 0;
        }
        return fail(err, -EINVAL, "content encoding \"%s\" is not supported; use gzip or identity",
                    quote(ce, strlen(ce), q, sizeof(q)));
}

/* q value of an Accept-Encoding element's parameters: 0 only for an
 * explicit q=0 (or 0.0, 0.00, 0.000). */
static bool q_positive(const char *p, const char *end)
{
        while (p < end) {
                const char *semi = memchr(p, ';', (size_t)(end - p));
                const char *pe = semi ? semi : end, *eq, *name = p;
                p = semi ? semi + 1 : end;
                eq = memchr(name, '=', (size_t)(pe - name));
                if (!eq)
                        continue;
                const char *nend = eq, *v = eq + 1, *vend = pe;
                trim(&name, &nend);
                trim(&v, &vend);
                if (!token_is(name, nend, "q"))
                        continue;
                if (v == vend || *v != '0')
                        return true;
                for (const char *x = v + 1; x < vend; x++)
                        if (*x != '.' && *x != '0')
                                return true;
                return false;
        }
        return true;
}

bool rpcodec_accepts_gzip(const char *ae)
{
        const char *p = ae;

        if (!ae)
                return false;
        while (*p) {
                const char *comma = strchr(p, ',');
                const char *end = comma ? comma : p + strlen(p);
                const char *semi = memchr(p, ';', (size_t)(end - p));
                const char *cend = semi ? semi : end, *c = p;
                trim(&c, &cend);
                if ((token_is(c, cend, "gzip") || token_is(c, cend, "*")) &&
                    q_positive(semi ? semi + 1 : end, end))
                        return true;
                p = comma ? comma + 1 : end;
        }
        return false;
}

/* ---- wire scan ----------------------------------------------------------- */

struct scan {
        size_t nfields;
        char *err;
};

/* Reads a varint of at most max bytes. 0, or -1 cut short, -2 too long. */
static int rd_varint(const uint8_t *p, size_t n, size_t *pos, unsigned max, uint64_t *ret)
{
        uint64_t v = 0;

        for (unsigned i = 0; i < max; i++) {
                if (*pos >= n)
                        return -1;
                uint8_t b = p[(*pos)++];
                if (i == 9 && b > 1)
                        return -2;
                v |= (uint64_t)(b & 0x7f) << (7 * i);
                if (!(b & 0x80)) {
                        *ret = v;
                        return 0;
                }
        }
        return -2;
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing above
 * U+10FFFF. NUL is refused too: rproto keeps strings as C strings. */
static const char *utf8_problem(const uint8_t *s, size_t n)
{
        size_t i = 0;

        while (i < n) {
                uint8_t c = s[i];
                uint32_t cp;
                size_t k;
                if (c == 0)
                        return "contains a NUL byte";
                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        k = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        k = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        k = 3;
                        cp = c & 0x07;
                } else {
                        return "is not UTF-8";
                }
                if (n - i <= k)
                        return "is not UTF-8";
                for (size_t j = 1; j <= k; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return "is not UTF-8";
                        cp = (cp << 6) | (s[i + j] & 0x3f);
                }
                if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return "is not UTF-8";
                i += k + 1;
        }
        return NULL;
}

static const char *const wire_names[] = {
        "varint", "64-bit", "length-delimited", "group start", "group end", "32-bit", "invalid",
        "invalid",
};

/* The wire type a field of this type is written with (packed repeated
 * scalars aside). */
static unsigned wire_of(ProtobufCType t)
{
        switch (t) {
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_FIXED64:
        case PROTOBUF_C_TYPE_DOUBLE:
                return 1;
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_FIXED32:
        case PROTOBUF_C_TYPE_FLOAT:
                return 5;
        case PROTOBUF_C_TYPE_STRING:
        case PROTOBUF_C_TYPE_BYTES:
        case PROTOBUF_C_TYPE_MESSAGE:
                return 2;
        default:
                return 0;
        }
}

static int scan_msg(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                    size_t n, unsigned depth);
static int scan_fields(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                       size_t n, unsigned depth, uint64_t *mask, bool *more);

/* The elements of a packed repeated scalar. */
static int scan_packed(struct scan *s, const ProtobufCMessageDescriptor *d,
                       const ProtobufCFieldDescriptor *fd, const uint8_t *p, size_t n)
{
        unsigned wt = wire_of(fd->type);
        size_t pos = 0;
        uint64_t v;

        if (wt == 1 || wt == 5) {
                size_t w = wt == 1 ? 8 : 4;
                if (n % w)
                        return fail_field(s->err, d, fd->name, "packed elements cut short");
                s->nfields += n / w;
                return 0;
        }
        while (pos < n) {
                if (rd_varint(p, n, &pos, 10, &v) < 0)
                        return fail_field(s->err, d, fd->name, "bad varint in packed elements");
                s->nfields++;
        }
        return 0;
}

/* A message field given twice must be merged, and protobuf-c 1.4 cannot
 * merge a message whose oneof neither copy sets; no encoder writes a
 * message field twice, so scan() refuses it. */
static bool seen_before(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd,
                        uint64_t *mask, bool *more)
{
        size_t i = (size_t)(fd - d->fields);
        bool was;

        if (i < 64) {
                was = *mask & (UINT64_C(1) << i);
                *mask |= UINT64_C(1) << i;
        } else {
                was = more[i - 64];
                more[i - 64] = true;
        }
        return was;
}

static int scan_msg(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                    size_t n, unsigned depth)
{
        uint64_t mask = 0;
        bool *more = NULL;
        int r = 0;

        if (depth > RPCODEC_MAX_DEPTH)
                return fail_field(s->err, d, NULL, "nested deeper than %d messages", RPCODEC_MAX_DEPTH);
        if (d->n_fields > 64 && !(more = calloc(d->n_fields - 64, sizeof(*more))))
                return fail(s->err, -ENOMEM, "out of memory");
        r = scan_fields(s, d, p, n, depth, &mask, more);
        free(more);
        return r;
}

static int scan_fields(struct scan *s, const ProtobufCMessageDescriptor *d, const uint8_t *p,
                       size_t n, unsigned depth, uint64_t *mask, bool *more)
{
        size_t pos = 0;

        while (pos < n) {
                const ProtobufCFieldDescriptor *fd;
                size_t start = pos;
                uint64_t tag, v, len = 0;
                unsigned wt;
                uint32_t num;
                int r;

                if (++s->nfields > RPCODEC_MAX_FIELDS)
                        return fail_field(s->err, d, NULL, "more than %u fields", RPCODEC_MAX_FIELDS);
                r = rd_varint(p, n, &pos, 5, &tag);
                if (r < 0 || tag > UINT32_MAX)
                        return fail_field(s->err, d, NULL, "bad field tag at byte %zu", start);
                wt = (unsigned)(tag & 7);
                num = (uint32_t)(tag >> 3);
                if (num == 0 || num > 536870911u)
                        return fail_field(s->err, d, NULL, "field number %" PRIu32 " at byte %zu",
                                          num, start);
                fd = protobuf_c_message_descriptor_get_field(d, num);
                switch (wt) {
                case 0:
                        r = rd_varint(p, n, &pos, 10, &v);
                        break;
                case 1:
                case 5: {
                        size_t w = wt == 1 ? 8 : 4;
                        r = n - pos < w ? -1 : 0;
                        pos += r ? 0 : w;
                        break;
                }
                case 2:
                        r = rd_varint(p, n, &pos, 5, &len);
                        if (r == 0 && len > n - pos)
                                r = -1;
                        break;
                default:
                        if (fd)
                                return fail_field(s->err, d, fd->name, "wire type %u (%s) is not supported",
                                                  wt, wire_names[wt]);
                        return fail_field(s->err, d, NULL, "field %" PRIu32 ": wire type %u (%s) is not supported",
                                          num, wt, wire_names[wt]);
                }
                if (r < 0) {
                        if (fd)
                                return fail_field(s->err, d, fd->name, "%s", r == -1 ? "cut short" : "varint too long");
                        return fail_field(s->err, d, NULL, "field %" PRIu32 ": %s", num,
                                          r == -1 ? "cut short" : "varint too long");
                }
                if (!fd)
                        goto next;
                if (wt != wire_of(fd->type)) {
                        if (wt == 2 && fd->label == PROTOBUF_C_LABEL_REPEATED && wire_of(fd->type) != 2) {
                                if ((r = scan_packed(s, d, fd, p + pos, (size_t)len)) < 0)
                                        return r;
                                goto next;
                        }
                        return fail_field(s->err, d, fd->name, "wire type %u (%s), expected %u (%s)",
                                          wt, wire_names[wt], wire_of(fd->type),
                                          wire_names[wire_of(fd->type)]);
                }
                if (fd->type == PROTOBUF_C_TYPE_STRING) {
                        const char *why = utf8_problem(p + pos, (size_t)len);
                        if (why)
                                return fail_field(s->err, d, fd->name, "%s", why);
                } else if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
                        if (fd->label != PROTOBUF_C_LABEL_REPEATED && seen_before(d, fd, mask, more))
                                return fail_field(s->err, d, fd->name,
                                                  "given twice (a message field is not merged)");
                        if ((r = scan_msg(s, fd->descriptor, p + pos, (size_t)len, depth + 1)) < 0)
                                return r;
                }
next:
                pos += (size_t)len;
        }
        return 0;
}

/* ---- message → JSON ------------------------------------------------------ */

struct walk {
        char *err;
};

#define MEMBER(m, off, type) (*(type *)((char *)(m) + (off)))
#define CMEMBER(m, off, type) (*(const type *)((const char *)(m) + (off)))

static int set_new(json_t *o, const char *k, json_t *v)
{
        if (!v)
                return -ENOMEM;
        return json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static int msg_to_json(struct walk *w, const ProtobufCMessage *m, unsigned depth, json_t **ret);

static json_t *i64_json(int64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRId64, v);
        return json_string(buf);
}

static json_t *u64_json(uint64_t v)
{
        char buf[24];

        snprintf(buf, sizeof(buf), "%" PRIu64, v);
        return json_string(buf);
}

/* protojson writes non-finite floating point numbers as strings. */
static json_t *double_json(double v)
{
        if (isnan(v))
                return json_string("NaN");
        if (isinf(v))
                return json_string(v > 0 ? "Infinity" : "-Infinity");
        return json_real(v);
}

static json_t *str_json(const char *s)
{
        return json_string(s ? s : "");
}

/* One value of field fd stored at p (an element, for repeated fields). */
static int value_to_json(struct walk *w, const ProtobufCMessageDescriptor *d,
                         const ProtobufCFieldDescriptor *fd, const void *p, unsigned depth,
                         json_t **ret)
{
        json_t *v = NULL;

        switch (fd->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                v = json_integer(*(const int32_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                v = json_integer(*(const uint32_t *)p);
                break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                v = i64_json(*(const int64_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                v = u64_json(*(const uint64_t *)p);
                break;
        case PROTOBUF_C_TYPE_FLOAT:
                v = double_json(*(const float *)p);
                break;
        case PROTOBUF_C_TYPE_DOUBLE:
                v = double_json(*(const double *)p);
                break;
        case PROTOBUF_C_TYPE_BOOL:
                v = json_boolean(*(const protobuf_c_boolean *)p);
                break;
        case PROTOBUF_C_TYPE_ENUM: {
                int e = *(const int *)p;
                const ProtobufCEnumValue *ev;
                if (fd->descriptor == &google__protobuf__null_value__descriptor) {
                        v = json_null();
                        break;
                }
                /* Open enums: a number the schema does not name stays a number. */
                ev = protobuf_c_enum_descriptor_get_value(fd->descriptor, e);
                v = ev ? json_string(ev->name) : json_integer(e);
                break;
        }
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                v = str_json(s);
                if (!v && s && utf8_problem((const uint8_t *)s, strlen(s)))
                        return fail_field(w->err, d, fd->name, "is not UTF-8");
                break;
        }
        case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *b = p;
                char *s = base64_encode(b->data, b->len);
                v = s ? json_string(s) : NULL;
                free(s);
                break;
        }
        case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
                if (!sub) {
                        if (fd->descriptor == &google__protobuf__value__descriptor)
                                return fail_field(w->err, d, fd->name, "google.protobuf.Value without a kind");
                        v = json_object();
                        break;
                }
                return msg_to_json(w, sub, depth + 1, ret);
        }
        }
        if (!v)
                return -ENOMEM;
        *ret = v;
        return 0;
}

/* Proto3 implicit presence: a field at its default is not written. */
static bool is_default(const ProtobufCFieldDescriptor *fd, const void *p)
{
        switch (fd->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return *(const uint32_t *)p == 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return *(const uint64_t *)p == 0;
        case PROTOBUF_C_TYPE_FLOAT: {
                uint32_t bits;
                memcpy(&bits, p, sizeof(bits));
                return bits == 0;
        }
        case PROTOBUF_C_TYPE_DOUBLE: {
                uint64_t bits;
                memcpy(&bits, p, sizeof(bits));
                return bits == 0;
        }
        case PROTOBUF_C_TYPE_BOOL:
                return !*(const protobuf_c_boolean *)p;
        case PROTOBUF_C_TYPE_ENUM:
                return *(const int *)p == 0;
        case PROTOBUF_C_TYPE_STRING: {
                const char *s = *(char *const *)p;
                return !s || !*s;
        }
        case PROTOBUF_C_TYPE_BYTES:
                return ((const ProtobufCBinaryData *)p)->len == 0;
        case PROTOBUF_C_TYPE_MESSAGE:
                return *(ProtobufCMessage *const *)p == NULL;
        }
        return true;
}

static size_t elt_size(ProtobufCType t)
{
        switch (t) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                return sizeof(int32_t);
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                return sizeof(int64_t);
        case PROTOBUF_C_TYPE_FLOAT:
                return sizeof(float);
        case PROTOBUF_C_TYPE_DOUBLE:
                return sizeof(double);
        case PROTOBUF_C_TYPE_BOOL:
                return sizeof(protobuf_c_boolean);
        case PROTOBUF_C_TYPE_ENUM:
                return sizeof(int);
        case PROTOBUF_C_TYPE_STRING:
                return sizeof(char *);
        case PROTOBUF_C_TYPE_BYTES:
                return sizeof(ProtobufCBinaryData);
        case PROTOBUF_C_TYPE_MESSAGE:
                return sizeof(ProtobufCMessage *);
        }
        return 0;
}

/* A map entry's key as a JSON object key. */
static int map_key(struct walk *w, const ProtobufCMessage *entry, char *buf, size_t n,
                   const char **ret)
{
        const ProtobufCFieldDescriptor *kd = &entry->descriptor->fields[0];
        const void *p = (const char *)entry + kd->offset;

        switch (kd->type) {
        case PROTOBUF_C_TYPE_STRING:
                *ret = *(char *const *)p ? *(char *const *)p : "";
                return 0;
        case PROTOBUF_C_TYPE_BOOL:
                *ret = *(const protobuf_c_boolean *)p ? "true" : "false";
                return 0;
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                snprintf(buf, n, "%" PRId32, *(const int32_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                snprintf(buf, n, "%" PRIu32, *(const uint32_t *)p);
                break;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                snprintf(buf, n, "%" PRId64, *(const int64_t *)p);
                break;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                snprintf(buf, n, "%" PRIu64, *(const uint64_t *)p);
                break;
        default:
                return fail_field(w->err, entry->descriptor, "key", "not a valid map key type");
        }
        *ret = buf;
        return 0;
}

static int field_to_json(struct walk *w, const ProtobufCMessage *m,
                         const ProtobufCFieldDescriptor *fd, unsigned depth, json_t **ret)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;
        const void *p = (const char *)m + fd->offset;
        size_t n, es;
        json_t *out, *v;
        int r;

        if (fd->label != PROTOBUF_C_LABEL_REPEATED)
                return value_to_json(w, d, fd, p, depth, ret);
        n = CMEMBER(m, fd->quantifier_offset, size_t);
        es = elt_size(fd->type);
        if (is_map(fd)) {
                const ProtobufCFieldDescriptor *vd = &((const ProtobufCMessageDescriptor *)fd->descriptor)->fields[1];
                out = json_object();
                if (!out)
                        return -ENOMEM;
                ProtobufCMessage *const *entries = *(ProtobufCMessage *const *const *)p;
                for (size_t i = 0; i < n; i++) {
                        const ProtobufCMessage *e = entries ? entries[i] : NULL;
                        char kbuf[24];
                        const char *k = NULL;
                        if (!e) {
                                r = fail_field(w->err, d, fd->name, "missing map entry");
                                goto fail;
                        }
                        if ((r = map_key(w, e, kbuf, sizeof(kbuf), &k)) < 0 ||
                            (r = value_to_json(w, e->descriptor, vd, (const char *)e + vd->offset,
                                               depth + 1, &v)) < 0)
                                goto fail;
                        /* Last entry wins, as when protobuf merges a map. */
                        if ((r = set_new(out, k, v)) < 0)
                                goto fail;
                }
                *ret = out;
                return 0;
        }
        out = json_array();
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                const char *arr = *(char *const *)p;
                if (!arr || (fd->type == PROTOBUF_C_TYPE_MESSAGE && !((ProtobufCMessage *const *)arr)[i])) {
                        r = fail_field(w->err, d, fd->name, "missing element");
                        goto fail;
                }
                if ((r = value_to_json(w, d, fd, arr + i * es, depth, &v)) < 0)
                        goto fail;
                if (json_array_append_new(out, v) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = out;
        return 0;
fail:
        json_decref(out);
        return r;
}

static int timestamp_to_json(struct walk *w, const Google__Protobuf__Timestamp *t, json_t **ret)
{
        char buf[RFC3339_BUF];
        struct rp_ts ts = { .sec = t->seconds, .nsec = t->nanos, .set = true };

        if (rp_ts_format(ts, buf, sizeof(buf)) < 0)
                return fail_field(w->err, t->base.descriptor, NULL,
                                  "%" PRId64 " s %" PRId32 " ns is not a time RFC 3339 can write",
                                  t->seconds, t->nanos);
        *ret = json_string(buf);
        return *ret ? 0 : -ENOMEM;
}

static int wkt_value_to_json(struct walk *w, const Google__Protobuf__Value *v, unsigned depth,
                             json_t **ret);

static int struct_to_json(struct walk *w, const Google__Protobuf__Struct *s, unsigned depth,
                          json_t **ret)
{
        json_t *o = json_object(), *v;
        int r;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_fields; i++) {
                const Google__Protobuf__Struct__FieldsEntry *e = s->fields[i];
                if (!e || !e->value) {
                        r = fail_field(w->err, s->base.descriptor, "fields",
                                       "google.protobuf.Value without a kind");
                        goto fail;
                }
                if ((r = wkt_value_to_json(w, e->value, depth + 2, &v)) < 0)
                        goto fail;
                if ((r = set_new(o, e->key ? e->key : "", v)) < 0)
                        goto fail;
        }
        *ret = o;
        return 0;
fail:
        json_decref(o);
        return r;
}

static int list_to_json(struct walk *w, const Google__Protobuf__ListValue *l, unsigned depth,
                        json_t **ret)
{
        json_t *a = json_array(), *v;
        int r;

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_values; i++) {
                if (!l->values[i]) {
                        r = fail_field(w->err, l->base.descriptor, "values", "missing element");
                        goto fail;
                }
                if ((r = wkt_value_to_json(w, l->values[i], depth + 1, &v)) < 0)
                        goto fail;
                if (json_array_append_new(a, v) < 0) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        *ret = a;
        return 0;
fail:
        json_decref(a);
        return r;
}

/* 2^53: doubles up to this hold every integer exactly. */
#define EXACT_INT 9007199254740992.0

static int wkt_value_to_json(struct walk *w, const Google__Protobuf__Value *v, unsigned depth,
                             json_t **ret)
{
        const ProtobufCMessageDescriptor *d = v->base.descriptor;
        json_t *j = NULL;

        if (depth > RPCODEC_MAX_DEPTH)
                return fail_field(w->err, d, NULL, "nested deeper than %d messages", RPCODEC_MAX_DEPTH);
        switch (v->kind_case) {
        case GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE:
                j = json_null();
                break;
        case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
                double x = v->number_value;
                if (!isfinite(x))
                        return fail_field(w->err, d, "number_value", "NaN and infinities are not JSON");
                /* Integral values print as integers, as protojson does. */
                if (x == trunc(x) && fabs(x) < EXACT_INT)
                        j = json_integer((json_int_t)x);
                else
                        j = json_real(x);
                break;
        }
        case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE:
                j = str_json(v->string_value);
                if (!j && v->string_value && utf8_problem((const uint8_t *)v->string_value,
                                                          strlen(v->string_value)))
                        return fail_field(w->err, d, "string_value", "is not UTF-8");
                break;
        case GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE:
                j = json_boolean(v->bool_value);
                break;
        case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
                if (!v->struct_value)
                        return (j = json_object()) ? (*ret = j, 0) : -ENOMEM;
                return struct_to_json(w, v->struct_value, depth + 1, ret);
        case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE:
                if (!v->list_value)
                        return (j = json_array()) ? (*ret = j, 0) : -ENOMEM;
                return list_to_json(w, v->list_value, depth + 1, ret);
        default:
                return fail_field(w->err, d, NULL, "google.protobuf.Value without a kind");
        }
        if (!j)
                return -ENOMEM;
        *ret = j;
        return 0;
}

static int msg_to_json(struct walk *w, const ProtobufCMessage *m, unsigned depth, json_t **ret)
{
        const ProtobufCMessageDescriptor *d = m->descriptor;
        json_t *o, *v;
        int r;

        if (depth > RPCODEC_MAX_DEPTH)
                return fail_field(w->err, d, NULL, "nested deeper than %d messages", RPCODEC_MAX_DEPTH);
        if (d == &google__protobuf__timestamp__descriptor)
                return timestamp_to_json(w, (const Google__Protobuf__Timestamp *)m, ret);
        if (d == &google__protobuf__struct__descriptor)
                return struct_to_json(w, (const Google__Protobuf__Struct *)m, depth, ret);
        if (d == &google__protobuf__list_value__descriptor)
                return list_to_json(w, (const Google__Protobuf__ListValue *)m, depth, ret);
        if (d == &google__protobuf__value__descriptor)
                return wkt_value_to_json(w, (const Google__Protobuf__Value *)m, depth, ret);
        o = json_object();
        if (!o)
                return -ENOMEM;
        for (unsigned i = 0; i < d->n_fields; i++) {
                const ProtobufCFieldDescriptor *fd = &d->fields[i];
                const void *p = (const char *)m + fd->offset;
                char key[NAME_MAX_LEN];

                if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        /* Explicit presence: written when set, default or not. */
                        if (CMEMBER(m, fd->quantifier_offset, uint32_t) != fd->id)
                                continue;
                } else if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
                        if (CMEMBER(m, fd->quantifier_offset, size_t) == 0)
                                continue;
                } else if (fd->label == PROTOBUF_C_LABEL_OPTIONAL &&
                           fd->type != PROTOBUF_C_TYPE_MESSAGE && fd->type != PROTOBUF_C_TYPE_STRING) {
                        if (!CMEMBER(m, fd->quantifier_offset, protobuf_c_boolean))
                                continue;
                } else if (is_default(fd, p)) {
                        continue;
                }
                camel(fd->name, false, key, sizeof(key));
                if ((r = field_to_json(w, m, fd, depth, &v)) < 0 || (r = set_new(o, key, v)) < 0) {
                        json_decref(o);
                        return r;
                }
        }
        *ret = o;
        return 0;
}

int rpcodec_message_to_json(const ProtobufCMessage *m, json_t **ret, char err[RP_ERR_MAX])
{
        struct walk w = { .err = err };
        json_t *j = NULL;
        int r;

        if (err)
                err[0] = '\0';
        r = msg_to_json(&w, m, 0, &j);
        if (r < 0) {
                if (r == -ENOMEM && err && !err[0])
                        fail(err, r, "out of memory");
                return r;
        }
        *ret = j;
        return 0;
}

/* ---- JSON → message ------------------------------------------------------ */

static ProtobufCMessage *msg_new(const ProtobufCMessageDescriptor *d)
{
        ProtobufCMessage *m = malloc(d->sizeof_message);

        if (m)
                protobuf_c_message_init(d, m);
        return m;
}

void rpcodec_free(ProtobufCMessage *m)
{
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
}

static int msg_from_json(struct walk *w, const ProtobufCMessageDescriptor *d, const json_t *j,
                         unsigned depth, ProtobufCMessage **ret);

/* A JSON string as a C string: NUL bytes cannot pass. */
static int dup_str(struct walk *w, const ProtobufCMessageDescriptor *d, const char *field,
                   const json_t *v, char **ret)
{
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);

        if (memchr(s, '\0', n))
                return fail_field(w->err, d, field, "contains a NUL character");
        *ret = malloc(n + 1);
        if (!*ret)
                return -ENOMEM;
        memcpy(*ret, s, n + 1);
        return 0;
}

static int parse_u64(const char *s, uint64_t *ret)
{
        char *end;
        unsigned long long v;

        if (!isdigit((unsigned char)*s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* An integer as JSON number or decimal string, within [lo, hi]. */
static int json_int(const json_t *v, int64_t lo, int64_t hi, int64_t *ret)
{
        int64_t x;

        if (json_is_integer(v))
                x = json_integer_value(v);
        else if (!json_is_string(v) || strutil_parse_i64(json_string_value(v), &x) < 0)
                return -EINVAL;
        if (x < lo || x > hi)
                return -EINVAL;
        *ret = x;
        return 0;
}

static int json_uint(const json_t *v, uint64_t hi, uint64_t *ret)
{
        uint64_t x;

        if (json_is_integer(v)) {
                if (json_integer_value(v) < 0)
                        return -EINVAL;
                x = (uint64_t)json_integer_value(v);
        } else if (!json_is_string(v) || parse_u64(json_string_value(v), &x) < 0) {
                return -EINVAL;
        }
        if (x > hi)
                return -EINVAL;
        *ret = x;
        return 0;
}

static int json_double(const json_t *v, double *ret)
{
        const char *s;

        if (json_is_number(v)) {
                *ret = json_number_value(v);
                return 0;
        }
        s = json_string_value(v);
        if (!s)
                return -EINVAL;
        if (strcmp(s, "NaN") == 0)
                *ret = NAN;
        else if (strcmp(s, "Infinity") == 0)
                *ret = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
                *ret = -INFINITY;
        else
                return -EINVAL;
        return 0;
}

/* One JSON value into the storage p of a field fd of d (an element, for
 * repeated fields). On failure p holds nothing that needs freeing. */
static int value_from_json(struct walk *w, const ProtobufCMessageDescriptor *d,
                           const ProtobufCFieldDescriptor *fd, const json_t *v, void *p,
                           unsigned depth)
{
        char q[QUOTE_MAX * 4];
        int64_t i;
        uint64_t u;
        double x;
        int r;

        switch (fd->type) {
        case PROTOBUF_C_TYPE_INT32:
        case PROTOBUF_C_TYPE_SINT32:
        case PROTOBUF_C_TYPE_SFIXED32:
                if (json_int(v, INT32_MIN, INT32_MAX, &i) < 0)
                        return fail_field(w->err, d, fd->name, "expected an int32");
                *(int32_t *)p = (int32_t)i;
                return 0;
        case PROTOBUF_C_TYPE_UINT32:
        case PROTOBUF_C_TYPE_FIXED32:
                if (json_uint(v, UINT32_MAX, &u) < 0)
                        return fail_field(w->err, d, fd->name, "expected a uint32");
                *(uint32_t *)p = (uint32_t)u;
                return 0;
        case PROTOBUF_C_TYPE_INT64:
        case PROTOBUF_C_TYPE_SINT64:
        case PROTOBUF_C_TYPE_SFIXED64:
                if (json_int(v, INT64_MIN, INT64_MAX, &i) < 0)
                        return fail_field(w->err, d, fd->name,
                                          "expected an int64 (decimal string or integer)");
                *(int64_t *)p = i;
                return 0;
        case PROTOBUF_C_TYPE_UINT64:
        case PROTOBUF_C_TYPE_FIXED64:
                if (json_uint(v, UINT64_MAX, &u) < 0)
                        return fail_field(w->err, d, fd->name, "expected a uint64");
                *(uint64_t *)p = u;
                return 0;
        case PROTOBUF_C_TYPE_FLOAT:
        case PROTOBUF_C_TYPE_DOUBLE:
                if (json_double(v, &x) < 0)
                        return fail_field(w->err, d, fd->name, "expected a number");
                if (fd->type == PROTOBUF_C_TYPE_FLOAT)
                        *(float *)p = (float)x;
                else
                        *(double *)p = x;
                return 0;
        case PROTOBUF_C_TYPE_BOOL:
                if (!json_is_boolean(v))
                        return fail_field(w->err, d, fd->name, "expected a boolean");
                *(protobuf_c_boolean *)p = json_is_true(v);
                return 0;
        case PROTOBUF_C_TYPE_ENUM:
                if (fd->descriptor == &google__protobuf__null_value__descriptor && json_is_null(v)) {
                        *(int *)p = 0;
                        return 0;
                }
                if (json_is_string(v)) {
                        const ProtobufCEnumValue *ev =
                                protobuf_c_enum_descriptor_get_value_by_name(fd->descriptor,
                                                                             json_string_value(v));
                        if (!ev)
                                return fail_field(w->err, d, fd->name, "unknown enum value \"%s\"",
                                                  quote(json_string_value(v), json_string_length(v),
                                                        q, sizeof(q)));
                        *(int *)p = ev->value;
                        return 0;
                }
                if (json_int(v, INT32_MIN, INT32_MAX, &i) < 0 || !json_is_integer(v))
                        return fail_field(w->err, d, fd->name, "expected an enum name or number");
                *(int *)p = (int)i;
                return 0;
        case PROTOBUF_C_TYPE_STRING:
                if (!json_is_string(v))
                        return fail_field(w->err, d, fd->name, "expected a string");
                return dup_str(w, d, fd->name, v, (char **)p);
        case PROTOBUF_C_TYPE_BYTES: {
                ProtobufCBinaryData *b = p;
                unsigned char *data;
                size_t len;
                if (!json_is_string(v))
                        return fail_field(w->err, d, fd->name, "expected a base64 string");
                r = base64_decode(json_string_value(v), json_string_length(v), &data, &len);
                if (r == -EINVAL)
                        return fail_field(w->err, d, fd->name, "invalid base64");
                if (r < 0)
                        return r;
                b->data = data;
                b->len = len;
                return 0;
        }
        case PROTOBUF_C_TYPE_MESSAGE:
                return msg_from_json(w, fd->descriptor, v, depth + 1, (ProtobufCMessage **)p);
        }
        return fail_field(w->err, d, fd->name, "unsupported type");
}

/* A map entry's key from a JSON object key. */
static int key_from_json(struct walk *w, const ProtobufCMessageDescriptor *ed, const char *k,
                         void *p)
{
        const ProtobufCFieldDescriptor *kd = &ed->fields[0];
        json_t *tmp;
        int r;

        if (kd->type == PROTOBUF_C_TYPE_BOOL) {
                if (strcmp(k, "true") != 0 && strcmp(k, "false") != 0)
                        return fail_field(w->err, ed, "key", "expected true or false");
                *(protobuf_c_boolean *)p = strcmp(k, "true") == 0;
                return 0;
        }
        /* Every other key type reads like its JSON string form. */
        tmp = json_string(k);
        if (!tmp)
                return -ENOMEM;
        r = value_from_json(w, ed, kd, tmp, p, 0);
        json_decref(tmp);
        return r;
}

static int map_from_json(struct walk *w, const ProtobufCMessageDescriptor *d,
                         const ProtobufCFieldDescriptor *fd, const json_t *obj, ProtobufCMessage *m,
                         unsigned depth)
{
        const ProtobufCMessageDescriptor *ed = fd->descriptor;
        const ProtobufCFieldDescriptor *vd = &ed->fields[1];
        ProtobufCMessage ***arr = &MEMBER(m, fd->offset, ProtobufCMessage **);
        size_t *n = &MEMBER(m, fd->quantifier_offset, size_t);
        const char *k;
        json_t *v;
        int r;

        if (!json_is_object(obj))
                return fail_field(w->err, d, fd->name, "expected an object");
        if (json_object_size(obj) == 0)
                return 0;
        *arr = calloc(json_object_size(obj), sizeof(**arr));
        if (!*arr)
                return -ENOMEM;
        json_object_foreach((json_t *)obj, k, v) {
                ProtobufCMessage *e = msg_new(ed);
                if (!e)
                        return -ENOMEM;
                (*arr)[(*n)++] = e;
                if ((r = key_from_json(w, ed, k, (char *)e + ed->fields[0].offset)) < 0)
                        return r;
                if (json_is_null(v) && vd->descriptor != &google__protobuf__value__descriptor)
                        return fail_field(w->err, d, fd->name, "null map value");
                if ((r = value_from_json(w, ed, vd, v, (char *)e + vd->offset, depth + 1)) < 0)
                        return r;
        }
        return 0;
}

static int repeated_from_json(struct walk *w, const ProtobufCMessageDescriptor *d,
                              const ProtobufCFieldDescriptor *fd, const json_t *a,
                              ProtobufCMessage *m, unsigned depth)
{
        char **arr = &MEMBER(m, fd->offset, char *);
        size_t *n = &MEMBER(m, fd->quantifier_offset, size_t);
        size_t es = elt_size(fd->type), i;
        json_t *v;
        int r;

        if (!json_is_array(a))
                return fail_field(w->err, d, fd->name, "expected an array");
        if (json_array_size(a) == 0)
                return 0;
        *arr = calloc(json_array_size(a), es);
        if (!*arr)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                if (json_is_null(v) && fd->descriptor != &google__protobuf__value__descriptor)
                        return fail_field(w->err, d, fd->name, "null element");
                if ((r = value_from_json(w, d, fd, v, *arr + i * es, depth)) < 0)
                        return r;
                (*n)++;
        }
        return 0;
}

static int wkt_from_json(struct walk *w, const ProtobufCMessageDescriptor *d, const json_t *j,
                         unsigned depth, ProtobufCMessage *m);

static int msg_from_json(struct walk *w, const ProtobufCMessageDescriptor *d, const json_t *j,
                         unsigned depth, ProtobufCMessage **ret)
{
        ProtobufCMessage *m;
        bool *seen = NULL;
        const char *k;
        json_t *v;
        int r = 0;

        if (depth > RPCODEC_MAX_DEPTH)
                return fail_field(w->err, d, NULL, "nested deeper than %d messages", RPCODEC_MAX_DEPTH);
        if (!is_wkt(d) && !json_is_object(j))
                return fail_field(w->err, d, NULL, "expected a JSON object");
        m = msg_new(d);
        if (!m)
                return -ENOMEM;
        if (is_wkt(d)) {
                r = wkt_from_json(w, d, j, depth, m);
                goto out;
        }
        seen = calloc(d->n_fields ? d->n_fields : 1, sizeof(*seen));
        if (!seen) {
                r = -ENOMEM;
                goto out;
        }
        json_object_foreach((json_t *)j, k, v) {
                const ProtobufCFieldDescriptor *fd = NULL;
                char name[NAME_MAX_LEN], q[QUOTE_MAX * 4];
                unsigned idx = 0;

                for (unsigned i = 0; i < d->n_fields && !fd; i++) {
                        camel(d->fields[i].name, false, name, sizeof(name));
                        if (strcmp(k, name) == 0 || strcmp(k, d->fields[i].name) == 0) {
                                fd = &d->fields[i];
                                idx = i;
                        }
                }
                if (!fd) {
                        r = fail_field(w->err, d, NULL, "unknown field \"%s\"",
                                       quote(k, strlen(k), q, sizeof(q)));
                        goto out;
                }
                if (seen[idx]) {
                        r = fail_field(w->err, d, fd->name, "given twice");
                        goto out;
                }
                seen[idx] = true;
                /* null is the default, except where it is a value. */
                if (json_is_null(v) && !(fd->type == PROTOBUF_C_TYPE_MESSAGE &&
                                         fd->descriptor == &google__protobuf__value__descriptor))
                        continue;
                if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
                        r = is_map(fd) ? map_from_json(w, d, fd, v, m, depth) :
                                         repeated_from_json(w, d, fd, v, m, depth);
                        if (r < 0)
                                goto out;
                        continue;
                }
                if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                        uint32_t *which = &MEMBER(m, fd->quantifier_offset, uint32_t);
                        if (*which != 0) {
                                r = fail_field(w->err, d, fd->name, "a oneof set twice");
                                goto out;
                        }
                        if ((r = value_from_json(w, d, fd, v, (char *)m + fd->offset, depth)) < 0)
                                goto out;
                        *which = fd->id;
                        continue;
                }
                if ((r = value_from_json(w, d, fd, v, (char *)m + fd->offset, depth)) < 0)
                        goto out;
                if (fd->label == PROTOBUF_C_LABEL_OPTIONAL && fd->type != PROTOBUF_C_TYPE_MESSAGE &&
                    fd->type != PROTOBUF_C_TYPE_STRING)
                        MEMBER(m, fd->quantifier_offset, protobuf_c_boolean) = 1;
        }
out:
        free(seen);
        if (r < 0) {
                rpcodec_free(m);
                return r;
        }
        *ret = m;
        return 0;
}

/* The well-known types, each with its own JSON form. m is initialised;
 * on failure it holds only what rpcodec_free() releases. */
static int wkt_from_json(struct walk *w, const ProtobufCMessageDescriptor *d, const json_t *j,
                         unsigned depth, ProtobufCMessage *m)
{
        if (d == &google__protobuf__timestamp__descriptor) {
                Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)m;
                struct rp_ts ts;
                if (!json_is_string(j) || rp_ts_parse(json_string_value(j), &ts) < 0)
                        return fail_field(w->err, d, NULL, "expected an RFC 3339 timestamp");
                t->seconds = ts.sec;
                t->nanos = ts.nsec;
                return 0;
        }
        if (d == &google__protobuf__struct__descriptor) {
                /* A Struct is its map: the same code as any map. */
                if (!json_is_object(j))
                        return fail_field(w->err, d, NULL, "expected a JSON object");
                return map_from_json(w, d, &d->fields[0], j, m, depth);
        }
        if (d == &google__protobuf__list_value__descriptor) {
                if (!json_is_array(j))
                        return fail_field(w->err, d, NULL, "expected a JSON array");
                return repeated_from_json(w, d, &d->fields[0], j, m, depth);
        }
        /* google.protobuf.Value: whatever JSON value it is. */
        Google__Protobuf__Value *v = (Google__Protobuf__Value *)m;
        ProtobufCMessage *sub = NULL;
        int r;

        switch (json_typeof(j)) {
        case JSON_NULL:
                v->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE;
                return 0;
        case JSON_TRUE:
        case JSON_FALSE:
                v->bool_value = json_is_true(j);
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE;
                return 0;
        case JSON_INTEGER:
        case JSON_REAL:
                v->number_value = json_number_value(j);
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
                return 0;
        case JSON_STRING:
                if ((r = dup_str(w, d, "string_value", j, &v->string_value)) < 0)
                        return r;
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE;
                return 0;
        case JSON_OBJECT:
                if ((r = msg_from_json(w, &google__protobuf__struct__descriptor, j, depth + 1, &sub)) < 0)
                        return r;
                v->struct_value = (Google__Protobuf__Struct *)sub;
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE;
                return 0;
        case JSON_ARRAY:
                if ((r = msg_from_json(w, &google__protobuf__list_value__descriptor, j, depth + 1, &sub)) < 0)
                        return r;
                v->list_value = (Google__Protobuf__ListValue *)sub;
                v->kind_case = GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE;
                return 0;
        }
        return fail_field(w->err, d, NULL, "not a JSON value");
}

int rpcodec_message_from_json(const ProtobufCMessageDescriptor *desc, const json_t *j,
                              ProtobufCMessage **ret, char err[RP_ERR_MAX])
{
        struct walk w = { .err = err };
        ProtobufCMessage *m = NULL;
        int r;

        if (err)
                err[0] = '\0';
        r = msg_from_json(&w, desc, j, 0, &m);
        if (r < 0) {
                if (r == -ENOMEM && err && !err[0])
                        fail(err, r, "out of memory");
                return r;
        }
        *ret = m;
        return 0;
}

/* ---- bodies -------------------------------------------------------------- */

int rpcodec_unpack(const char *method, enum rpcodec_dir dir, const void *body, size_t len,
                   ProtobufCMessage **ret, char err[RP_ERR_MAX])
{
        const ProtobufCMessageDescriptor *d = rpcodec_message(method, dir);
        struct scan s = { .err = err };
        ProtobufCMessage *m;
        int r;

        if (err)
                err[0] = '\0';
        if (!d)
                return fail(err, -ENOENT, "unknown method");
        if (len > RPCODEC_MAX_MESSAGE)
                return fail(err, -EMSGSIZE, "%s: %zu bytes, more than %u", d->name, len,
                            RPCODEC_MAX_MESSAGE);
        if ((r = scan_msg(&s, d, body, len, 0)) < 0)
                return r;
        /* After scan() only memory can make protobuf-c refuse. */
        m = protobuf_c_message_unpack(d, NULL, len, body);
        if (!m)
                return fail(err, -ENOMEM, "%s: cannot unpack (out of memory?)", d->name);
        *ret = m;
        return 0;
}

int rpcodec_pack(const ProtobufCMessage *m, void **ret_body, size_t *ret_len)
{
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf;

        if (n > RPCODEC_MAX_MESSAGE)
                return -EMSGSIZE;
        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        if (protobuf_c_message_pack(m, buf) != n) {
                free(buf);
                return -EIO;
        }
        buf[n] = 0;
        *ret_body = buf;
        *ret_len = n;
        return 0;
}

int rpcodec_decode(const char *method, enum rpcodec_dir dir, enum rpcodec codec,
                   const void *body, size_t len, json_t **ret, char err[RP_ERR_MAX])
{
        const ProtobufCMessageDescriptor *d = rpcodec_message(method, dir);
        ProtobufCMessage *m = NULL;
        json_error_t jerr;
        json_t *j;
        int r;

        if (err)
                err[0] = '\0';
        if (!d)
                return fail(err, -ENOENT, "unknown method");
        if (len > RPCODEC_MAX_MESSAGE)
                return fail(err, -EMSGSIZE, "%s: %zu bytes, more than %u", d->name, len,
                            RPCODEC_MAX_MESSAGE);
        if (codec == RPCODEC_PROTO) {
                if ((r = rpcodec_unpack(method, dir, body, len, &m, err)) < 0)
                        return r;
                r = rpcodec_message_to_json(m, ret, err);
                rpcodec_free(m);
                return r;
        }
        if (len == 0)
                return fail(err, -EINVAL, "zero-length payload is not a valid JSON object");
        /* protojson refuses a field given twice. */
        j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return fail(err, -EINVAL, "%s", jerr.text);
        if (!json_is_object(j)) {
                json_decref(j);
                return fail(err, -EINVAL, "not a JSON object");
        }
        *ret = j;
        return 0;
}

int rpcodec_encode(const char *method, enum rpcodec_dir dir, enum rpcodec codec,
                   const json_t *msg, void **ret_body, size_t *ret_len, char err[RP_ERR_MAX])
{
        const ProtobufCMessageDescriptor *d = rpcodec_message(method, dir);
        ProtobufCMessage *m = NULL;
        char *s;
        int r;

        if (err)
                err[0] = '\0';
        if (!d)
                return fail(err, -ENOENT, "unknown method");
        if (!json_is_object(msg))
                return fail(err, -EINVAL, "%s: expected a JSON object", d->name);
        if (codec == RPCODEC_PROTO) {
                if ((r = rpcodec_message_from_json(d, msg, &m, err)) < 0)
                        return r;
                r = rpcodec_pack(m, ret_body, ret_len);
                rpcodec_free(m);
                if (r == -EMSGSIZE)
                        return fail(err, r, "%s: more than %u bytes", d->name, RPCODEC_MAX_MESSAGE);
                return r < 0 ? fail(err, r, "%s: %s", d->name, strerror(-r)) : 0;
        }
        s = json_dumps(msg, JSON_COMPACT);
        if (!s)
                return fail(err, -ENOMEM, "out of memory");
        if (strlen(s) > RPCODEC_MAX_MESSAGE) {
                free(s);
                return fail(err, -EMSGSIZE, "%s: more than %u bytes", d->name, RPCODEC_MAX_MESSAGE);
        }
        *ret_len = strlen(s);
        *ret_body = s;
        return 0;
}

/* ---- gzip ---------------------------------------------------------------- */

#define GZIP_WINDOW (15 + 16)           /* zlib: gzip wrapper, 32 KiB window */

int rpcodec_gzip(const void *in, size_t len, void **ret, size_t *ret_len)
{
        z_stream z;
        uLong bound;
        uint8_t *out;
        int zr;

        memset(&z, 0, sizeof(z));
        if (len > UINT_MAX)
                return -EMSGSIZE;
        if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW, 8,
                         Z_DEFAULT_STRATEGY) != Z_OK)
                return -ENOMEM;
        bound = deflateBound(&z, (uLong)len);
        out = malloc(bound);
        if (!out) {
                deflateEnd(&z);
                return -ENOMEM;
        }
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)bound;
        zr = deflate(&z, Z_FINISH);
        deflateEnd(&z);
        if (zr != Z_STREAM_END) {
                free(out);
                return -ENOMEM;
        }
        *ret = out;
        *ret_len = z.total_out;
        return 0;
}

int rpcodec_gunzip(const void *in, size_t len, size_t max, void **ret, size_t *ret_len,
                   char err[RP_ERR_MAX])
{
        z_stream z;
        uint8_t *out = NULL;
        size_t cap = 0, n = 0;
        int zr, r;

        if (err)
                err[0] = '\0';
        if (len > UINT_MAX || max > UINT_MAX - 1)
                return fail(err, -EMSGSIZE, "gzip body too large");
        memset(&z, 0, sizeof(z));
        if (inflateInit2(&z, GZIP_WINDOW) != Z_OK)
                return fail(err, -ENOMEM, "out of memory");
        z.next_in = (Bytef *)(uintptr_t)in;
        z.avail_in = (uInt)len;
        for (;;) {
                if (n == cap) {
                        /* Grow by doubling, never past max + 1: one byte
                         * more than allowed tells a bomb from a fit. */
                        size_t ncap = cap ? cap * 2 : 4096;
                        if (ncap > max + 1)
                                ncap = max + 1;
                        if (ncap <= cap) {
                                r = fail(err, -EMSGSIZE, "gzip body inflates to more than %zu bytes", max);
                                goto out;
                        }
                        uint8_t *nb = realloc(out, ncap + 1);
                        if (!nb) {
                                r = fail(err, -ENOMEM, "out of memory");
                                goto out;
                        }
                        out = nb;
                        cap = ncap;
                }
                z.next_out = out + n;
                z.avail_out = (uInt)(cap - n);
                zr = inflate(&z, Z_NO_FLUSH);
                n = cap - z.avail_out;
                if (n > max) {
                        r = fail(err, -EMSGSIZE, "gzip body inflates to more than %zu bytes", max);
                        goto out;
                }
                if (zr == Z_STREAM_END) {
                        if (z.avail_in == 0)
                                break;
                        /* Another member follows (RFC 1952 allows several). */
                        if (inflateReset(&z) != Z_OK) {
                                r = fail(err, -EINVAL, "bad gzip member");
                                goto out;
                        }
                        continue;
                }
                if (zr == Z_BUF_ERROR && z.avail_in == 0) {
                        r = fail(err, -EINVAL, "gzip body is cut short");
                        goto out;
                }
                if (zr != Z_OK && zr != Z_BUF_ERROR) {
                        r = fail(err, zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL, "not gzip: %s",
                                 z.msg ? z.msg : "corrupt data");
                        goto out;
                }
        }
        out[n] = 0;
        *ret = out;
        *ret_len = n;
        out = NULL;
        r = 0;
out:
        inflateEnd(&z);
        free(out);
        return r;
}
