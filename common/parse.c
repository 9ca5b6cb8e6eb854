/* parse.c - checked number parsing (see parse.h). */
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "err.h"

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end;
    if (!s || !*s)
        return ENC_EINVAL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return ENC_EINVAL;
    *out = v;
    return 0;
}

int parse_int(const char *s, int min, int max, int *out)
{
    int64_t v;
    int rc = parse_i64(s, min, max, &v);
    if (rc == 0)
        *out = (int)v;
    return rc;
}

int parse_double(const char *s, double min, double max, double *out)
{
    char *end;
    if (!s || !*s)
        return ENC_EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < min || v > max)
        return ENC_EINVAL;
    *out = v;
    return 0;
}
