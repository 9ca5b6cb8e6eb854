/*
 * parity_util.c - comparison and reporting helpers of `encore parity`.
 *
 * max_rel is reported over elements whose reference is not tiny
 * (|ref| >= 1e-6), since a relative error against a zero is meaningless;
 * pass/fail uses the absolute+relative rule of each check.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bf16.h"
#include "common/err.h"
#include "common/log.h"
#include "parity.h"

const struct ckpt_tensor *parity_tensor(struct parity_run *r, const char *name)
{
    const struct ckpt_tensor *t = ckpt_find(r->fx, name);
    if (!t)
        log_error("'%s': fixture has no tensor '%s'", r->path, name);
    return t;
}

float *parity_read_f32(struct parity_run *r, const char *name, int64_t *n)
{
    const struct ckpt_tensor *t = parity_tensor(r, name);
    if (!t)
        return NULL;
    if (n)
        *n = ckpt_numel(t);
    return ckpt_read_f32(t);
}

static void report(struct parity_run *r, const char *label, double max_abs, double max_rel,
                   int pass, const char *extra)
{
    r->n_checked++;
    if (!pass)
        r->n_failed++;
    printf("  %-36s max_abs %.3e  max_rel %.3e  %s%s\n", label, max_abs, max_rel,
           pass ? "PASS" : "FAIL", extra ? extra : "");
    fflush(stdout);
}

/* load_ref(): the reference values, or NULL after reporting a failed check. */
static float *load_ref(struct parity_run *r, const char *name, const char *label, int64_t n)
{
    int64_t nref = 0;
    float *ref = parity_read_f32(r, name, &nref);
    if (ref && nref != n) {
        log_error("'%s': '%s' has %lld elements, the module produced %lld", r->path, name,
                  (long long)nref, (long long)n);
        free(ref);
        ref = NULL;
    }
    if (!ref)
        report(r, label, INFINITY, INFINITY, 0, "  (missing or misshapen)");
    return ref;
}

int parity_check(struct parity_run *r, const char *name, const char *label, const float *got,
                 int64_t n, double atol, double rtol)
{
    label = label ? label : name;
    float *ref = load_ref(r, name, label, n);
    if (!ref)
        return 0;
    double max_abs = 0, max_rel = 0;
    int pass = 1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]), a = fabs((double)ref[i]);
        if (!(d <= atol + rtol * a))
            pass = 0;
        if (!(d <= max_abs))
            max_abs = isnan(d) ? INFINITY : d;
        if (a >= 1e-6 && d / a > max_rel)
            max_rel = d / a;
    }
    free(ref);
    report(r, label, max_abs, max_rel, pass, NULL);
    return pass;
}

static int64_t ulp_distance(float a, float b)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if (ia < 0)
        ia = INT32_MIN - ia;
    if (ib < 0)
        ib = INT32_MIN - ib;
    return llabs((long long)ia - (long long)ib);
}

int parity_check_ulp(struct parity_run *r, const char *name, const char *label,
                     const float *got, int64_t n, int max_ulp)
{
    label = label ? label : name;
    float *ref = load_ref(r, name, label, n);
    if (!ref)
        return 0;
    double max_abs = 0, max_rel = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]), a = fabs((double)ref[i]);
        int64_t u = isnan(got[i]) != isnan(ref[i]) ? INT64_MAX : ulp_distance(got[i], ref[i]);
        if (u > worst)
            worst = u;
        if (d > max_abs)
            max_abs = d;
        if (a >= 1e-6 && d / a > max_rel)
            max_rel = d / a;
    }
    free(ref);
    char extra[64];
    snprintf(extra, sizeof extra, "  (max %lld ulp, %d allowed)", (long long)worst, max_ulp);
    int pass = worst <= max_ulp;
    report(r, label, max_abs, max_rel, pass, extra);
    return pass;
}

int parity_check_bf16_stats(struct parity_run *r, const char *name, const char *label,
                            const float *got, int64_t n, double min_identical,
                            double min_within1, double max_rel_peak)
{
    label = label ? label : name;
    float *ref = load_ref(r, name, label, n);
    if (!ref)
        return 0;
    double max_abs = 0, max_rel = 0, peak = 0;
    int64_t same = 0, within1 = 0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t g = f32_to_bf16(got[i]), w = f32_to_bf16(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]), a = fabs((double)ref[i]);
        int32_t gi = (int16_t)g < 0 ? (int32_t)(0x8000 - (int32_t)g) : (int32_t)g;
        int32_t wi = (int16_t)w < 0 ? (int32_t)(0x8000 - (int32_t)w) : (int32_t)w;
        same += g == w;
        within1 += abs(gi - wi) <= 1;
        if (d > max_abs)
            max_abs = d;
        if (a > peak)
            peak = a;
        if (a >= 1e-6 && d / a > max_rel)
            max_rel = d / a;
    }
    free(ref);
    double fs = n ? (double)same / (double)n : 1, f1 = n ? (double)within1 / (double)n : 1;
    int pass = fs >= min_identical && f1 >= min_within1 && max_abs <= max_rel_peak * peak;
    char extra[96];
    snprintf(extra, sizeof extra, "  (%.2f%% identical, %.2f%% within 1 bf16 ulp)", 100 * fs,
             100 * f1);
    report(r, label, max_abs, max_rel, pass, extra);
    return pass;
}

int parity_check_ints(struct parity_run *r, const char *label, const int64_t *got,
                      const int64_t *want, int64_t n)
{
    int64_t bad = -1;
    double max_abs = 0;
    for (int64_t i = 0; i < n; i++)
        if (got[i] != want[i]) {
            if (bad < 0)
                bad = i;
            double d = fabs((double)got[i] - (double)want[i]);
            if (d > max_abs)
                max_abs = d;
        }
    char extra[96] = "";
    if (bad >= 0)
        snprintf(extra, sizeof extra, "  (first difference at %lld: %lld vs %lld)",
                 (long long)bad, (long long)got[bad], (long long)want[bad]);
    report(r, label, max_abs, 0, bad < 0, extra);
    return bad < 0;
}
