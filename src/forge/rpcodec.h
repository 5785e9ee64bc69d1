/* rpcodec.h: the body of a runner-protocol call in either Connect codec,
 * binary protobuf (application/proto, forgejo-runner's) or protojson
 * (application/json), converted to and from the json_t rproto.h reads;
 * plus Content-Type/Content-Encoding negotiation, bounded gzip, and
 * unpack/re-pack for a relay. Owns the method table and the proto3 JSON
 * mapping. Never does I/O, never logs. */

/* One walker over the protobuf-c descriptors generated from
 * src/forge/proto/ maps proto to JSON with rproto.h's rules
 * (lowerCamelCase, int64 as strings, enums by name, Timestamp as RFC 3339,
 * Struct as JSON, maps as objects, bytes as base64, defaults omitted;
 * snake_case names and int64 numbers accepted on input).
 *
 * Bad bytes from the network are refused with a reason in err (RP_ERR_MAX
 * bytes, "<message>.<field>: <why>"), never a crash: every body, every
 * inflated body, the nesting depth and the number of fields are bounded.
 * A string that is not UTF-8 or holds a NUL byte is refused (rproto keeps
 * strings as C strings), and so is a message field given twice. Unknown
 * fields are kept by the relay API below and dropped in JSON, as protojson
 * does. Integers in a Struct become JSON numbers through a double, as in
 * protojson. */
#pragma once

#include "forge/rproto.h"

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

enum rpcodec {
        RPCODEC_PROTO = 0,      /* application/proto: what connect-go sends by default */
        RPCODEC_JSON,           /* application/json */
};

enum rpcodec_dir {
        RPCODEC_REQUEST = 0,
        RPCODEC_RESPONSE,
};

/* Largest body encoded or decoded, compressed or inflated (the simulator's
 * RPC body limit). */
#define RPCODEC_MAX_MESSAGE (8u << 20)
/* Deepest message nesting decoded or encoded: a JSON level of a Struct
 * costs three (Struct, map entry, Value), so about 80 JSON levels. */
#define RPCODEC_MAX_DEPTH 256
/* Most fields (elements of repeated fields and map entries included) in
 * one body: bounds what protobuf-c allocates for a small hostile body. */
#define RPCODEC_MAX_FIELDS (1u << 20)
/* Bodies smaller than this are not worth compressing (Forgejo's
 * connect.WithCompressMinBytes). */
#define RPCODEC_GZIP_MIN 1024

/* "proto" / "json", and back (for flags); parse returns 0 or -EINVAL. */
const char *rpcodec_name(enum rpcodec c);
int rpcodec_parse_name(const char *name, enum rpcodec *ret);
/* "application/proto" / "application/json". */
const char *rpcodec_content_type(enum rpcodec c);

/* The codec of a Content-Type value: application/proto or application/json
 * (case-insensitive, parameters allowed; a charset other than UTF-8 is
 * refused for JSON). Returns 0, or -EINVAL with a reason in err for a
 * missing or other type; a server answers that with HTTP 415. */
int rpcodec_from_content_type(const char *ct, enum rpcodec *ret, char err[RP_ERR_MAX]);

/* ---- bodies -------------------------------------------------------------- */

/* The i-th method of the table ("ping.v1.PingService/Ping", ...), NULL
 * past the end: every method ping.v1 and runner.v1 serve. */
const char *rpcodec_method(size_t i);
/* The message of method's request or response; method is
 * "runner.v1.RunnerService/FetchTask" (a leading '/' is allowed).
 * NULL for a method outside ping.v1 and runner.v1. */
const ProtobufCMessageDescriptor *rpcodec_message(const char *method, enum rpcodec_dir dir);

/* Decodes body[0..len) of method in codec into a JSON object for
 * rproto's *_from_json (JSON bodies are only parsed: rproto checks
 * their fields). Returns 0 with *ret a new reference; -ENOENT for an
 * unknown method; -EMSGSIZE for a body over RPCODEC_MAX_MESSAGE; -EINVAL
 * for a bad body; -ENOMEM. err holds the reason on every failure. */
