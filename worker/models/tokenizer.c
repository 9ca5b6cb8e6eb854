/*
 * tokenizer.c - SentencePiece unigram encoder (see tokenizer.h).
 *
 * This follows sentencepiece 0.1.97 step by step (written from its documented
 * behaviour and file format, not copied):
 *
 *   text --normalize--> normalized UTF-8 (spaces as U+2581)
 *        --viterbi-->   (piece span, id) path
 *        --populate-->  ids (<unk> spans split into <0xXX> byte pieces when
 *                       byte_fallback is on, else runs of <unk> merged)
 *
 * Normaliser. Each step consumes the longest prefix of the remaining input
 * that is (1) a user-defined piece, else (2) a key of the precompiled
 * charsmap (a darts-clone double array; its value is an offset into a pool
 * of NUL-terminated replacement strings), else (3) one UTF-8 character as is
 * (an invalid byte becomes U+FFFD). Leading spaces are dropped, a U+2581 is
 * prefixed, a space following a space is dropped, spaces become U+2581 and
 * trailing U+2581s are dropped (the remove_extra_whitespaces, add_dummy_prefix
 * and escape_whitespaces flags of the NormalizerSpec, default true).
 *
 * Viterbi. best[e] is the best path over normalized[0:e]. From each character
 * start s (in byte positions, stepping one UTF-8 character) every piece that
 * matches normalized[s:e] offers best[s] + score (float32 adds); a strictly
 * better score replaces the old one, so earlier candidates win ties (the order
 * is s ascending, then length ascending, as sentencepiece's optimised
 * encoder visits them). When no piece covers exactly the one character at s,
 * <unk> is offered for it with score min(normal scores) - 10. Pieces of type
 * NORMAL, USER_DEFINED and UNUSED are in the piece trie; UNUSED ones never
 * match; control, unknown and byte pieces are only reachable by id.
 *
 * Invariants after loading: every piece is non-empty, unique within its class,
 * exactly one piece is <unk>, and with byte_fallback all 256 byte pieces
 * exist. The charsmap array accesses are bounds-checked at lookup, so a
 * corrupt charsmap yields odd normalisation, never a crash.
 */
#include "worker/models/tokenizer.h"

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "sentencepiece_model.pb-c.h"

#define SPACE_SYMBOL "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */
#define UNK_PENALTY 10.0f
#define MAX_MODEL_BYTES ((size_t)1 << 31)

enum piece_type {
    PIECE_NORMAL = 1,
    PIECE_UNKNOWN = 2,
    PIECE_CONTROL = 3,
    PIECE_USER_DEFINED = 4,
    PIECE_UNUSED = 5,
    PIECE_BYTE = 6,
};

/* A byte trie over the matchable pieces: nodes, edges in a hash table keyed
 * by (parent << 8 | byte); fewer than 2^24 nodes (checked at load). */
struct trie_edge {
    uint32_t key;  /* parent << 8 | byte */
    int32_t child; /* -1: free slot */
};

struct piece_trie {
    int32_t *value; /* (n_nodes) piece id ending at the node, or -1 */
    size_t n_nodes;
    struct trie_edge *edge; /* (cap) open addressing, linear probing */
    size_t cap;             /* power of two, >= 2 * n_edges */
    size_t n_edges;
};

struct tokenizer {
    int n_pieces;
    char **piece;        /* (n_pieces) NUL-terminated piece text */
    uint32_t *piece_len; /* (n_pieces) bytes */
    float *score;        /* (n_pieces) */
    uint8_t *type;       /* (n_pieces) enum piece_type */
    int unk_id, eos_id, pad_id;
    int byte_id[256]; /* id of <0xXX>, or -1 without byte fallback */
    int byte_fallback;
    int has_user_defined;
    float min_score, max_score; /* over NORMAL pieces */

    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    int treat_whitespace_as_suffix;
    uint32_t *units; /* (n_units) charsmap double array, host order */
    size_t n_units;
    char *pool; /* (pool_len) NUL-separated replacement strings */
    size_t pool_len;

    struct piece_trie trie;
};

