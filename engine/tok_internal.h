/*
 * tok_internal.h: what the tokenizer source files share (not a public API).
 *
 * Every tokenizer kind is loaded into one description (struct tok_model):
 * the vocabulary (each id's string as the file spells it and the bytes it
 * decodes to), a hash of strings to ids, a hash of merge pairs to
 * (rank, result), the added tokens matched in text, a chain of normalizers
 * and one of pre-tokenizers, and the model's options. Encoding then follows
 * Hugging Face `tokenizers` step by step (tokenizer.c): added tokens are cut
 * out of the raw text, each remaining segment is normalized, cut again at
 * normalized added tokens, pre-tokenized into words, and each word becomes
 * ids by BPE merges (tok_bpe.c), applied lowest rank first and leftmost
 * first among equal ranks. Score-ranked vocabularies (llama2.c, GGUF
 * "llama") are turned into merge pairs at load, ranked by the score of the
 * merged piece, which reproduces SentencePiece's "highest score, leftmost"
 * greedy merging.
 */
#ifndef OWLORE_TOK_INTERNAL_H
#define OWLORE_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* ---- Unicode (tok_unicode.c, tables in unicode_tables.c) ---- */

struct tok_urange { uint32_t first, last; int val; };
struct tok_udecomp { uint32_t cp; int off, len; };
struct tok_ucomp { uint32_t a, b, c; };

extern const struct tok_urange tok_cat_ranges[];
extern const int tok_cat_count;
extern const struct tok_urange tok_ccc_ranges[];
extern const int tok_ccc_count;
extern const struct tok_udecomp tok_decomps[];
extern const int tok_decomp_count;
extern const uint32_t tok_decomp_pool[];
extern const struct tok_ucomp tok_comps[];
extern const int tok_comp_count;

enum { TOK_CAT_OTHER = 0, TOK_CAT_L = 1, TOK_CAT_N = 2 };

/* One UTF-8 character at s (n bytes left, n >= 1): its byte length, and its
 * code point in *cp. A byte that does not start a valid sequence is one
 * character of its own with *cp = TOK_BAD_BYTE + the byte. */
#define TOK_BAD_BYTE 0x110000u
int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
int tok_utf8_put(uint32_t cp, char *out); /* 1..4 bytes (a bad byte: 1) */
int tok_ucat(uint32_t cp);                /* TOK_CAT_* */
int tok_uspace(uint32_t cp);              /* White_Space */

/* ---- growing byte buffer, optionally with each byte's input offset ---- */

struct tok_buf {
    char *s;
    int *orig;      /* NULL when offsets are not tracked */
    size_t len, cap;
};
int tok_buf_put(struct tok_buf *b, const char *s, size_t n, int orig);
void tok_buf_free(struct tok_buf *b);

/* NFC of in[0..n) (offsets in in_orig, may be NULL) appended to out. */
int tok_nfc(const char *in, const int *in_orig, size_t n, struct tok_buf *out);

/* ---- hash tables ---- */

struct tok_strmap {              /* byte string -> id (lowest id kept) */
    uint32_t *slots;             /* id + 1, 0 empty */
    size_t mask;
    const char *const *keys;     /* key of id */
    const int *key_len;
};
int tok_strmap_init(struct tok_strmap *m, const char *const *keys, const int *key_len,
                    int n, const unsigned char *skip);
int tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n);
void tok_strmap_free(struct tok_strmap *m);

struct tok_pair { uint32_t left, right; int rank, id; };
struct tok_pairmap {
    struct tok_pair *slots;      /* left == UINT32_MAX: empty */
    size_t mask, count;
};
int tok_pairmap_init(struct tok_pairmap *m, size_t expected);
/* 1 when added, 0 when the pair was already there (kept), -1 out of memory */
int tok_pairmap_add(struct tok_pairmap *m, int left, int right, int rank, int id);
const struct tok_pair *tok_pairmap_get(const struct tok_pairmap *m, int left, int right);
void tok_pairmap_free(struct tok_pairmap *m);

/* ---- the loaded tokenizer ---- */

enum tok_attr_bits {
    TOK_ATTR_SPECIAL = 1,     /* a special / control token */
    TOK_ATTR_ADDED = 2,       /* matched in text as a whole (added token) */
    TOK_ATTR_BYTE = 4,        /* <0xHH> byte-fallback token */
    TOK_ATTR_UNUSED = 8,      /* no token has this id */
    TOK_ATTR_NO_MERGE = 16,   /* never the result of a merge */
    TOK_ATTR_EXTRA = 32,      /* an added token outside the model vocabulary */
};

struct tok_added {
    int id;
    char *content;            /* as matched (normalized ones: normalized) */
    int len;
    unsigned special : 1, normalized : 1, lstrip : 1, rstrip : 1, single_word : 1;
};

enum tok_norm_type { NORM_NFC, NORM_PREPEND, NORM_REPLACE };
struct tok_norm {
    enum tok_norm_type type;
    char *a, *b;              /* Prepend: a; Replace: a -> b */
    int alen, blen;
};

