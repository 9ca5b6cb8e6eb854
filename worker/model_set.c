/*
 * model_set.c - find, open and load the parts of a model directory (see
 * model_set.h), and write encore's tiny model.
 */
#include "model_set.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/err.h"
#include "../common/fsutil.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../common/xmalloc.h"
#include "engine/checkpoint.h"
#include "models/clip.h"
#include "models/dit.h"
#include "models/tokenizer.h"
#include "models/umt5.h"
#include "models/vae.h"
#include "models/wav2vec2.h"

#define DIT_DIR "Wan2.1-Fun-V1.1-1.3B-InP"
#define WAV2VEC_DIR "wav2vec2-base-960h"

enum { SLOT_DIT, SLOT_VAE, SLOT_VAE2, SLOT_TEXT, SLOT_CLIP, SLOT_AUDIO };

/* Candidate files of each part, first existing wins. */
static const char *const candidates[6][3] = {
    [SLOT_DIT] = {DIT_DIR "/diffusion_pytorch_model.safetensors", NULL, NULL},
    [SLOT_VAE] = {DIT_DIR "/Wan2.1_VAE.pth", DIT_DIR "/Wan2.1_VAE.safetensors", NULL},
    [SLOT_VAE2] = {NULL, NULL, NULL},
    [SLOT_TEXT] = {DIT_DIR "/models_t5_umt5-xxl-enc-bf16.pth",
                   DIT_DIR "/models_t5_umt5-xxl-enc-bf16.safetensors", NULL},
    [SLOT_CLIP] = {DIT_DIR "/models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
                   DIT_DIR "/models_clip_open-clip-xlm-roberta-large-vit-huge-14.safetensors",
                   NULL},
    [SLOT_AUDIO] = {WAV2VEC_DIR "/model.safetensors", WAV2VEC_DIR "/pytorch_model.bin", NULL},
};
static const char *const part_names[6] = {"DiT", "VAE", "VAE", "text encoder", "CLIP",
                                          "wav2vec2"};
#define TOKENIZER_FILE DIT_DIR "/google/umt5-xxl/spiece.model"
#define AVATAR_FILE "StableAvatar-1.3B/transformer3d-square.pt"
#define DIT_CONFIG DIT_DIR "/config.json"

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static char *join(const char *dir, const char *rel)
{
    return xasprintf("%s/%s", dir, rel);
}

static unsigned slot_parts(int slot)
{
    static const unsigned bits[6] = {MODEL_PART_DIT, MODEL_PART_VAE_ENCODER | MODEL_PART_VAE_DECODER,
                                     0, MODEL_PART_TEXT, MODEL_PART_CLIP, MODEL_PART_AUDIO};
    return bits[slot];
}

int model_set_open(const char *dir, struct backend *be, unsigned parts, struct model_set **out)
{
    struct model_set *ms = xcalloc(1, sizeof *ms);
    int missing = 0;

    *out = NULL;
    ms->dir = xstrdup(dir);
    ms->be = be;
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        model_set_destroy(&ms);
        return log_error_rc(ENC_EINVAL, "model directory '%s' does not exist", dir);
    }
    for (int s = 0; s < 6; s++) {
        if (!(slot_parts(s) & parts) || !candidates[s][0])
            continue;
        for (int c = 0; c < 3 && candidates[s][c] && !ms->path[s]; c++) {
            char *p = join(dir, candidates[s][c]);
            if (file_exists(p))
                ms->path[s] = p;
            else
                free(p);
        }
        if (!ms->path[s]) {
            log_error("model '%s': the %s file '%s/%s' is missing", dir, part_names[s], dir,
                      candidates[s][0]);
            missing++;
        }
    }
    if (parts & MODEL_PART_TEXT) {
        ms->tokenizer_path = join(dir, TOKENIZER_FILE);
        if (!file_exists(ms->tokenizer_path)) {
            log_error("model '%s': the tokenizer file '%s' is missing", dir, ms->tokenizer_path);
            missing++;
        }
    }
    if (parts & MODEL_PART_DIT) {
        char *p = join(dir, AVATAR_FILE);
        if (file_exists(p))
            ms->avatar_path = p;
        else
            free(p);
        p = join(dir, DIT_CONFIG);
        if (file_exists(p))
            ms->dit_config_path = p;
        else
            free(p);
    }
    if (missing) {
        model_set_destroy(&ms);
        return ENC_EINVAL;
    }
    *out = ms;
    return 0;
}

