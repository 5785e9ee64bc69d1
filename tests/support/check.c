/* check.c: see check.h. The only place that turns a wire-format mismatch
 * into a cmocka failure with the caller's location; never retries or
 * repairs a response. */
#include "check.h"

#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Never returns: _fail() long-jumps out of the running test. */
static void fail_at(const char *file, int line, const char *fmt, ...)
{
        char msg[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        print_error("%s\n", msg);
        _fail(file, line);
}

/* Compact JSON of v into buf (truncated), "(absent)" for NULL. */
static const char *dump(json_t *v, char *buf, size_t n)
{
        if (!v) {
                snprintf(buf, n, "(absent)");
                return buf;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(buf, n, "%s", s ? s : "(unprintable)");
        free(s);
        return buf;
}

void ck_ok_(long long v, const char *expr, const char *file, int line)
{
        if (v < 0)
                fail_at(file, line, "%s failed: %lld (%s)", expr, v, strerror((int)-v));
}

static const char *body_of(const struct sim_resp *r)
{
        return r->body ? r->body : "";
}

void ck_status_(const struct sim_resp *r, long st, const char *file, int line)
{
        if (r->status != st)
                fail_at(file, line, "HTTP status %ld, expected %ld; body: %.2000s", r->status, st, body_of(r));
}

void ck_connect_err_(const struct sim_resp *r, long st, const char *code, const char *file, int line)
{
        if (r->status != st)
                fail_at(file, line, "HTTP status %ld, expected %ld (Connect \"%s\"); body: %.2000s",
                        r->status, st, code, body_of(r));
        if (!json_is_object(r->json))
                fail_at(file, line, "Connect error body is not a JSON object: %.2000s", body_of(r));
        const char *c = json_string_value(json_object_get(r->json, "code"));
        if (!c || strcmp(c, code) != 0)
                fail_at(file, line, "Connect code \"%s\", expected \"%s\"; body: %.2000s",
                        c ? c : "(none)", code, body_of(r));
        if (!json_is_string(json_object_get(r->json, "message")))
                fail_at(file, line, "Connect error without a string \"message\": %.2000s", body_of(r));
}

static json_t *member(json_t *o, const char *k, const char *file, int line)
{
        char d[2048];

        if (!json_is_object(o)) {
                fail_at(file, line, "looking up \"%s\" in a non-object: %s", k, dump(o, d, sizeof(d)));
                return NULL;
        }
        return json_object_get(o, k);
}

static void bad_field(json_t *o, const char *k, const char *want, const char *file, int line)
{
        char d[2048];

        fail_at(file, line, "field \"%s\" is not %s in %s", k, want, dump(o, d, sizeof(d)));
}

long long ck_i64s_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!v)
                return 0;
        const char *s = json_string_value(v);
        if (!s || !*s) {
                bad_field(o, k, "a protojson int64 (a JSON string)", file, line);
                return 0;
        }
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (errno || *end || (!isdigit((unsigned char)s[0]) && s[0] != '-'))
                bad_field(o, k, "a decimal int64 string", file, line);
        return n;
}

const char *ck_enum_(json_t *o, const char *k, const char *dflt, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!v)
                return dflt;
        if (!json_is_string(v))
                bad_field(o, k, "a protojson enum name (a JSON string)", file, line);
        return json_string_value(v);
}

long long ck_int_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!json_is_integer(v))
                bad_field(o, k, "a JSON integer", file, line);
        return json_integer_value(v);
}

const char *ck_str_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!json_is_string(v))
                bad_field(o, k, "a JSON string", file, line);
        return json_string_value(v);
}

bool ck_bool_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!json_is_boolean(v))
                bad_field(o, k, "a JSON boolean", file, line);
        return json_is_true(v);
}

json_t *ck_arr_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!json_is_array(v))
                bad_field(o, k, "a JSON array", file, line);
        return v;
}

json_t *ck_obj_(json_t *o, const char *k, const char *file, int line)
{
        json_t *v = member(o, k, file, line);

        if (!json_is_object(v))
                bad_field(o, k, "a JSON object", file, line);
        return v;
}

void ck_absent_(json_t *o, const char *k, const char *file, int line)
{
        if (member(o, k, file, line))
                bad_field(o, k, "absent", file, line);
}

void ck_json_eq_(json_t *v, const char *lit, const char *file, int line)
{
        json_error_t err;
        json_t *want = json_loads(lit, JSON_DECODE_ANY, &err);

        char d[2048];

        if (!want) {
                fail_at(file, line, "bad literal %s: %s", lit, err.text);
                return;
        }
        bool eq = v && json_equal(v, want);
        json_decref(want);
        if (!eq)
                fail_at(file, line, "got %s, expected %s", dump(v, d, sizeof(d)), lit);
}

