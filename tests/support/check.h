/* check.h: cmocka assertions for wire formats, written from the reference
 * rules: REST integers are JSON numbers; protojson int64 values are JSON
 * strings (an absent field is the proto3 default, 0); Connect errors are
 * {code, message} bodies. Each macro reports the caller's file and line and
 * the offending body. Never talks to the network. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sim.h"

/* The int expression must be >= 0. */
#define CK_OK(e) ck_ok_((e), #e, __FILE__, __LINE__)
/* The response has exactly this HTTP status. */
#define CK_STATUS(r, st) ck_status_((r), (st), __FILE__, __LINE__)
/* A Connect error: this HTTP status, a JSON object body with a string
 * "code" equal to code and a string "message". */
#define CK_CONNECT_ERR(r, st, code) ck_connect_err_((r), (st), (code), __FILE__, __LINE__)
/* A protojson int64 field: a JSON string of decimal digits, or absent (0). */
#define CK_I64S(o, k) ck_i64s_((o), (k), __FILE__, __LINE__)
/* A protojson enum field: a name string, or absent (the zero name dflt). */
#define CK_ENUM(o, k, dflt) ck_enum_((o), (k), (dflt), __FILE__, __LINE__)
/* A REST integer field (a JSON number, not a string). */
#define CK_INT(o, k) ck_int_((o), (k), __FILE__, __LINE__)
#define CK_STR(o, k) ck_str_((o), (k), __FILE__, __LINE__)
#define CK_BOOL(o, k) ck_bool_((o), (k), __FILE__, __LINE__)
#define CK_ARR(o, k) ck_arr_((o), (k), __FILE__, __LINE__)
#define CK_OBJ(o, k) ck_obj_((o), (k), __FILE__, __LINE__)
/* The field is absent. */
#define CK_ABSENT(o, k) ck_absent_((o), (k), __FILE__, __LINE__)
/* json_equal(v, parse(literal)); both are printed on mismatch. */
#define CK_JSON_EQ(v, lit) ck_json_eq_((v), (lit), __FILE__, __LINE__)
/* The "id" members of the array's objects equal the literal array. */
#define CK_IDS(arr, lit) ck_ids_((arr), (lit), __FILE__, __LINE__)
/* Only these keys (a NULL-terminated list) are present, and all of them. */
#define CK_KEYS(o, ...) ck_keys_((o), __FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)

void ck_ok_(long long v, const char *expr, const char *file, int line);
void ck_status_(const struct sim_resp *r, long st, const char *file, int line);
void ck_connect_err_(const struct sim_resp *r, long st, const char *code, const char *file, int line);
long long ck_i64s_(json_t *o, const char *k, const char *file, int line);
const char *ck_enum_(json_t *o, const char *k, const char *dflt, const char *file, int line);
long long ck_int_(json_t *o, const char *k, const char *file, int line);
const char *ck_str_(json_t *o, const char *k, const char *file, int line);
bool ck_bool_(json_t *o, const char *k, const char *file, int line);
json_t *ck_arr_(json_t *o, const char *k, const char *file, int line);
json_t *ck_obj_(json_t *o, const char *k, const char *file, int line);
void ck_absent_(json_t *o, const char *k, const char *file, int line);
void ck_json_eq_(json_t *v, const char *lit, const char *file, int line);
void ck_ids_(json_t *arr, const char *lit, const char *file, int line);
void ck_keys_(json_t *o, const char *file, int line, ...);

/* Format predicates. */
bool is_uuid(const char *s);                    /* 8-4-4-4-12 hex digits */
bool is_uuid_v4(const char *s);                 /* and version 4, RFC 4122 variant */
bool is_hex(const char *s, size_t n);           /* exactly n lowercase/uppercase hex digits */
bool is_rfc3339(const char *s);                 /* YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) */
bool is_rfc3339_ms_utc(const char *s);          /* YYYY-MM-DDTHH:MM:SS.mmmZ */
/* Standard base64 with padding (protojson "bytes"). Returns the decoded
 * length (out is NUL-terminated, cap includes the NUL) or -1. */
long b64_decode(const char *s, char *out, size_t cap);

/* Seconds since an arbitrary point (CLOCK_MONOTONIC). */
double ck_now(void);
void ck_sleep_ms(long ms);
