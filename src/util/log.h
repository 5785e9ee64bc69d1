/* log.h: one line per event on stderr, logfmt or JSON, with secret redaction.
 * Owns the process-wide log level, format and the list of secret values that
 * must never be printed. Libraries (store, http, providers, forge clients)
 * never log above debug: they return -errno and the caller logs once. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum log_format { LOG_FMT_LOGFMT = 0, LOG_FMT_JSON = 1 };

enum log_kv_type { LOG_KV_NONE = 0, LOG_KV_STR, LOG_KV_INT, LOG_KV_DBL, LOG_KV_BOOL };

struct log_kv {
        const char *key;
        enum log_kv_type type;
        const char *s;
        long long i;
        double d;
};

/* Key/value constructors for the log macros. A NULL string logs as "". */
#define KS(k, v) { .key = (k), .type = LOG_KV_STR, .s = (v) }
#define KI(k, v) { .key = (k), .type = LOG_KV_INT, .i = (long long)(v) }
#define KD(k, v) { .key = (k), .type = LOG_KV_DBL, .d = (double)(v) }
#define KB(k, v) { .key = (k), .type = LOG_KV_BOOL, .i = !!(v) }
/* A negative errno as err="Connection refused". */
#define KERR(e)  { .key = "err", .type = LOG_KV_STR, .s = log_strerror(e) }

void log_init(enum log_level level, enum log_format format);
void log_set_fd(int fd); /* tests capture output through a pipe */
bool log_enabled(enum log_level level);
int log_level_parse(const char *s, enum log_level *ret);
int log_format_parse(const char *s, enum log_format *ret);

/* Registers a value that is replaced by "[REDACTED]" wherever it appears in a
 * log line (message or values). The string is copied. Values shorter than
 * 4 bytes are ignored: redacting "a" everywhere would garble every line.
 * Returns 0, or -ENOSPC when the table (64 entries) is full. */
int log_redact_add(const char *secret);
void log_redact_clear(void);

/* Applies the redaction table to s, writing at most n bytes (NUL included)
 * to out. Exposed for other sinks (HTTP error bodies, status output). */
void log_redact(const char *s, char *out, size_t n);

const char *log_strerror(int negerrno);

void log_emit(enum log_level level, const char *comp, const char *msg,
              const struct log_kv *kv, size_t nkv);

#define LOGK(lvl, comp, msg, ...)                                              \
        do {                                                                   \
                if (log_enabled(lvl)) {                                        \
                        const struct log_kv log_kv_[] = { {0}, __VA_ARGS__ };  \
                        log_emit((lvl), (comp), (msg), log_kv_ + 1,            \
                                 sizeof(log_kv_) / sizeof(log_kv_[0]) - 1);    \
                }                                                              \
        } while (0)

#define log_error(comp, msg, ...) LOGK(LOG_ERROR, comp, msg, __VA_ARGS__)
#define log_warn(comp, msg, ...)  LOGK(LOG_WARN, comp, msg, __VA_ARGS__)
#define log_info(comp, msg, ...)  LOGK(LOG_INFO, comp, msg, __VA_ARGS__)
#define log_debug(comp, msg, ...) LOGK(LOG_DEBUG, comp, msg, __VA_ARGS__)
