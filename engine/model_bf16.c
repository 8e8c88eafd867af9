/*
 * model_bf16.c: transformer blocks stored in bf16, computed on in fp32.
 *
 * With bf16 storage (recipe bf16_weights) the blocks, nearly all of a LLaMA's
 * parameters, take half the memory and there is no fp32 copy of them. The
 * model's one allocation is then
 *   fp32  embed (V,D) | final_norm (D) | lm_head (V,D), untied only | stage
 *   bf16  blocks (L, block_floats)
 * and every block is used through model_block_weights, which widens it into
 * the stage (one block of fp32) unless the stage holds it already. Where the
 * backend multiplies bf16 weights as stored (bf16 tensor cores), the forward
 * and backward passes widen only a block's two norms and multiply by its
 * bf16 matrices (model_block_operands, model_block_product). An
 * optimizer step updates the staged block in fp32 and model_block_store
 * narrows it back by stochastic rounding (backend.h bf16_round), so small
 * updates survive on average instead of rounding away.
 *
 * Checkpoints hold the blocks as BF16 tensors (ckpt.c); resuming writes the
 * fp32 layout of model.h back through model_write_params.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bf16.h"
#include "digest.h"
#include "model.h"

/* Elements of the fp32 part before the stage: embed, final norm, head. */
static size_t fp32_floats(const struct model_config *c)
{
    size_t embed = (size_t)c->vocab_size * c->dim;
    return embed + c->dim + (c->tied_embeddings ? 0 : embed);
}

size_t model_bf16_bytes(const struct model_config *c)
{
    size_t bs = model_block_floats(c);
    return (fp32_floats(c) + bs) * sizeof(float) +
           (size_t)c->n_layers * bs * sizeof(uint16_t);
}

/* Point the named weights of a bf16-stored model into mem. */
static void carve_bf16(struct model *m, float *mem)
{
    const struct model_config *c = &m->cfg;
    size_t embed = (size_t)c->vocab_size * c->dim;
    m->mem = mem;
    m->w.embed = mem;
    m->w.final_norm = mem + embed;
    m->w.lm_head = c->tied_embeddings ? m->w.embed : m->w.final_norm + c->dim;
    for (int l = 0; l < c->n_layers; l++)
        m->w.blocks[l] = NULL;
    m->stage->buf = mem + fp32_floats(c);
    m->stage->block = -1;
    m->blocks16 = (unsigned short *)(m->stage->buf + model_block_floats(c));
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
    struct block_stage *stage = calloc(1, sizeof *stage);
    if (!mem || !stage) {
        if (mem)
            m->be->free(mem);
        free(stage);
        snprintf(err, errlen, "out of memory for the bf16 weights (%.2f GiB)",
                 (double)bytes / (1 << 30));
        return -1;
    }
    float *old = m->mem, *blocks = m->w.blocks[0];
    size_t embed = (size_t)c->vocab_size * c->dim;
    memcpy(mem, m->w.embed, embed * sizeof(float));
    memcpy(mem + embed, m->w.final_norm, c->dim * sizeof(float));
    if (!c->tied_embeddings)
        memcpy(mem + embed + c->dim, m->w.lm_head, embed * sizeof(float));
    m->stage = stage;
    carve_bf16(m, mem);
    const size_t n = (size_t)c->n_layers * bs;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        m->blocks16[i] = bf16_from_f32(blocks[i]);
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

float *model_block_weights(const struct model *m, int l)
{
    if (!m->blocks16)
        return m->w.blocks[l];
    if (m->stage->block != l) {
        size_t bs = model_block_floats(&m->cfg);
        m->be->bf16_expand(m->stage->buf, m->blocks16 + (size_t)l * bs, bs);
        m->stage->block = l;
    }
    return m->stage->buf;
}

/* 1 when products read the bf16 blocks directly (no widening of blocks) */
static int direct_products(const struct model *m)
{
    return m->blocks16 && m->be->bf16_products;
}

struct block_weights model_block_operands(const struct model *m, int l)
{
    const struct model_config *c = &m->cfg;
    if (!direct_products(m))
        return block_view(c, model_block_weights(m, l));
    const size_t a = model_piece_offset(c, 0), f = model_piece_offset(c, 5);
    float *buf = m->stage->buf;
    if (m->stage->block != l) { /* the norms alone: the stage then holds no block */
        const unsigned short *b16 = m->blocks16 + (size_t)l * model_block_floats(c);
        m->be->bf16_expand(buf + a, b16 + a, (size_t)c->dim);
        m->be->bf16_expand(buf + f, b16 + f, (size_t)c->dim);
        m->stage->block = -1;
    }
    return (struct block_weights){.attn_norm = buf + a, .ffn_norm = buf + f};
}

void model_block_product(const struct model *m, int l, enum linear_id id, int trans_w, int M,
                         int N, int K, const float *A, float beta, float *C)
{
    int rows, cols; /* W (rows, cols): its row stride is cols either way */
    const size_t off = model_linear_offset(&m->cfg, id, &rows, &cols);
    if (direct_products(m))
        m->be->matmul_bf16(trans_w, M, N, K, 1.0f, A, K,
                           m->blocks16 + (size_t)l * model_block_floats(&m->cfg) + off, cols,
                           beta, C, N);
    else
        m->be->matmul(0, trans_w, M, N, K, 1.0f, A, K, model_block_weights(m, l) + off, cols,
                      beta, C, N);
}

void model_block_store(const struct model *m, int l, unsigned long long seed)
{
    size_t bs = model_block_floats(&m->cfg);
    m->be->bf16_round(m->blocks16 + (size_t)l * bs, m->stage->buf, bs, seed);
    m->stage->block = -1;
}

/* Block weights converted on the host at a time (8 MiB of bf16). */
#define CHUNK ((size_t)1 << 22)

int model_write_params(struct model *m, const float *host)
{
    const struct model_config *c = &m->cfg;
    const struct backend *be = m->be;
    if (!m->blocks16) {
        be->upload(m->mem, host, m->n_params * sizeof(float));
        return 0;
    }
    const size_t embed = (size_t)c->vocab_size * c->dim;
    const size_t blocks = (size_t)c->n_layers * model_block_floats(c);
    uint16_t *tmp = malloc(CHUNK * sizeof *tmp);
    if (!tmp)
        return -1;
    be->upload(m->w.embed, host, embed * sizeof(float));
    for (size_t o = 0; o < blocks; o += CHUNK) {
        size_t k = blocks - o < CHUNK ? blocks - o : CHUNK;
        for (size_t j = 0; j < k; j++)
            tmp[j] = bf16_from_f32(host[embed + o + j]);
        be->upload(m->blocks16 + o, tmp, k * sizeof *tmp);
    }
    be->upload(m->w.final_norm, host + embed + blocks, (size_t)c->dim * sizeof(float));
    if (!c->tied_embeddings)
        be->upload(m->w.lm_head, host + embed + blocks + c->dim, embed * sizeof(float));
    free(tmp);
    m->stage->block = -1;
    return 0;
}
