/*
 * tokenizer.h: text <-> token ids.
 *
 * One struct for every tokenizer kind the engine reads. For now the
 * llama2.c tokenizer (tok*.bin: SentencePiece-exported pieces with scores,
 * byte fallback, greedy highest-score merges, as llama2.c's run.c encodes).
 */
#ifndef OWLORE_TOKENIZER_H
#define OWLORE_TOKENIZER_H

#include <stddef.h>

struct tokenizer {
    int vocab_size;
    int bos_id, eos_id;
    char **pieces;        /* (vocab) NUL-terminated piece text */
    int *piece_len;       /* (vocab) byte length (pieces may hold NUL) */
    float *scores;        /* (vocab) merge priority, higher merges first */
    int *sorted;          /* (vocab) ids sorted by piece bytes, for lookup */
    int max_piece_len;
};

/* Read a llama2.c tokenizer file for a vocabulary of vocab_size entries;
 * the file must be consumed exactly. */
int tokenizer_load_llama2c(struct tokenizer *t, const char *path, int vocab_size,
                           char *err, size_t errlen);
void tokenizer_free(struct tokenizer *t);

/* The tokenizer file of a model: `explicit_path` when given, else a llama2.c
 * tokenizer beside the model (tokenizer.bin, then tok<vocab_size>.bin), into
 * path (len bytes); -1 with a message when there is none. */
int tokenizer_find_for_model(const char *model_path, const char *explicit_path,
                             int vocab_size, char *path, size_t len, char *err,
                             size_t errlen);
/* tokenizer_find_for_model, then load it. */
int tokenizer_load_for_model(struct tokenizer *t, const char *model_path,
                             const char *explicit_path, int vocab_size,
                             char *err, size_t errlen);

/* Encode text (len bytes) into ids (capacity max_ids); prepends BOS when
 * add_bos. Returns the number of ids, or -1 when max_ids is too small. */
int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len,
                     int add_bos, int *ids, int max_ids);

/* Bytes of token `id` as it reads after token `prev` (a leading space is
 * dropped after BOS; <0xHH> pieces are the raw byte). *len gets the count. */
const char *tokenizer_decode(const struct tokenizer *t, int prev, int id,
                             int *len, char byte_buf[2]);

#endif
