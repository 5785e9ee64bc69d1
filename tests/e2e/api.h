/* api.h: JSON over HTTP to the simulator for the end-to-end tests (REST
 * with an optional token, and the /_sim control routes). One kept-alive
 * connection; bodies bounded by httpc. Never asserts. */
#pragma once

#include <jansson.h>

/* base like "http://127.0.0.1:PORT"; copied. Returns 0 or -ENOMEM. */
int api_init(const char *base);
void api_done(void);

/* Sends method path with body (borrowed, may be NULL) and an optional
 * "Authorization: token T". Returns the parsed response (a new reference;
 * JSON null for an empty body) and its status in *ret_status, or NULL on a
 * transport error or a body that is not JSON (status still set, -1 when
 * no answer). */
json_t *api_call(const char *method, const char *path, const json_t *body,
                 const char *token, long *ret_status);
