/*
 * tokenizer.h: text <-> token ids, for every tokenizer kind the engine reads.
 *
 * Kinds:
 *   - llama2.c tok*.bin (SentencePiece pieces with scores, byte fallback,
 *     greedy highest-score merges exactly as llama2.c's run.c encodes);
 *   - Hugging Face tokenizer.json BPE, byte-level (GPT-2, LLaMA-3, SmolLM2,
 *     Qwen2 pre-tokenizers) or SentencePiece-style (Metaspace or the
 *     Prepend/Replace normalizers, "▁" for spaces, <0xHH> byte fallback, as
 *     LLaMA-2 and Mistral), with tokenizer_config.json beside it for the
 *     BOS/EOS tokens, add_bos_token and the chat template;
 *   - the tokenizer inside a GGUF file: tokenizer.ggml.model "gpt2"
 *     (byte-level BPE with merges; tokenizer.ggml.pre picks the
 *     pre-tokenizer) or "llama" (SentencePiece with scores).
 * Ids are those the Hugging Face `tokenizers` library gives for the same
 * files (tests/unit/test_tokenizers.c checks a corpus of strings).
 */
#ifndef OWLORE_TOKENIZER_H
#define OWLORE_TOKENIZER_H

#include <stddef.h>

enum tokenizer_kind {
    TOKENIZER_LLAMA2C,   /* llama2.c tok*.bin */
    TOKENIZER_HF,        /* tokenizer.json */
    TOKENIZER_GGUF,      /* embedded in a .gguf file */
};

struct tok_model;

struct tokenizer {
    enum tokenizer_kind kind;
    int vocab_size;            /* ids are 0 .. vocab_size - 1 */
    int bos_id, eos_id;        /* -1 when the tokenizer has none */
    int unk_id, pad_id;        /* -1 when none */
    int add_bos, add_eos;      /* what TOKENIZE_ADD_SPECIAL adds */
    int max_token_bytes;       /* longest decoded token */
    char *chat_template;       /* Jinja text from the tokenizer's config, or NULL */
    struct tok_model *m;       /* internals (tok_internal.h) */
};

/* tokenizer_encode flags. */
enum {
    TOKENIZE_BOS = 1,            /* prepend BOS (bos_id) */
    TOKENIZE_ADD_SPECIAL = 2,    /* add what the tokenizer's own config adds
                                    (Hugging Face add_special_tokens=True) */
    TOKENIZE_PARSE_SPECIAL = 4,  /* text of special tokens ("<|im_end|>")
                                    becomes those tokens; without it only
                                    non-special added tokens are matched */
};

/* Read a llama2.c tokenizer file for a vocabulary of vocab_size entries;
 * the file must be consumed exactly. */
int tokenizer_load_llama2c(struct tokenizer *t, const char *path, int vocab_size,
                           char *err, size_t errlen);
/* Load any tokenizer file, told apart by content: a GGUF file (magic
 * "GGUF"), a tokenizer.json (a name ending in .json or content starting
 * with '{'; tokenizer_config.json beside it is read when present), a
 * directory holding tokenizer.json, else a llama2.c file of vocab_size
 * entries. For the other kinds vocab_size, when > 0, is the model's
 * vocabulary: a token id at or above it is refused. Malformed files are
 * refused with a message naming the file and the offending entry. */
int tokenizer_load(struct tokenizer *t, const char *path, int vocab_size, char *err,
                   size_t errlen);
void tokenizer_free(struct tokenizer *t);

/* The tokenizer file of a model: `explicit_path` when given; for a .gguf
 * model the file itself; for a directory (or beside a file) tokenizer.json,
 * then tokenizer.bin, then tok<vocab_size>.bin. Into path (len bytes); -1
 * with a message when there is none. */
int tokenizer_find_for_model(const char *model_path, const char *explicit_path,
                             int vocab_size, char *path, size_t len, char *err,
                             size_t errlen);
/* tokenizer_find_for_model, then tokenizer_load. */
int tokenizer_load_for_model(struct tokenizer *t, const char *model_path,
                             const char *explicit_path, int vocab_size,
                             char *err, size_t errlen);

/* Encode text (len bytes) into ids (capacity max_ids); flags TOKENIZE_*.
 * Returns the number of ids, or -1 when max_ids is too small (or memory
 * runs out). Safe to call from several threads at once. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len,
                     int flags, int *ids, int max_ids);

/* The id of the token spelled exactly `s` (an added/special token such as
 * "<|im_start|>", or a vocabulary string as the file spells it), or -1. */
int tokenizer_token_id(const struct tokenizer *t, const char *s);
/* 1 when id is a special (control) token such as BOS, EOS, <|im_end|>. */
int tokenizer_is_special(const struct tokenizer *t, int id);

/* Bytes of token `id` as it reads after token `prev` (prev < 0 at the start
 * of the text): byte tokens are their raw byte, byte-level tokens their
 * bytes, "▁" a space, special tokens their text; for SentencePiece-style
 * kinds the leading space of the first token (prev < 0 or prev == BOS) is
 * dropped. A byte-level token may hold part of a UTF-8 character. *len gets
 * the count; the bytes are not NUL-terminated. */
const char *tokenizer_decode(const struct tokenizer *t, int prev, int id, int *len);
/* Decode n ids into out (capacity cap, NUL-terminated when it fits) as
 * consecutive tokenizer_decode calls from the start of the text. Returns
 * the full length (like snprintf), or -1 when an id is out of range. */
long tokenizer_decode_all(const struct tokenizer *t, const int *ids, int n, char *out,
                          size_t cap);

/* Streaming decode for generation: hands out only whole UTF-8 characters,
 * holding back the start of one split across tokens. */
struct tokenizer_stream {
    int prev;
    int n_pending;
    char pending[4];
};
void tokenizer_stream_init(struct tokenizer_stream *s, int prev);
/* Bytes to print after token id, into out (cap >= max_token_bytes + 4);
 * returns their count, or -1 when id is out of range. */
int tokenizer_stream_next(const struct tokenizer *t, struct tokenizer_stream *s, int id,
                          char *out, int cap);
/* Whatever is still held back (an incomplete character), into out (cap >= 4). */
int tokenizer_stream_flush(struct tokenizer_stream *s, char *out);

#endif
