/* bstatus.c: what the broker engine shows of a broker pool to the HTTP
 * API and the metrics (broker.h). Reads the engine's state, never changes
 * it. */
#include "engine/broker.h"
#include "engine/broker_int.h"

#include <errno.h>
#include <string.h>

static const char *runner_state(const struct bpool *bp)
{
        switch (bp->state) {
        case BP_NEW: return "unregistered";
        case BP_REGISTERING: return "registering";
        case BP_DECLARING: return "declaring";
        case BP_READY: return bp->failures ? "failing" : "ready";
        }
        return "?";
}

int broker_pool_status(const struct daemon *d, const char *pool, struct broker_pool_status *ret)
{
        const struct broker *b = d->broker;
        const struct bpool *bp = NULL;

        for (size_t i = 0; b && i < b->n_pools && !bp; i++)
                if (strcmp(b->pools[i]->name, pool) == 0)
                        bp = b->pools[i];
        if (!bp)
                return -ENOENT;
        *ret = (struct broker_pool_status){
                .runner = runner_state(bp), .runner_id = bp->runner_id, .room = bp->room,
                .tasks_version = bp->tasks_version,
        };
        for (size_t i = 0; i < b->n_tasks; i++) {
                const struct btask *t = b->tasks[i];
                if (t->bp != bp)
                        continue;
                switch (t->row.state) {
                case STORE_TASK_HELD: ret->held++; break;
                case STORE_TASK_RUNNING: ret->running++; break;
                case STORE_TASK_FINISHING: ret->finishing++; break;
                case STORE_TASK_DONE: break;
                }
                for (const struct brelay *r = t->relays; r; r = r->next)
                        ret->relays++;
        }
        return 0;
}
