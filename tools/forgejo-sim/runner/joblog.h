/* joblog.h: the task log of forgejo-sim-runner as a list of rows numbered
 * from 0. Turns raw step output into rows (one per line, trailing CR/LF
 * removed, invalid UTF-8 and NUL replaced by '?', masks applied) and keeps
 * the rows the server has not acknowledged yet. Pending rows are bounded;
 * overflow is counted and reported in a marker row. Never does I/O. */
#pragma once

#include "forge/rproto.h"

#include <stddef.h>
#include <stdint.h>

#define JOBLOG_LINE_MAX (64u * 1024u)   /* longer lines are split */
#define JOBLOG_PENDING_MAX 100000u      /* rows kept while unacknowledged */

struct joblog {
        struct rp_log_row *rows;        /* rows[i] has number base + i */
        size_t n, cap;
        int64_t base;                   /* rows acknowledged by the server */
        char *partial;                  /* incomplete line of raw output */
        size_t partial_len;
        uint64_t dropped;               /* rows lost to the pending bound */
        char **masks;                   /* values replaced by "***" */
        size_t n_masks;
};

void joblog_init(struct joblog *jl);
void joblog_done(struct joblog *jl);

/* Number of the next row (acknowledged + pending). */
int64_t joblog_total(const struct joblog *jl);

/* Adds a value that must never appear in a row (copied; values shorter
 * than 4 bytes are ignored). Returns 0 or -ENOMEM. */
int joblog_add_mask(struct joblog *jl, const char *value);

/* Appends one row built from len bytes of text (sanitised). 0 or -ENOMEM. */
int joblog_add(struct joblog *jl, const char *text, size_t len);

/* Feeds raw output; complete lines become rows. 0 or -ENOMEM. */
int joblog_feed(struct joblog *jl, const char *buf, size_t len);

/* Turns a pending incomplete line into a row. 0 or -ENOMEM. */
int joblog_flush(struct joblog *jl);

/* Drops rows below ack (the server's ack_index). An ack beyond the last
 * row is clamped. Returns the number of rows dropped. */
size_t joblog_ack(struct joblog *jl, int64_t ack);
