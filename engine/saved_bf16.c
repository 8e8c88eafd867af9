/*
 * saved_bf16.c: a block's saved internals kept in bf16 between the forward
 * and the backward pass (struct activations bf16_saved; the recipe's
 * bf16_activations).
 *
 * Every block computes its internals in the shared slot in fp32, exactly as
 * without this storage, so the forward pass and its loss are unchanged.
 * Right after, saved_bf16_store keeps what backward cannot cheaply compute
 * again:
 *   - rounded to the nearest bf16 into the block's part of saved16: the
 *     residual after attention, v, the attention output, the SwiGLU gate
 *     and up;
 *   - in fp32, into saved32: the attention log-sum-exp, and q and k, from
 *     whose fp32 product it was taken (a softmax exp(q k - lse) from
 *     rounded q and k no longer sums to one: on stories260K the gradient
 *     then moved by 3e-2 relative instead of 5e-3).
 * saved_bf16_load widens them back into the slot just before the block's
 * backward and computes the rest again from them, elementwise: the
 * attention RMSNorm (output and rstd) from the block's fp32 input, the
 * feed-forward RMSNorm from the widened residual, and SwiGLU's product from
 * the widened gate and up. The backward pass then reads values rounded once
 * to bf16 (the attention norm's exactly), for about 40% of the internals'
 * fp32 memory and a few elementwise passes instead of a recomputation.
 *
 * Block l's part (l above the recomputed blocks, j = l - recomputed) holds
 * each kept internal with its capacity stride (a->B * a->T tokens), in the
 * order of the table below; N <= that many tokens are moved.
 */
#include <string.h>

#include "model.h"

struct internal {
    float *slot;  /* its buffer in the shared slot (slot 0) */
    size_t width; /* values per token */
    int fp32;     /* 1: kept in fp32 (saved32), 0: in bf16 (saved16) */
};

#define N_KEPT 8

/* The kept internals of a, in their order in a block's parts. */
static void kept(const struct model_config *c, const struct activations *a,
                 struct internal t[N_KEPT])
{
    const size_t D = c->dim, F = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
                 KVD = (size_t)c->n_kv_heads * c->head_dim;
    const struct internal k[N_KEPT] = {
        {a->resid_mid, D, 0}, {a->v, KVD, 0}, {a->attn_out, QD, 0},
        {a->gate, F, 0},      {a->up, F, 0},  {a->q, QD, 1},
        {a->k, KVD, 1},       {a->attn_lse, (size_t)c->n_heads, 1}};
    memcpy(t, k, sizeof k);
}

/* values per token kept in fp32 (fp32 1) or in bf16 (0) */
static size_t width(const struct model_config *c, int fp32)
{
    struct activations none = {0};
    struct internal t[N_KEPT];
    size_t w = 0;
    kept(c, &none, t);
    for (int i = 0; i < N_KEPT; i++)
        w += t[i].fp32 == fp32 ? t[i].width : 0;
    return w;
}

size_t saved_bf16_width16(const struct model_config *c)
{
    return width(c, 0);
}

size_t saved_bf16_width32(const struct model_config *c)
{
    return width(c, 1);
}

/* Moves block l's kept internals between the slot and its parts: to them
 * (store) or back (load). */
static void move(const struct model *m, struct activations *a, int l, int N, int store)
{
    const struct backend *be = m->be;
    const size_t cap = (size_t)a->B * a->T, j = (size_t)(l - a->recomputed);
    struct internal t[N_KEPT];
    kept(&m->cfg, a, t);
    unsigned short *h = a->saved16 + j * cap * width(&m->cfg, 0);
    float *f = a->saved32 + j * cap * width(&m->cfg, 1);
    for (int i = 0; i < N_KEPT; i++) {
        const size_t n = (size_t)N * t[i].width;
        if (t[i].fp32 && store)
            be->copy(f, t[i].slot, n);
        else if (t[i].fp32)
            be->copy(t[i].slot, f, n);
        else if (store)
            be->bf16_narrow(h, t[i].slot, n);
        else
            be->bf16_expand(t[i].slot, h, n);
        if (t[i].fp32)
            f += cap * t[i].width;
        else
            h += cap * t[i].width;
    }
}

void saved_bf16_store(const struct model *m, struct activations *a, int l, int N)
{
    move(m, a, l, N, 1);
    a->shared_holds = -1; /* the slot has them unrounded: backward loads */
}

void saved_bf16_load(const struct model *m, struct activations *a, int l, int N,
                     const struct block_weights *w)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const size_t cap = (size_t)a->B * a->T;
    move(m, a, l, N, 0);
    be->rmsnorm_fwd(a->attn_in, a->attn_rstd, a->resid + (size_t)l * cap * c->dim, w->attn_norm,
                    N, c->dim, c->norm_eps);
    be->rmsnorm_fwd(a->ffn_in, a->ffn_rstd, a->resid_mid, w->ffn_norm, N, c->dim, c->norm_eps);
    be->swiglu_fwd(a->ffn_h, a->gate, a->up, N, c->hidden_dim);
    a->shared_holds = l;
}
