/* report.c: see report.h. The only file of the runner that calls UpdateLog
 * and UpdateTask. */
#include "report.h"

#include "sig.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define COMP "runner"

static const char m_log[] = RP_SVC_RUNNER "UpdateLog";
static const char m_task[] = RP_SVC_RUNNER "UpdateTask";

/* Errors that another attempt cannot fix. */
static bool permanent(int r, const struct rp_error *e)
{
        if (r != -EPROTO)
                return false;
        switch (e->code) {
        case RP_CODE_UNAUTHENTICATED:
        case RP_CODE_PERMISSION_DENIED:
        case RP_CODE_NOT_FOUND:
        case RP_CODE_INVALID_ARGUMENT:
        case RP_CODE_ALREADY_EXISTS:
        case RP_CODE_FAILED_PRECONDITION:
        case RP_CODE_UNIMPLEMENTED:
                return true;
        default:
                return false;
        }
}

static void note_error(struct report *rep, const char *what, int r, const struct rp_error *e)
{
        if (r == -EPROTO && e->code == RP_CODE_UNAUTHENTICATED) {
                /* Expected after a cancel: the server deletes an ephemeral runner. */
                if (!rep->unauthenticated)
                        log_info(COMP, "the server no longer knows this runner", KS("call", what),
                                 KS("detail", e->message));
                rep->unauthenticated = true;
                return;
        }
        if (r == -EPROTO)
                log_warn(COMP, "report failed", KS("call", what), KS("code", rp_code_name(e->code)),
                         KS("detail", e->message));
        else
                log_warn(COMP, "report failed", KS("call", what), KERR(r), KS("detail", e->message));
}

/* One UpdateLog with up to REPORT_ROWS_PER_CALL pending rows. */
static int send_log(struct report *rep, bool no_more)
{
        struct joblog *jl = rep->log;
        size_t n = jl->n < REPORT_ROWS_PER_CALL ? jl->n : REPORT_ROWS_PER_CALL;
        struct rp_update_log_req req = {
                .task_id = rep->state->id,
                .index = jl->base,
                .rows = jl->rows,
                .n_rows = n,
                .no_more = no_more && n == jl->n,
        };
        struct rp_update_log_resp resp = { 0 };
        struct rp_error e;
        char err[RP_ERR_MAX];
        json_t *jreq, *jresp = NULL;
        int r;

        jreq = rp_update_log_req_to_json(&req);
        if (!jreq)
                return -ENOMEM;
        rep->rpc->timeout_ms = rep->timeout_ms;
        r = rpc_call(rep->rpc, m_log, jreq, NULL, &jresp, &e);
        json_decref(jreq);
        if (r < 0) {
                note_error(rep, "UpdateLog", r, &e);
                if (r == -EPROTO && e.code == RP_CODE_ALREADY_EXISTS)
                        rep->log_closed = true; /* archived: nothing more can go in */
                return permanent(r, &e) ? -EPERM : r;
        }
        r = rp_update_log_resp_from_json(jresp, &resp, err, sizeof(err));
        json_decref(jresp);
        if (r < 0) {
                log_warn(COMP, "bad UpdateLog response", KS("reason", err));
                return r;
        }
        if (resp.ack_index < jl->base && !rep->data_loss_warned) {
                rep->data_loss_warned = true;
                log_warn(COMP, "server acknowledged fewer log rows than before",
                         KI("ack_index", resp.ack_index), KI("sent_from", jl->base));
        }
        joblog_ack(jl, resp.ack_index);
        if (req.no_more && jl->n == 0)
                rep->log_closed = true;
        rp_update_log_resp_done(&resp);
        return 0;
}

static int send_state(struct report *rep)
{
        struct rp_update_task_req req = { .state = *rep->state };
        struct rp_update_task_resp resp = { 0 };
        struct rp_error e;
        char err[RP_ERR_MAX];
        json_t *jreq, *jresp = NULL;
        int r;

        jreq = rp_update_task_req_to_json(&req);
        if (!jreq)
                return -ENOMEM;
        rep->rpc->timeout_ms = rep->timeout_ms;
        r = rpc_call(rep->rpc, m_task, jreq, NULL, &jresp, &e);
        json_decref(jreq);
        if (r < 0) {
                note_error(rep, "UpdateTask", r, &e);
                return permanent(r, &e) ? -EPERM : r;
        }
        r = rp_update_task_resp_from_json(jresp, &resp, err, sizeof(err));
        json_decref(jresp);
        if (r < 0) {
                log_warn(COMP, "bad UpdateTask response", KS("reason", err));
                return r;
        }
        if (rep->state->result == RP_RESULT_UNSPECIFIED &&
            (resp.state.result == RP_RESULT_CANCELLED || resp.state.result == RP_RESULT_FAILURE) &&
            !rep->server_stop) {
                rep->server_stop = true;
                log_info(COMP, "server stopped the task", KI("task_id", rep->state->id),
                         KS("result", rp_result_name(resp.state.result)));
        }
        rp_update_task_resp_done(&resp);
        return 0;
}

void report_tick(struct report *rep)
{
        /* A few batches per tick so a chatty step cannot outrun the log. */
        for (int i = 0; i < 5 && rep->log->n > 0 && !rep->log_closed; i++) {
                int64_t before = rep->log->base;
                if (send_log(rep, false) < 0 || rep->log->base == before)
                        break;
        }
        if (!rep->unauthenticated)
                (void)send_state(rep);
}

static bool backoff(int64_t *delay, int64_t max_delay, bool (*abort_fn)(void))
{
        int64_t d = *delay;

        (void)sig_sleep(d);
        *delay = d * 2;
        if (max_delay > 0 && *delay > max_delay)
                *delay = max_delay;
        return !(abort_fn && abort_fn());
}

int report_close(struct report *rep, int64_t max_retries, int64_t initial_ms,
                 int64_t max_delay_ms, bool (*abort_fn)(void))
{
        int64_t delay = initial_ms > 0 ? initial_ms : 1, tries = 0;
        int r = 0;

        while (!rep->log_closed && !rep->unauthenticated) {
                int64_t before = rep->log->base;
                r = send_log(rep, true);
                if (r == -EPERM)
                        break;
                if (r == 0 && (rep->log_closed || rep->log->base > before))
                        continue; /* progress: next batch at once */
                if (++tries > max_retries || !backoff(&delay, max_delay_ms, abort_fn))
                        break;
        }
        if (!rep->log_closed && !rep->unauthenticated)
                log_warn(COMP, "could not upload the whole log", KI("task_id", rep->state->id),
                         KI("rows_pending", rep->log->n));

        delay = initial_ms > 0 ? initial_ms : 1;
        tries = 0;
        for (;;) {
                if (rep->unauthenticated) {
                        r = -EPERM;
                        break;
                }
                r = send_state(rep);
                if (r == 0 || r == -EPERM)
                        break;
                if (++tries > max_retries || !backoff(&delay, max_delay_ms, abort_fn))
                        break;
        }
        return r;
}
