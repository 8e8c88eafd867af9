/*
 * model.c: memory layout, allocation and named tensors of the model.
 *
 * Three memory classes, each one allocation from the backend, sized from the
 * config before allocating (model_*_floats):
 *   parameters   embed | blocks (L x block) | final_norm | lm_head (untied)
 *   gradients    the same layout (full fine-tuning); a trainer that trains
 *                only some blocks points g.blocks[l] at its own storage or
 *                at NULL for frozen blocks
 *   activations  every per-layer tensor backward needs, plus scratch
 * The forward and backward passes live in forward.c and backward.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "optim.h"

/* element counts of the pieces of one block, in storage order */
static void block_sizes(const struct model_config *c, size_t s[9])
{
    size_t D = c->dim, F = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim;
    size_t KVD = (size_t)c->n_kv_heads * c->head_dim;
    s[0] = D;       /* attn_norm */
    s[1] = QD * D;  /* wq */
    s[2] = KVD * D; /* wk */
    s[3] = KVD * D; /* wv */
    s[4] = D * QD;  /* wo */
    s[5] = D;       /* ffn_norm */
    s[6] = F * D;   /* w_gate */
    s[7] = F * D;   /* w_up */
    s[8] = D * F;   /* w_down */
}

size_t model_block_floats(const struct model_config *c)
{
    size_t s[9], n = 0;
    block_sizes(c, s);
    for (int i = 0; i < 9; i++)
        n += s[i];
    return n;
}

size_t model_param_floats(const struct model_config *c)
{
    size_t embed = (size_t)c->vocab_size * c->dim;
    return embed + (size_t)c->n_layers * model_block_floats(c) + c->dim +
           (c->tied_embeddings ? 0 : embed);
}

size_t model_piece_offset(const struct model_config *c, int piece)
{
    size_t s[9], off = 0;
    block_sizes(c, s);
    for (int i = 0; i < piece; i++)
        off += s[i];
    return off;
}

struct block_weights block_view(const struct model_config *c, float *block)
{
    size_t s[9];
    float *p[9];
    block_sizes(c, s);
    for (int i = 0; i < 9; i++) {
        p[i] = block;
        if (block)
            block += s[i];
    }
    return (struct block_weights){p[0], p[1], p[2], p[3], p[4],
                                  p[5], p[6], p[7], p[8]};
}

size_t model_linear_offset(const struct model_config *c, enum linear_id id,
                           int *rows, int *cols)
{
    static const int piece[LIN_COUNT] = {1, 2, 3, 4, 6, 7, 8};
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    const int r[LIN_COUNT] = {QD, KVD, KVD, c->dim, c->hidden_dim, c->hidden_dim, c->dim};
    const int k[LIN_COUNT] = {c->dim, c->dim, c->dim, QD, c->dim, c->dim, c->hidden_dim};
    size_t s[9], off = 0;
    block_sizes(c, s);
    for (int i = 0; i < piece[id]; i++)
        off += s[i];
    *rows = r[id];
    *cols = k[id];
    return off;
}

size_t model_largest_linear(const struct model_config *c)
{
    size_t most = 0;
    for (int id = 0; id < LIN_COUNT; id++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)id, &rows, &cols);
        if ((size_t)rows * cols > most)
            most = (size_t)rows * cols;
    }
    return most;
}

const char *model_linear_name(enum linear_id id)
{
    static const char *names[LIN_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                           "gate_proj", "up_proj", "down_proj"};
    return names[id];
}

static void carve_weights(const struct model_config *c, float *base,
                          struct model_weights *w)
{
    size_t embed = (size_t)c->vocab_size * c->dim, bs = model_block_floats(c);
    w->embed = base;
    base += embed;
    for (int l = 0; l < c->n_layers; l++)
        w->blocks[l] = base + (size_t)l * bs;
    base += (size_t)c->n_layers * bs;
    w->final_norm = base;
    base += c->dim;
    w->lm_head = c->tied_embeddings ? w->embed : base;
}

int model_init(struct model *m, const struct model_config *cfg,
               const struct backend *be)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    m->n_params = model_param_floats(cfg);
    m->mem_bytes = m->n_params * sizeof(float);
    m->w.blocks = calloc((size_t)cfg->n_layers, sizeof(float *));
    m->mem = be->alloc(m->mem_bytes);
    if (!m->w.blocks || !m->mem) {
        model_free(m);
        return -1;
    }
    carve_weights(cfg, m->mem, &m->w);
    return 0;
}

