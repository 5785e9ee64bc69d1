/* test_brelay.c: what the broker changes in a relayed message, and what
 * it must not: row indexes move by the prelude, acks move back and never
 * below zero, and fields this build does not know (a newer forge's or
 * runner's) come out byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/brelay.h"
#include "runner/v1/messages.pb-c.h"

#define LOG "runner.v1.RunnerService/UpdateLog"
#define TASK "runner.v1.RunnerService/UpdateTask"

/* Field 99, varint 7, then field 98, length-delimited "new!": what a
 * newer peer might add. */
static const unsigned char UNKNOWN[] = { 0x98, 0x06, 0x07, 0x92, 0x06, 0x04, 'n', 'e', 'w', '!' };

static unsigned char *with_unknown(const ProtobufCMessage *m, size_t *ret_len)
{
        size_t n = protobuf_c_message_get_packed_size(m);
        unsigned char *buf = malloc(n + sizeof(UNKNOWN));

        assert_non_null(buf);
        protobuf_c_message_pack(m, buf);
        memcpy(buf + n, UNKNOWN, sizeof(UNKNOWN));
        *ret_len = n + sizeof(UNKNOWN);
        return buf;
}

/* The unknown bytes, once, at the end of what was packed. */
static void assert_unknown_kept(const unsigned char *b, size_t len)
{
        assert_true(len >= sizeof(UNKNOWN));
        assert_memory_equal(b + len - sizeof(UNKNOWN), UNKNOWN, sizeof(UNKNOWN));
        assert_null(memmem(b, len - sizeof(UNKNOWN), UNKNOWN, sizeof(UNKNOWN)));
}

static void log_request(void **state)
{
        Runner__V1__LogRow row = RUNNER__V1__LOG_ROW__INIT, *rows[] = { &row };
        Runner__V1__UpdateLogRequest rq = RUNNER__V1__UPDATE_LOG_REQUEST__INIT;
        size_t len, outlen;
        void *out = NULL;

        row.content = "hello";
        rq.task_id = 42;
        rq.index = 5;
        rq.n_rows = 1;
        rq.rows = rows;
        unsigned char *in = with_unknown(&rq.base, &len);
        assert_int_equal(brelay_shift_request(LOG, 1, in, len, 3, &out, &outlen), 0);
        assert_unknown_kept(out, outlen);
        Runner__V1__UpdateLogRequest *got = runner__v1__update_log_request__unpack(NULL, outlen, out);
        assert_non_null(got);
        assert_int_equal(got->index, 8);
        assert_int_equal(got->task_id, 42);
        assert_string_equal(got->rows[0]->content, "hello");
        runner__v1__update_log_request__free_unpacked(got, NULL);
        free(out);
        /* Bytes that are no message are refused, not passed on. */
        in[0] = 0xff;
        assert_int_equal(brelay_shift_request(LOG, 1, "\xff\xff\xff", 3, 3, &out, &outlen) < 0, 1);
        free(in);
}

static void task_request(void **state)
{
        Runner__V1__StepState s0 = RUNNER__V1__STEP_STATE__INIT, s1 = RUNNER__V1__STEP_STATE__INIT;
        Runner__V1__StepState *steps[] = { &s0, &s1 };
        Runner__V1__TaskState st = RUNNER__V1__TASK_STATE__INIT;
        Runner__V1__UpdateTaskRequest rq = RUNNER__V1__UPDATE_TASK_REQUEST__INIT;
        size_t len, outlen;
        void *out = NULL;

        s0.id = 0;
        s0.log_index = 0;
        s0.log_length = 4;      /* rows 0..3 */
        s1.id = 1;              /* not started: no rows, nothing to move */
        st.id = 42;
        st.result = RUNNER__V1__RESULT__RESULT_SUCCESS;
        st.n_steps = 2;
        st.steps = steps;
        rq.state = &st;
        unsigned char *in = with_unknown(&rq.base, &len);
        assert_int_equal(brelay_shift_request(TASK, 0, in, len, 3, &out, &outlen), 0);
        assert_unknown_kept(out, outlen);
        Runner__V1__UpdateTaskRequest *got = runner__v1__update_task_request__unpack(NULL, outlen, out);
        assert_non_null(got);
        assert_int_equal(got->state->steps[0]->log_index, 3);
        assert_int_equal(got->state->steps[0]->log_length, 4);
        assert_int_equal(got->state->steps[1]->log_index, 0);
        assert_int_equal(got->state->result, RUNNER__V1__RESULT__RESULT_SUCCESS);
        runner__v1__update_task_request__free_unpacked(got, NULL);
        free(out);
        free(in);
}

