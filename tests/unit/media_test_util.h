/*
 * media_test_util.h - helpers shared by the t_media_*.c tests: a private
 * temporary directory, running the ffmpeg CLI to make real input files, and
 * capturing the last error line encore logged (to check it names the file).
 */
#ifndef ENCORE_MEDIA_TEST_UTIL_H
#define ENCORE_MEDIA_TEST_UTIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static char mt_dir[256];
static char mt_last_error[1024];

static void mt_sink(void *ctx, enum log_level level, const char *line)
{
    (void)ctx;
    if (level == LOG_LEVEL_ERROR)
        snprintf(mt_last_error, sizeof mt_last_error, "%s", line);
}

/* mt_setup() makes the temp dir and captures log lines. */
static inline void mt_setup(const char *name)
{
    snprintf(mt_dir, sizeof mt_dir, "/tmp/encore-%s-XXXXXX", name);
    if (!mkdtemp(mt_dir)) {
        perror("mkdtemp");
        exit(1);
    }
    log_set_sink(mt_sink, NULL);
}

static inline void mt_cleanup(void)
{
    char cmd[512];
    if (getenv("ENCORE_KEEP_TMP"))
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", mt_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "# could not remove %s\n", mt_dir);
}

/* mt_path() returns mt_dir/name in a rotating static buffer. */
static inline const char *mt_path(const char *name)
{
    static char bufs[64][512];
    static int i;
    char *b = bufs[i++ % 64];
    snprintf(b, 512, "%s/%s", mt_dir, name);
    return b;
}

/* mt_ffmpeg() runs `ffmpeg -v error -y ARGS` (printf-style); 0 on success. */
static inline __attribute__((format(printf, 1, 2))) int mt_ffmpeg(const char *fmt, ...)
{
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -hide_banner -v error -y %s", args);
    int r = system(cmd);
    if (r != 0)
        printf("# command failed: %s\n", cmd);
    return r;
}

/* mt_error_names() is true when the last error line mentions s. */
static inline int mt_error_names(const char *s)
{
    return strstr(mt_last_error, s) != NULL;
}

static inline void mt_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* mt_truncate() keeps the first `keep` bytes of path. */
static inline void mt_truncate(const char *path, long keep)
{
    if (truncate(path, keep) != 0)
        perror("truncate");
}

#endif
