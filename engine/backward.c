/*
 * backward.c: the backward pass through the blocks and the embedding.
 *
 * Starts from a->d_norm, the gradient of the final RMSNorm output that
 * model_head_loss left there, and walks the blocks top-down keeping the
 * residual-stream gradient in a->d_resid. With activation checkpointing
 * (a->recomputed) each checkpointed block's forward is run again from its
 * saved input just before its backward; with a->bf16_saved the blocks above
 * have their internals widened back from bf16 (saved_bf16.c) instead.
 *
 * Frozen parts cost nothing they do not have to:
 *   - a block with g->g.blocks[l] == NULL gets no weight-gradient products
 *     (only the input-gradient products needed to reach the blocks below);
 *   - below the lowest trainable block, when the embedding is frozen
 *     (no g->g.embed, no g->embed_rows), nothing is computed at all.
 * The embedding's gradient is scattered into g->g.embed, or, kept sparse,
 * the rows of the embedding output's gradient are appended to
 * g->embed_rows with their tokens (a step's capacity, which the trainer
 * sizes for all its micro-batches).
 * Weight gradients accumulate (+=); see backend.h. With g->overwrite (a
 * step's first micro-batch) a trainable block's are written whole instead,
 * a linear layer's by its one product (beta 0) and a gain from zero, so its
 * slot needs no zeroing first. When g->piece_done is set, a trainable
 * block's nine gradient tensors take turns in its one slot and piece_done
 * takes each as soon as it is complete (streamed gradients, one micro-batch
 * a step, always written whole); piece_factors, when set, may take a linear
 * layer's gradient as its two factors instead, and then it is never formed.
 * LoRA adapters (m->lora) add their input gradient to each linear layer's
 * and accumulate their own gradients; with adapters every block is walked.
 * g->blocks_only makes a second pass over the same micro-batch that
 * touches the blocks' gradients alone.
 */
#include <string.h>

#include "lora.h"
#include "model.h"

#define LAYER(base, l, width) ((base) + (size_t)(l) * cap * (width))

/* Where block l's gradient tensors go: their places in its slot, or, when
 * they are streamed, the start of the slot for every one of them. */
static struct block_weights grad_view(const struct model_config *c,
                                      const struct model_grads *g, int l)
{
    float *s = g->g.blocks[l];
    if (!g->piece_done || !s)
        return block_view(c, s);
    return (struct block_weights){s, s, s, s, s, s, s, s, s};
}

/* tensor `piece` (storage order) of trainable block l is complete */
static void done(const struct model_grads *g, int l, int piece)
{
    if (g->piece_done)
        g->piece_done(g->piece_done_ctx, l, piece);
}

/* The weight gradient of linear layer `piece` of trainable block l,
 * dst (rows, cols) (+)= dY^T (rows, N) X (N, cols), then done; or, when
 * g->piece_factors takes dY and X instead, neither. */
static void weight_grad(const struct backend *be, const struct model_grads *g, int l, int piece,
                        int rows, int cols, int N, const float *dy, const float *x, float beta,
                        float *dst)
{
    if (g->piece_factors && g->piece_factors(g->piece_done_ctx, l, piece, dy, x, N))
        return;
    be->matmul(1, 0, rows, cols, N, 1.0f, dy, rows, x, cols, beta, dst, cols);
    done(g, l, piece);
}

/* 1 when a trainable block's gradients are written, not added to */
static int overwrites(const struct model_grads *g)
{
    return g->overwrite || g->piece_done;
}

/* A gain written whole starts from zero: rmsnorm_bwd adds to it (the
 * linear layers' products overwrite theirs). */
static void clear_written_gain(const struct backend *be, const struct model_grads *g,
                               float *dg, int train, int D)
{
    if (train && overwrites(g))
        be->zero(dg, (size_t)D * sizeof(float));
}

/* Lowest layer the backward pass must reach, or L when none. */
static int lowest_needed_layer(const struct model *m, const struct model_grads *g)
{
    const struct model_config *c = &m->cfg;
    if (!g->blocks_only && (g->g.embed || g->embed_rows || m->lora))
        return 0;
    for (int l = 0; l < c->n_layers; l++)
        if (g->g.blocks[l])
            return l;
    return c->n_layers;
}

