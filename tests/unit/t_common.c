/* t_common.c - parse, bf16 and error-name helpers of common/. */
#include <math.h>
#include <stdint.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/parse.h"
#include "tests/tap.h"

int main(void)
{
    int64_t v = 0;
    int i = 0;
    double d = 0;

    is_int(parse_i64("42", 0, 100, &v), 0, "parse_i64 accepts 42");
    is_int(v, 42, "parse_i64 value");
    is_int(parse_i64("42x", 0, 100, &v), ENC_EINVAL, "parse_i64 rejects trailing junk");
    is_int(parse_i64("", 0, 100, &v), ENC_EINVAL, "parse_i64 rejects empty");
    is_int(parse_i64("101", 0, 100, &v), ENC_EINVAL, "parse_i64 rejects out of range");
    is_int(parse_i64("99999999999999999999", INT64_MIN, INT64_MAX, &v), ENC_EINVAL,
           "parse_i64 rejects overflow");
    is_int(parse_int("-3", -5, 5, &i), 0, "parse_int accepts -3");
    is_int(i, -3, "parse_int value");
    is_int(parse_double("2.5", 0, 10, &d), 0, "parse_double accepts 2.5");
    is_int(parse_double("nan", -1e9, 1e9, &d), ENC_EINVAL, "parse_double rejects nan");

    /* bf16: round to nearest even, as torch does. */
    is_int(f32_to_bf16(1.0f), 0x3f80, "bf16(1) = 0x3f80");
    is_int(f32_to_bf16(1.00390625f), 0x3f80, "tie rounds to even (down)");
    is_int(f32_to_bf16(1.01171875f), 0x3f82, "tie rounds to even (up)");
    ok(isnan(bf16_to_f32(f32_to_bf16(NAN))), "NaN stays NaN");
    is_near(f16_to_f32(0x3c00), 1.0, 0, "f16 1.0");
    is_near(f16_to_f32(0x0001), 5.960464477539063e-08, 0, "f16 smallest subnormal");
    is_near(f16_to_f32(0xc000), -2.0, 0, "f16 -2");

    is_str(enc_err_str(ENC_EIO), "i/o error", "error names");
    return done_testing();
}
