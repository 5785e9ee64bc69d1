/* rproto.h: the Forgejo runner protocol (runner.v1 / ping.v1) messages and
 * their protojson encoding, as spoken by Connect unary calls with the JSON
 * codec; rpcodec.h maps the binary protobuf codec to the same JSON. The one
 * module that forgejo-sim, forgejo-sim-runner and the broker share, so the
 * messages are defined exactly once.
 *
 * Owns: message structs, JSON encode/decode, enum names, Connect error codes
 * and their HTTP statuses. Never does I/O, never logs.
 *
 * Encoding (protojson): lowerCamelCase names, int64 as JSON strings, enums
 * by name, Timestamp as RFC 3339 UTC, bytes as base64, Struct and maps as
 * JSON objects; fields at their default value are omitted. Decoding accepts
 * lowerCamelCase and snake_case names, int64 as string or number, enums by
 * name or number, `null` for any field, and ignores unknown fields; a wrong
 * type is an error whose reason names the field.
 *
 * Ownership: every decoded struct owns its strings and json_t references;
 * release with the matching rp_*_done(), which accepts zeroed structs.
 * Encoders borrow their input and return a new json_t reference (NULL on
 * OOM or a Timestamp that RFC 3339 cannot express). Decoders return 0 or -EINVAL (reason in err) / -ENOMEM and leave
 * *ret zeroed on failure. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rp_result {
        RP_RESULT_UNSPECIFIED = 0,
        RP_RESULT_SUCCESS = 1,
        RP_RESULT_FAILURE = 2,
        RP_RESULT_CANCELLED = 3,
        RP_RESULT_SKIPPED = 4,
};

enum rp_runner_status {
        RP_RUNNER_STATUS_UNSPECIFIED = 0,
        RP_RUNNER_STATUS_IDLE = 1,
        RP_RUNNER_STATUS_ACTIVE = 2,
        RP_RUNNER_STATUS_OFFLINE = 3,
};

const char *rp_result_name(enum rp_result r);        /* "RESULT_SUCCESS" */
int rp_result_parse(const char *name, enum rp_result *ret);

/* A protobuf Timestamp. set=false means absent (encoded as omitted). */
struct rp_ts {
        int64_t sec;
        int32_t nsec;
        bool set;
};
struct rp_ts rp_ts_now(void);
/* RFC 3339 with 'Z' and 0, 3, 6 or 9 fraction digits (util/rfc3339.h);
 * buf needs RFC3339_BUF (31) bytes. Returns the length, or -ERANGE (a year
 * outside 0001..9999), -EINVAL (nsec outside [0, 1e9)), -ENOBUFS. */
int rp_ts_format(struct rp_ts ts, char *buf, size_t n);
/* Strict RFC 3339 (rfc3339_parse()): 0 or -EINVAL, *ret untouched then. */
int rp_ts_parse(const char *s, struct rp_ts *ret);

struct rp_strlist {
        char **v;
        size_t n;
};
int rp_strlist_push(struct rp_strlist *l, const char *s);
void rp_strlist_done(struct rp_strlist *l);
bool rp_strlist_contains(const struct rp_strlist *l, const char *s);

/* Error reported by the error buffer of every decoder. */
#define RP_ERR_MAX 160

/* ---- Messages ---------------------------------------------------------- */

struct rp_ping_req { char *data; };
struct rp_ping_resp { char *data; };

struct rp_runner {
        int64_t id;
        char *uuid;
        char *token;
        char *name;
        enum rp_runner_status status;
        char *version;
        struct rp_strlist labels;
        bool ephemeral;
};

struct rp_register_req {
        char *name;
        char *token;
        char *version;
        struct rp_strlist labels;
        bool ephemeral;
};
struct rp_register_resp { struct rp_runner runner; };

struct rp_declare_req {
        char *version;
        struct rp_strlist labels;
};
struct rp_declare_resp { struct rp_runner runner; };

struct rp_fetch_task_req {
        int64_t tasks_version;
        int64_t task_capacity;          /* 0 = absent */
};

struct rp_fetch_single_task_req {
        int64_t tasks_version;
        char *handle;                   /* NULL = any job */
};

struct rp_task {
        int64_t id;
        unsigned char *workflow_payload; /* raw bytes (base64 on the wire) */
        size_t workflow_payload_len;
        json_t *context;                 /* object or NULL */
        json_t *secrets;                 /* object string->string or NULL */
        json_t *needs;                   /* object job->{outputs,result} or NULL */
        json_t *vars;                    /* object string->string or NULL */
};

struct rp_fetch_task_resp {
        struct rp_task *task;            /* NULL = no task */
        int64_t tasks_version;
        struct rp_task *additional_tasks;
        size_t n_additional_tasks;
};

