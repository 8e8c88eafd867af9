/*
 * lora.c: LoRA adapters: allocation, forward/backward through the backend's
 * operations, AdamW steps and merging (see lora.h for the algebra).
 *
 * Parameters are laid out adapter by adapter, A (r, in) then B (out, r);
 * gradients mirror them. A is drawn on the host from a splitmix64 stream
 * and uploaded to the backend's memory.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lora.h"

/* Noise of the stochastic rounding of merged bf16 blocks (a fixed stream
 * per block: merging is done once, at the end of a run). */
#define MERGE_ROUNDING_SEED 0x4C6F52414D657267ULL

static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* in and out features of linear `id` */
static void linear_shape(const struct model_config *c, enum linear_id id, int *out, int *in)
{
    model_linear_offset(c, id, out, in);
}

size_t lora_param_floats(const struct model_config *c, int rank)
{
    size_t n = 0;
    for (int id = 0; id < LIN_COUNT; id++) {
        int out, in;
        linear_shape(c, (enum linear_id)id, &out, &in);
        n += (size_t)rank * (size_t)(in + out);
    }
    return n * (size_t)c->n_layers;
}

/* Carve A/B views of every adapter out of base. */
static void carve(const struct lora *lo, float *base, float **A, float **B)
{
    for (int a = 0; a < lo->n; a++) {
        int out, in;
        linear_shape(&lo->cfg, (enum linear_id)(a % LIN_COUNT), &out, &in);
        A[a] = base;
        base += (size_t)lo->rank * in;
        B[a] = base;
        base += (size_t)out * lo->rank;
    }
}

int lora_init(struct lora *lo, const struct model *m, const struct lora_hparams *h,
              unsigned long long seed, int tokens)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    memset(lo, 0, sizeof *lo);
    lo->be = be;
    lo->cfg = *c;
    lo->rank = h->rank;
    lo->scale = h->alpha / (float)h->rank;
    lo->dropout = h->dropout;
    lo->n = LIN_COUNT * c->n_layers;
    lo->n_floats = lora_param_floats(c, h->rank);
    lo->cap = tokens;
    int max_in = c->dim > c->hidden_dim ? c->dim : c->hidden_dim;
    if (c->n_heads * c->head_dim > max_in)
        max_in = c->n_heads * c->head_dim;
    size_t act = (size_t)lo->n * tokens * h->rank + (size_t)tokens * max_in +
                 (size_t)tokens * h->rank;
    size_t scratch = optim_scratch_floats(max_in, h->rank, 0);
    lo->A = calloc((size_t)lo->n, sizeof(float *));
    lo->B = calloc((size_t)lo->n, sizeof(float *));
    lo->dA = calloc((size_t)lo->n, sizeof(float *));
    lo->dB = calloc((size_t)lo->n, sizeof(float *));
    lo->states = calloc((size_t)lo->n * 2, sizeof(struct optim_state));
    lo->mem = be->alloc(lo->n_floats * sizeof(float));
    lo->gmem = be->alloc(lo->n_floats * sizeof(float));
    lo->act = tokens > 0 ? be->alloc(act * sizeof(float)) : NULL;
    lo->scratch = be->alloc((scratch ? scratch : 1) * sizeof(float));
    float *host = malloc(sizeof(float) * (size_t)h->rank * max_in);
    if (!lo->A || !lo->B || !lo->dA || !lo->dB || !lo->states || !lo->mem ||
        !lo->gmem || (tokens > 0 && !lo->act) || !lo->scratch || !host) {
        free(host);
        lora_free(lo);
        return -1;
    }
    carve(lo, lo->mem, lo->A, lo->B);
    carve(lo, lo->gmem, lo->dA, lo->dB);
    if (lo->act) {
        lo->u = lo->act;
        lo->xd = lo->u + (size_t)lo->n * tokens * h->rank;
        lo->du = lo->xd + (size_t)tokens * max_in;
    }
    /* A ~ U(-1/sqrt(in), 1/sqrt(in)): kaiming_uniform_(a=sqrt(5)) as PEFT */
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 0x4C6F5241ULL;
    for (int a = 0; a < lo->n; a++) {
        int out, in;
        linear_shape(c, (enum linear_id)(a % LIN_COUNT), &out, &in);
        float bound = 1.0f / sqrtf((float)in);
        for (size_t i = 0; i < (size_t)h->rank * in; i++)
            host[i] = bound * (float)((double)(mix64(&s) >> 11) * 0x1p-53 * 2.0 - 1.0);
        be->upload(lo->A[a], host, sizeof(float) * (size_t)h->rank * in);
    }
    free(host);
    return 0;
}

void lora_free(struct lora *lo)
{
    if (lo->states)
        for (int i = 0; i < 2 * lo->n; i++)
            optim_state_free(&lo->states[i]);
    if (lo->be) {
        if (lo->mem)
            lo->be->free(lo->mem);
        if (lo->gmem)
            lo->be->free(lo->gmem);
        if (lo->act)
            lo->be->free(lo->act);
        if (lo->scratch)
            lo->be->free(lo->scratch);
    }
    free(lo->A);
    free(lo->B);
    free(lo->dA);
    free(lo->dB);
    free(lo->states);
    memset(lo, 0, sizeof *lo);
}

void lora_zero_grads(struct lora *lo)
{
    lo->be->zero(lo->gmem, lo->n_floats * sizeof(float));
}