/* dit_config_json(): num_heads and text_len from Wan's config.json. */
static void dit_config_json(const char *path, struct dit_hparams *hp)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    struct json *j = NULL;
    if (json_parse(buf, n, &j, NULL) == 0) {
        int64_t v;
        if (json_int(json_get(j, "num_heads"), &v) == 0 && v > 0)
            hp->num_heads = v;
        if (json_int(json_get(j, "text_len"), &v) == 0 && v > 0)
            hp->text_len = v;
    } else {
        log_warn("'%s' is not JSON; using the hyper-parameters of the checkpoint", path);
    }
    json_free(&j);
}

static int open_ck(struct model_set *ms, int slot)
{
    if (ms->ck[slot])
        return 0;
    return ckpt_open(ms->path[slot], &ms->ck[slot]);
}

static int load_dit(struct model_set *ms)
{
    struct dit_hparams hp = {0};
    struct ckpt *cks[2];
    int n = 0, rc;

    if ((rc = open_ck(ms, SLOT_DIT)) < 0)
        return rc;
    cks[n++] = ms->ck[SLOT_DIT];
    if (ms->avatar_path) {
        if (!ms->avatar_ck && (rc = ckpt_open(ms->avatar_path, &ms->avatar_ck)) < 0)
            return rc;
        cks[n++] = ms->avatar_ck;
    }
    if (ms->dit_config_path)
        dit_config_json(ms->dit_config_path, &hp);
    return dit_load(ms->be, cks, n, &hp, &ms->dit);
}

int model_set_load(struct model_set *ms, unsigned parts)
{
    int rc = 0;
    parts &= ~ms->loaded;
    if (parts & (MODEL_PART_VAE_ENCODER | MODEL_PART_VAE_DECODER))
        parts |= MODEL_PART_VAE_ENCODER | MODEL_PART_VAE_DECODER;
    if (parts & MODEL_PART_DIT) {
        if (!ms->path[SLOT_DIT] || (rc = load_dit(ms)) < 0)
            return rc < 0 ? rc : log_error_rc(ENC_EINVAL, "no DiT resolved in '%s'", ms->dir);
    }
    if (parts & MODEL_PART_VAE_DECODER) {
        if ((rc = open_ck(ms, SLOT_VAE)) < 0 ||
            (rc = vae_load(ms->be, &ms->ck[SLOT_VAE], 1, VAE_PART_ALL, &ms->vae)) < 0)
            return rc;
    }
    if (parts & MODEL_PART_TEXT) {
        if ((rc = open_ck(ms, SLOT_TEXT)) < 0 ||
            (rc = umt5_load(ms->be, &ms->ck[SLOT_TEXT], 1, NULL, &ms->t5)) < 0 ||
            (rc = tokenizer_open(ms->tokenizer_path, &ms->tok)) < 0)
            return rc;
    }
    if (parts & MODEL_PART_CLIP) {
        if ((rc = open_ck(ms, SLOT_CLIP)) < 0 ||
            (rc = clip_load(ms->be, &ms->ck[SLOT_CLIP], 1, &ms->clip)) < 0)
            return rc;
    }
    if (parts & MODEL_PART_AUDIO) {
        if ((rc = open_ck(ms, SLOT_AUDIO)) < 0 ||
            (rc = wav2vec2_load(ms->be, &ms->ck[SLOT_AUDIO], 1, &ms->w2v)) < 0)
            return rc;
    }
    ms->loaded |= parts;
    return 0;
}

void model_set_unload(struct model_set *ms, unsigned parts)
{
    parts &= ms->loaded;
    if (parts & MODEL_PART_DIT) {
        dit_destroy(&ms->dit);
        ckpt_close(&ms->ck[SLOT_DIT]);
        ckpt_close(&ms->avatar_ck);
    }
    if (parts & (MODEL_PART_VAE_ENCODER | MODEL_PART_VAE_DECODER)) {
        vae_destroy(&ms->vae);
        ckpt_close(&ms->ck[SLOT_VAE]);
        parts |= MODEL_PART_VAE_ENCODER | MODEL_PART_VAE_DECODER;
    }
    if (parts & MODEL_PART_TEXT) {
        umt5_destroy(&ms->t5);
        tokenizer_destroy(&ms->tok);
        ckpt_close(&ms->ck[SLOT_TEXT]);
    }
    if (parts & MODEL_PART_CLIP) {
        clip_destroy(&ms->clip);
        ckpt_close(&ms->ck[SLOT_CLIP]);
    }
    if (parts & MODEL_PART_AUDIO) {
        wav2vec2_destroy(&ms->w2v);
        ckpt_close(&ms->ck[SLOT_AUDIO]);
    }
    ms->loaded &= ~parts;
}