void model_free(struct model *m)
{
    if (m->be && m->mem)
        m->be->free(m->mem);
    free(m->w.blocks);
    m->mem = NULL;
    m->w.blocks = NULL;
    m->stage = NULL;
    m->embed16 = m->blocks16 = m->head16 = NULL;
}

int grads_init_full(struct model_grads *g, const struct model *m)
{
    memset(g, 0, sizeof *g);
    g->be = m->be;
    g->n_floats = m->n_params;
    g->g.blocks = calloc((size_t)m->cfg.n_layers, sizeof(float *));
    g->mem = m->be->alloc(g->n_floats * sizeof(float));
    if (!g->g.blocks || !g->mem) {
        grads_free(g, m);
        return -1;
    }
    carve_weights(&m->cfg, g->mem, &g->g);
    return 0;
}

/* embedding (dense, or embed_rows rows), final norm and head gradients,
 * unless frozen */
static size_t head_grad_floats(const struct model_config *c, int freeze_embeddings,
                               size_t embed_rows)
{
    size_t embed = (size_t)c->vocab_size * c->dim;
    if (freeze_embeddings)
        return 0;
    return (embed_rows ? embed_rows * c->dim : embed) + c->dim +
           (c->tied_embeddings ? 0 : embed);
}

size_t grads_slots_floats(const struct model_config *c, int n_slots, int freeze_embeddings,
                          size_t embed_rows)
{
    return head_grad_floats(c, freeze_embeddings, embed_rows) +
           (size_t)n_slots * model_block_floats(c);
}

size_t grads_streamed_floats(const struct model_config *c, int freeze_embeddings,
                             size_t embed_rows)
{
    return head_grad_floats(c, freeze_embeddings, embed_rows) + model_largest_linear(c);
}

size_t grads_projected_block_floats(const struct model_config *c, int rank)
{
    size_t n = 2 * (size_t)c->dim;
    for (int id = 0; id < LIN_COUNT; id++) {
        int rows, cols;
        model_linear_offset(c, (enum linear_id)id, &rows, &cols);
        n += optim_scratch_floats(rows, cols, rank);
    }
    return n;
}

/* n_slots slots of slot_floats each after the embedding/head gradients */
static int init_slots(struct model_grads *g, const struct model *m, int n_slots,
                      size_t slot_floats, int freeze_embeddings, size_t embed_rows)
{
    const struct model_config *c = &m->cfg;
    size_t embed = (size_t)c->vocab_size * c->dim;
    memset(g, 0, sizeof *g);
    if (freeze_embeddings)
        embed_rows = 0;
    g->be = m->be;
    g->n_floats = head_grad_floats(c, freeze_embeddings, embed_rows) +
                  (size_t)n_slots * slot_floats;
    g->n_slots = n_slots;
    g->g.blocks = calloc((size_t)c->n_layers, sizeof(float *));
    g->slots = calloc((size_t)(n_slots > 0 ? n_slots : 1), sizeof(float *));
    g->embed_tokens = embed_rows ? malloc(embed_rows * sizeof(int)) : NULL;
    g->mem = m->be->alloc(g->n_floats * sizeof(float));
    if (!g->g.blocks || !g->slots || !g->mem || (embed_rows && !g->embed_tokens)) {
        grads_free(g, m);
        return -1;
    }
    float *p = g->mem;
    if (!freeze_embeddings) {
        if (embed_rows) {
            g->embed_rows = p;
            g->embed_cap = embed_rows;
            p += embed_rows * c->dim;
        } else {
            g->g.embed = p;
            p += embed;
        }
        g->g.final_norm = p;
        p += c->dim;
        g->g.lm_head = c->tied_embeddings ? g->g.embed : p;
        if (!c->tied_embeddings)
            p += embed;
    }
    for (int i = 0; i < n_slots; i++)
        g->slots[i] = p + (size_t)i * slot_floats;
    return 0;
}

int grads_init_slots(struct model_grads *g, const struct model *m, int n_slots,
                     int freeze_embeddings, size_t embed_rows)
{
    return init_slots(g, m, n_slots, model_block_floats(&m->cfg), freeze_embeddings,
                      embed_rows);
}

