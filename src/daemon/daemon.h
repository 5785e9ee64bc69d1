/* daemon.h: `forgescale run`: queue mode — keeps every pool's ephemeral
 * runners matched to its waiting jobs. Owns the event loop wiring of the
 * forge clients, the store, the providers and the HTTP endpoint.
 * Never exits the process; the CLI owns exit codes. */
#pragma once

#include <stdbool.h>

#include "config/config.h"

/* Runs until SIGINT/SIGTERM; SIGHUP reloads the configuration from
 * cfg->path. The config is borrowed (tokens loaded). log_from_config: the
 * log level and format follow the configuration on reload (no command-line
 * override). Returns 0 on a clean stop, -EBUSY when another daemon holds
 * state_dir, -errno when start-up failed (logged). */
int daemon_run(struct config *cfg, bool log_from_config);

/* Loads a configuration as `run` needs it: parsed, checked, files and
 * tokens read. Every problem is logged; returns 0 or -errno. */
int daemon_load_config(const char *path, struct config **ret_cfg);

/* What this build can run, for config_check_runnable(): a provider type
 * whose provider is built in, a pool mode whose engine is. */
bool daemon_type_runnable(enum config_provider_type t, void *ud);
bool daemon_mode_runnable(enum config_pool_mode m, void *ud);