/* A growable byte string. */
struct sbuf {
    char *p;
    size_t n, cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* ---- piece trie ---- */

static size_t edge_slot(uint32_t key, size_t cap)
{
    return (size_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> 29) & (cap - 1);
}

static int32_t trie_child(const struct piece_trie *t, int32_t node, uint8_t byte)
{
    uint32_t key = (uint32_t)node << 8 | byte;
    for (size_t i = edge_slot(key, t->cap);; i = (i + 1) & (t->cap - 1)) {
        if (t->edge[i].child < 0)
            return -1;
        if (t->edge[i].key == key)
            return t->edge[i].child;
    }
}

static void edge_put(struct trie_edge *edge, size_t cap, uint32_t key, int32_t child)
{
    size_t i = edge_slot(key, cap);
    while (edge[i].child >= 0)
        i = (i + 1) & (cap - 1);
    edge[i].key = key;
    edge[i].child = child;
}

static struct trie_edge *edges_new(size_t cap)
{
    struct trie_edge *e = xmalloc(cap * sizeof(*e));
    memset(e, 0xFF, cap * sizeof(*e)); /* child = -1 everywhere */
    return e;
}

/* trie_init() starts a trie for keys totalling total_bytes (< 2^24) bytes. */
static void trie_init(struct piece_trie *t, size_t total_bytes)
{
    t->cap = 1024;
    t->edge = edges_new(t->cap);
    t->n_edges = 0;
    t->value = xmalloc((total_bytes + 1) * sizeof(*t->value));
    t->value[0] = -1;
    t->n_nodes = 1;
}

/* trie_insert() adds key s[n] with value id; returns the previous value
 * (-1 when the key is new). */
static int32_t trie_insert(struct piece_trie *t, const uint8_t *s, size_t n, int32_t id)
{
    int32_t node = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t child = trie_child(t, node, s[k]);
        if (child < 0) {
            if (2 * (t->n_edges + 1) > t->cap) {
                size_t cap = 2 * t->cap;
                struct trie_edge *e = edges_new(cap);
                for (size_t i = 0; i < t->cap; i++)
                    if (t->edge[i].child >= 0)
                        edge_put(e, cap, t->edge[i].key, t->edge[i].child);
                free(t->edge);
                t->edge = e;
                t->cap = cap;
            }
            child = (int32_t)t->n_nodes++;
            t->value[child] = -1;
            edge_put(t->edge, t->cap, (uint32_t)node << 8 | s[k], child);
            t->n_edges++;
        }
        node = child;
    }
    int32_t old = t->value[node];
    if (old < 0)
        t->value[node] = id;
    return old;
}

static void trie_release(struct piece_trie *t)
{
    free(t->value);
    free(t->edge);
    memset(t, 0, sizeof(*t));
}

/* ---- UTF-8, as sentencepiece's string_util ---- */

