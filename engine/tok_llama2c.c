/*
 * tok_llama2c.c: the llama2.c tokenizer format.
 *
 * File (model-formats.md section 2.4): uint32 max_token_length, then for
 * each id in order: float32 score, uint32 byte length, the bytes. The
 * vocabulary size comes from the model. Encoding follows run.c exactly, in
 * the shared pipeline: for non-empty text a single-space "dummy prefix" (a
 * Prepend normalizer, when " " is a piece), one symbol per UTF-8 character
 * that is a piece, else one byte token per byte (the <0xHH> pieces, id =
 * byte + 3), then merges of the adjacent pair whose concatenation is a piece
 * with the highest score, leftmost on ties (merge pairs built from the
 * scores). BOS is 1 and added by default, EOS 2.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

int tokenizer_load_llama2c(struct tokenizer *t, const char *path, int vocab_size,
                           char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint32_t max_len;
    float *scores = NULL;
    char *piece = NULL;
    struct tok_model *m = calloc(1, sizeof *m);
    memset(t, 0, sizeof *t);
    t->m = m;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    t->kind = TOKENIZER_LLAMA2C;
    t->vocab_size = vocab_size;
    t->bos_id = 1;
    t->eos_id = 2;
    t->unk_id = 0;
    t->pad_id = -1;
    t->add_bos = 1;
    scores = malloc(sizeof(float) * (size_t)vocab_size);
    if (!m || !scores || vocab_size < 3 || tok_model_alloc(m, vocab_size) != 0) {
        snprintf(err, errlen, "%s: %s", path, vocab_size < 3 ? "vocabulary too small"
                                                             : "out of memory");
        goto fail;
    }
    m->byte_fallback = 1;
    m->strip_space = 1;
    m->prefix[m->n_prefix++] = 1;
    if (fread(&max_len, 4, 1, f) != 1 || max_len == 0 || max_len > 4096) {
        snprintf(err, errlen, "%s: bad llama2.c tokenizer header", path);
        goto fail;
    }
    piece = malloc(max_len);
    for (int i = 0; piece && i < vocab_size; i++) {
        uint32_t n;
        if (fread(&scores[i], 4, 1, f) != 1 || fread(&n, 4, 1, f) != 1) {
            snprintf(err, errlen, "%s: ends at token %d of %d", path, i, vocab_size);
            goto fail;
        }
        if (n > max_len) {
            snprintf(err, errlen, "%s: token %d is %u bytes, longer than the "
                     "declared maximum %u", path, i, n, max_len);
            goto fail;
        }
        if (fread(piece, 1, n, f) != n) {
            snprintf(err, errlen, "%s: ends inside token %d", path, i);
            goto fail;
        }
        if (tok_model_set(m, i, piece, (int)n) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
    }
    if (!piece) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (fgetc(f) != EOF) {
        snprintf(err, errlen, "%s: trailing bytes after %d tokens (wrong "
                 "tokenizer for this model's vocabulary?)", path, vocab_size);
        goto fail;
    }
    if (tok_model_finish(m, path, err, errlen) != 0 ||
        tok_model_merges_from_scores(m, scores, err, errlen) != 0)
        goto fail;
    /* the byte tokens are id = byte + 3 whatever their spelling */
    for (int b = 0; b < 256 && b + 3 < vocab_size; b++)
        m->byte_id[b] = b + 3;
    if (tok_strmap_get(&m->vocab, " ", 1) >= 0) {
        m->norm[0] = (struct tok_norm){NORM_PREPEND, strdup(" "), NULL, 1, 0};
        if (!m->norm[0].a) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto fail;
        }
        m->n_norm = 1;
    }
    for (int i = 0; i < vocab_size; i++)
        if (m->text_len[i] > t->max_token_bytes)
            t->max_token_bytes = m->text_len[i];
    fclose(f);
    free(scores);
    free(piece);
    return 0;
fail:
    if (f)
        fclose(f);
    free(scores);
    free(piece);
    tokenizer_free(t);
    return -1;
}
