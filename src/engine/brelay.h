/* brelay.h: what the broker changes in a message it relays between a
 * worker and the forge: the row indexes, moved by the rows forgescale
 * wrote ahead of the worker's. On protobuf bytes, so that every field this
 * build does not know passes through unchanged. Pure: no I/O, no logging. */
#pragma once

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
