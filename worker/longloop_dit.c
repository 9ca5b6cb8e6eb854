/*
 * longloop_dit.c - longloop_run() with the DiT as its model (longloop.h).
 *
 * Kept apart from longloop.c so that the loop itself links without the DiT
 * (its unit test drives it with a cheap model through the same seam).
 */
#include "common/err.h"
#include "common/log.h"
#include "worker/longloop.h"
#include "worker/models/dit.h"

int longloop_dit_forward(void *ctx, int64_t k, const float *x, int64_t f, float t,
                         const float *audio, int64_t n_audio, float *out3)
{
    struct longloop_dit_model *m = ctx;
    (void)k;
    return dit_forward(m->d, m->job, x, f, t, audio, n_audio, out3);
}

int longloop_run_dit(struct dit *d, const struct dit_job_inputs *in,
                     const struct longloop_params *lp, const struct longloop_audio *audio,
                     const float *init, float *out)
{
    if (in->frames != lp->plan->frames_per_window || in->h != lp->h || in->w != lp->w)
        return log_error_rc(ENC_EINVAL,
                            "longloop: job is %lld frames of %lldx%lld, plan %d frames of "
                            "%lldx%lld",
                            (long long)in->frames, (long long)in->h, (long long)in->w,
                            lp->plan->frames_per_window, (long long)lp->h, (long long)lp->w);
    struct longloop_dit_model m = {d, NULL};
    int rc = dit_job_new(d, in, &m.job);
    if (rc != 0)
        return rc;
    rc = longloop_run(lp, audio, longloop_dit_forward, &m, init, out);
    dit_job_destroy(&m.job);
    return rc;
}
