/* fuzz_rproto.c: libFuzzer target for the runner-protocol codec (rproto.h).
 * The input, when it is JSON, goes through the decoder of every message
 * type and the Connect error; whatever decodes is encoded, sent through
 * text as on the wire, decoded again, and must equal the first decode,
 * field by field, and encode to the same JSON (round-trip stability). A
 * failed decode must leave a reason and a zeroed struct. Never does I/O. */
#include "forge/rproto.h"
#include "fuzz_check.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- equality, with protojson's defaults: an absent string is "", an
 * absent map is an empty one ----------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
        return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool strlist_eq(const struct rp_strlist *a, const struct rp_strlist *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (strcmp(a->v[i], b->v[i]) != 0)
                        return false;
        return true;
}

static bool ts_eq(struct rp_ts a, struct rp_ts b)
{
        return a.set == b.set && (!a.set || (a.sec == b.sec && a.nsec == b.nsec));
}

/* Maps: NULL and {} are the same message. */
static bool map_eq(const json_t *a, const json_t *b)
{
        if (!a || !b) {
                const json_t *x = a ? a : b;
                return !x || (json_is_object(x) && json_object_size(x) == 0);
        }
        return json_equal(a, b);
}

static bool ping_req_eq(const struct rp_ping_req *a, const struct rp_ping_req *b)
{
        return str_eq(a->data, b->data);
}

static bool ping_resp_eq(const struct rp_ping_resp *a, const struct rp_ping_resp *b)
{
        return str_eq(a->data, b->data);
}

static bool runner_eq(const struct rp_runner *a, const struct rp_runner *b)
{
        return a->id == b->id && str_eq(a->uuid, b->uuid) && str_eq(a->token, b->token) &&
               str_eq(a->name, b->name) && a->status == b->status &&
               str_eq(a->version, b->version) && strlist_eq(&a->labels, &b->labels) &&
               a->ephemeral == b->ephemeral;
}

static bool register_req_eq(const struct rp_register_req *a, const struct rp_register_req *b)
{
        return str_eq(a->name, b->name) && str_eq(a->token, b->token) &&
               str_eq(a->version, b->version) && strlist_eq(&a->labels, &b->labels) &&
               a->ephemeral == b->ephemeral;
}

static bool register_resp_eq(const struct rp_register_resp *a, const struct rp_register_resp *b)
{
        return runner_eq(&a->runner, &b->runner);
}

static bool declare_req_eq(const struct rp_declare_req *a, const struct rp_declare_req *b)
{
        return str_eq(a->version, b->version) && strlist_eq(&a->labels, &b->labels);
}

static bool declare_resp_eq(const struct rp_declare_resp *a, const struct rp_declare_resp *b)
{
        return runner_eq(&a->runner, &b->runner);
}

static bool fetch_task_req_eq(const struct rp_fetch_task_req *a,
                              const struct rp_fetch_task_req *b)
{
        return a->tasks_version == b->tasks_version && a->task_capacity == b->task_capacity;
}

static bool fetch_single_task_req_eq(const struct rp_fetch_single_task_req *a,
                                     const struct rp_fetch_single_task_req *b)
{
        return a->tasks_version == b->tasks_version && str_eq(a->handle, b->handle);
}

static bool task_eq(const struct rp_task *a, const struct rp_task *b)
{
        if (!a || !b)
                return a == b;
        return a->id == b->id && a->workflow_payload_len == b->workflow_payload_len &&
               (a->workflow_payload_len == 0 ||
                memcmp(a->workflow_payload, b->workflow_payload, a->workflow_payload_len) == 0) &&
               map_eq(a->context, b->context) && map_eq(a->secrets, b->secrets) &&
               map_eq(a->needs, b->needs) && map_eq(a->vars, b->vars);
}

static bool fetch_task_resp_eq(const struct rp_fetch_task_resp *a,
                               const struct rp_fetch_task_resp *b)
{
        if (!task_eq(a->task, b->task) || a->tasks_version != b->tasks_version ||
            a->n_additional_tasks != b->n_additional_tasks)
                return false;
        for (size_t i = 0; i < a->n_additional_tasks; i++)
                if (!task_eq(&a->additional_tasks[i], &b->additional_tasks[i]))
                        return false;
        return true;
}

