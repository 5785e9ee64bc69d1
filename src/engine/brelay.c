/* brelay.c: see brelay.h. */
#include "engine/brelay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "forge/rpcodec.h"
#include "runner/v1/messages.pb-c.h"

int brelay_shift_request(const char *method, int log, const void *body, size_t len, int64_t shift, void **ret,
                         size_t *ret_len)
{
        char err[RP_ERR_MAX];
        ProtobufCMessage *m = NULL;
        int r = rpcodec_unpack(method, RPCODEC_REQUEST, body, len, &m, err);

        if (r < 0)
                return r;
        if (log) {
                ((Runner__V1__UpdateLogRequest *)m)->index += shift;
        } else {
                Runner__V1__TaskState *st = ((Runner__V1__UpdateTaskRequest *)m)->state;
                for (size_t i = 0; st && i < st->n_steps; i++)
                        if (st->steps[i]->log_index || st->steps[i]->log_length)
                                st->steps[i]->log_index += shift;
        }
        r = rpcodec_pack(m, ret, ret_len);
        rpcodec_free(m);
        return r;
}

int brelay_shift_response(const char *method, int log, const void *body, size_t len, int64_t shift,
                          void **ret, size_t *ret_len, int64_t *ret_ack, int *ret_result)
{
        char err[RP_ERR_MAX];
        ProtobufCMessage *m = NULL;
        int r = rpcodec_unpack(method, RPCODEC_RESPONSE, body, len, &m, err);

        if (r < 0)
                return r;
        *ret_ack = 0;
        *ret_result = 0;
        if (log) {
                Runner__V1__UpdateLogResponse *lr = (Runner__V1__UpdateLogResponse *)m;
                *ret_ack = lr->ack_index;
                /* A worker is never told more than the forge acked. */
                lr->ack_index = lr->ack_index - shift > 0 ? lr->ack_index - shift : 0;
        } else {
                Runner__V1__UpdateTaskResponse *tr = (Runner__V1__UpdateTaskResponse *)m;
                *ret_result = tr->state ? (int)tr->state->result : 0;
        }
        r = rpcodec_pack(m, ret, ret_len);
        rpcodec_free(m);
        return r;
}

void brelay_tasks_free(struct brelay_task *t, size_t n)
{
        for (size_t i = 0; t && i < n; i++) {
                explicit_bzero(t[i].pb, t[i].len);
                free(t[i].pb);
        }
        free(t);
}

static int pack_task(const Runner__V1__Task *task, struct brelay_task *out)
{
        size_t n = protobuf_c_message_get_packed_size(&task->base);

        out->id = task->id;
        out->len = n;
        out->pb = malloc(n ? n : 1);
        if (!out->pb)
                return -ENOMEM;
        protobuf_c_message_pack(&task->base, out->pb);
        return 0;
}

int brelay_split_fetch(const void *body, size_t len, json_t **ret_resp, struct brelay_task **ret_tasks,
                       size_t *ret_n)
{
        char err[RP_ERR_MAX];
        ProtobufCMessage *m = NULL;
        struct brelay_task *tasks = NULL;
        json_t *j = NULL;
        size_t n = 0;
        int r = rpcodec_unpack("runner.v1.RunnerService/FetchTask", RPCODEC_RESPONSE, body, len, &m, err);

        if (r < 0)
                return r;
        Runner__V1__FetchTaskResponse *fr = (Runner__V1__FetchTaskResponse *)m;
        if ((r = rpcodec_message_to_json(m, &j, err)) < 0)
                goto out;
        tasks = calloc(fr->n_additional_tasks + 1, sizeof(*tasks));
        r = -ENOMEM;
        if (!tasks)
                goto out;
        if (fr->task && (r = pack_task(fr->task, &tasks[n++])) < 0)
                goto out;
        for (size_t i = 0; i < fr->n_additional_tasks; i++)
                if ((r = pack_task(fr->additional_tasks[i], &tasks[n++])) < 0)
                        goto out;
        *ret_resp = j;
        *ret_tasks = tasks;
        *ret_n = n;
        j = NULL;
        tasks = NULL;
        r = 0;
out:
        brelay_tasks_free(tasks, n);
        json_decref(j);
        rpcodec_free(m);
        return r;
}

int brelay_fetch_answer(const char *method, const void *task_pb, size_t task_len, int64_t tasks_version,
                        void **ret, size_t *ret_len)
{
        Runner__V1__Task *task = NULL;
        int r;

        if (task_pb && !(task = runner__v1__task__unpack(NULL, task_len, task_pb)))
                return -EINVAL;
        if (strstr(method, "FetchSingleTask")) {
                Runner__V1__FetchSingleTaskResponse out = RUNNER__V1__FETCH_SINGLE_TASK_RESPONSE__INIT;
                out.task = task;
                out.tasks_version = tasks_version;
                r = rpcodec_pack(&out.base, ret, ret_len);
        } else {
                Runner__V1__FetchTaskResponse out = RUNNER__V1__FETCH_TASK_RESPONSE__INIT;
                out.task = task;
                out.tasks_version = tasks_version;
                r = rpcodec_pack(&out.base, ret, ret_len);
        }
        if (task)
                runner__v1__task__free_unpacked(task, NULL);
        return r;
}
