/*
 * forward.c: the training forward pass and the chunked classifier loss.
 *
 * model_forward runs embedding -> L x (attention block, SwiGLU block) ->
 * final RMSNorm over a (B,T) batch, saving in struct activations everything
 * backward.c needs (with checkpointing, the block inputs and the last block's
 * internals: backward.c recomputes each block by model_block_forward; with
 * bf16_saved, each block's internals rounded to bf16, saved_bf16.c).
 * Per-layer activation slices are laid out with the
 * CAPACITY strides (a->B * a->T tokens), so a shorter batch reuses the same
 * buffers. model_head_loss then applies the classifier model_ce_rows at a time
 * and, when training, seeds backward right away, so (N,V) fp32 logits never
 * exist at once. LoRA adapters (m->lora, lora.h) add their term right after
 * the base product of each linear layer (before RoPE for q and k).
 */
#include "lora.h"
#include "model.h"

/* per-layer slice of a saved activation with `width` floats per token */
#define LAYER(base, l, width) ((base) + (size_t)(l) * cap * (width))
/* per-token losses copied to the host at a time */
#define LOSS_ROWS 256

void model_block_forward(const struct model *m, struct activations *a, int l, int B, int T)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const int N = B * T, D = c->dim, F = c->hidden_dim, H = c->n_heads,
              KV = c->n_kv_heads, hd = c->head_dim, QD = H * hd, KVD = KV * hd;
    const size_t cap = (size_t)a->B * a->T;
    const int s = model_block_slot(a, l); /* the slot of the block's internals */
    struct block_weights w = model_block_operands(m, l);
    float *x = LAYER(a->resid, l, D), *mid = LAYER(a->resid_mid, s, D);
    float *xn = LAYER(a->attn_in, s, D), *q = LAYER(a->q, s, QD);
    float *k = LAYER(a->k, s, KVD), *v = LAYER(a->v, s, KVD);
    float *att = LAYER(a->attn_out, s, QD);
    float *lse = a->attn_lse + (size_t)s * a->B * H * a->T;

    /* attention: mid = x + Wo . attn(rope(Wq xn), rope(Wk xn), Wv xn) */
    be->rmsnorm_fwd(xn, LAYER(a->attn_rstd, s, 1), x, w.attn_norm, N, D, c->norm_eps);
    model_block_product(m, l, LIN_Q, 1, N, QD, D, xn, 0.0f, q);
    model_block_product(m, l, LIN_K, 1, N, KVD, D, xn, 0.0f, k);
    model_block_product(m, l, LIN_V, 1, N, KVD, D, xn, 0.0f, v);
    if (m->lora) {
        lora_forward(m->lora, l, LIN_Q, xn, q, N);
        lora_forward(m->lora, l, LIN_K, xn, k, N);
        lora_forward(m->lora, l, LIN_V, xn, v, N);
    }
    be->rope_fwd(q, B, T, H, hd, 0, c->rope_theta);
    be->rope_fwd(k, B, T, KV, hd, 0, c->rope_theta);
    be->attention_fwd(att, lse, q, k, v, B, T, T, 0, H, KV, hd);
    be->copy(mid, x, (size_t)N * D);
    model_block_product(m, l, LIN_O, 1, N, D, QD, att, 1.0f, mid);
    if (m->lora)
        lora_forward(m->lora, l, LIN_O, att, mid, N);

    /* feed-forward: x' = mid + Wdown . (silu(Wgate hn) * Wup hn) */
    float *hn = LAYER(a->ffn_in, s, D), *gate = LAYER(a->gate, s, F);
    float *up = LAYER(a->up, s, F), *h = LAYER(a->ffn_h, s, F);
    float *next = LAYER(a->resid, l + 1, D);
    be->rmsnorm_fwd(hn, LAYER(a->ffn_rstd, s, 1), mid, w.ffn_norm, N, D, c->norm_eps);
    model_block_product(m, l, LIN_GATE, 1, N, F, D, hn, 0.0f, gate);
    model_block_product(m, l, LIN_UP, 1, N, F, D, hn, 0.0f, up);
    if (m->lora) {
        lora_forward(m->lora, l, LIN_GATE, hn, gate, N);
        lora_forward(m->lora, l, LIN_UP, hn, up, N);
    }
    be->swiglu_fwd(h, gate, up, N, F);
    be->copy(next, mid, (size_t)N * D);
    model_block_product(m, l, LIN_DOWN, 1, N, D, F, h, 1.0f, next);
    if (m->lora)
        lora_forward(m->lora, l, LIN_DOWN, h, next, N);

    /* what backward will find in the shared slot */
    if (a->bf16_saved && l >= a->recomputed)
        saved_bf16_store(m, a, l, N);
    else if (model_block_shared(a, l))
        a->shared_holds = l;
}

