/*
 * decode.h: token-by-token inference with a key/value cache.
 *
 * Generation feeds one token at a time; the keys and values of earlier
 * positions are kept per layer so each step costs one token's forward pass.
 * The same backend operations as training are used, with N = 1 and the
 * attention's q_off/Tk arguments pointing into the cache.
 */
#ifndef OWLORE_DECODE_H
#define OWLORE_DECODE_H

#include <stdint.h>

#include "model.h"

struct kv_cache {
    int max_T;
    float *mem;        /* one allocation for the cache and the step scratch */
    float *k, *v;      /* (L, max_T, KV*hd) */
    float *x, *xn;     /* (D) residual stream and normed input */
    float *q, *att;    /* (H*hd) */
    float *gate, *up;  /* (F) */
    float *lse;        /* (H) */
};

int kv_cache_init(struct kv_cache *kv, const struct model *m, int max_T);
void kv_cache_free(struct kv_cache *kv, const struct model *m);

/* Run token at position pos (0-based, < max_T) and write logits (V). */
void model_decode_step(const struct model *m, struct kv_cache *kv, int token,
                       int pos, float *logits);

/* Pick the next token from logits (V): argmax when temperature <= 0, else a
 * sample from softmax(logits / temperature) restricted to the smallest set of
 * tokens whose probability reaches top_p (1 = no restriction). *rng is the
 * xorshift64* state. logits is used as scratch. */
int sample_token(float *logits, int V, float temperature, float top_p,
                 uint64_t *rng);

#endif
