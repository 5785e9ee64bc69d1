/* outcome.h: how an instance ends, as a pure function of what was seen —
 * the worker's exit status, whether a stop was asked, the row's state, and
 * whether the forge still had the registration when it was deleted. Every
 * rule that turns those events into "completed", "exited_unclaimed" or a
 * failure is here, tested alone; instance.c only applies the result.
 * Never does I/O, never reads the clock. */
#pragma once

#include <stdbool.h>

#include "provider/provider.h"
#include "store/store.h"

struct outcome_facts {
        enum store_state state;          /* the row's state when the event came */
        bool stop_requested;             /* forgescale asked the worker to stop */
        bool claimed;                    /* a claim of its job was seen */
        bool exited;                     /* the worker is gone */
        struct provider_exit exit;       /* how, when exited (UNKNOWN: adopted,
                                          * or found gone after a restart) */
};

struct outcome {
        enum store_state final;          /* STORE_DONE or STORE_FAILED; 0: as it was */
        const char *reason;              /* NULL: as it was */
        bool claimed;                    /* count the job as claimed by it */
        bool backoff;                    /* hold the next launch for its job */
        bool exited_unclaimed;           /* the worker quit without its job:
                                          * worth a warning */
};

/* The worker exited by itself (no stop was asked). */
struct outcome outcome_worker_exited(const struct outcome_facts *f);

/* The registration is confirmed gone: deleted now, or already gone
 * (gone_before: Forgejo deletes an ephemeral runner when its task ends). */
struct outcome outcome_runner_deleted(const struct outcome_facts *f, bool gone_before);

/* The row's exit_code: the code, 128 + the signal, or -1 when unknown. */
int outcome_exit_code(const struct provider_exit *e);
