/*
 * fuzz_tok_exercise.h: what the tokenizer harnesses do with a tokenizer
 * that loaded: encode a fixed multilingual sample and a piece of the input
 * with every flag combination, check each id is in the vocabulary, and
 * decode the ids back in one piece and as a stream.
 */
#ifndef OWLORE_FUZZ_TOK_EXERCISE_H
#define OWLORE_FUZZ_TOK_EXERCISE_H

#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

#define FUZZ_TOK_MAX_IDS 512

static inline void fuzz_tok_exercise(const struct tokenizer *t, const char *text, size_t len)
{
    static int ids[FUZZ_TOK_MAX_IDS];
    static char out[1 << 16];
    for (int flags = 0; flags < 8; flags++) {
        int n = tokenizer_encode(t, text, len, flags, ids, FUZZ_TOK_MAX_IDS);
        for (int i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= t->vocab_size)
                abort();
        if (n > 0 && tokenizer_decode_all(t, ids, n, out, sizeof out) < 0)
            abort();
        struct tokenizer_stream s;
        tokenizer_stream_init(&s, -1);
        char piece[256];
        for (int i = 0; i < n && t->max_token_bytes + 4 <= (int)sizeof piece; i++)
            if (tokenizer_stream_next(t, &s, ids[i], piece, (int)sizeof piece) < 0)
                abort();
        tokenizer_stream_flush(&s, piece);
    }
}

#endif
