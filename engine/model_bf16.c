/*
 * model_bf16.c: a model stored in bf16, computed on in fp32.
 *
 * With bf16 storage (recipe bf16_weights) the embedding, the blocks and the
 * head take half the memory and there is no fp32 copy of them. The model's
 * one allocation is then
 *   fp32  final_norm (D) | stage
 *   bf16  embed (V,D) | blocks (L, block_floats) | lm_head (V,D), untied only
 * where the stage (2 D + largest linear layer) is all the fp32 room they
 * ever get:
 *   - the forward and backward passes widen a block's two norms into the
 *     stage and multiply by its matrices and the head as stored (backend.h
 *     matmul_bf16: on bf16 tensor cores, or widened one matrix, or one panel
 *     of the head, at a time by the backend); the embedding's rows are
 *     widened as they are looked up (embedding_fwd_bf16);
 *   - an optimizer step updates each tensor in fp32 element by element as
 *     it reads it and narrows it back by stochastic rounding (optim.h
 *     *_bf16: backend.h adamw_bf16, bf16_add_round; GaLore's update is
 *     built in the stage first), so small updates survive on average
 *     instead of rounding away. The optimizer's moments stay fp32. Merging
 *     LoRA adapters widens one tensor of a block into the stage
 *     (model_block_piece) and rounds it back the same way.
 *
 * Checkpoints hold these tensors as BF16 (ckpt.c); resuming writes the
 * fp32 layout of model.h back through model_write_params.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bf16.h"
#include "digest.h"
#include "model.h"

/* Elements of a (V,D) table: the embedding, and the head when untied. */
static size_t table_floats(const struct model_config *c)
{
    return (size_t)c->vocab_size * c->dim;
}

/* Elements in bf16: embed, blocks, head. */
static size_t bf16_elements(const struct model_config *c)
{
    return table_floats(c) * (c->tied_embeddings ? 1 : 2) +
           (size_t)c->n_layers * model_block_floats(c);
}

/* the stage: the two norms of a block, then one piece of it */
static size_t stage_floats(const struct model_config *c)
{
    return 2 * (size_t)c->dim + model_largest_linear(c);
}

size_t model_bf16_bytes(const struct model_config *c)
{
    return ((size_t)c->dim + stage_floats(c)) * sizeof(float) +
           bf16_elements(c) * sizeof(uint16_t);
}

/* Point the named weights of a bf16-stored model into mem: only the final
 * norm keeps an fp32 pointer. */
static void carve_bf16(struct model *m, float *mem)
{
    const struct model_config *c = &m->cfg;
    m->mem = mem;
    m->w.embed = m->w.lm_head = NULL;
    m->w.final_norm = mem;
    for (int l = 0; l < c->n_layers; l++)
        m->w.blocks[l] = NULL;
    m->stage = mem + c->dim;
    m->embed16 = (unsigned short *)(m->stage + stage_floats(c));
    m->blocks16 = m->embed16 + table_floats(c);
    m->head16 = c->tied_embeddings
                    ? m->embed16
                    : m->blocks16 + (size_t)c->n_layers * model_block_floats(c);
}

int model_store_bf16(struct model *m, char *err, size_t errlen)
{
    const struct model_config *c = &m->cfg;
    const size_t bs = model_block_floats(c), bytes = model_bf16_bytes(c);
    if (m->blocks16)
        return 0;
    if (!m->be->host_memory) {
        snprintf(err, errlen, "bf16 weights are stored from a model in host memory");
        return -1;
    }
    float *mem = m->be->alloc(bytes);
    if (!mem) {
        snprintf(err, errlen, "out of memory for the bf16 weights (%.2f GiB)",
                 (double)bytes / (1 << 30));
        return -1;
    }
    /* the fp32 layout is embed | blocks | final_norm | head: the bf16 one
     * drops the final norm */
    float *old = m->mem;
    const size_t front = table_floats(c) + (size_t)c->n_layers * bs, n = bf16_elements(c);
    memcpy(mem, m->w.final_norm, c->dim * sizeof(float));
    carve_bf16(m, mem);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        m->embed16[i] = bf16_from_f32(old[i < front ? i : i + c->dim]);
    m->be->free(old);
    m->mem_bytes = bytes;
    return 0;
}

int model_store_bf16_digested(struct model *m, char *digest, char *err, size_t errlen)
{
    unsigned char d[SHA256_BYTES];
    if (!digest[0]) {
        if (sha256_model(m, d) != 0) {
            snprintf(err, errlen, "cannot compute the model digest (OpenSSL)");
            return -1;
        }
        digest_hex(d, SHA256_BYTES, digest);
    }
    return model_store_bf16(m, err, errlen);
}