void ck_ids_(json_t *arr, const char *lit, const char *file, int line)
{
        char d[2048];
        json_t *v;
        size_t i;

        if (!json_is_array(arr)) {
                fail_at(file, line, "expected an array of objects with ids %s, got %s", lit, dump(arr, d, sizeof(d)));
                return;
        }
        json_t *ids = json_array();
        json_t *want = json_loads(lit, JSON_DECODE_ANY, NULL);
        json_array_foreach(arr, i, v)
                json_array_append(ids, json_object_get(v, "id") ? json_object_get(v, "id") : json_null());
        bool eq = ids && want && json_equal(ids, want);
        dump(ids, d, sizeof(d));
        json_decref(ids);
        json_decref(want);
        if (!eq)
                fail_at(file, line, "ids %s, expected %s", d, lit);
}

void ck_keys_(json_t *o, const char *file, int line, ...)
{
        const char *want[64];
        size_t n = 0;
        va_list ap;

        va_start(ap, line);
        for (const char *k; (k = va_arg(ap, const char *)) && n < 64;)
                want[n++] = k;
        va_end(ap);
        if (!json_is_object(o)) {
                bad_field(o, "(self)", "an object", file, line);
                return;
        }
        for (size_t i = 0; i < n; i++)
                if (!json_object_get(o, want[i]))
                        bad_field(o, want[i], "present", file, line);
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
                bool known = false;
                for (size_t i = 0; i < n; i++)
                        known = known || strcmp(key, want[i]) == 0;
                if (!known)
                        bad_field(o, key, "an expected key (unexpected extra field)", file, line);
        }
}

/* ---- format predicates ---- */

bool is_hex(const char *s, size_t n)
{
        if (!s || strlen(s) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return false;
        return true;
}

bool is_uuid(const char *s)
{
        static const size_t groups[] = { 8, 4, 4, 4, 12 };

        if (!s || strlen(s) != 36)
                return false;
        const char *p = s;
        for (size_t g = 0; g < 5; g++) {
                for (size_t i = 0; i < groups[g]; i++, p++)
                        if (!isxdigit((unsigned char)*p))
                                return false;
                if (g < 4 && *p++ != '-')
                        return false;
        }
        return true;
}

bool is_uuid_v4(const char *s)
{
        /* Version nibble 4 and RFC 4122 variant (8, 9, a, b). */
        return is_uuid(s) && s[14] == '4' && strchr("89abAB", s[19]) != NULL;
}

static bool digits(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!isdigit((unsigned char)s[i]))
                        return false;
        return true;
}

/* Parses the fixed "YYYY-MM-DDTHH:MM:SS" part; returns the rest or NULL. */
static const char *rfc3339_base(const char *s)
{
        if (!s || strlen(s) < 19)
                return NULL;
        if (!digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
            (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) ||
            s[16] != ':' || !digits(s + 17, 2))
                return NULL;
        int mon = (s[5] - '0') * 10 + (s[6] - '0');
        int day = (s[8] - '0') * 10 + (s[9] - '0');
        int hh = (s[11] - '0') * 10 + (s[12] - '0');
        int mm = (s[14] - '0') * 10 + (s[15] - '0');
        int ss = (s[17] - '0') * 10 + (s[18] - '0');
        if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60)
                return NULL;
        return s + 19;
}

bool is_rfc3339(const char *s)
{
        const char *p = rfc3339_base(s);

        if (!p)
                return false;
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return false;
                while (isdigit((unsigned char)*p))
                        p++;
        }
        if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
                return true;
        return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && p[6] == '\0';
}

bool is_rfc3339_ms_utc(const char *s)
{
        const char *p = rfc3339_base(s);

        return p && p[0] == '.' && digits(p + 1, 3) && p[4] == 'Z' && p[5] == '\0';
}

static int b64_val(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

long b64_decode(const char *s, char *out, size_t cap)
{
        size_t n = s ? strlen(s) : 0, o = 0;

        if (n % 4 != 0 || cap == 0)
                return -1;
        for (size_t i = 0; i < n; i += 4) {
                int v[4];
                size_t pad = 0;
                for (size_t j = 0; j < 4; j++) {
                        if (s[i + j] == '=' && i + 4 == n && j >= 2) {
                                v[j] = 0;
                                pad++;
                        } else {
                                if (pad)
                                        return -1;
                                v[j] = b64_val(s[i + j]);
                                if (v[j] < 0)
                                        return -1;
                        }
                }
                uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
                unsigned char b[3] = { (unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w };
                for (size_t j = 0; j < 3 - pad; j++) {
                        if (o + 1 >= cap)
                                return -1;
                        out[o++] = (char)b[j];
                }
        }
        out[o] = '\0';
        return (long)o;
}

double ck_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ck_sleep_ms(long ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}
