/*
 * log.c - formatted event lines (see log.h).
 *
 * Each line is built in a local buffer and handed to the sink in one call, so
 * lines from different threads never interleave.
 */
#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum log_level log_threshold = LOG_LEVEL_INFO;

static char procname[32] = "encore";
static log_sink_fn *sink_fn;
static void *sink_ctx;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(const char *name)
{
    snprintf(procname, sizeof procname, "%s", name);
}

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_parse_level(const char *name)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_set_sink(log_sink_fn *fn, void *ctx)
{
    pthread_mutex_lock(&sink_lock);
    sink_fn = fn;
    sink_ctx = ctx;
    pthread_mutex_unlock(&sink_lock);
}

/* module_of() turns "worker/engine/cpu/attn.c" into "attn". */
static void module_of(const char *file, char *out, size_t n)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t len = strcspn(base, ".");
    if (len >= n)
        len = n - 1;
    memcpy(out, base, len);
    out[len] = 0;
}

void log_vwrite(enum log_level level, const char *file, const char *fmt, va_list ap)
{
    static const char letters[] = "EWID";
    char line[2048], mod[32];
    struct timeval tv;
    struct tm tm;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    module_of(file, mod, sizeof mod);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s[%d] %c %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), procname, (int)getpid(),
                     letters[level & 3], mod);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);

    pthread_mutex_lock(&sink_lock);
    if (sink_fn) {
        sink_fn(sink_ctx, level, line);
    } else {
        fputs(line, stderr);
        fputc('\n', stderr);
    }
    pthread_mutex_unlock(&sink_lock);
}

void log_write(enum log_level level, const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, file, fmt, ap);
    va_end(ap);
}

int log_write_rc(int rc, const char *file, const char *fmt, ...)
{
    if (LOG_LEVEL_ERROR <= log_threshold) {
        va_list ap;
        va_start(ap, fmt);
        log_vwrite(LOG_LEVEL_ERROR, file, fmt, ap);
        va_end(ap);
    }
    return rc;
}
