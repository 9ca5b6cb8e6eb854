/*
 * tokenizer.h - SentencePiece unigram tokenizer (umT5's), in C.
 *
 * Loads a SentencePiece .model file (the ModelProto protobuf) and encodes
 * UTF-8 text to piece ids exactly as sentencepiece's encoder does:
 * normalisation through the model's precompiled charsmap (longest match in
 * a double-array trie), whitespace handling (leading/trailing/repeated
 * spaces removed, a dummy U+2581 prefix, spaces escaped as U+2581), Viterbi
 * over the float32 piece scores, uncovered characters as <unk> scored
 * min_score - 10, and byte fallback to <0xXX> pieces. On top of that,
 * tokenizer_encode_padded() applies the call the StableAvatar pipeline makes
 * through transformers (`padding="max_length", truncation=True,
 * add_special_tokens=True`): ids truncated to max_length - 1, then </s>, then
 * <pad> up to max_length.
 *
 * Which tokenizer is "the original": the pipeline uses the HF *fast*
 * tokenizer of google/umt5-xxl; this module reproduces sentencepiece. They
 * agree on ordinary text; they may differ on leading/trailing/repeated
 * whitespace edge cases, on characters outside the vocabulary when the fast
 * model lacks byte fallback (one <unk> per character there), and on literal
 * special-token text such as "</s>" typed into a prompt (the fast tokenizer
 * maps it to id 1, sentencepiece spells it out). The tokenizer fixture
 * flags (hf_fast_may_differ) these strings; encore gives sentencepiece's
 * ids for all of them and the fixture checks exactly that:
 *   5  "  leading and trailing spaces  "  whitespace edge case (a)
 *   10 "emoji 😀 and 🎤 music"             out-of-vocabulary emoji: byte
 *                                         pieces here, <unk> per character
 *                                         in a fast model without byte
 *                                         fallback (b)
 *   15 "ﾊﾝｶｸ ｶﾀｶﾅ"                        NFKC widens to unseen kana (b)
 *   16 "こんにちは、세계"                  kana and hangul unseen (b)
 *   20 "𠀀𠀁 rare CJK"                      supplementary-plane CJK (b)
 * Whether umT5's own tokenizer.json enables byte fallback was not
 * verified (README-encoders [U]).
 *
 * Only unigram models are accepted; BPE/word/char models are refused with a
 * message naming the file. A tokenizer is immutable after loading, so one
 * may be shared by threads.
 */
#ifndef ENCORE_TOKENIZER_H
#define ENCORE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

/*
 * tokenizer_open() loads the SentencePiece model at path. Returns 0, ENC_EIO
 * when the file cannot be read, ENC_EINVAL when it is not a valid
 * SentencePiece model (not protobuf, truncated, no <unk>, duplicate or
 * missing byte pieces...) and ENC_ENOTSUP for a non-unigram model, each
 * logged with the path. Free with tokenizer_destroy().
 */
int tokenizer_open(const char *path, struct tokenizer **out);
/* tokenizer_load() is tokenizer_open() on an in-memory model; name is used
 * in messages only. buf is not kept. */
int tokenizer_load(const void *buf, size_t len, const char *name, struct tokenizer **out);
/* tokenizer_destroy() accepts NULL and NULLs *tk. */
void tokenizer_destroy(struct tokenizer **tk);

/* Number of pieces (ids are 0 .. vocab_size-1). */
int tokenizer_vocab_size(const struct tokenizer *tk);
/* The special ids from the trainer spec; -1 when the model has none. */
int tokenizer_eos_id(const struct tokenizer *tk);
int tokenizer_pad_id(const struct tokenizer *tk);
int tokenizer_unk_id(const struct tokenizer *tk);
/* tokenizer_piece() returns the text of piece id (NUL-terminated, owned by
 * tk), or NULL when id is out of range. */
const char *tokenizer_piece(const struct tokenizer *tk, int id);

/*
 * tokenizer_normalize() runs sentencepiece's normaliser on text[len] and
 * returns the normalised UTF-8 string (spaces as U+2581) in a new
 * NUL-terminated buffer the caller frees; *out_len gets its length.
 * Invalid UTF-8 bytes become U+FFFD, as sentencepiece does. Never fails.
 */
char *tokenizer_normalize(const struct tokenizer *tk, const char *text, size_t len,
                          size_t *out_len);

/*
 * tokenizer_encode() gives sentencepiece's ids for text[len] (no EOS, no
 * padding, no truncation) in a new array the caller frees; *n gets the
 * count (0 for an empty or all-space text, *ids is then NULL).
 */
void tokenizer_encode(const struct tokenizer *tk, const char *text, size_t len, int32_t **ids,
                      size_t *n);

/*
 * tokenizer_encode_padded() is the pipeline's tokenizer call: ids[max_length]
 * = sentencepiece ids truncated to max_length - 1, then the EOS id, then the
 * pad id; mask[max_length] (may be NULL) = 1 on the real tokens (EOS
 * included), 0 on padding. Returns the number of real tokens (>= 1), or
 * ENC_EINVAL when max_length < 1 or the model has no EOS or pad id. Logs a
 * warning when the text was truncated.
 */
int tokenizer_encode_padded(const struct tokenizer *tk, const char *text, size_t len,
                            int max_length, int64_t *ids, int64_t *mask);

/*
 * tokenizer_write_tiny() writes a small but real SentencePiece unigram model
 * (protobuf, loadable by sentencepiece itself) to path for `encore model init
 * --tiny`: <pad>=0, </s>=1, <unk>=2, the 256 byte-fallback pieces
 * <0x00>..<0xFF>, then "▁", printable ASCII and some common English
 * pieces; identity normaliser (no charsmap), dummy prefix, extra whitespace
 * removed. Returns 0 or ENC_EIO naming the path.
 */
int tokenizer_write_tiny(const char *path);
/* The vocabulary size of the model tokenizer_write_tiny() writes. */
int tokenizer_tiny_vocab_size(void);

#endif