void model_forward(const struct model *m, struct activations *a,
                   const int *tokens, int B, int T)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const int N = B * T, D = c->dim;
    const size_t cap = (size_t)a->B * a->T;

    model_embed_rows(m, a->resid, tokens, N);
    for (int l = 0; l < c->n_layers; l++)
        model_block_forward(m, a, l, B, T);
    be->rmsnorm_fwd(a->final_out, a->final_rstd, LAYER(a->resid, c->n_layers, D),
                    m->w.final_norm, N, D, c->norm_eps);
}

double model_head_loss(const struct model *m, struct activations *a,
                       struct model_grads *g, const int *targets, int B, int T,
                       float dscale, long *count)
{
    const struct backend *be = m->be;
    const int N = B * T, D = m->cfg.dim, V = m->cfg.vocab_size;
    const int rows = model_ce_rows(&m->cfg, a->B * a->T); /* as a->logits was sized */
    double sum = 0.0;
    long n_counted = 0;

    for (int s = 0; s < N; s += rows) {
        int n = N - s < rows ? N - s : rows;
        const float *x = a->final_out + (size_t)s * D;
        /* logits (n,V) = x (n,D) . lm_head^T */
        model_head_product(m, 1, n, V, D, x, 0.0f, a->logits);
        be->crossentropy_fwd_bwd(a->logits, a->losses + s, targets + s, n, V,
                                 g ? dscale : 0.0f);
        if (g) {
            /* d final_out (n,D) = dlogits (n,V) . lm_head (V,D) */
            model_head_product(m, 0, n, D, V, a->logits, 0.0f, a->d_norm + (size_t)s * D);
            /* d lm_head (V,D) += dlogits^T (V,n) . x (n,D) */
            if (g->g.lm_head)
                be->matmul(1, 0, V, D, n, 1.0f, a->logits, V, x, D, 1.0f,
                           g->g.lm_head, D);
        }
    }
    /* per-token losses back to the host (device memory on a GPU) */
    for (int s = 0; s < N; s += LOSS_ROWS) {
        float lh[LOSS_ROWS];
        int n = N - s < LOSS_ROWS ? N - s : LOSS_ROWS;
        be->download(lh, a->losses + s, sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) {
            if (targets[s + i] >= 0 && targets[s + i] < V) {
                sum += lh[i];
                n_counted++;
            }
        }
    }
    *count = n_counted;
    return sum;
}

float model_loss_and_grad(const struct model *m, struct activations *a,
                          struct model_grads *g, const int *tokens,
                          const int *targets, int B, int T)
{
    long count = 0;
    for (int i = 0; i < B * T; i++)
        count += targets[i] >= 0 && targets[i] < m->cfg.vocab_size;
    model_forward(m, a, tokens, B, T);
    double sum = model_head_loss(m, a, g, targets, B, T,
                                 count ? 1.0f / (float)count : 0.0f, &count);
    if (g)
        model_backward(m, a, g, tokens, B, T);
    return count ? (float)(sum / (double)count) : 0.0f;
}

void model_logits(const struct model *m, const struct activations *a,
                  float *logits, int B, int T)
{
    model_head_product(m, 1, B * T, m->cfg.vocab_size, m->cfg.dim, a->final_out, 0.0f, logits);
}