static void responses(void **state)
{
        Runner__V1__UpdateLogResponse lr = RUNNER__V1__UPDATE_LOG_RESPONSE__INIT;
        Runner__V1__TaskState st = RUNNER__V1__TASK_STATE__INIT;
        Runner__V1__UpdateTaskResponse tr = RUNNER__V1__UPDATE_TASK_RESPONSE__INIT;
        size_t len, outlen;
        void *out = NULL;
        int64_t ack;
        int result;

        lr.ack_index = 10;
        unsigned char *in = with_unknown(&lr.base, &len);
        assert_int_equal(brelay_shift_response(LOG, 1, in, len, 3, &out, &outlen, &ack, &result), 0);
        assert_int_equal(ack, 10);
        assert_unknown_kept(out, outlen);
        Runner__V1__UpdateLogResponse *got = runner__v1__update_log_response__unpack(NULL, outlen, out);
        assert_int_equal(got->ack_index, 7);
        runner__v1__update_log_response__free_unpacked(got, NULL);
        free(out);
        free(in);

        /* The forge has fewer rows than the prelude: the worker has none
         * acked, never a negative count. */
        lr.ack_index = 2;
        in = with_unknown(&lr.base, &len);
        assert_int_equal(brelay_shift_response(LOG, 1, in, len, 3, &out, &outlen, &ack, &result), 0);
        got = runner__v1__update_log_response__unpack(NULL, outlen, out);
        assert_int_equal(got->ack_index, 0);
        runner__v1__update_log_response__free_unpacked(got, NULL);
        free(out);
        free(in);

        /* A cancellation comes back to the worker as the forge said it. */
        st.id = 42;
        st.result = RUNNER__V1__RESULT__RESULT_CANCELLED;
        tr.state = &st;
        in = with_unknown(&tr.base, &len);
        assert_int_equal(brelay_shift_response(TASK, 0, in, len, 3, &out, &outlen, &ack, &result), 0);
        assert_int_equal(result, RUNNER__V1__RESULT__RESULT_CANCELLED);
        assert_unknown_kept(out, outlen);
        free(out);
        free(in);
}

/* A Task with an unknown field inside it, as a FetchTask answer: the
 * worker's answer carries it byte for byte, inside its task. */
static void task_payload(void **state)
{
        Runner__V1__Task task;
        size_t tlen, n = 0, outlen;
        struct brelay_task *tasks = NULL;
        json_t *resp = NULL;
        void *out = NULL;

        /* The generated INIT macro of a message with a oneof trips
         * -Wmissing-braces; its init function does the same. */
        runner__v1__task__init(&task);
        task.id = 5;
        unsigned char *tb = with_unknown(&task.base, &tlen);
        unsigned char body[256];
        size_t blen = 0;
        assert_true(tlen < 120);
        body[blen++] = 0x0a;                    /* field 1 (task), length-delimited */
        body[blen++] = (unsigned char)tlen;
        memcpy(body + blen, tb, tlen);
        blen += tlen;
        body[blen++] = 0x10;                    /* field 2 (tasks_version) */
        body[blen++] = 0x07;

        assert_int_equal(brelay_split_fetch(body, blen, &resp, &tasks, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(tasks[0].id, 5);
        assert_int_equal(tasks[0].len, tlen);
        assert_memory_equal(tasks[0].pb, tb, tlen);     /* unknown field kept */
        assert_string_equal(json_string_value(json_object_get(json_object_get(resp, "task"), "id")), "5");
        assert_string_equal(json_string_value(json_object_get(resp, "tasksVersion")), "7");

        assert_int_equal(brelay_fetch_answer("runner.v1.RunnerService/FetchTask", tasks[0].pb, tasks[0].len, 1,
                                             &out, &outlen), 0);
        assert_non_null(memmem(out, outlen, UNKNOWN, sizeof(UNKNOWN)));
        Runner__V1__FetchTaskResponse *fr = runner__v1__fetch_task_response__unpack(NULL, outlen, out);
        assert_non_null(fr);
        assert_int_equal(fr->task->id, 5);
        assert_int_equal(fr->tasks_version, 1);
        runner__v1__fetch_task_response__free_unpacked(fr, NULL);
        free(out);
        /* No task: an answer without one. */
        assert_int_equal(brelay_fetch_answer("runner.v1.RunnerService/FetchSingleTask", NULL, 0, 1, &out, &outlen),
                         0);
        Runner__V1__FetchSingleTaskResponse *sr = runner__v1__fetch_single_task_response__unpack(NULL, outlen, out);
        assert_null(sr->task);
        runner__v1__fetch_single_task_response__free_unpacked(sr, NULL);
        free(out);
        brelay_tasks_free(tasks, n);
        json_decref(resp);
        /* Bytes that are no answer. */
        assert_true(brelay_split_fetch("\x0a\x7f", 2, &resp, &tasks, &n) < 0);
        free(tb);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(log_request),
                cmocka_unit_test(task_request),
                cmocka_unit_test(responses),
                cmocka_unit_test(task_payload),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
