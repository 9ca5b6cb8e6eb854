/*
 * parse.h - checked number parsing for command lines and config values.
 *
 * Each returns 0 and stores the value, or ENC_EINVAL when the whole string is
 * not a number in range (no partial parses, no silent wrap).
 */
#ifndef ENCORE_PARSE_H
#define ENCORE_PARSE_H

#include <stdint.h>

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
int parse_int(const char *s, int min, int max, int *out);
int parse_double(const char *s, double min, double max, double *out);

#endif