static size_t one_char_len(uint8_t c)
{
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

static int is_trail(uint8_t c)
{
    return (c & 0xC0) == 0x80;
}

static int valid_cp(uint32_t c)
{
    return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

/* utf8_valid_len() gives the length of the well-formed character at s (no
 * overlongs, no surrogates), or 0 when the bytes are not one. */
static size_t utf8_valid_len(const uint8_t *s, size_t n)
{
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if (n >= 2 && (s[0] & 0xE0) == 0xC0) {
        cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        if (is_trail(s[1]) && cp >= 0x80 && valid_cp(cp))
            return 2;
    } else if (n >= 3 && (s[0] & 0xF0) == 0xE0) {
        cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && cp >= 0x800 && valid_cp(cp))
            return 3;
    } else if (n >= 4 && (s[0] & 0xF8) == 0xF0) {
        cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
             ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        if (is_trail(s[1]) && is_trail(s[2]) && is_trail(s[3]) && cp >= 0x10000 && valid_cp(cp))
            return 4;
    }
    return 0;
}

/* ---- precompiled charsmap (darts-clone units) ---- */

static uint32_t unit_offset(uint32_t u)
{
    return (u >> 10) << ((u & (1u << 9)) >> 6);
}

static uint32_t unit_label(uint32_t u)
{
    return u & ((1u << 31) | 0xFF);
}

static int unit_has_leaf(uint32_t u)
{
    return (u >> 8) & 1;
}

static uint32_t unit_value(uint32_t u)
{
    return u & ((1u << 31) - 1);
}

/* charsmap_longest() returns the length of the longest charsmap key that
 * prefixes s[n] (0 when none) and its value in *value. */
static size_t charsmap_longest(const struct tokenizer *tk, const uint8_t *s, size_t n,
                               uint32_t *value)
{
    size_t best = 0;
    if (tk->n_units == 0)
        return 0;
    size_t pos = unit_offset(tk->units[0]);
    for (size_t i = 0; i < n; i++) {
        pos ^= s[i];
        if (pos >= tk->n_units)
            return best;
        uint32_t u = tk->units[pos];
        if (unit_label(u) != s[i])
            return best;
        pos ^= unit_offset(u);
        if (unit_has_leaf(u)) {
            if (pos >= tk->n_units)
                return best;
            best = i + 1;
            *value = unit_value(tk->units[pos]);
        }
    }
    return best;
}

/* normalize_prefix() consumes the next unit of input s[n] (n > 0): returns
 * the bytes consumed and sets *out and *out_len to what they normalise to. */
static size_t normalize_prefix(const struct tokenizer *tk, const uint8_t *s, size_t n,
                               const char **out, size_t *out_len)
{
    if (tk->has_user_defined) {
        size_t best = 0;
        int32_t node = 0;
        for (size_t k = 0; k < n; k++) {
            node = trie_child(&tk->trie, node, s[k]);
            if (node < 0)
                break;
            int32_t id = tk->trie.value[node];
            if (id >= 0 && tk->type[id] == PIECE_USER_DEFINED)
                best = k + 1;
        }
        if (best) {
            *out = (const char *)s;
            *out_len = best;
            return best;
        }
    }
    uint32_t value = 0;
    size_t len = charsmap_longest(tk, s, n, &value);
    if (len > 0) {
        if (value >= tk->pool_len) {
            *out = "";
            *out_len = 0;
        } else {
            const char *r = tk->pool + value;
            const char *end = memchr(r, '\0', tk->pool_len - value);
            *out = r;
            *out_len = end ? (size_t)(end - r) : tk->pool_len - value;
        }
        return len;
    }
    len = utf8_valid_len(s, n);
    if (len == 0) {
        *out = "\xEF\xBF\xBD"; /* U+FFFD for one malformed byte */
        *out_len = 3;
        return 1;
    }
    *out = (const char *)s;
    *out_len = len;
    return len;
}

char *tokenizer_normalize(const struct tokenizer *tk, const char *text, size_t len, size_t *out_len)
{
    const uint8_t *in = (const uint8_t *)text;
    struct sbuf b = {0};
    const char *sp;
    size_t sp_len;
    const char *space = tk->escape_whitespaces ? SPACE_SYMBOL : " ";
    size_t space_len = strlen(space);

    sbuf_add(&b, "", 0);
    if (tk->remove_extra_whitespaces) {
        while (len > 0) {
            size_t used = normalize_prefix(tk, in, len, &sp, &sp_len);
            if (!(sp_len == 1 && sp[0] == ' '))
                break;
            in += used;
            len -= used;
        }
    }
    if (len == 0)
        goto done;
    if (!tk->treat_whitespace_as_suffix && tk->add_dummy_prefix)
        sbuf_add(&b, space, space_len);

    int prev_space = tk->remove_extra_whitespaces;
    while (len > 0) {
        size_t used = normalize_prefix(tk, in, len, &sp, &sp_len);
        while (prev_space && sp_len > 0 && sp[0] == ' ') {
            sp++;
            sp_len--;
        }
        if (sp_len > 0) {
            for (size_t k = 0; k < sp_len; k++) {
                if (tk->escape_whitespaces && sp[k] == ' ')
                    sbuf_add(&b, SPACE_SYMBOL, 3);
                else
                    sbuf_add(&b, sp + k, 1);
            }
            prev_space = sp[sp_len - 1] == ' ';
        }
        in += used;
        len -= used;
        if (!tk->remove_extra_whitespaces)
            prev_space = 0;
    }
    if (tk->remove_extra_whitespaces) {
        while (b.n >= space_len && memcmp(b.p + b.n - space_len, space, space_len) == 0) {
            b.n -= space_len;
            b.p[b.n] = '\0';
        }
    }
    if (tk->treat_whitespace_as_suffix && tk->add_dummy_prefix)
        sbuf_add(&b, space, space_len);
done:
    *out_len = b.n;
    return b.p;
}

/* ---- Viterbi ---- */

struct best_node {
    int32_t id;    /* piece id of the last piece of the best path, -1 none */
    int32_t start; /* where that piece starts; -1: no path reaches here */
    float score;   /* total score of the best path ending here */
};

/* viterbi() fills path[] with the (start, id) of the best segmentation of
 * s[n], in order; returns the number of pieces. path holds n entries. */
static size_t viterbi(const struct tokenizer *tk, const uint8_t *s, size_t n,
                      struct best_node *best, int32_t *starts, int32_t *ids)
{
    const float unk_score = tk->min_score - UNK_PENALTY;
    for (size_t i = 0; i <= n; i++) {
        best[i].id = -1;
        best[i].start = -1;
        best[i].score = 0.0f;
    }
    size_t start = 0;
    while (start < n) {
        const float here = best[start].score;
        size_t mblen = one_char_len(s[start]);
        if (mblen > n - start)
            mblen = n - start;
        int single = 0;
        int32_t node = 0;
        for (size_t end = start; end < n;) {
            node = trie_child(&tk->trie, node, s[end]);
            if (node < 0)
                break;
            end++;
            int32_t id = tk->trie.value[node];
            if (id < 0 || tk->type[id] == PIECE_UNUSED)
                continue;
            struct best_node *t = &best[end];
            size_t length = end - start;
            if (tk->type[id] == PIECE_USER_DEFINED) {
                /* sentencepiece: length * max_score - 0.1, in double */
                double cand = ((double)((float)length * tk->max_score) - 0.1) + (double)here;
                if (t->start < 0 || cand > (double)t->score) {
                    t->score = (float)cand;
                    t->start = (int32_t)start;
                    t->id = id;
                }
            } else {
                float cand = tk->score[id] + here;
                if (t->start < 0 || cand > t->score) {
                    t->score = cand;
                    t->start = (int32_t)start;
                    t->id = id;
                }
            }
            if (length == mblen)
                single = 1;
        }
        if (!single) {
            struct best_node *t = &best[start + mblen];
            float cand = unk_score + here;
            if (t->start < 0 || cand > t->score) {
                t->score = cand;
                t->start = (int32_t)start;
                t->id = tk->unk_id;
            }
        }
        start += mblen;
    }
    /* Backtrack, writing from the end of the arrays, then move to the front. */
    size_t count = 0;
    for (size_t end = n; end > 0; end = (size_t)best[end].start) {
        starts[n - 1 - count] = best[end].start;
        ids[n - 1 - count] = best[end].id;
        count++;
    }
    memmove(starts, starts + (n - count), count * sizeof(*starts));
    memmove(ids, ids + (n - count), count * sizeof(*ids));
    return count;
}

void tokenizer_encode(const struct tokenizer *tk, const char *text, size_t len, int32_t **ids,
                      size_t *n)
{
    size_t nlen = 0;
    char *norm = tokenizer_normalize(tk, text, len, &nlen);
    *ids = NULL;
    *n = 0;
    if (nlen == 0) {
        free(norm);
        return;
    }
    const uint8_t *s = (const uint8_t *)norm;
    struct best_node *best = xmalloc((nlen + 1) * sizeof(*best));
    int32_t *starts = xmalloc(nlen * sizeof(*starts));
    int32_t *pids = xmalloc(nlen * sizeof(*pids));
    size_t count = viterbi(tk, s, nlen, best, starts, pids);

    /* Byte fallback can turn one piece into up to nlen byte ids in total. */
    int32_t *out = xmalloc(nlen * sizeof(*out));
    size_t m = 0;
    int prev_unk = 0;
    for (size_t k = 0; k < count; k++) {
        size_t b = (size_t)starts[k], e = k + 1 < count ? (size_t)starts[k + 1] : nlen;
        int is_unk = pids[k] == tk->unk_id;
        if (is_unk && tk->byte_fallback) {
            for (size_t j = b; j < e; j++)
                out[m++] = tk->byte_id[s[j]];
        } else if (!(is_unk && prev_unk)) {
            out[m++] = pids[k];
        }
        prev_unk = is_unk;
    }
    free(best);
    free(starts);
    free(pids);
    free(norm);
    *ids = out;
    *n = m;
}

int tokenizer_encode_padded(const struct tokenizer *tk, const char *text, size_t len,
                            int max_length, int64_t *ids, int64_t *mask)
{
    if (max_length < 1)
        return log_error_rc(ENC_EINVAL, "max_length %d must be at least 1", max_length);
    if (tk->eos_id < 0 || tk->pad_id < 0)
        return log_error_rc(ENC_EINVAL, "the model has no %s id", tk->eos_id < 0 ? "eos" : "pad");
    int32_t *raw = NULL;
    size_t n = 0;
    tokenizer_encode(tk, text, len, &raw, &n);
    size_t keep = n;
    if (keep > (size_t)max_length - 1) {
        keep = (size_t)max_length - 1;
        log_warn("prompt of %zu tokens truncated to %zu (+ eos) at max_length %d", n, keep,
                 max_length);
    }
    for (size_t i = 0; i < keep; i++)
        ids[i] = raw[i];
    ids[keep] = tk->eos_id;
    for (size_t i = keep + 1; i < (size_t)max_length; i++)
        ids[i] = tk->pad_id;
    if (mask)
        for (size_t i = 0; i < (size_t)max_length; i++)
            mask[i] = i <= keep;
    free(raw);
    return (int)keep + 1;
}

/* ---- loading ---- */

int tokenizer_vocab_size(const struct tokenizer *tk)
{
    return tk->n_pieces;
}

int tokenizer_eos_id(const struct tokenizer *tk)
{
    return tk->eos_id;
}

int tokenizer_pad_id(const struct tokenizer *tk)
{
    return tk->pad_id;
}

int tokenizer_unk_id(const struct tokenizer *tk)
{
    return tk->unk_id;
}

const char *tokenizer_piece(const struct tokenizer *tk, int id)
{
    if (id < 0 || id >= tk->n_pieces)
        return NULL;
    return tk->piece[id];
}

void tokenizer_destroy(struct tokenizer **tkp)
{
    struct tokenizer *tk = tkp ? *tkp : NULL;
    if (!tk)
        return;
    for (int i = 0; i < tk->n_pieces; i++)
        free(tk->piece[i]);
    free(tk->piece);
    free(tk->piece_len);
    free(tk->score);
    free(tk->type);
    free(tk->units);
    free(tk->pool);
    trie_release(&tk->trie);
    free(tk);
    *tkp = NULL;
}

static const char *model_type_name(int t)
{
    switch (t) {
    case SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM: return "unigram";
    case SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__BPE: return "bpe";
    case SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__WORD: return "word";
    case SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__CHAR: return "char";
    default: return "unknown";
    }
}

/* byte_of_piece() maps "<0xAB>" (upper-case hex, as sentencepiece writes
 * it) to 0xAB, or -1. */
static int byte_of_piece(const char *p)
{
    static const char hex[] = "0123456789ABCDEF";
    if (strlen(p) != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    const char *hi = memchr(hex, p[3], 16), *lo = memchr(hex, p[4], 16);
    if (!hi || !lo || !p[3] || !p[4])
        return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

static int special_id(int id, int n)
{
    return id >= 0 && id < n ? id : -1;
}

/* build() fills tk from the decoded model; 0 or an enc_err (logged). */
static int build(struct tokenizer *tk, const Sentencepiece__ModelProto *mp, const char *name)
{
    const Sentencepiece__TrainerSpec *ts = mp->trainer_spec;
    const Sentencepiece__NormalizerSpec *ns = mp->normalizer_spec;
    int model_type = ts && ts->has_model_type ? (int)ts->model_type
                                              : SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;

    if (mp->n_pieces == 0)
        return log_error_rc(ENC_EINVAL, "'%s': not a SentencePiece model (no pieces)", name);
    if (mp->n_pieces > INT32_MAX / 2)
        return log_error_rc(ENC_EINVAL, "'%s': too many pieces (%zu)", name, mp->n_pieces);
    if (model_type != SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM)
        return log_error_rc(ENC_ENOTSUP,
                            "'%s': SentencePiece model type is %s (%d); only unigram models "
                            "are supported",
                            name, model_type_name(model_type), model_type);

    tk->byte_fallback = ts && ts->byte_fallback;
    tk->treat_whitespace_as_suffix = ts && ts->treat_whitespace_as_suffix;
    tk->add_dummy_prefix = ns ? ns->add_dummy_prefix : 1;
    tk->remove_extra_whitespaces = ns ? ns->remove_extra_whitespaces : 1;
    tk->escape_whitespaces = ns ? ns->escape_whitespaces : 1;

    int n = (int)mp->n_pieces;
    tk->n_pieces = n;
    tk->piece = xcalloc((size_t)n, sizeof(*tk->piece));
    tk->piece_len = xcalloc((size_t)n, sizeof(*tk->piece_len));
    tk->score = xcalloc((size_t)n, sizeof(*tk->score));
    tk->type = xcalloc((size_t)n, sizeof(*tk->type));
    tk->unk_id = -1;
    for (int b = 0; b < 256; b++)
        tk->byte_id[b] = -1;
    tk->min_score = FLT_MAX;
    tk->max_score = FLT_MIN;

    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const Sentencepiece__ModelProto__SentencePiece *sp = mp->pieces[i];
        if (!sp->piece || !sp->piece[0])
            return log_error_rc(ENC_EINVAL, "'%s': piece %d is empty", name, i);
        int t = (int)sp->type;
        if (t < PIECE_NORMAL || t > PIECE_BYTE)
            return log_error_rc(ENC_EINVAL, "'%s': piece %d has unknown type %d", name, i, t);
        tk->piece[i] = xstrdup(sp->piece);
        tk->piece_len[i] = (uint32_t)strlen(sp->piece);
        tk->score[i] = sp->score;
        tk->type[i] = (uint8_t)t;
        if (t == PIECE_NORMAL) {
            if (sp->score < tk->min_score)
                tk->min_score = sp->score;
            if (sp->score > tk->max_score)
                tk->max_score = sp->score;
        }
        if (t == PIECE_NORMAL || t == PIECE_USER_DEFINED || t == PIECE_UNUSED)
            total += tk->piece_len[i];
        if (t == PIECE_USER_DEFINED)
            tk->has_user_defined = 1;
        if (t == PIECE_UNKNOWN) {
            if (tk->unk_id >= 0)
                return log_error_rc(ENC_EINVAL, "'%s': two unknown pieces (%d and %d)", name,
                                    tk->unk_id, i);
            tk->unk_id = i;
        }
        if (t == PIECE_BYTE) {
            if (!tk->byte_fallback)
                return log_error_rc(ENC_EINVAL,
                                    "'%s': byte piece '%s' found although byte_fallback is off",
                                    name, sp->piece);
            int b = byte_of_piece(sp->piece);
            if (b < 0)
                return log_error_rc(ENC_EINVAL, "'%s': invalid byte piece '%s'", name, sp->piece);
            if (tk->byte_id[b] >= 0)
                return log_error_rc(ENC_EINVAL, "'%s': byte piece '%s' defined twice", name,
                                    sp->piece);
            tk->byte_id[b] = i;
        }
    }
    if (tk->unk_id < 0)
        return log_error_rc(ENC_EINVAL, "'%s': the model defines no unknown piece", name);
    if (tk->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (tk->byte_id[b] < 0)
                return log_error_rc(ENC_EINVAL,
                                    "'%s': byte_fallback is on but byte piece <0x%02X> is "
                                    "missing",
                                    name, b);

    if (total >= (size_t)1 << 24)
        return log_error_rc(ENC_EINVAL, "'%s': pieces too long in total (%zu bytes)", name, total);
    trie_init(&tk->trie, total);
    for (int i = 0; i < n; i++) {
        int t = tk->type[i];
        if (t != PIECE_NORMAL && t != PIECE_USER_DEFINED && t != PIECE_UNUSED)
            continue;
        int32_t old = trie_insert(&tk->trie, (const uint8_t *)tk->piece[i], tk->piece_len[i], i);
        if (old >= 0)
            return log_error_rc(ENC_EINVAL, "'%s': piece '%s' defined twice (%d and %d)", name,
                                tk->piece[i], old, i);
    }

    tk->eos_id = special_id(ts && ts->has_eos_id ? ts->eos_id : 2, n);
    tk->pad_id = special_id(ts && ts->has_pad_id ? ts->pad_id : -1, n);

    if (ns && ns->has_precompiled_charsmap && ns->precompiled_charsmap.len > 0) {
        const uint8_t *blob = ns->precompiled_charsmap.data;
        size_t blen = ns->precompiled_charsmap.len;
        uint32_t tsize;
        if (blen <= 4)
            return log_error_rc(ENC_EINVAL, "'%s': precompiled_charsmap is broken (%zu bytes)",
                                name, blen);
        tsize = (uint32_t)blob[0] | (uint32_t)blob[1] << 8 | (uint32_t)blob[2] << 16 |
                (uint32_t)blob[3] << 24;
        if ((size_t)tsize >= blen - 4 || tsize < 4)
            return log_error_rc(ENC_EINVAL,
                                "'%s': precompiled_charsmap trie size %u does not fit its %zu "
                                "bytes",
                                name, tsize, blen);
        tk->n_units = tsize / 4;
        tk->units = xmalloc(tk->n_units * sizeof(*tk->units));
        for (size_t u = 0; u < tk->n_units; u++) {
            const uint8_t *p = blob + 4 + 4 * u;
            tk->units[u] =
                (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        }
        tk->pool_len = blen - 4 - tsize;
        tk->pool = xmalloc(tk->pool_len);
        memcpy(tk->pool, blob + 4 + tsize, tk->pool_len);
    }
    return 0;
}

int tokenizer_load(const void *buf, size_t len, const char *name, struct tokenizer **out)
{
    *out = NULL;
    if (len == 0)
        return log_error_rc(ENC_EINVAL, "'%s': empty file, not a SentencePiece model", name);
    Sentencepiece__ModelProto *mp = sentencepiece__model_proto__unpack(NULL, len, buf);
    if (!mp)
        return log_error_rc(ENC_EINVAL,
                            "'%s': not a SentencePiece model (protobuf decoding failed: "
                            "truncated or not a .model file)",
                            name);
    struct tokenizer *tk = xcalloc(1, sizeof(*tk));
    int rc = build(tk, mp, name);
    sentencepiece__model_proto__free_unpacked(mp, NULL);
    if (rc < 0) {
        tokenizer_destroy(&tk);
        return rc;
    }
    log_debug("'%s': %d pieces, byte_fallback %d, charsmap %zu units", name, tk->n_pieces,
              tk->byte_fallback, tk->n_units);
    *out = tk;
    return 0;
}

int tokenizer_open(const char *path, struct tokenizer **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return log_error_rc(ENC_EIO, "cannot open '%s': %s", path, strerror(errno));
    struct sbuf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sbuf_add(&b, chunk, got);
        if (b.n > MAX_MODEL_BYTES) {
            fclose(f);
            free(b.p);
            return log_error_rc(ENC_EINVAL, "'%s': too large for a SentencePiece model", path);
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(b.p);
        return log_error_rc(ENC_EIO, "cannot read '%s'", path);
    }
    int rc = tokenizer_load(b.p, b.n, path, out);
    free(b.p);
    return rc;
}

/* ---- the tiny model ---- */

/* Common English pieces of the tiny model, most likely first. */
static const char *const tiny_words[] = {
    "▁the",    "▁a",       "▁is",       "▁and",     "▁of",      "▁to",      "▁in",
    "▁with",   "▁man",     "▁woman",    "▁person",  "▁talking", "▁singing", "▁speaking",
    "▁camera", "▁face",    "▁smiling",  "▁video",   "▁hair",    "▁young",   "▁old",
    "▁his",    "▁her",     "▁at",       "▁looking", "▁on",      "▁front",   "▁background",
    "▁light",  "▁black",   "▁white",    "▁long",    "▁short",   "▁girl",    "▁boy",
    "▁song",   "▁music",   "▁mouth",    "▁eyes",    "▁head",    "▁moving",  "▁natural",
    "▁high",   "▁quality", "▁portrait", "▁room",    "▁wearing", "▁shirt",   "▁red",
    "▁blue",   "ing",      "ed",        "er",       "es",       "th",       "he",
    "in",      "an",       "on",        "re",       "at",       "en",       "or",
    "ly",      "al",       "ar",        "st",       "le",
};

static int tiny_ascii_count(void)
{
    return 0x7e - 0x21 + 1; /* printable ASCII without space */
}

int tokenizer_tiny_vocab_size(void)
{
    return 3 + 256 + 1 + tiny_ascii_count() + (int)(sizeof(tiny_words) / sizeof(tiny_words[0]));
}

int tokenizer_write_tiny(const char *path)
{
    int n = tokenizer_tiny_vocab_size();
    Sentencepiece__ModelProto mp = SENTENCEPIECE__MODEL_PROTO__INIT;
    Sentencepiece__TrainerSpec ts = SENTENCEPIECE__TRAINER_SPEC__INIT;
    Sentencepiece__NormalizerSpec ns = SENTENCEPIECE__NORMALIZER_SPEC__INIT;
    Sentencepiece__ModelProto__SentencePiece *sp = xcalloc((size_t)n, sizeof(*sp));
    Sentencepiece__ModelProto__SentencePiece **spp = xcalloc((size_t)n, sizeof(*spp));
    char(*text)[8] = xcalloc((size_t)n, sizeof(*text));
    int k = 0;

    for (int i = 0; i < n; i++) {
        Sentencepiece__ModelProto__SentencePiece init =
            SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__INIT;
        sp[i] = init;
        sp[i].has_score = 1;
        sp[i].has_type = 1;
        spp[i] = &sp[i];
    }
    sp[k].piece = "<pad>";
    sp[k++].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL;
    sp[k].piece = "</s>";
    sp[k++].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__CONTROL;
    sp[k].piece = "<unk>";
    sp[k++].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__UNKNOWN;
    for (int b = 0; b < 256; b++, k++) {
        snprintf(text[k], sizeof(text[k]), "<0x%02X>", b);
        sp[k].piece = text[k];
        sp[k].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__BYTE;
    }
    /* Scores: "▁" and the words are likelier than single characters, so
     * known words come out whole; within a class, earlier = likelier. */
    sp[k].piece = SPACE_SYMBOL;
    sp[k].score = -2.5f;
    sp[k++].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;
    for (size_t w = 0; w < sizeof(tiny_words) / sizeof(tiny_words[0]); w++, k++) {
        sp[k].piece = (char *)tiny_words[w];
        sp[k].score = -3.0f - 0.05f * (float)w;
        sp[k].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;
    }
    for (int c = 0x21; c <= 0x7e; c++, k++) {
        text[k][0] = (char)c;
        sp[k].piece = text[k];
        sp[k].score = -8.0f - 0.01f * (float)(c - 0x21);
        sp[k].type = SENTENCEPIECE__MODEL_PROTO__SENTENCE_PIECE__TYPE__NORMAL;
    }
    mp.n_pieces = (size_t)k;
    mp.pieces = spp;

    ts.has_model_type = 1;
    ts.model_type = SENTENCEPIECE__TRAINER_SPEC__MODEL_TYPE__UNIGRAM;
    ts.has_vocab_size = 1;
    ts.vocab_size = n;
    ts.has_byte_fallback = 1;
    ts.byte_fallback = 1;
    ts.has_unk_id = 1;
    ts.unk_id = 2;
    ts.has_bos_id = 1;
    ts.bos_id = -1;
    ts.has_eos_id = 1;
    ts.eos_id = 1;
    ts.has_pad_id = 1;
    ts.pad_id = 0;
    ts.model_prefix = "encore-tiny";
    mp.trainer_spec = &ts;

    ns.name = "identity";
    ns.has_add_dummy_prefix = 1;
    ns.add_dummy_prefix = 1;
    ns.has_remove_extra_whitespaces = 1;
    ns.remove_extra_whitespaces = 1;
    ns.has_escape_whitespaces = 1;
    ns.escape_whitespaces = 1;
    mp.normalizer_spec = &ns;

    size_t len = sentencepiece__model_proto__get_packed_size(&mp);
    uint8_t *buf = xmalloc(len);
    sentencepiece__model_proto__pack(&mp, buf);
    free(sp);
    free(spp);
    free(text);

    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f) {
        rc = log_error_rc(ENC_EIO, "cannot create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    size_t wrote = fwrite(buf, 1, len, f);
    if (fclose(f) != 0 || wrote != len) {
        rc = log_error_rc(ENC_EIO, "cannot write '%s'", tmp);
        remove(tmp);
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = log_error_rc(ENC_EIO, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
        remove(tmp);
    }
out:
    free(tmp);
    free(buf);
    return rc;
}
