/*
 * model_bf16.c: transformer blocks stored in bf16, computed on in fp32.
 *
 * With bf16 storage (recipe bf16_weights) the blocks, nearly all of a LLaMA's
 * parameters, take half the memory and there is no fp32 copy of them. The
 * model's one allocation is then
 *   fp32  embed (V,D) | final_norm (D) | lm_head (V,D), untied only | stage
 *   bf16  blocks (L, block_floats)
 * where the stage (2 D + largest linear layer) is all the fp32 room the
 * blocks ever get:
 *   - the forward and backward passes widen a block's two norms into the
 *     stage and multiply by its matrices as stored (backend.h matmul_bf16:
 *     on bf16 tensor cores, or widened one matrix at a time by the backend);
 *   - an optimizer step widens one tensor of a block into the stage, updates
 *     it in fp32, and model_block_piece_store narrows it back by stochastic
 *     rounding (backend.h bf16_round), so small updates survive on average
 *     instead of rounding away.
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

/* the stage: the two norms of a block, then one piece of it */
static size_t stage_floats(const struct model_config *c)
{
    return 2 * (size_t)c->dim + model_largest_linear(c);
}

size_t model_bf16_bytes(const struct model_config *c)
{
    return (fp32_floats(c) + stage_floats(c)) * sizeof(float) +
           (size_t)c->n_layers * model_block_floats(c) * sizeof(uint16_t);
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
    m->stage = mem + fp32_floats(c);
    m->blocks16 = (unsigned short *)(m->stage + stage_floats(c));
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
    float *old = m->mem, *blocks = m->w.blocks[0];
    size_t embed = (size_t)c->vocab_size * c->dim;
    memcpy(mem, m->w.embed, embed * sizeof(float));
    memcpy(mem + embed, m->w.final_norm, c->dim * sizeof(float));
    if (!c->tied_embeddings)
        memcpy(mem + embed + c->dim, m->w.lm_head, embed * sizeof(float));
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
    float *piece = m->stage + 2 * (size_t)m->cfg.dim;
    m->be->bf16_expand(piece, m->blocks16 + (size_t)l * model_block_floats(&m->cfg) + off, n);
    return piece;
}

void model_block_piece_store(const struct model *m, int l, size_t off, size_t n,
                             unsigned long long seed)
{
    if (m->blocks16)
        m->be->bf16_round(m->blocks16 + (size_t)l * model_block_floats(&m->cfg) + off,
                          m->stage + 2 * (size_t)m->cfg.dim, n, seed + off);
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
    return 0;
}
