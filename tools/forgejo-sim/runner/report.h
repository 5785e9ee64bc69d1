/* report.h: how forgejo-sim-runner tells the server about a running task:
 * UpdateLog with the unacknowledged rows (resent from the server's ack) and
 * UpdateTask with the task state, every report interval and once more,
 * with bounded retries, when the task ends. Notices server-side
 * cancellation (UpdateTask result CANCELLED/FAILURE) and a deleted runner
 * (unauthenticated). Logs through log.h; never logs the token. */
#pragma once

#include "forge/rpc.h"
#include "joblog.h"

#include <stdbool.h>
#include <stdint.h>

#define REPORT_ROWS_PER_CALL 1000u

struct report {
        struct rpc_client *rpc;          /* borrowed */
        struct joblog *log;              /* borrowed */
        struct rp_task_state *state;     /* borrowed */
        long timeout_ms;                 /* per call */
        bool unauthenticated;            /* the runner no longer exists */
        bool server_stop;                /* server says CANCELLED/FAILURE */
        bool log_closed;                 /* no_more accepted or log refused */
        bool data_loss_warned;
};

/* One periodic report: UpdateLog (a few batches) then UpdateTask.
 * Errors are logged and left for the next tick. */
void report_tick(struct report *rep);

/* The final report: UpdateLog(no_more) until every row is acknowledged,
 * then UpdateTask with the final state, each with up to max_retries
 * retries, the delay starting at initial_ms and doubling (capped at
 * max_delay_ms unless 0). Gives up early on errors that retrying cannot
 * fix or when abort_fn returns true. Returns 0 when the final state was
 * accepted, else a negative errno. */
int report_close(struct report *rep, int64_t max_retries, int64_t initial_ms,
                 int64_t max_delay_ms, bool (*abort_fn)(void));
