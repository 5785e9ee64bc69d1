/* daemon.h: `forgescale run`: queue mode — keeps every pool's ephemeral
 * runners matched to its waiting jobs. Owns the event loop wiring of the
 * forge clients, the store, the providers and the HTTP endpoint.
 * Never exits the process; the CLI owns exit codes. */
#pragma once

struct config;

/* Runs until SIGINT/SIGTERM. The config is borrowed (tokens loaded).
 * Returns 0 on a clean stop, -errno when start-up failed (logged). */
int daemon_run(struct config *cfg);