struct block_weights model_block_operands(const struct model *m, int l)
{
    const struct model_config *c = &m->cfg;
    if (!m->blocks16)
        return block_view(c, m->w.blocks[l]);
    const unsigned short *b16 = m->blocks16 + (size_t)l * model_block_floats(c);
    float *norms = m->stage; /* attn_norm | ffn_norm */
    m->be->bf16_expand(norms, b16 + model_piece_offset(c, 0), (size_t)c->dim);
    m->be->bf16_expand(norms + c->dim, b16 + model_piece_offset(c, 5), (size_t)c->dim);
    return (struct block_weights){.attn_norm = norms, .ffn_norm = norms + c->dim};
}

void model_block_product(const struct model *m, int l, enum linear_id id, int trans_w, int M,
                         int N, int K, const float *A, float beta, float *C)
{
    int rows, cols; /* W (rows, cols): its row stride is cols either way */
    const size_t off = model_linear_offset(&m->cfg, id, &rows, &cols);
    if (m->blocks16)
        m->be->matmul_bf16(trans_w, M, N, K, 1.0f, A, K,
                           m->blocks16 + (size_t)l * model_block_floats(&m->cfg) + off, cols,
                           beta, C, N);
    else
        m->be->matmul(0, trans_w, M, N, K, 1.0f, A, K, m->w.blocks[l] + off, cols, beta, C, N);
}

float *model_block_piece(const struct model *m, int l, size_t off, size_t n)
{
    if (!m->blocks16)
        return m->w.blocks[l] + off;
    float *piece = model_stage_piece(m);
    m->be->bf16_expand(piece, model_block16(m, l) + off, n);
    return piece;
}

void model_block_piece_store(const struct model *m, int l, size_t off, size_t n,
                             unsigned long long seed)
{
    if (m->blocks16)
        m->be->bf16_round(model_block16(m, l) + off, model_stage_piece(m), n, seed + off);
}

void model_embed_rows(const struct model *m, float *out, const int *tokens, int N)
{
    if (m->embed16)
        m->be->embedding_fwd_bf16(out, tokens, m->embed16, N, m->cfg.dim);
    else
        m->be->embedding_fwd(out, tokens, m->w.embed, N, m->cfg.dim);
}

size_t model_table_piece_rows(const struct model_config *c)
{
    size_t rows = model_largest_linear(c) / (size_t)c->dim;
    return rows ? rows : 1;
}

void model_head_product(const struct model *m, int trans_w, int M, int N, int K, const float *A,
                        float beta, float *C)
{
    const int D = m->cfg.dim, V = m->cfg.vocab_size;
    if (!m->head16) {
        m->be->matmul(0, trans_w, M, N, K, 1.0f, A, K, m->w.lm_head, D, beta, C, N);
        return;
    }
    /* in panels of the head's rows, so a backend that widens the weights
     * never holds more than the stage's worth: logits columns v0..v1-1, or
     * dX summed over them */
    const int rows = (int)model_table_piece_rows(&m->cfg);
    for (int v0 = 0; v0 < V; v0 += rows) {
        const int n = V - v0 < rows ? V - v0 : rows;
        const unsigned short *panel = m->head16 + (size_t)v0 * D;
        if (trans_w) /* C[:, v0:v0+n] (M,n) = A (M,D) . panel^T, ldc V */
            m->be->matmul_bf16(1, M, n, D, 1.0f, A, D, panel, D, beta, C + v0, V);
        else /* C (M,D) (+)= A[:, v0:v0+n] (M,n), lda V, . panel (n,D) */
            m->be->matmul_bf16(0, M, D, n, 1.0f, A + v0, V, panel, D, v0 ? 1.0f : beta, C, D);
    }
}

unsigned short *model_table16(const struct model *m, enum model_table which)
{
    return which == TABLE_EMBED ? m->embed16 : m->head16;
}

unsigned short *model_block16(const struct model *m, int l)
{
    return m->blocks16 ? m->blocks16 + (size_t)l * model_block_floats(&m->cfg) : NULL;
}

float *model_stage_piece(const struct model *m)
{
    return m->blocks16 ? m->stage + 2 * (size_t)m->cfg.dim : NULL;
}

/* Weights converted on the host at a time (8 MiB of bf16). */
#define CHUNK ((size_t)1 << 22)

int model_write_params(struct model *m, const float *host)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    if (!m->blocks16) {
        be->upload(m->mem, host, m->n_params * sizeof(float));
        return 0;
    }
    /* bf16 element i is fp32 element i, or i + D past the final norm */
    const size_t front = table_floats(c) + (size_t)c->n_layers * model_block_floats(c);
    const size_t n = bf16_elements(c);
    uint16_t *tmp = malloc(CHUNK * sizeof *tmp);
    if (!tmp)
        return -1;
    for (size_t o = 0; o < n; o += CHUNK) {
        size_t k = n - o < CHUNK ? n - o : CHUNK;
        for (size_t j = 0; j < k; j++)
            tmp[j] = bf16_from_f32(host[o + j < front ? o + j : o + j + c->dim]);
        be->upload(m->embed16 + o, tmp, k * sizeof *tmp);
    }
    be->upload(m->w.final_norm, host + front, (size_t)c->dim * sizeof(float));
    free(tmp);
    return 0;
}
