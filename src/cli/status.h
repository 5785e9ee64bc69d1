/* status.h: `forgescale status`: asks a running daemon for its pools
 * (GET /v1/pools) and prints them as a table. Owns only presentation. */
#pragma once

/* Returns the process exit code (0 ok, 1 daemon unreachable or bad answer,
 * 2 usage error). */
int status_main(int argc, char **argv);