enum tok_pre_type { PRE_BYTELEVEL, PRE_SPLIT, PRE_DIGITS, PRE_METASPACE };
enum tok_pattern { PAT_GPT2, PAT_LLAMA3, PAT_QWEN2 };
enum tok_prepend { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
struct tok_pre {
    enum tok_pre_type type;
    enum tok_pattern pattern;     /* PRE_SPLIT; PRE_BYTELEVEL with use_regex */
    int use_regex;                /* PRE_BYTELEVEL */
    int add_prefix_space;         /* PRE_BYTELEVEL */
    int individual;               /* PRE_DIGITS */
    char replacement[8];          /* PRE_METASPACE (UTF-8) */
    int rep_len;
    enum tok_prepend prepend;     /* PRE_METASPACE */
    int split;                    /* PRE_METASPACE */
};

#define TOK_MAX_STEPS 8
#define TOK_MAX_AFFIX 4

struct tok_model {
    int n;                        /* ids 0..n-1 */
    char **str;                   /* (n) the token as the vocabulary spells it */
    int *str_len;
    char **text;                  /* (n) the bytes it decodes to */
    int *text_len;
    unsigned char *attr;          /* (n) TOK_ATTR_* */
    struct tok_strmap vocab;      /* model vocabulary strings -> id */
    struct tok_pairmap merges;
    int byte_level;               /* words are bytes mapped to GPT-2 chars */
    int byte_sym[256];            /* byte-level: id of each byte's char, or -1 */
    char byte_chr[256][3];        /* byte-level: each byte's char (UTF-8) */
    int byte_chr_len[256];
    int byte_fallback;            /* char-level: unknown chars as <0xHH> */
    int byte_id[256];             /* char-level: id of <0xHH>, or -1 */
    int unk_id;                   /* -1: unknown symbols are dropped */
    int fuse_unk;
    int ignore_merges;            /* a word that is a token is not merged */
    int strip_space;              /* decoding drops the leading space */
    int metaspace;                /* "▁" in a token decodes to a space */
    struct tok_added *added;
    int n_added;
    int *added_by_byte[2][256];   /* [normalized][first byte]: indexes into */
    int n_added_by_byte[2][256];  /*   added, longest first */
    struct tok_norm norm[TOK_MAX_STEPS];
    int n_norm;
    struct tok_pre pre[TOK_MAX_STEPS];
    int n_pre;
    int prefix[TOK_MAX_AFFIX], n_prefix;  /* added by TOKENIZE_ADD_SPECIAL */
    int suffix[TOK_MAX_AFFIX], n_suffix;
};

/* Allocate the per-id arrays of n ids (attr all TOK_ATTR_UNUSED). */
int tok_model_alloc(struct tok_model *m, int n);
/* Set id's vocabulary string (copied); its text starts equal to it. */
int tok_model_set(struct tok_model *m, int id, const char *s, int len);
/* Set only the bytes id decodes to (copied). */
int tok_model_set_text(struct tok_model *m, int id, const char *s, int len);
/* After every string is set: text of each id (byte-level / ▁ / <0xHH>
 * decoding), the vocabulary hash, byte tables and the added-token index.
 * Returns -1 with a message on failure. */
int tok_model_finish(struct tok_model *m, const char *what, char *err, size_t errlen);
/* Merge pairs from scores (llama2.c, GGUF "llama"): every split of every
 * mergeable piece into two pieces, ranked by the piece's score (equal
 * scores share a rank). */
int tok_model_merges_from_scores(struct tok_model *m, const float *scores,
                                 char *err, size_t errlen);
int tok_model_add_added(struct tok_model *m, const struct tok_added *a);
void tok_model_free(struct tok_model *m);
/* Apply the normalizer chain to a token's content (for normalized added
 * tokens); a new malloc'd string in *out. */
int tok_normalize_str(const struct tok_model *m, const char *s, int len, char **out,
                      int *out_len);

/* ---- encoding ---- */

/* Output of an encoding: ids, optionally each token's [start, end) byte
 * range in the input (spans, 2 ints per id). */
struct tok_out {
    int *ids;
    int *spans;
    int n, max;
    int overflow;
};
void tok_out_push(struct tok_out *o, int id, int start, int end);

/* One word (a pre-token) through the model: bytes w[0..n), each byte's input
 * offset in orig (may be NULL). Returns 0, or -1 when out of memory. */
int tok_bpe_word(const struct tok_model *m, const char *w, size_t n, const int *orig,
                 struct tok_out *o);

/* Pre-tokenize: pieces[2k], pieces[2k+1] are [start, end) of the words of
 * s[0..n) for pattern p. Returns the count, or -1 out of memory. */
int tok_pattern_split(enum tok_pattern p, const char *s, size_t n, int **pieces);

/* Encode text as `tokenizers` encodes one input string, without the
 * tokenizer's own BOS/EOS: added tokens matched (special ones only with
 * TOKENIZE_PARSE_SPECIAL in flags), normalized, pre-tokenized, merged.
 * at_start: the text begins the whole input (Metaspace "first" prepends
 * only there). spans may be NULL. Returns the id count, or -1 when max is
 * too small or memory runs out. */
int tok_encode_text(const struct tokenizer *t, const char *text, size_t len, int flags,
                    int at_start, int *ids, int *spans, int max);

/* Loaders behind tokenizer_load (tok_hf.c, tok_gguf.c, tok_llama2c.c). */
int tok_load_hf(struct tokenizer *t, const char *json_path, const char *config_path,
                char *err, size_t errlen);
int tok_load_gguf(struct tokenizer *t, const char *path, char *err, size_t errlen);

#endif
