/*
 * log.h - one line per event, to stderr or to a sink the host installs.
 *
 * Line format:  2026-11-24T12:00:00.123Z worker[812] W agent: message
 * The macros test the level before evaluating their arguments. The engine
 * logs through these too; a host (the worker, a test) may redirect all of it
 * with log_set_sink(). Safe to call from any thread.
 */
#ifndef ENCORE_LOG_H
#define ENCORE_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

/* A sink receives each complete line (without the trailing newline). */
typedef void log_sink_fn(void *ctx, enum log_level level, const char *line);

extern enum log_level log_threshold;

/* log_init() names the process ("worker", "encore") for every line. */
void log_init(const char *procname);
void log_set_level(enum log_level level);
/* log_parse_level() maps "error|warn|info|debug" to a level; -1 if unknown. */
int log_parse_level(const char *name);
/* log_set_sink() redirects lines; NULL restores stderr. */
void log_set_sink(log_sink_fn *fn, void *ctx);

void log_write(enum log_level level, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level level, const char *file, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* log_write_rc() logs at error level and returns rc (for `return log_error_rc(...)`). */
int log_write_rc(int rc, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(lvl, ...)                                                                        \
    do {                                                                                        \
        if ((lvl) <= log_threshold)                                                             \
            log_write((lvl), __FILE__, __VA_ARGS__);                                            \
    } while (0)
#define log_error(...) log_at(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_error_rc(rc, ...) log_write_rc((rc), __FILE__, __VA_ARGS__)

#endif
