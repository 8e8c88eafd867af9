/*
 * decode.c: KV-cached single-token forward pass and the token sampler.
 *
 * model_decode_step mirrors model_forward for one token: the new key and
 * value rows are written into the cache at `pos`, RoPE is applied with
 * pos0 = pos, and attention reads cache rows 0..pos.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

int kv_cache_init(struct kv_cache *kv, const struct model *m, int max_T)
{
    const struct model_config *c = &m->cfg;
    size_t KVD = (size_t)c->n_kv_heads * c->head_dim, QD = (size_t)c->n_heads * c->head_dim;
    size_t cache = (size_t)c->n_layers * max_T * KVD;
    memset(kv, 0, sizeof *kv);
    kv->max_T = max_T;
    kv->mem = m->be->alloc(sizeof(float) * (2 * cache + 2 * (size_t)c->dim + 2 * QD +
                                            2 * (size_t)c->hidden_dim + c->n_heads));
    if (!kv->mem)
        return -1;
    kv->k = kv->mem;
    kv->v = kv->k + cache;
    kv->x = kv->v + cache;
    kv->xn = kv->x + c->dim;
    kv->q = kv->xn + c->dim;
    kv->att = kv->q + QD;
    kv->gate = kv->att + QD;
    kv->up = kv->gate + c->hidden_dim;
    kv->lse = kv->up + c->hidden_dim;
    return 0;
}

void kv_cache_free(struct kv_cache *kv, const struct model *m)
{
    if (kv->mem)
        m->be->free(kv->mem);
    memset(kv, 0, sizeof *kv);
}

void model_decode_step(const struct model *m, struct kv_cache *kv, int token,
                       int pos, float *logits)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    const int D = c->dim, F = c->hidden_dim, H = c->n_heads, KV = c->n_kv_heads,
              hd = c->head_dim, QD = H * hd, KVD = KV * hd;

    model_embed_rows(m, kv->x, &token, 1);
    for (int l = 0; l < c->n_layers; l++) {
        struct block_weights w = model_block_operands(m, l);
        float *kc = kv->k + (size_t)l * kv->max_T * KVD;
        float *vc = kv->v + (size_t)l * kv->max_T * KVD;
        float rstd;
        be->rmsnorm_fwd(kv->xn, &rstd, kv->x, w.attn_norm, 1, D, c->norm_eps);
        model_block_product(m, l, LIN_Q, 1, 1, QD, D, kv->xn, 0.0f, kv->q);
        model_block_product(m, l, LIN_K, 1, 1, KVD, D, kv->xn, 0.0f, kc + (size_t)pos * KVD);
        model_block_product(m, l, LIN_V, 1, 1, KVD, D, kv->xn, 0.0f, vc + (size_t)pos * KVD);
        be->rope_fwd(kv->q, 1, 1, H, hd, pos, c->rope_theta);
        be->rope_fwd(kc + (size_t)pos * KVD, 1, 1, KV, hd, pos, c->rope_theta);
        be->attention_fwd(kv->att, kv->lse, kv->q, kc, vc, 1, 1, pos + 1, pos, H, KV, hd);
        model_block_product(m, l, LIN_O, 1, 1, D, QD, kv->att, 1.0f, kv->x);

        be->rmsnorm_fwd(kv->xn, &rstd, kv->x, w.ffn_norm, 1, D, c->norm_eps);
        model_block_product(m, l, LIN_GATE, 1, 1, F, D, kv->xn, 0.0f, kv->gate);
        model_block_product(m, l, LIN_UP, 1, 1, F, D, kv->xn, 0.0f, kv->up);
        be->swiglu_fwd(kv->gate, kv->gate, kv->up, 1, F);
        model_block_product(m, l, LIN_DOWN, 1, 1, D, F, kv->gate, 1.0f, kv->x);
    }
    float rstd;
    be->rmsnorm_fwd(kv->xn, &rstd, kv->x, m->w.final_norm, 1, D, c->norm_eps);
    model_head_product(m, 1, 1, c->vocab_size, D, kv->xn, 0.0f, logits);
}

static uint64_t xorshift64s(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static int cmp_desc(const void *a, const void *b, void *p)
{
    const float *v = p;
    float x = v[*(const int *)a], y = v[*(const int *)b];
    return (x < y) - (x > y);
}

int sample_token(float *logits, int V, float temperature, float top_p,
                 uint64_t *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (temperature <= 0.0f)
        return best;
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        logits[i] = expf((logits[i] - logits[best]) / temperature);
        sum += logits[i];
    }
    for (int i = 0; i < V; i++)
        logits[i] = (float)(logits[i] / sum);
    int *order = malloc(sizeof(int) * (size_t)V);
    if (!order)
        return best;
    for (int i = 0; i < V; i++)
        order[i] = i;
    qsort_r(order, (size_t)V, sizeof(int), cmp_desc, logits);
    int n = 0;
    double mass = 0.0;
    while (n < V && (n == 0 || mass < top_p))
        mass += logits[order[n++]];
    double r = (double)(xorshift64s(rng) >> 11) / 9007199254740992.0 * mass;
    int pick = order[n - 1];
    for (int i = 0; i < n; i++) {
        r -= logits[order[i]];
        if (r < 0) {
            pick = order[i];
            break;
        }
    }
    free(order);
    return pick;
}
