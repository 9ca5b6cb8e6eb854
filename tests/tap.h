/*
 * tap.h - a tiny TAP producer for encore's unit tests, run by `prove`.
 *
 *   plan(3);  ok(x == 1, "x is one");  is_int(a, b, "sizes");
 *   is_near(got, want, 1e-6, "value");  skip(n, "no gpu");  diag("...");
 *   return done_testing();
 *
 * Header-only so each test is one .c file linked against libencore.a.
 */
#ifndef ENCORE_TAP_H
#define ENCORE_TAP_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed, tap_planned = -1;

static inline void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

static inline __attribute__((format(printf, 1, 2))) void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

static inline __attribute__((format(printf, 2, 3))) int ok(int cond, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!cond)
        tap_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    return cond;
}

#define is_int(got, want, ...)                                                                 \
    do {                                                                                       \
        long long is_int_g_ = (long long)(got), is_int_w_ = (long long)(want);                 \
        if (!ok(is_int_g_ == is_int_w_, __VA_ARGS__))                                          \
            diag("  got %lld, want %lld", is_int_g_, is_int_w_);                               \
    } while (0)

#define is_str(got, want, ...)                                                                 \
    do {                                                                                       \
        const char *is_str_g_ = (got), *is_str_w_ = (want);                                    \
        if (!ok(is_str_g_ && is_str_w_ && strcmp(is_str_g_, is_str_w_) == 0, __VA_ARGS__))     \
            diag("  got '%s', want '%s'", is_str_g_ ? is_str_g_ : "(null)",                    \
                 is_str_w_ ? is_str_w_ : "(null)");                                            \
    } while (0)

#define is_near(got, want, tol, ...)                                                           \
    do {                                                                                       \
        double is_near_g_ = (double)(got), is_near_w_ = (double)(want);                        \
        if (!ok(fabs(is_near_g_ - is_near_w_) <= (tol), __VA_ARGS__))                          \
            diag("  got %.9g, want %.9g (tolerance %g)", is_near_g_, is_near_w_,               \
                 (double)(tol));                                                               \
    } while (0)

static inline void skip(int n, const char *why)
{
    for (int i = 0; i < n; i++) {
        tap_count++;
        printf("ok %d # skip %s\n", tap_count, why);
    }
    fflush(stdout);
}

/* done_testing() prints the plan if none was given; returns the exit status. */
static inline int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_count);
    else if (tap_planned != tap_count)
        printf("# planned %d tests but ran %d\n", tap_planned, tap_count);
    fflush(stdout);
    return tap_failed || (tap_planned >= 0 && tap_planned != tap_count);
}

/* FIXTURE_DIR: where ../shared/fixtures/stableavatar is, relative to the repo root. */
#ifndef FIXTURE_DIR
#define FIXTURE_DIR "../shared/fixtures/stableavatar"
#endif

#endif
