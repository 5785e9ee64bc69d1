/* fuzz_rpcodec.c: libFuzzer target for the binary protobuf side of the
 * runner protocol (rpcodec.h). The first input byte picks a method and a
 * direction; the rest is a body in application/proto. A refused body must
 * leave a reason. A decoded one must encode again, in proto and in JSON,
 * and decode to the same JSON (round-trip stability); rproto must read it,
 * and what rproto writes back must be encodable in proto. The body is also
 * unpacked and packed twice for a relay (unknown fields kept), which must
 * give the same bytes both times; and, when it is gzip, inflated with a
 * bound and decoded. The input as a header value goes through the
 * Content-Type and encoding parsers. Never does I/O. */
#include "forge/rpcodec.h"
#include "forge/rproto.h"
#include "fuzz_check.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* rproto's decode + encode for each method's messages, in rpcodec's method
 * order (NULL: no rproto type, UpdateJobSummary). */
#define RP(T)                                                                   \
        static json_t *rp_##T(const json_t *j, char *err)                       \
        {                                                                       \
                struct rp_##T m;                                                \
                json_t *o;                                                      \
                if (rp_##T##_from_json(j, &m, err, RP_ERR_MAX) < 0)             \
                        return NULL;                                            \
                o = rp_##T##_to_json(&m);                                       \
                rp_##T##_done(&m);                                              \
                FUZZ_CHECK(o, #T ": rproto decoded but cannot encode");        \
                return o;                                                       \
        }
RP(ping_req)
RP(ping_resp)
RP(register_req)
RP(register_resp)
RP(declare_req)
RP(declare_resp)
RP(fetch_task_req)
RP(fetch_task_resp)
RP(fetch_single_task_req)
RP(fetch_single_task_resp)
RP(update_task_req)
RP(update_task_resp)
RP(update_log_req)
RP(update_log_resp)

static json_t *(*const rproto_of[][2])(const json_t *, char *) = {
        { rp_ping_req, rp_ping_resp },
        { rp_register_req, rp_register_resp },
        { rp_declare_req, rp_declare_resp },
        { rp_fetch_task_req, rp_fetch_task_resp },
        { rp_fetch_single_task_req, rp_fetch_single_task_resp },
        { rp_update_task_req, rp_update_task_resp },
        { rp_update_log_req, rp_update_log_resp },
        { NULL, NULL },
};

#define N_METHODS (sizeof(rproto_of) / sizeof(rproto_of[0]))

static void check_refusal(const char *what, int r, const char *err)
{
        FUZZ_CHECK(r == -EINVAL || r == -EMSGSIZE || r == -ENOMEM, "%s: returned %d", what, r);
        FUZZ_CHECK(err[0], "%s: refused (%d) without a reason", what, r);
        fuzz_sink(err, strlen(err));
}

static void dump(const char *what, const json_t *a, const json_t *b)
{
        char *x = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
        char *y = b ? json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        fprintf(stderr, "%s:\n  first  %s\n  second %s\n", what, x ? x : "?", y ? y : "-");
        free(x);
        free(y);
}

/* body → JSON → proto → JSON, and JSON → JSON text → JSON. */
static void round_trip(const char *method, enum rpcodec_dir dir, size_t mi, const uint8_t *body,
                       size_t len)
{
        char err[RP_ERR_MAX];
        json_t *j1 = NULL, *j2 = NULL, *j3 = NULL, *rp;
        void *b2 = NULL, *t = NULL;
        size_t n2, nt;
        int r;

        r = rpcodec_decode(method, dir, RPCODEC_PROTO, body, len, &j1, err);
        if (r < 0) {
                check_refusal(method, r, err);
                /* Inputs are small and allocation failures abort under
                 * ASan: -ENOMEM here means protobuf-c refused a body that
                 * scan() let through, and the reason would be wrong. */
                FUZZ_CHECK(r != -ENOMEM, "%s: scan() passed what protobuf-c refused: %s", method, err);
                return;
        }
        FUZZ_CHECK(json_is_object(j1), "%s: decoded to a non-object", method);
        r = rpcodec_encode(method, dir, RPCODEC_PROTO, j1, &b2, &n2, err);
        if (r < 0)
                dump(err, j1, NULL);
        FUZZ_CHECK(r == 0, "%s: a decoded message does not encode: %s", method, err);
        r = rpcodec_decode(method, dir, RPCODEC_PROTO, b2, n2, &j2, err);
        FUZZ_CHECK(r == 0, "%s: own encoding does not decode: %s", method, err);
        if (!json_equal(j1, j2))
                dump("proto round trip", j1, j2);
        FUZZ_CHECK(json_equal(j1, j2), "%s: proto round trip differs", method);
        r = rpcodec_encode(method, dir, RPCODEC_JSON, j1, &t, &nt, err);
        FUZZ_CHECK(r == 0, "%s: JSON encode: %s", method, err);
        r = rpcodec_decode(method, dir, RPCODEC_JSON, t, nt, &j3, err);
        FUZZ_CHECK(r == 0 && json_equal(j1, j3), "%s: JSON round trip: %s", method, err);
        fuzz_sink(b2, n2);

        /* rproto reads the decoded JSON like any peer's, and whatever it
         * writes must fit the schema again. */
        if (rproto_of[mi][dir]) {
                err[0] = '\0';
                rp = rproto_of[mi][dir](j1, err);
                if (rp) {
                        void *b3 = NULL;
                        size_t n3;
                        r = rpcodec_encode(method, dir, RPCODEC_PROTO, rp, &b3, &n3, err);
                        if (r < 0)
                                dump(err, rp, NULL);
                        FUZZ_CHECK(r == 0, "%s: rproto's encoding does not fit the schema: %s", method, err);
                        free(b3);
                        json_decref(rp);
                } else {
                        FUZZ_CHECK(err[0], "%s: rproto refused without a reason", method);
                }
        }
        json_decref(j1);
        json_decref(j2);
        json_decref(j3);
        free(b2);
        free(t);
}

/* unpack → pack → unpack → pack: a relay's path; the two packs agree. */
static void relay(const char *method, enum rpcodec_dir dir, const uint8_t *body, size_t len)
{
        char err[RP_ERR_MAX];
        ProtobufCMessage *m1 = NULL, *m2 = NULL;
        void *p1 = NULL, *p2 = NULL;
        size_t n1, n2;
        int r;

        if (rpcodec_unpack(method, dir, body, len, &m1, err) < 0)
                return;
        r = rpcodec_pack(m1, &p1, &n1);
        FUZZ_CHECK(r == 0, "%s: an unpacked message does not pack (%d)", method, r);
        r = rpcodec_unpack(method, dir, p1, n1, &m2, err);
        FUZZ_CHECK(r == 0, "%s: a packed message does not unpack: %s", method, err);
        r = rpcodec_pack(m2, &p2, &n2);
        FUZZ_CHECK(r == 0 && n1 == n2 && memcmp(p1, p2, n1) == 0, "%s: packing is not stable", method);
        rpcodec_free(m1);
        rpcodec_free(m2);
        free(p1);
        free(p2);
}

static void headers(const uint8_t *data, size_t size)
{
        char buf[256], err[RP_ERR_MAX];
        enum rpcodec c;
        bool gz;
        size_t n = size < sizeof(buf) - 1 ? size : sizeof(buf) - 1;
        int r;

        memcpy(buf, data, n);
        buf[n] = '\0';
        err[0] = '\0';
        r = rpcodec_from_content_type(buf, &c, err);
        FUZZ_CHECK(r == 0 ? (c == RPCODEC_PROTO || c == RPCODEC_JSON) : (r == -EINVAL && err[0]),
                   "content type: %d", r);
        err[0] = '\0';
        r = rpcodec_parse_encoding(buf, &gz, err);
        FUZZ_CHECK(r == 0 || (r == -EINVAL && err[0]), "content encoding: %d", r);
        fuzz_sink(err, strlen(err));
        gz = rpcodec_accepts_gzip(buf);
        fuzz_sink(&gz, sizeof(gz));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[RP_ERR_MAX];
        void *plain = NULL;
        size_t n, sel, mi;
        const char *method;
        enum rpcodec_dir dir;
        int r;

        if (size < 1)
                return 0;
        sel = data[0] % (2 * N_METHODS);
        mi = sel / 2;
        dir = sel % 2 ? RPCODEC_RESPONSE : RPCODEC_REQUEST;
        method = rpcodec_method(mi);
        FUZZ_CHECK(method && !rpcodec_method(N_METHODS), "method table and fuzz table differ");
        round_trip(method, dir, mi, data + 1, size - 1);
        relay(method, dir, data + 1, size - 1);
        headers(data + 1, size - 1);

        err[0] = '\0';
        r = rpcodec_gunzip(data + 1, size - 1, 1u << 16, &plain, &n, err);
        if (r == 0) {
                FUZZ_CHECK(n <= 1u << 16, "gunzip: %zu bytes past the bound", n);
                round_trip(method, dir, mi, plain, n);
                free(plain);
        } else {
                check_refusal("gunzip", r, err);
        }
        return 0;
}