/* FetchSingleTaskResponse has the same fields minus additional_tasks. */
struct rp_fetch_single_task_resp {
        struct rp_task *task;
        int64_t tasks_version;
};

struct rp_step_state {
        int64_t id;
        enum rp_result result;
        struct rp_ts started_at;
        struct rp_ts stopped_at;
        int64_t log_index;
        int64_t log_length;
};

struct rp_task_state {
        int64_t id;
        enum rp_result result;
        struct rp_ts started_at;
        struct rp_ts stopped_at;
        struct rp_step_state *steps;
        size_t n_steps;
};

struct rp_update_task_req {
        struct rp_task_state state;
        json_t *outputs;                 /* object string->string or NULL */
};

struct rp_update_task_resp {
        struct rp_task_state state;
        struct rp_strlist sent_outputs;
};

struct rp_log_row {
        struct rp_ts time;
        char *content;
};

struct rp_update_log_req {
        int64_t task_id;
        int64_t index;
        struct rp_log_row *rows;
        size_t n_rows;
        bool no_more;
};

struct rp_update_log_resp { int64_t ack_index; };

/* ---- Codec ------------------------------------------------------------- */

#define RP_DECLARE_CODEC(name)                                                  \
        json_t *rp_##name##_to_json(const struct rp_##name *m);                 \
        int rp_##name##_from_json(const json_t *j, struct rp_##name *ret,       \
                                  char *err, size_t errlen);                    \
        void rp_##name##_done(struct rp_##name *m);

RP_DECLARE_CODEC(ping_req)
RP_DECLARE_CODEC(ping_resp)
RP_DECLARE_CODEC(runner)
RP_DECLARE_CODEC(register_req)
RP_DECLARE_CODEC(register_resp)
RP_DECLARE_CODEC(declare_req)
RP_DECLARE_CODEC(declare_resp)
RP_DECLARE_CODEC(fetch_task_req)
RP_DECLARE_CODEC(fetch_single_task_req)
RP_DECLARE_CODEC(task)
RP_DECLARE_CODEC(fetch_task_resp)
RP_DECLARE_CODEC(fetch_single_task_resp)
RP_DECLARE_CODEC(task_state)
RP_DECLARE_CODEC(update_task_req)
RP_DECLARE_CODEC(update_task_resp)
RP_DECLARE_CODEC(log_row)
RP_DECLARE_CODEC(update_log_req)
RP_DECLARE_CODEC(update_log_resp)

/* Free a heap-allocated task (rp_task_done + free); accepts NULL. */
void rp_task_free(struct rp_task *t);

/* ---- Connect errors ---------------------------------------------------- */

/* Connect error codes ("unauthenticated", "invalid_argument", ...). */
enum rp_code {
        RP_CODE_OK = 0,
        RP_CODE_CANCELED,
        RP_CODE_UNKNOWN,
        RP_CODE_INVALID_ARGUMENT,
        RP_CODE_DEADLINE_EXCEEDED,
        RP_CODE_NOT_FOUND,
        RP_CODE_ALREADY_EXISTS,
        RP_CODE_PERMISSION_DENIED,
        RP_CODE_RESOURCE_EXHAUSTED,
        RP_CODE_FAILED_PRECONDITION,
        RP_CODE_ABORTED,
        RP_CODE_OUT_OF_RANGE,
        RP_CODE_UNIMPLEMENTED,
        RP_CODE_INTERNAL,
        RP_CODE_UNAVAILABLE,
        RP_CODE_DATA_LOSS,
        RP_CODE_UNAUTHENTICATED,
};

struct rp_error {
        enum rp_code code;
        char message[256];               /* decoded: longer ones end in " [cut]" */
};

const char *rp_code_name(enum rp_code c);
int rp_code_parse(const char *name, enum rp_code *ret);
/* HTTP status for a Connect error code, per the Connect protocol. */
int rp_code_http_status(enum rp_code c);
/* The code a client infers from an HTTP status when the body is unusable. */
enum rp_code rp_code_from_http_status(int status);

/* {"code": "...", "message": "..."} */
json_t *rp_error_to_json(const struct rp_error *e);
int rp_error_from_json(const json_t *j, struct rp_error *ret);

/* ---- Service paths ----------------------------------------------------- */

#define RP_PATH_PREFIX          "/api/actions/"
#define RP_SVC_PING             "ping.v1.PingService/"
#define RP_SVC_RUNNER           "runner.v1.RunnerService/"
#define RP_HDR_UUID             "x-runner-uuid"
#define RP_HDR_TOKEN            "x-runner-token"
#define RP_HDR_REQUEST_KEY      "x-runner-request-key"
