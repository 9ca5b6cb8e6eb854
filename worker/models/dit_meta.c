/*
 * dit_meta.c - the DiT hyper-parameters that tensor shapes do not tell
 * (head count, padded text length, adapter head count), read from a
 * checkpoint's "config" metadata: either Wan's config.json fields at the top
 * level or nested under "dit_config" / "vocal_projector" as the fixtures and
 * encore's tiny models write them.
 */
#include <string.h>

#include "common/json.h"
#include "dit_internal.h"

static void take_int(const struct json *obj, const char *key, int64_t *dst)
{
    int64_t v;
    if (*dst == 0 && json_int(json_get(obj, key), &v) == 0 && v > 0)
        *dst = v;
}

void dit_hparams_from_meta(struct ckpt *const *cks, int n, struct dit_hparams *out)
{
    for (int i = n - 1; i >= 0; i--) {
        const char *text = ckpt_meta(cks[i], "config");
        struct json *cfg = NULL;
        if (!text || json_parse(text, strlen(text), &cfg, NULL) < 0)
            continue;
        const struct json *dit = json_get(cfg, "dit_config");
        const struct json *vp = json_get(cfg, "vocal_projector");
        if (!dit)
            dit = cfg;
        take_int(dit, "num_heads", &out->num_heads);
        take_int(dit, "text_len", &out->text_len);
        if (vp)
            take_int(vp, "num_heads", &out->vocal_heads);
        json_free(&cfg);
    }
}
