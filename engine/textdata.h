/*
 * textdata.h: plain-text training data for the llama2.c tokenizer.
 *
 * Until the real dataset formats arrive: a UTF-8 text file is split into
 * documents (on the literal "<|endoftext|>" when the file contains it, else
 * on runs of blank lines), each document stripped of surrounding
 * whitespace, dropped when empty, and encoded as BOS + tokens
 * (tokenizer_encode with add_bos); the encodings are concatenated into one
 * token stream, which is cut into consecutive non-overlapping windows of
 * seq_len + 1 tokens (inputs w[0..seq_len), targets w[1..seq_len]); the
 * tail shorter than a window is dropped.
 */
#ifndef OWLORE_TEXTDATA_H
#define OWLORE_TEXTDATA_H

#include <stddef.h>

#include "tokenizer.h"

#define TEXTDATA_SEPARATOR "<|endoftext|>"

struct text_windows {
    int *ids;          /* (n, seq_len + 1), owned; window i at i * (seq_len + 1) */
    int n;             /* windows */
    int seq_len;
    long n_tokens;     /* tokens in the file's stream (windows and dropped tail) */
    long n_docs;       /* documents in the file */
};

/* Read, split, encode and window a file. Fails with a message naming the
 * file when it cannot be read, is empty or holds only whitespace, is not
 * UTF-8 (giving the line and byte of the first invalid sequence), or yields
 * fewer than seq_len + 1 tokens. */
int text_windows_load(struct text_windows *w, const char *path,
                      const struct tokenizer *t, int seq_len, char *err,
                      size_t errlen);

/* Move the last round(fraction * n) windows of train into val (at least one
 * when fraction > 0, but always leaving train one): val is overwritten (not
 * freed) with its own copy. 0, or -1 when out of memory (nothing moved). */
int text_windows_split(struct text_windows *train, struct text_windows *val,
                       double fraction);

void text_windows_free(struct text_windows *w);

#endif
