/* task.h: runs one task in host mode: a fresh work directory, each `run:`
 * step as `sh -e FILE` in its own process group with stdout and stderr
 * merged into the task log, reporting every report interval, cancellation
 * (server, deleted runner, SIGINT/SIGTERM, runner.timeout) by killing the
 * step's group, and the final report. Removes the work directory. */
#pragma once

#include "forge/rpc.h"
#include "settings.h"

/* Runs t to its end. Returns the job result (SUCCESS, FAILURE or
 * CANCELLED); the result is reported to the server, not returned as an
 * error. Only setup failures that prevent any reporting return < 0. */
int task_run(struct rpc_client *rpc, const struct settings *s, const struct rp_task *t);
