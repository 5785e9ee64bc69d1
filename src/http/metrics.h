/* metrics.h: a registry of Prometheus metrics (counters, gauges and
 * fixed-bucket histograms) with labelled series created on demand, rendered
 * in the text exposition format 0.0.4. Single-threaded, no locks, no I/O,
 * never logs. Series per metric are bounded: extra label sets are dropped
 * and counted in forgescale_metrics_dropped_series_total{metric=...}. */
#pragma once

#include <stddef.h>

#include "http/buffer.h"

#define METRICS_DEFAULT_MAX_SERIES 10000
#define METRICS_MAX_LABELS 16
#define METRICS_MAX_BUCKETS 64
#define METRICS_DROPPED_NAME "forgescale_metrics_dropped_series_total"

/* Content type of metrics_render() output, for the /metrics response. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metrics;
struct metric;

/* Returns NULL only on OOM. The registry owns every metric it hands out. */
struct metrics *metrics_new(void);
/* Frees the registry and all its metrics; accepts NULL. */
void metrics_free(struct metrics *reg);

/* Bound on series per metric (default METRICS_DEFAULT_MAX_SERIES); applies
 * to series created afterwards. */
void metrics_set_max_series(struct metrics *reg, size_t max);

/* Registers a metric. name must match [a-zA-Z_:][a-zA-Z0-9_:]*, label names
 * [a-zA-Z_][a-zA-Z0-9_]* without a leading "__" (and not "le" for
 * histograms); help is any text (escaped on output). All strings are
 * copied. Registering a name again with the same type, labels (and
 * buckets) returns the existing metric. Returns NULL on OOM, on an invalid
 * name, label or bucket list, or when the name is already registered with
 * a different shape. A metric without labels has its single series from
 * the start, so it renders as 0 before the first update. */
struct metric *metrics_counter(struct metrics *reg, const char *name, const char *help,
                               size_t nlabels, const char *const *labels);
struct metric *metrics_gauge(struct metrics *reg, const char *name, const char *help,
                             size_t nlabels, const char *const *labels);
/* bounds: nbuckets finite upper bounds, strictly increasing (1 to
 * METRICS_MAX_BUCKETS); the +Inf bucket is implicit. */
struct metric *metrics_histogram(struct metrics *reg, const char *name, const char *help,
                                 size_t nlabels, const char *const *labels,
                                 size_t nbuckets, const double *bounds);

/* Series updates. values holds one string per label name (NULL counts as
 * ""; the array may be NULL when the metric has no labels); any bytes are
 * allowed and escaped on output. All return 0, -EINVAL (NULL metric, wrong
 * type, negative counter increment, NaN), -ENOSPC when a new series would
 * exceed the bound (the update is dropped and counted), or -ENOMEM. */
/* Counters (v >= 0) and gauges (any v). */
int metrics_inc(struct metric *m, const char *const *values, double v);
/* Gauges only. */
int metrics_set(struct metric *m, const char *const *values, double v);
/* Histograms only. */
int metrics_observe(struct metric *m, const char *const *values, double v);

/* Drops every series of m (a label-less metric goes back to 0), so the
 * caller can rebuild "current state" gauges before a scrape. */
void metrics_reset(struct metric *m);

/* Reads a series without creating it: the value of a counter or gauge, or
 * the observation count of a histogram. Returns 0, -ENOENT when the series
 * does not exist, -EINVAL for a NULL metric. */
int metrics_get(struct metric *m, const char *const *values, double *ret);
/* Number of live series of m (0 for NULL). */
size_t metrics_series_count(const struct metric *m);

/* Appends the whole registry to out: families sorted by name, series sorted
 * by label values. Returns 0, -EMSGSIZE when out's maximum is reached (out
 * then holds a truncated rendering the caller must discard) or -ENOMEM. */
int metrics_render(struct metrics *reg, struct buffer *out);
