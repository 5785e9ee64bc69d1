/* brelay.h: what the broker changes in a message it relays between a
 * worker and the forge: the row indexes, moved by the rows forgescale
 * wrote ahead of the worker's. On protobuf bytes, so that every field this
 * build does not know passes through unchanged. Pure: no I/O, no logging. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* A worker's UpdateLog (log true: index) or UpdateTask (steps' log_index,
 * for steps that have rows) request, shifted up by shift. Returns 0 with
 * *ret malloc'd, or the -errno of rpcodec_unpack/pack (-EINVAL for bytes
 * that do not decode). */
int brelay_shift_request(const char *method, int log, const void *body, size_t len, int64_t shift, void **ret,
                         size_t *ret_len);

/* The forge's UpdateLog answer with its ack shifted down (never below 0),
 * its ack as the forge gave it in *ret_ack; or an UpdateTask answer as it
 * came, the result it carries in *ret_result. Returns 0 with *ret
 * malloc'd, or -errno. */
int brelay_shift_response(const char *method, int log, const void *body, size_t len, int64_t shift,
                          void **ret, size_t *ret_len, int64_t *ret_ack, int *ret_result);

/* One task of a FetchTask answer: its id and the Task message as protobuf
 * bytes, fields this build does not know included. */
struct brelay_task {
        int64_t id;
        void *pb;                       /* malloc'd; holds the job's secrets */
        size_t len;
};

/* A protobuf FetchTask answer: *ret_resp the whole answer in protojson (a
 * new reference), and every task in it (task, then additional_tasks) as
 * bytes in *ret_tasks (release with brelay_tasks_free). 0 or -errno
 * (-EINVAL: the answer does not decode). */
int brelay_split_fetch(const void *body, size_t len, json_t **ret_resp, struct brelay_task **ret_tasks,
                       size_t *ret_n);
void brelay_tasks_free(struct brelay_task *t, size_t n);

/* The answer to a worker's FetchTask or FetchSingleTask (method) carrying
 * the task's bytes as they came from the forge (NULL: no task). 0 with
 * *ret malloc'd, or -errno. */
int brelay_fetch_answer(const char *method, const void *task_pb, size_t task_len, int64_t tasks_version,
                        void **ret, size_t *ret_len);
