/* outcome.c: see outcome.h. */
#include "daemon/outcome.h"

static bool clean_exit(const struct provider_exit *e)
{
        return e->kind == PROVIDER_EXIT_CODE && e->code == 0;
}

struct outcome outcome_worker_exited(const struct outcome_facts *f)
{
        if (f->state == STORE_RUNNING)
                return (struct outcome){ .final = STORE_DONE, .reason = "completed" };
        /* one-job exits 0 only after a task; the claim may have happened
         * between two listings. */
        if (clean_exit(&f->exit))
                return (struct outcome){ .final = STORE_DONE, .reason = "completed", .claimed = true };
        /* An adopted worker: its status is unknowable. The registration
         * decides (outcome_runner_deleted). */
        if (f->exit.kind == PROVIDER_EXIT_UNKNOWN)
                return (struct outcome){ .final = STORE_FAILED };
        return (struct outcome){ .final = STORE_FAILED, .reason = "exited_unclaimed", .backoff = true,
                                 .exited_unclaimed = true };
}

struct outcome outcome_runner_deleted(const struct outcome_facts *f, bool gone_before)
{
        bool clean_or_unknown = clean_exit(&f->exit) || f->exit.kind == PROVIDER_EXIT_UNKNOWN;

        if (!f->exited || f->stop_requested)
                return (struct outcome){ 0 };
        /* Forgejo deletes an ephemeral runner when its task reaches a final
         * state: a registration already gone after a clean (or unknown)
         * exit means the worker ran its job. */
        if (gone_before && clean_or_unknown)
                return (struct outcome){ .final = STORE_DONE, .reason = "completed", .claimed = true };
        if (f->exit.kind == PROVIDER_EXIT_UNKNOWN && !f->claimed)
                return (struct outcome){ .reason = "exited_unclaimed", .backoff = true };
        return (struct outcome){ 0 };
}

int outcome_exit_code(const struct provider_exit *e)
{
        switch (e->kind) {
        case PROVIDER_EXIT_CODE:
                return e->code;
        case PROVIDER_EXIT_SIGNAL:
                return 128 + e->signal;
        case PROVIDER_EXIT_UNKNOWN:
                break;
        }
        return -1;
}