void model_set_destroy(struct model_set **msp)
{
    struct model_set *ms = msp ? *msp : NULL;
    if (!ms)
        return;
    model_set_unload(ms, MODEL_PART_ALL);
    for (int s = 0; s < 6; s++) {
        ckpt_close(&ms->ck[s]);
        free(ms->path[s]);
    }
    free(ms->avatar_path);
    free(ms->tokenizer_path);
    free(ms->dit_config_path);
    free(ms->dir);
    free(ms);
    *msp = NULL;
}

/* ---- the tiny model ---------------------------------------------------- */

static int write_tiny_dit(const char *path, uint64_t seed)
{
    struct clip_config cc;
    struct wav2vec2_config wc;
    clip_config_tiny(&cc);
    wav2vec2_config_tiny(&wc);
    struct dit_tiny_dims dims = {
        .dim = 64, .num_heads = 2, .num_layers = 2, .ffn_dim = 128, .text_dim = UMT5_TINY_DIM,
        .clip_dim = cc.dim, .audio_dim = wc.hidden, .vocal_ffn_dim = 128,
    };
    return dit_write_tiny(path, seed, &dims);
}

static int write_tiny_tokenizer(const char *path, uint64_t seed)
{
    (void)seed;
    return tokenizer_write_tiny(path);
}

static const struct {
    const char *rel;
    int (*write)(const char *path, uint64_t seed);
} tiny_parts[] = {
    {DIT_DIR "/diffusion_pytorch_model.safetensors", write_tiny_dit},
    {DIT_DIR "/Wan2.1_VAE.safetensors", vae_write_tiny},
    {DIT_DIR "/models_t5_umt5-xxl-enc-bf16.safetensors", umt5_write_tiny},
    {TOKENIZER_FILE, write_tiny_tokenizer},
    {DIT_DIR "/models_clip_open-clip-xlm-roberta-large-vit-huge-14.safetensors",
     clip_write_tiny},
    {WAV2VEC_DIR "/model.safetensors", wav2vec2_write_tiny},
};

int model_set_write_tiny(const char *dir, uint64_t seed)
{
    for (size_t i = 0; i < sizeof tiny_parts / sizeof tiny_parts[0]; i++) {
        char *path = join(dir, tiny_parts[i].rel);
        char *slash = strrchr(path, '/');
        *slash = 0;
        int rc = fs_mkdir_p(path);
        *slash = '/';
        /* distinct seeds per part so no two parts share weights */
        if (rc == 0)
            rc = tiny_parts[i].write(path, seed * 16 + i);
        if (rc < 0) {
            log_error("cannot write the tiny model file '%s': %s", path, enc_err_str(rc));
            free(path);
            return rc;
        }
        free(path);
    }
    return 0;
}

char *model_set_tiny_dir(uint64_t seed)
{
    const char *base = getenv("ENCORE_CACHE");
    char *root;
    if (base && *base) {
        root = xstrdup(base);
    } else if ((base = getenv("XDG_CACHE_HOME")) && *base) {
        root = xasprintf("%s/encore", base);
    } else {
        const char *home = getenv("HOME");
        root = xasprintf("%s/.cache/encore", home && *home ? home : "/tmp");
    }
    char *dir = xasprintf("%s/tiny-v1-seed%llu", root, (unsigned long long)seed);
    char *stamp = xasprintf("%s/.complete", dir);
    free(root);
    if (!file_exists(stamp)) {
        /* Written beside the final name, then renamed: a concurrent or
         * interrupted writer never leaves a half model behind. */
        char *tmp = xasprintf("%s.tmp.%d", dir, (int)getpid());
        int rc = fs_mkdir_p(tmp);
        if (rc == 0)
            rc = model_set_write_tiny(tmp, seed);
        if (rc == 0) {
            char *tstamp = xasprintf("%s/.complete", tmp);
            FILE *f = fopen(tstamp, "w");
            if (f)
                fclose(f);
            free(tstamp);
            if (rename(tmp, dir) < 0 && !file_exists(stamp))
                rc = log_error_rc(ENC_EIO, "cannot move the tiny model into '%s': %s", dir,
                                  strerror(errno));
        }
        fs_remove_tree(tmp); /* nothing left when the rename happened */
        free(tmp);
        if (rc < 0) {
            free(dir);
            dir = NULL;
        }
    }
    free(stamp);
    return dir;
}