int rpcodec_decode(const char *method, enum rpcodec_dir dir, enum rpcodec codec,
                   const void *body, size_t len, json_t **ret, char err[RP_ERR_MAX]);

/* Encodes msg (borrowed; a JSON object as rproto's *_to_json make) as the
 * body of method in codec. The proto codec refuses names and values the
 * schema does not have. Returns 0 with *ret_body malloc'd (NUL-terminated
 * for convenience, the NUL not counted in *ret_len); -ENOENT, -EINVAL,
 * -EMSGSIZE, -ENOMEM as rpcodec_decode, reason in err. */
int rpcodec_encode(const char *method, enum rpcodec_dir dir, enum rpcodec codec,
                   const json_t *msg, void **ret_body, size_t *ret_len, char err[RP_ERR_MAX]);

/* ---- protobuf-c messages, for a relay ------------------------------------- */

/* Unpacks a proto body of method after the checks rpcodec_decode makes.
 * Fields the schema does not know are kept as protobuf-c unknown fields
 * and rpcodec_pack() writes them back byte for byte (after the known
 * fields), so a relay can change a known field without losing what a newer
 * peer added. Cast *ret to the generated type (runner/v1/messages.pb-c.h)
 * to read or change fields; it is allocated with malloc, so a replaced
 * string, array or submessage must come from malloc (and the old one be
 * freed). Returns 0 with *ret (release with rpcodec_free); errors as
 * rpcodec_decode. */
int rpcodec_unpack(const char *method, enum rpcodec_dir dir, const void *body, size_t len,
                   ProtobufCMessage **ret, char err[RP_ERR_MAX]);
/* Packs m (borrowed) with its unknown fields. Returns 0 with *ret_body
 * malloc'd; -EMSGSIZE over RPCODEC_MAX_MESSAGE; -ENOMEM. */
int rpcodec_pack(const ProtobufCMessage *m, void **ret_body, size_t *ret_len);
void rpcodec_free(ProtobufCMessage *m);

/* The JSON mapping alone: m (borrowed) as a new JSON object, and a JSON
 * object as a new message of desc (release with rpcodec_free). Return 0,
 * -EINVAL with a reason, or -ENOMEM. */
int rpcodec_message_to_json(const ProtobufCMessage *m, json_t **ret, char err[RP_ERR_MAX]);
int rpcodec_message_from_json(const ProtobufCMessageDescriptor *desc, const json_t *j,
                              ProtobufCMessage **ret, char err[RP_ERR_MAX]);

/* ---- compression ------------------------------------------------------- */

/* Whether a Content-Encoding value means gzip: NULL, "" and "identity"
 * give false, "gzip" true; anything else is -EINVAL with a reason (a
 * server answers unimplemented). */
int rpcodec_parse_encoding(const char *ce, bool *ret_gzip, char err[RP_ERR_MAX]);
/* Whether an Accept-Encoding value accepts gzip (gzip or *, q > 0). */
bool rpcodec_accepts_gzip(const char *accept_encoding);

/* in[0..len) as one gzip member. Returns 0 with *ret malloc'd; -ENOMEM. */
int rpcodec_gzip(const void *in, size_t len, void **ret, size_t *ret_len);
/* Inflates gzip data (concatenated members allowed) to at most max bytes.
 * Returns 0 with *ret malloc'd (NUL-terminated, the NUL not counted);
 * -EMSGSIZE when the data inflates to more than max (stops there: a gzip
 * bomb costs max bytes, no more); -EINVAL for data that is not gzip or
 * is cut short; -ENOMEM. err holds the reason on failure. */
int rpcodec_gunzip(const void *in, size_t len, size_t max, void **ret, size_t *ret_len,
                   char err[RP_ERR_MAX]);