static bool fetch_single_task_resp_eq(const struct rp_fetch_single_task_resp *a,
                                      const struct rp_fetch_single_task_resp *b)
{
        return task_eq(a->task, b->task) && a->tasks_version == b->tasks_version;
}

static bool task_state_eq(const struct rp_task_state *a, const struct rp_task_state *b)
{
        if (a->id != b->id || a->result != b->result || !ts_eq(a->started_at, b->started_at) ||
            !ts_eq(a->stopped_at, b->stopped_at) || a->n_steps != b->n_steps)
                return false;
        for (size_t i = 0; i < a->n_steps; i++) {
                const struct rp_step_state *x = &a->steps[i], *y = &b->steps[i];
                if (x->id != y->id || x->result != y->result ||
                    !ts_eq(x->started_at, y->started_at) || !ts_eq(x->stopped_at, y->stopped_at) ||
                    x->log_index != y->log_index || x->log_length != y->log_length)
                        return false;
        }
        return true;
}

static bool update_task_req_eq(const struct rp_update_task_req *a,
                               const struct rp_update_task_req *b)
{
        return task_state_eq(&a->state, &b->state) && map_eq(a->outputs, b->outputs);
}

static bool update_task_resp_eq(const struct rp_update_task_resp *a,
                                const struct rp_update_task_resp *b)
{
        return task_state_eq(&a->state, &b->state) && strlist_eq(&a->sent_outputs, &b->sent_outputs);
}

static bool log_row_eq(const struct rp_log_row *a, const struct rp_log_row *b)
{
        return ts_eq(a->time, b->time) && str_eq(a->content, b->content);
}

static bool update_log_req_eq(const struct rp_update_log_req *a,
                              const struct rp_update_log_req *b)
{
        if (a->task_id != b->task_id || a->index != b->index || a->no_more != b->no_more ||
            a->n_rows != b->n_rows)
                return false;
        for (size_t i = 0; i < a->n_rows; i++)
                if (!log_row_eq(&a->rows[i], &b->rows[i]))
                        return false;
        return true;
}

static bool update_log_resp_eq(const struct rp_update_log_resp *a,
                               const struct rp_update_log_resp *b)
{
        return a->ack_index == b->ack_index;
}

/* ---- the round trip ------------------------------------------------------- */

/* j as the peer receives it: dumped to text and parsed back. */
static json_t *wire(const json_t *j, const char *type)
{
        char *text = json_dumps(j, JSON_COMPACT);
        json_error_t e;
        json_t *back;

        FUZZ_CHECK(text, "%s: the encoding cannot be written as JSON text", type);
        back = json_loads(text, 0, &e);
        FUZZ_CHECK(back, "%s: the encoding does not parse back (%s): %s", type, e.text, text);
        fuzz_sink(text, strlen(text));
        free(text);
        return back;
}

static void check_reason(const char *type, int r, const char *err)
{
        FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "%s: decode returned %d", type, r);
        FUZZ_CHECK(err[0], "%s: decode failed (%d) without a reason", type, r);
        fuzz_sink(err, strlen(err));
}

static bool zeroed(const void *p, size_t n)
{
        const unsigned char *b = p;

        for (size_t i = 0; i < n; i++)
                if (b[i])
                        return false;
        return true;
}

