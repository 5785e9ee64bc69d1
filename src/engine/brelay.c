/* brelay.c: see brelay.h. */
#include "engine/brelay.h"

#include <errno.h>

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