int grads_init_streamed(struct model_grads *g, const struct model *m, int freeze_embeddings,
                        size_t embed_rows)
{
    return init_slots(g, m, 1, model_largest_linear(&m->cfg), freeze_embeddings, embed_rows);
}

void grads_zero(struct model_grads *g)
{
    g->be->zero(g->mem, g->n_floats * sizeof(float));
    g->embed_n = 0;
}

void grads_zero_except_blocks(struct model_grads *g)
{
    /* the slots are the tail of mem (init_slots) */
    const size_t head = g->n_slots > 0 ? (size_t)(g->slots[0] - g->mem) : g->n_floats;
    g->be->zero(g->mem, head * sizeof(float));
    g->embed_n = 0;
}

void grads_free(struct model_grads *g, const struct model *m)
{
    if (g->mem)
        m->be->free(g->mem);
    free(g->g.blocks);
    free(g->slots);
    free(g->embed_tokens);
    memset(g, 0, sizeof *g);
}

int model_ce_rows(const struct model_config *c, int N)
{
    size_t rows = CE_LOGITS_BYTES / ((size_t)c->vocab_size * sizeof(float));
    if (rows < CE_MIN_ROWS)
        rows = CE_MIN_ROWS;
    return rows < (size_t)N ? (int)rows : N;
}

int model_activation_slots(int n_layers, int recomputed, int bf16_saved)
{
    return bf16_saved ? 1 : n_layers - recomputed + (recomputed > 0);
}

int model_block_slot(const struct activations *a, int l)
{
    return model_block_shared(a, l) ? 0 : l - a->recomputed + (a->recomputed > 0);
}

int model_block_shared(const struct activations *a, int l)
{
    return l < a->recomputed || a->bf16_saved;
}

/* Blocks whose internals are kept in bf16. */
static size_t bf16_kept_blocks(const struct model_config *c, int recomputed, int bf16_saved)
{
    return bf16_saved ? (size_t)(c->n_layers - recomputed) : 0;
}

/* Activation pieces in allocation order, as (pointer slot, element count);
 * with the lowest `recomputed` blocks checkpointed, model_activation_slots
 * layers of block internals instead of L. The bf16 internals (saved16)
 * follow these fp32 floats. */
static int activation_layout(const struct model_config *c, int B, int T, int recomputed,
                             int bf16_saved, struct activations *a, float ***slot,
                             size_t *count)
{
    size_t N = (size_t)B * T, D = c->dim;
    size_t L = (size_t)model_activation_slots(c->n_layers, recomputed, bf16_saved);
    size_t F = c->hidden_dim;
    size_t QD = (size_t)c->n_heads * c->head_dim;
    size_t KVD = (size_t)c->n_kv_heads * c->head_dim;
    size_t kept = bf16_kept_blocks(c, recomputed, bf16_saved);
    float **s[] = {&a->resid, &a->resid_mid, &a->attn_in, &a->attn_rstd, &a->q,
                   &a->k, &a->v, &a->attn_out, &a->attn_lse, &a->ffn_in,
                   &a->ffn_rstd, &a->gate, &a->up, &a->ffn_h, &a->final_out,
                   &a->final_rstd, &a->losses, &a->d_resid, &a->d_norm,
                   &a->d_attn, &a->d_q, &a->d_k, &a->d_v, &a->d_h, &a->d_gate,
                   &a->d_up, &a->logits, &a->saved32};
    size_t n[] = {((size_t)c->n_layers + 1) * N * D, L * N * D, L * N * D, L * N, L * N * QD,
                  L * N * KVD, L * N * KVD, L * N * QD,
                  L * (size_t)B * c->n_heads * T, L * N * D, L * N, L * N * F,
                  L * N * F, L * N * F, N * D, N, N, N * D, N * D, N * QD, N * QD,
                  N * KVD, N * KVD, N * F, N * F, N * F,
                  (size_t)model_ce_rows(c, (int)N) * c->vocab_size,
                  kept * N * saved_bf16_width32(c)};
    int k = (int)(sizeof n / sizeof n[0]);
    for (int i = 0; i < k; i++) {
        if (slot)
            slot[i] = s[i];
        count[i] = n[i];
    }
    return k;
}

