/*
 * tok_llama2c.c: the llama2.c tokenizer format and its encoder/decoder.
 *
 * File (model-formats.md section 2.4): uint32 max_token_length, then for
 * each id in order: float32 score, uint32 byte length, the bytes. The
 * vocabulary size comes from the model. Encoding follows run.c exactly:
 * optional BOS; for non-empty text a single-space "dummy prefix" token; one
 * token per UTF-8 code point when it is a piece, else one byte token per
 * byte (id = byte + 3); then repeatedly merge the adjacent pair whose
 * concatenation is a piece with the highest score (leftmost on ties).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const struct tokenizer *sort_ctx;

static int piece_cmp(const char *a, int na, const char *b, int nb)
{
    int n = na < nb ? na : nb, r = memcmp(a, b, (size_t)n);
    return r ? r : (na > nb) - (na < nb);
}

static int sort_by_piece(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    int r = piece_cmp(sort_ctx->pieces[a], sort_ctx->piece_len[a],
                      sort_ctx->pieces[b], sort_ctx->piece_len[b]);
    return r ? r : (a > b) - (a < b);
}

/* id of the piece with exactly these bytes, or -1 (lowest id on duplicates) */
static int lookup(const struct tokenizer *t, const char *s, int n)
{
    int lo = 0, hi = t->vocab_size - 1, found = -1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, id = t->sorted[mid];
        int r = piece_cmp(t->pieces[id], t->piece_len[id], s, n);
        if (r == 0) {
            found = id;
            hi = mid - 1;
        } else if (r < 0) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

void tokenizer_free(struct tokenizer *t)
{
    if (t->pieces)
        for (int i = 0; i < t->vocab_size; i++)
            free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->sorted);
    memset(t, 0, sizeof *t);
}

int tokenizer_load_llama2c(struct tokenizer *t, const char *path, int vocab_size,
                           char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    uint32_t max_len;
    memset(t, 0, sizeof *t);
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    t->vocab_size = vocab_size;
    t->bos_id = 1;
    t->eos_id = 2;
    t->pieces = calloc((size_t)vocab_size, sizeof(char *));
    t->piece_len = calloc((size_t)vocab_size, sizeof(int));
    t->scores = calloc((size_t)vocab_size, sizeof(float));
    t->sorted = calloc((size_t)vocab_size, sizeof(int));
    if (!t->pieces || !t->piece_len || !t->scores || !t->sorted) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (fread(&max_len, 4, 1, f) != 1 || max_len == 0 || max_len > 4096) {
        snprintf(err, errlen, "%s: bad llama2.c tokenizer header", path);
        goto fail;
    }
    t->max_piece_len = (int)max_len;
    for (int i = 0; i < vocab_size; i++) {
        uint32_t n;
        if (fread(&t->scores[i], 4, 1, f) != 1 || fread(&n, 4, 1, f) != 1) {
            snprintf(err, errlen, "%s: ends at token %d of %d", path, i, vocab_size);
            goto fail;
        }
        if (n > max_len) {
            snprintf(err, errlen, "%s: token %d is %u bytes, longer than the "
                     "declared maximum %u", path, i, n, max_len);
            goto fail;
        }
        t->pieces[i] = malloc(n + 1);
        if (!t->pieces[i] || fread(t->pieces[i], 1, n, f) != n) {
            snprintf(err, errlen, "%s: ends inside token %d", path, i);
            goto fail;
        }
        t->pieces[i][n] = 0;
        t->piece_len[i] = (int)n;
        t->sorted[i] = i;
    }
    if (fgetc(f) != EOF) {
        snprintf(err, errlen, "%s: trailing bytes after %d tokens (wrong "
                 "tokenizer for this model's vocabulary?)", path, vocab_size);
        goto fail;
    }
    fclose(f);
    sort_ctx = t;
    qsort(t->sorted, (size_t)vocab_size, sizeof(int), sort_by_piece);
    sort_ctx = NULL;
    return 0;
fail:
    fclose(f);
    tokenizer_free(t);
    return -1;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len,
                     int add_bos, int *ids, int max_ids)
{
    int n = 0;
    char buf[4096];
    if (add_bos) {
        if (n >= max_ids)
            return -1;
        ids[n++] = t->bos_id;
    }
    if (len > 0) {
        int space = lookup(t, " ", 1);
        if (space >= 0) {
            if (n >= max_ids)
                return -1;
            ids[n++] = space;
        }
    }
    /* one token per code point, or byte fallback */
    for (size_t i = 0; i < len;) {
        size_t j = i + 1;
        while (j < len && ((unsigned char)text[j] & 0xC0) == 0x80 && j - i < 4)
            j++;
        int id = lookup(t, text + i, (int)(j - i));
        if (id >= 0) {
            if (n >= max_ids)
                return -1;
            ids[n++] = id;
        } else {
            for (size_t b = i; b < j; b++) {
                if (n >= max_ids)
                    return -1;
                ids[n++] = (unsigned char)text[b] + 3;
            }
        }
        i = j;
    }
    /* greedy merges by the highest score */
    for (;;) {
        float best = -1e30f;
        int best_i = -1, best_id = -1;
        for (int i = add_bos ? 1 : 0; i + 1 < n; i++) {
            int la = t->piece_len[ids[i]], lb = t->piece_len[ids[i + 1]];
            if (la + lb > (int)sizeof buf || la + lb > t->max_piece_len)
                continue;
            memcpy(buf, t->pieces[ids[i]], (size_t)la);
            memcpy(buf + la, t->pieces[ids[i + 1]], (size_t)lb);
            int id = lookup(t, buf, la + lb);
            if (id >= 0 && t->scores[id] > best) {
                best = t->scores[id];
                best_i = i;
                best_id = id;
            }
        }
        if (best_i < 0)
            break;
        ids[best_i] = best_id;
        memmove(ids + best_i + 1, ids + best_i + 2, sizeof(int) * (size_t)(n - best_i - 2));
        n--;
    }
    return n;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

const char *tokenizer_decode(const struct tokenizer *t, int prev, int id,
                             int *len, char byte_buf[2])
{
    const char *p = t->pieces[id];
    int n = t->piece_len[id];
    if (prev == t->bos_id && n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    if (n == 6 && p[0] == '<' && p[1] == '0' && p[2] == 'x' && p[5] == '>' &&
        hex_digit(p[3]) >= 0 && hex_digit(p[4]) >= 0) {
        byte_buf[0] = (char)(hex_digit(p[3]) * 16 + hex_digit(p[4]));
        byte_buf[1] = 0;
        *len = 1;
        return byte_buf;
    }
    *len = n;
    return p;
}