/* The adapter's input: drop(x) in lo->xd while training with dropout, else x. */
static const float *adapter_input(struct lora *lo, int a, const float *x, size_t n)
{
    if (!lo->training || lo->dropout <= 0.0f)
        return x;
    lo->be->dropout(lo->xd, x, n, lo->dropout,
                    lo->mask_seed ^ ((unsigned long long)(a + 1) * 0xD6E8FEB86659FD93ULL));
    return lo->xd;
}

void lora_forward(struct lora *lo, int l, enum linear_id id, const float *x,
                  float *y, int N)
{
    const int a = LIN_COUNT * l + id, r = lo->rank;
    int out, in;
    linear_shape(&lo->cfg, id, &out, &in);
    float *u = lo->u + (size_t)a * lo->cap * r;
    const float *xin = adapter_input(lo, a, x, (size_t)N * in);
    /* u (N,r) = xin (N,in) . A^T;  y (N,out) += s * u . B^T */
    lo->be->matmul(0, 1, N, r, in, 1.0f, xin, in, lo->A[a], in, 0.0f, u, r);
    lo->be->matmul(0, 1, N, out, r, lo->scale, u, r, lo->B[a], r, 1.0f, y, out);
}

void lora_backward(struct lora *lo, int l, enum linear_id id, const float *x,
                   const float *dy, float *dx, int N)
{
    const struct backend *be = lo->be;
    const int a = LIN_COUNT * l + id, r = lo->rank;
    const int dropping = lo->training && lo->dropout > 0.0f;
    int out, in;
    linear_shape(&lo->cfg, id, &out, &in);
    const float *u = lo->u + (size_t)a * lo->cap * r;
    const float *xin = adapter_input(lo, a, x, (size_t)N * in);
    /* dB (out,r) += s * dy^T (out,N) . u (N,r);  du (N,r) = s * dy . B */
    be->matmul(1, 0, out, r, N, lo->scale, dy, out, u, r, 1.0f, lo->dB[a], r);
    be->matmul(0, 0, N, r, out, lo->scale, dy, out, lo->B[a], r, 0.0f, lo->du, r);
    /* dA (r,in) += du^T (r,N) . xin (N,in) */
    be->matmul(1, 0, r, in, N, 1.0f, lo->du, r, xin, in, 1.0f, lo->dA[a], in);
    if (!dropping) {
        /* dx (N,in) += du . A */
        be->matmul(0, 0, N, in, r, 1.0f, lo->du, r, lo->A[a], in, 1.0f, dx, in);
        return;
    }
    /* dx += drop(du . A), the same mask as forward */
    be->matmul(0, 0, N, in, r, 1.0f, lo->du, r, lo->A[a], in, 0.0f, lo->xd, in);
    adapter_input(lo, a, lo->xd, (size_t)N * in);
    be->add_inplace(dx, lo->xd, (size_t)N * in);
}

void lora_grad_sumsq_add(const struct lora *lo, double *acc)
{
    lo->be->sumsq_add(acc, lo->gmem, lo->n_floats);
}

void lora_grad_scale(struct lora *lo, float a)
{
    lo->be->scale(lo->gmem, lo->n_floats, a);
}

int lora_optim_step(struct lora *lo, const struct adamw_hparams *h, float lr,
                    char *err, size_t errlen)
{
    for (int a = 0; a < lo->n; a++) {
        int out, in;
        linear_shape(&lo->cfg, (enum linear_id)(a % LIN_COUNT), &out, &in);
        const int rows[2] = {lo->rank, out}, cols[2] = {in, lo->rank};
        float *w[2] = {lo->A[a], lo->B[a]}, *g[2] = {lo->dA[a], lo->dB[a]};
        for (int k = 0; k < 2; k++) {
            struct optim_state *s = &lo->states[2 * a + k];
            if (!s->mem && optim_state_init(s, lo->be, rows[k], cols[k], 0) != 0) {
                snprintf(err, errlen, "out of memory for the LoRA optimizer state");
                return -1;
            }
            if (optim_step(s, w[k], g[k], lo->scratch, h, NULL, lr, NULL, err, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

void lora_merge(const struct lora *lo, struct model *m)
{
    for (int a = 0; a < lo->n; a++) {
        enum linear_id id = (enum linear_id)(a % LIN_COUNT);
        const int l = a / LIN_COUNT;
        int out, in;
        size_t off = model_linear_offset(&m->cfg, id, &out, &in);
        const size_t n = (size_t)out * in;
        float *w = model_block_piece(m, l, off, n);
        /* W (out,in) += s * B (out,r) . A (r,in) */
        m->be->matmul(0, 0, out, in, lo->rank, lo->scale, lo->B[a], lo->rank, lo->A[a],
                      in, 1.0f, w, in);
        model_block_piece_store(m, l, off, n, MERGE_ROUNDING_SEED ^ ((unsigned long long)l + 1) *
                                                                    0x9E3779B97F4A7C15ULL);
    }
}

void lora_tensor_name(const struct lora *lo, int a, int which, char *name, size_t len,
                      int *rows, int *cols)
{
    enum linear_id id = (enum linear_id)(a % LIN_COUNT);
    int out, in;
    linear_shape(&lo->cfg, id, &out, &in);
    snprintf(name, len, "base_model.model.model.layers.%d.%s.%s.lora_%c.weight",
             a / LIN_COUNT, id <= LIN_O ? "self_attn" : "mlp", model_linear_name(id),
             which ? 'B' : 'A');
    *rows = which ? out : lo->rank;
    *cols = which ? lo->rank : in;
}
