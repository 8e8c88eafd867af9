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
};

#define N_BF16 5 /* internals kept in bf16 */
#define N_FP32 3 /* and in fp32 */

/* The kept internals of a, those kept in bf16 into h, the others into f. */
static void kept(const struct model_config *c, const struct activations *a,
                 struct internal h[N_BF16], struct internal f[N_FP32])
{
    const size_t D = c->dim, F = c->hidden_dim, QD = (size_t)c->n_heads * c->head_dim,
                 KVD = (size_t)c->n_kv_heads * c->head_dim;
    const struct internal b[N_BF16] = {
        {a->resid_mid, D}, {a->v, KVD}, {a->attn_out, QD}, {a->gate, F}, {a->up, F}};
    const struct internal s[N_FP32] = {
        {a->q, QD}, {a->k, KVD}, {a->attn_lse, (size_t)c->n_heads}};
    memcpy(h, b, sizeof b);
    memcpy(f, s, sizeof s);
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
    struct internal h[N_BF16], f[N_FP32];
    kept(c, &none, h, f);
    return width(h, N_BF16);
}

size_t saved_bf16_width32(const struct model_config *c)
{
    struct activations none = {0};
    struct internal h[N_BF16], f[N_FP32];
    kept(c, &none, h, f);
    return width(f, N_FP32);
}

/* Moves block l's kept internals between the slot and its part: to it
 * (store) or back (load). */
static void move(const struct model *m, struct activations *a, int l, int N, int store)
{
    const struct backend *be = m->be;
    const size_t cap = (size_t)a->B * a->T, j = (size_t)(l - a->recomputed);
    struct internal h[N_BF16], f[N_FP32];
    kept(&m->cfg, a, h, f);
    unsigned short *h16 = a->saved16 + j * cap * width(h, N_BF16);
    float *f32 = a->saved32 + j * cap * width(f, N_FP32);
    for (int i = 0; i < N_BF16; i++) {
        const size_t n = (size_t)N * h[i].width;
        if (store)
            be->bf16_narrow(h16, h[i].slot, n);
        else
            be->bf16_expand(h[i].slot, h16, n);
        h16 += cap * h[i].width;
    }
    for (int i = 0; i < N_FP32; i++) {
        const size_t n = (size_t)N * f[i].width;
        if (store)
            be->copy(f32, f[i].slot, n);
        else
            be->copy(f[i].slot, f32, n);
        f32 += cap * f[i].width;
    }
}

void saved_bf16_store(const struct model *m, struct activations *a, int l, int N)
{
    move(m, a, l, N, 1);
    a->shared_holds = -1; /* the slot has them unrounded: backward loads */
}

void saved_bf16_load(const struct model *m, struct activations *a, int l, int N)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const size_t cap = (size_t)a->B * a->T;
    struct block_weights w = model_block_operands(m, l);
    move(m, a, l, N, 0);
    be->rmsnorm_fwd(a->attn_in, a->attn_rstd, a->resid + (size_t)l * cap * c->dim, w.attn_norm,
                    N, c->dim, c->norm_eps);
    be->rmsnorm_fwd(a->ffn_in, a->ffn_rstd, a->resid_mid, w.ffn_norm, N, c->dim, c->norm_eps);
    be->swiglu_fwd(a->ffn_h, a->gate, a->up, N, c->hidden_dim);
    a->shared_holds = l;
}