void model_backward(const struct model *m, struct activations *a,
                    struct model_grads *g, const int *tokens, int B, int T)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const int N = B * T, D = c->dim, F = c->hidden_dim, H = c->n_heads,
              KV = c->n_kv_heads, hd = c->head_dim, QD = H * hd, KVD = KV * hd;
    const size_t cap = (size_t)a->B * a->T;
    const int lowest = lowest_needed_layer(m, g);
    float *dres = a->d_resid, *dn = a->d_norm;
    const float wbeta = overwrites(g) ? 0.0f : 1.0f; /* weight-gradient products */

    be->zero(dres, (size_t)N * D * sizeof(float));
    be->rmsnorm_bwd(dres, g->blocks_only ? NULL : g->g.final_norm, dn,
                    LAYER(a->resid, c->n_layers, D),
                    m->w.final_norm, a->final_rstd, N, D);

    for (int l = c->n_layers - 1; l >= lowest; l--) {
        struct block_weights w = model_block_operands(m, l);
        struct block_weights gw = grad_view(c, g, l);
        const int train = g->g.blocks[l] != NULL;
        /* internals in the shared slot: back again, from the block's saved
         * input (checkpointed) or its bf16 copy, unless the slot holds them
         * (the highest checkpointed block's, from the forward pass) */
        if (model_block_shared(a, l) && a->shared_holds != l) {
            if (l < a->recomputed)
                model_block_forward(m, a, l, B, T);
            else
                saved_bf16_load(m, a, l, N, &w);
        }
        const int s = model_block_slot(a, l); /* the slot of its internals */
        float *x = LAYER(a->resid, l, D), *mid = LAYER(a->resid_mid, s, D);

        /* feed-forward block: next = mid + h . Wdown^T */
        float *hn = LAYER(a->ffn_in, s, D), *gate = LAYER(a->gate, s, F);
        float *up = LAYER(a->up, s, F), *h = LAYER(a->ffn_h, s, F);
        model_block_product(m, l, LIN_DOWN, 0, N, F, D, dres, 0.0f, a->d_h);
        if (m->lora)
            lora_backward(m->lora, l, LIN_DOWN, h, dres, a->d_h, N);
        if (train)
            weight_grad(be, g, l, 8, D, F, N, dres, h, wbeta, gw.w_down);
        be->swiglu_bwd(a->d_gate, a->d_up, a->d_h, gate, up, N, F);
        model_block_product(m, l, LIN_GATE, 0, N, D, F, a->d_gate, 0.0f, dn);
        model_block_product(m, l, LIN_UP, 0, N, D, F, a->d_up, 1.0f, dn);
        if (m->lora) {
            lora_backward(m->lora, l, LIN_GATE, hn, a->d_gate, dn, N);
            lora_backward(m->lora, l, LIN_UP, hn, a->d_up, dn, N);
        }
        if (train) {
            weight_grad(be, g, l, 6, F, D, N, a->d_gate, hn, wbeta, gw.w_gate);
            weight_grad(be, g, l, 7, F, D, N, a->d_up, hn, wbeta, gw.w_up);
        }
        clear_written_gain(be, g, gw.ffn_norm, train, D);
        be->rmsnorm_bwd(dres, gw.ffn_norm, dn, mid, w.ffn_norm,
                        LAYER(a->ffn_rstd, s, 1), N, D);
        if (train)
            done(g, l, 5);

        /* attention block: mid = x + att . Wo^T */
        float *xn = LAYER(a->attn_in, s, D), *q = LAYER(a->q, s, QD);
        float *k = LAYER(a->k, s, KVD), *v = LAYER(a->v, s, KVD);
        float *att = LAYER(a->attn_out, s, QD);
        float *lse = a->attn_lse + (size_t)s * a->B * H * a->T;
        model_block_product(m, l, LIN_O, 0, N, QD, D, dres, 0.0f, a->d_attn);
        if (m->lora)
            lora_backward(m->lora, l, LIN_O, att, dres, a->d_attn, N);
        if (train)
            weight_grad(be, g, l, 4, D, QD, N, dres, att, wbeta, gw.wo);
        be->attention_bwd(a->d_q, a->d_k, a->d_v, a->d_attn, q, k, v, att, lse,
                          B, T, H, KV, hd);
        be->rope_bwd(a->d_q, B, T, H, hd, 0, c->rope_theta);
        be->rope_bwd(a->d_k, B, T, KV, hd, 0, c->rope_theta);
        model_block_product(m, l, LIN_Q, 0, N, D, QD, a->d_q, 0.0f, dn);
        model_block_product(m, l, LIN_K, 0, N, D, KVD, a->d_k, 1.0f, dn);
        model_block_product(m, l, LIN_V, 0, N, D, KVD, a->d_v, 1.0f, dn);
        if (m->lora) {
            lora_backward(m->lora, l, LIN_Q, xn, a->d_q, dn, N);
            lora_backward(m->lora, l, LIN_K, xn, a->d_k, dn, N);
            lora_backward(m->lora, l, LIN_V, xn, a->d_v, dn, N);
        }
        if (train) {
            weight_grad(be, g, l, 1, QD, D, N, a->d_q, xn, wbeta, gw.wq);
            weight_grad(be, g, l, 2, KVD, D, N, a->d_k, xn, wbeta, gw.wk);
            weight_grad(be, g, l, 3, KVD, D, N, a->d_v, xn, wbeta, gw.wv);
        }
        clear_written_gain(be, g, gw.attn_norm, train, D);
        be->rmsnorm_bwd(dres, gw.attn_norm, dn, x, w.attn_norm,
                        LAYER(a->attn_rstd, s, 1), N, D);
        if (train)
            done(g, l, 0);
    }
    if (g->blocks_only)
        return;
    if (g->g.embed) {
        be->embedding_bwd(g->g.embed, tokens, dres, N, D);
    } else if (g->embed_rows && g->embed_n + (size_t)N <= g->embed_cap) {
        /* sparse: the rows and their tokens, scattered by the optimizer */
        be->copy(g->embed_rows + g->embed_n * D, dres, (size_t)N * D);
        memcpy(g->embed_tokens + g->embed_n, tokens, (size_t)N * sizeof(int));
        g->embed_n += (size_t)N;
    }
}