/* fp32 floats of the layout, and the bf16 values after them in *halves */
static size_t activation_floats(const struct model_config *c, int B, int T, int recomputed,
                                int bf16_saved, struct activations *a, float ***slot,
                                size_t *count, int *k, size_t *halves)
{
    size_t total = 0;
    *k = activation_layout(c, B, T, recomputed, bf16_saved, a, slot, count);
    for (int i = 0; i < *k; i++)
        total += count[i];
    *halves = bf16_kept_blocks(c, recomputed, bf16_saved) * (size_t)B * T *
              saved_bf16_width16(c);
    return total;
}

size_t model_activation_bytes(const struct model_config *c, int B, int T, int recomputed,
                              int bf16_saved)
{
    struct activations tmp;
    size_t count[32], halves;
    int k;
    size_t floats = activation_floats(c, B, T, recomputed, bf16_saved, &tmp, NULL, count, &k,
                                      &halves);
    return floats * sizeof(float) + halves * sizeof(unsigned short);
}

int activations_init(struct activations *a, const struct model *m, int B, int T)
{
    return activations_init_for(a, m, B, T, 0, 0);
}

int activations_init_for(struct activations *a, const struct model *m, int B, int T,
                         int recomputed, int bf16_saved)
{
    float **slot[32];
    size_t count[32], halves;
    int k;
    memset(a, 0, sizeof *a);
    a->B = B;
    a->T = T;
    a->recomputed = recomputed;
    a->bf16_saved = bf16_saved && recomputed < m->cfg.n_layers;
    a->shared_holds = -1;
    size_t floats = activation_floats(&m->cfg, B, T, recomputed, a->bf16_saved, a, slot, count,
                                      &k, &halves);
    a->mem = m->be->alloc(floats * sizeof(float) + halves * sizeof(unsigned short));
    if (!a->mem)
        return -1;
    float *p = a->mem;
    for (int i = 0; i < k; i++) {
        *slot[i] = p;
        p += count[i];
    }
    a->saved16 = halves ? (unsigned short *)p : NULL;
    if (!a->bf16_saved)
        a->saved32 = NULL;
    return 0;
}

void activations_free(struct activations *a, const struct model *m)
{
    if (a->mem)
        m->be->free(a->mem);
    memset(a, 0, sizeof *a);
}

int model_tensor_count(const struct model_config *c)
{
    return 1 + 9 * c->n_layers + 1 + (c->tied_embeddings ? 0 : 1);
}

void model_tensor_at(const struct model_config *c, const struct model_weights *w,
                     int i, struct named_tensor *out)
{
    static const char *block_names[9] = {
        "input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
        "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    int QD = c->n_heads * c->head_dim, KVD = c->n_kv_heads * c->head_dim;
    const int rows[9] = {c->dim, QD, KVD, KVD, c->dim, c->dim,
                         c->hidden_dim, c->hidden_dim, c->dim};
    const int cols[9] = {0, c->dim, c->dim, c->dim, QD, 0, c->dim, c->dim,
                         c->hidden_dim};
    memset(out, 0, sizeof *out);
    if (i == 0) {
        snprintf(out->name, sizeof out->name, "model.embed_tokens.weight");
        out->data = w->embed;
        out->rows = c->vocab_size;
        out->cols = c->dim;
        return;
    }
    i -= 1;
    if (i < 9 * c->n_layers) {
        int l = i / 9, piece = i % 9;
        struct block_weights b = block_view(c, w->blocks[l]);
        float *p[9] = {b.attn_norm, b.wq, b.wk, b.wv, b.wo,
                       b.ffn_norm, b.w_gate, b.w_up, b.w_down};
        snprintf(out->name, sizeof out->name, "model.layers.%d.%s.weight", l,
                 block_names[piece]);
        out->data = p[piece];
        out->rows = rows[piece];
        out->cols = cols[piece];
        return;
    }
    i -= 9 * c->n_layers;
    if (i == 0) {
        snprintf(out->name, sizeof out->name, "model.norm.weight");
        out->data = w->final_norm;
        out->rows = c->dim;
        return;
    }
    snprintf(out->name, sizeof out->name, "lm_head.weight");
    out->data = w->lm_head;
    out->rows = c->vocab_size;
    out->cols = c->dim;
}