static void dump_mismatch(const char *type, const json_t *in, const json_t *e1, const json_t *e2)
{
        char *a = json_dumps(in, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *b = json_dumps(e1, JSON_COMPACT | JSON_SORT_KEYS);
        char *c = e2 ? json_dumps(e2, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

        fprintf(stderr, "%s round trip:\n  input   %s\n  encoded %s\n  again   %s\n", type,
                a ? a : "?", b ? b : "?", c ? c : "-");
        free(a);
        free(b);
        free(c);
}

#define ROUND_TRIP(T)                                                                   \
        static void round_trip_##T(const json_t *in)                                    \
        {                                                                               \
                struct rp_##T first, second;                                            \
                char err[RP_ERR_MAX] = "";                                              \
                json_t *e1, *w, *e2;                                                    \
                int r;                                                                  \
                                                                                        \
                memset(&first, 0x5a, sizeof(first));                                    \
                r = rp_##T##_from_json(in, &first, err, sizeof(err));                   \
                if (r < 0) {                                                            \
                        check_reason(#T, r, err);                                       \
                        FUZZ_CHECK(zeroed(&first, sizeof(first)),                       \
                                   #T ": failed decode left the struct dirty");         \
                        return;                                                         \
                }                                                                       \
                e1 = rp_##T##_to_json(&first);                                          \
                if (!e1)                                                                \
                        dump_mismatch(#T, in, NULL, NULL);                              \
                FUZZ_CHECK(e1, #T ": a decoded message does not encode");               \
                w = wire(e1, #T);                                                       \
                r = rp_##T##_from_json(w, &second, err, sizeof(err));                   \
                if (r < 0)                                                              \
                        dump_mismatch(#T, in, e1, NULL);                                \
                FUZZ_CHECK(r == 0, #T ": own encoding does not decode: %s", err);       \
                e2 = rp_##T##_to_json(&second);                                         \
                if (!T##_eq(&first, &second) || !e2 || !json_equal(e1, e2))             \
                        dump_mismatch(#T, in, e1, e2);                                  \
                FUZZ_CHECK(T##_eq(&first, &second), #T ": second decode differs");      \
                FUZZ_CHECK(e2 && json_equal(e1, e2), #T ": second encoding differs");   \
                json_decref(e1);                                                        \
                json_decref(w);                                                         \
                json_decref(e2);                                                        \
                rp_##T##_done(&first);                                                  \
                rp_##T##_done(&second);                                                 \
        }

ROUND_TRIP(ping_req)
ROUND_TRIP(ping_resp)
ROUND_TRIP(runner)
ROUND_TRIP(register_req)
ROUND_TRIP(register_resp)
ROUND_TRIP(declare_req)
ROUND_TRIP(declare_resp)
ROUND_TRIP(fetch_task_req)
ROUND_TRIP(fetch_single_task_req)
ROUND_TRIP(task)
ROUND_TRIP(fetch_task_resp)
ROUND_TRIP(fetch_single_task_resp)
ROUND_TRIP(task_state)
ROUND_TRIP(update_task_req)
ROUND_TRIP(update_task_resp)
ROUND_TRIP(log_row)
ROUND_TRIP(update_log_req)
ROUND_TRIP(update_log_resp)

/* The Connect error has its own shape: no reason buffer, a bounded
 * message that is cut with " [cut]". */
static void round_trip_error(const json_t *in)
{
        struct rp_error first, second;
        json_t *e1, *w, *e2;

        if (rp_error_from_json(in, &first) < 0)
                return;
        FUZZ_CHECK(memchr(first.message, '\0', sizeof(first.message)),
                   "error: message not NUL-terminated");
        e1 = rp_error_to_json(&first);
        if (!e1)
                dump_mismatch("error", in, NULL, NULL);
        FUZZ_CHECK(e1, "error: a decoded error does not encode");
        w = wire(e1, "error");
        FUZZ_CHECK(rp_error_from_json(w, &second) == 0, "error: own encoding does not decode");
        e2 = rp_error_to_json(&second);
        if (first.code != second.code || strcmp(first.message, second.message) != 0 || !e2 ||
            !json_equal(e1, e2))
                dump_mismatch("error", in, e1, e2);
        FUZZ_CHECK(first.code == second.code && strcmp(first.message, second.message) == 0,
                   "error: second decode differs");
        FUZZ_CHECK(e2 && json_equal(e1, e2), "error: second encoding differs");
        fuzz_sink(first.message, strlen(first.message));
        json_decref(e1);
        json_decref(w);
        json_decref(e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        json_t *in = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);

        if (!in)
                return 0;
        round_trip_ping_req(in);
        round_trip_ping_resp(in);
        round_trip_runner(in);
        round_trip_register_req(in);
        round_trip_register_resp(in);
        round_trip_declare_req(in);
        round_trip_declare_resp(in);
        round_trip_fetch_task_req(in);
        round_trip_fetch_single_task_req(in);
        round_trip_task(in);
        round_trip_fetch_task_resp(in);
        round_trip_fetch_single_task_resp(in);
        round_trip_task_state(in);
        round_trip_update_task_req(in);
        round_trip_update_task_resp(in);
        round_trip_log_row(in);
        round_trip_update_log_req(in);
        round_trip_update_log_resp(in);
        round_trip_error(in);
        json_decref(in);
        return 0;
}
