/* t_blend.c - overlap weights (SPEC 2.5 table, the loop fixture's weights,
 * bit for bit) and the f32-against-bf16 blend of one frame. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/blend.h"
#include "tests/tap.h"
#include "tests/unit/st_mini.h"

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* SPEC 2.5's table: weights after bf16 rounding, printed to 6 digits */
static void check_table(enum blend_scheme s, int o, const double *want)
{
    float w[16];
    blend_weights(s, o, w);
    int good = 1;
    for (int j = 0; j < o; j++) {
        double got = bf16_round(w[j]);
        if (fabs(got - want[j]) > 1e-6) { /* table rounded to 6 decimals */
            diag("  O=%d %s w[%d] = %.9g (bf16 %.9g), table %.6f", o, blend_scheme_name(s), j, w[j],
                 got, want[j]);
            good = 0;
        }
    }
    ok(good, "O=%d %s matches SPEC 2.5's table", o, blend_scheme_name(s));
}

int main(void)
{
    float w[32];

    static const double u5[] = {0, 0.25, 0.5, 0.75, 1};
    static const double l5[] = {0, 0.357422, 0.621094, 0.828125, 1};
    static const double u10[] = {0,        0.111328, 0.222656, 0.333984, 0.445313,
                                 0.554688, 0.667969, 0.777344, 0.890625, 1};
    static const double l10[] = {0,        0.174805, 0.324219, 0.453125, 0.566406,
                                 0.671875, 0.761719, 0.847656, 0.925781, 1};
    check_table(BLEND_SCHEME_UNIFORM, 5, u5);
    check_table(BLEND_SCHEME_LOG, 5, l5);
    check_table(BLEND_SCHEME_UNIFORM, 10, u10);
    check_table(BLEND_SCHEME_LOG, 10, l10);

    blend_weights(BLEND_SCHEME_LOG, 3, w);
    ok(bits(w[0]) == 0 && bits(w[1]) == 0x3F1EBFD4u && bits(w[2]) == 0x3F800000u,
       "O=3 log = [0, 0x3F1EBFD4, 1] (got %08x %08x %08x)", bits(w[0]), bits(w[1]), bits(w[2]));
    blend_weights(BLEND_SCHEME_UNIFORM, 3, w);
    ok(w[0] == 0.0f && w[1] == 0.5f && w[2] == 1.0f, "O=3 uniform = [0, 0.5, 1]");
    for (int s = 0; s < 2; s++) {
        blend_weights((enum blend_scheme)s, 2, w);
        ok(w[0] == 0.0f && w[1] == 1.0f, "O=2 %s = [0, 1] (a hard switch)",
           blend_scheme_name((enum blend_scheme)s));
        w[0] = -7;
        blend_weights((enum blend_scheme)s, 1, w);
        ok(w[0] == 1.0f, "O=1 %s = [1] (the later window wins)",
           blend_scheme_name((enum blend_scheme)s));
        w[0] = -7;
        blend_weights((enum blend_scheme)s, 0, w);
        ok(w[0] == -7.0f, "O=0 %s writes nothing", blend_scheme_name((enum blend_scheme)s));
    }
    /* every O up to 20: w_0 = 0, w_{O-1} = 1, increasing, uniform = f32(j/(O-1)) */
    int mono = 1, unif = 1;
    for (int o = 2; o <= 20; o++) {
        for (int s = 0; s < 2; s++) {
            blend_weights((enum blend_scheme)s, o, w);
            if (w[0] != 0.0f || w[o - 1] != 1.0f)
                mono = 0;
            for (int j = 1; j < o; j++)
                if (!(w[j] > w[j - 1]))
                    mono = 0;
            if (s == BLEND_SCHEME_UNIFORM)
                for (int j = 0; j < o; j++)
                    if (w[j] != (float)((double)j / (o - 1)))
                        unif = 0;
        }
    }
    ok(mono, "O = 2..20: weights rise strictly from 0 to 1");
    ok(unif, "O = 2..20: uniform weights are f32(j/(O-1))");

    /* the loop fixture's weights, bit for bit (O read from the file) */
    struct st_mini st;
    if (st_mini_open(&st, FIXTURE_DIR "/sliding_window_loop.safetensors") == 0) {
        const char *names[2] = {"uniform.overlap_weights", "log.overlap_weights"};
        enum blend_scheme schemes[2] = {BLEND_SCHEME_UNIFORM, BLEND_SCHEME_LOG};
        for (int i = 0; i < 2; i++) {
            struct st_mini_tensor t;
            float *want = st_mini_f32(&st, names[i], &t);
            int o = want ? (int)t.numel : 0;
            blend_weights(schemes[i], o, w);
            int same = want != NULL && o > 0;
            for (int j = 0; j < o; j++)
                same &= bits(w[j]) == bits(want[j]);
            ok(same, "%s (O=%d) bit-exact with the fixture", names[i], o);
            free(want);
        }
        st_mini_close(&st);
    } else {
        skip(2, "loop fixture not found");
    }

    /* blend_frame: f32 w*cur + (1-w)*prev(bf16), one bf16 rounding; dst may alias */
    enum { N = 4096 };
    float *cur = malloc(sizeof(float) * N);
    uint16_t *prev = malloc(sizeof(uint16_t) * N), *dst = malloc(sizeof(uint16_t) * N);
    uint32_t r = 12345;
    for (int i = 0; i < N; i++) {
        r = r * 1664525u + 1013904223u;
        cur[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 8.0f;
        r = r * 1664525u + 1013904223u;
        prev[i] = f32_to_bf16(((float)(r >> 8) / 16777216.0f - 0.5f) * 8.0f);
    }
    float wt = 0x1.3d7fa8p-1f; /* 0x3F1EBFD4 */
    blend_frame(dst, cur, prev, wt, N);
    int exact = 1;
    for (int i = 0; i < N; i++) {
        volatile float a = cur[i] * wt;
        volatile float b = bf16_to_f32(prev[i]) * (1.0f - wt);
        volatile float sum = a + b;
        if (dst[i] != f32_to_bf16(sum))
            exact = 0;
    }
    ok(exact, "blend_frame is the f32 recipe, rounded once to bf16");
    memcpy(dst, prev, sizeof(uint16_t) * N);
    blend_frame(dst, cur, dst, wt, N);
    uint16_t *ref = malloc(sizeof(uint16_t) * N);
    blend_frame(ref, cur, prev, wt, N);
    ok(memcmp(dst, ref, sizeof(uint16_t) * N) == 0, "blend_frame with dst == prev");
    blend_frame(ref, cur, prev, 1.0f, N);
    int w1 = 1;
    for (int i = 0; i < N; i++)
        w1 &= ref[i] == f32_to_bf16(cur[i]);
    ok(w1, "w = 1 stores bf16(cur)");
    blend_frame(ref, cur, prev, 0.0f, N);
    ok(memcmp(ref, prev, sizeof(uint16_t) * N) == 0, "w = 0 keeps prev");
    free(cur);
    free(prev);
    free(dst);
    free(ref);

    is_int(blend_parse_scheme("log"), BLEND_SCHEME_LOG, "parse 'log'");
    is_int(blend_parse_scheme("uniform"), BLEND_SCHEME_UNIFORM, "parse 'uniform'");
    is_int(blend_parse_scheme("linear"), -1, "parse rejects 'linear'");
    is_int(blend_parse_scheme(NULL), -1, "parse rejects NULL");
    is_str(blend_scheme_name(BLEND_SCHEME_LOG), "log", "name of log");
    return done_testing();
}
