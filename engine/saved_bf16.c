/*
 * saved_bf16.c: a block's saved internals kept in bf16 between the forward
 * and the backward pass (struct activations bf16_saved; the recipe's
 * bf16_activations).
 *
 * Every block computes its internals in the shared slot in fp32, exactly as
 * without this storage, so the forward pass and its loss are unchanged.
 * Right after, saved_bf16_store rounds the eight large ones (the residual
 * after attention, both RMSNorm outputs, v, the attention output, the
 * SwiGLU gate, up and product) to the nearest bf16 into the block's part of
 * saved16, and copies the others into saved32 in fp32: both RMSNorm rstd,
 * the attention log-sum-exp, and q and k, from whose fp32 product that
 * log-sum-exp was taken (the backward pass's softmax exp(q k - lse) from
 * rounded q and k no longer sums to one: on stories260K the gradient then
 * moves by 3e-2 relative instead of 5e-3). saved_bf16_load widens them back
 * into the slot just before the block's backward: the backward pass then
 * reads each of the large values rounded once to bf16, for about 60% of
 * their memory and two elementwise passes instead of a recomputation.
 *
 * Block l's part (l above the recomputed blocks, j = l - recomputed) holds
 * each internal with its capacity stride (a->B * a->T tokens), in the order
 * of the table below; N <= that many tokens are moved.
 */
#include <string.h>

#include "model.h"

struct internal {
    float *slot;  /* its buffer in the shared slot (slot 0) */
    size_t width; /* values per token */
};

#define N_BIG 8   /* internals kept in bf16 */
#define N_SMALL 5 /* and in fp32 */

/* The internals of a, the large ones into big, the small ones into small. */
static void internals(const struct model_config *c, const struct activations *a,
                      struct internal big[N_BIG], struct internal small[N_SMALL])
{
    const size_t D = c->dim, F = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
                 KVD = (size_t)c->n_kv_heads * c->head_dim;
    const struct internal b[N_BIG] = {{a->resid_mid, D}, {a->attn_in, D}, {a->v, KVD},
                                      {a->attn_out, QD}, {a->ffn_in, D},  {a->gate, F},
                                      {a->up, F},        {a->ffn_h, F}};
    const struct internal s[N_SMALL] = {{a->q, QD},        {a->k, KVD},
                                        {a->attn_rstd, 1}, {a->ffn_rstd, 1},
                                        {a->attn_lse, (size_t)c->n_heads}};
    memcpy(big, b, sizeof b);
    memcpy(small, s, sizeof s);
}

/* values per token of n internals */
static size_t width(const struct internal *t, int n)
{
    size_t w = 0;
    for (int i = 0; i < n; i++)
        w += t[i].width;
    return w;
}

size_t saved_bf16_width16(const struct model_config *c)
{
    struct activations none = {0};
    struct internal big[N_BIG], small[N_SMALL];
    internals(c, &none, big, small);
    return width(big, N_BIG);
}

size_t saved_bf16_width32(const struct model_config *c)
{
    struct activations none = {0};
    struct internal big[N_BIG], small[N_SMALL];
    internals(c, &none, big, small);
    return width(small, N_SMALL);
}

/* Moves block l's internals between the slot and its kept part: to it
 * (store) or back (load). */
static void move(const struct model *m, struct activations *a, int l, int N, int store)
{
    const struct backend *be = m->be;
    const size_t cap = (size_t)a->B * a->T, j = (size_t)(l - a->recomputed);
    struct internal big[N_BIG], small[N_SMALL];
    internals(&m->cfg, a, big, small);
    unsigned short *h = a->saved16 + j * cap * width(big, N_BIG);
    float *f = a->saved32 + j * cap * width(small, N_SMALL);
    for (int i = 0; i < N_BIG; i++) {
        const size_t n = (size_t)N * big[i].width;
        if (store)
            be->bf16_narrow(h, big[i].slot, n);
        else
            be->bf16_expand(big[i].slot, h, n);
        h += cap * big[i].width;
    }
    for (int i = 0; i < N_SMALL; i++) {
        const size_t n = (size_t)N * small[i].width;
        if (store)
            be->copy(f, small[i].slot, n);
        else
            be->copy(small[i].slot, f, n);
        f += cap * small[i].width;
    }
}

void saved_bf16_store(const struct model *m, struct activations *a, int l, int N)
{
    move(m, a, l, N, 1);
    a->shared_holds = -1; /* the slot has them unrounded: backward loads */
}

void saved_bf16_load(const struct model *m, struct activations *a, int l, int N)
{
    move(m, a, l, N, 0);
    a->shared_holds = l;
}
