/*
 * load_llama2c.c: llama2.c "version 0" checkpoints (.bin), as stories260K.
 *
 * Format (model-formats.md section 2.3): seven little-endian int32
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (negative vocab_size: an untied classifier is stored at the end), then
 * fp32 tensors with no padding, each stacked over layers:
 *   embed (V,D) | rms_att (L,D) | wq (L,D,D) | wk (L,KV*hd,D) | wv (L,KV*hd,D)
 *   | wo (L,D,D) | rms_ffn (L,D) | w1=gate (L,F,D) | w2=down (L,D,F)
 *   | w3=up (L,F,D) | rms_final (D) | 2 x unused RoPE tables (seq_len, hd/2)
 *   | [classifier (V,D)]
 * The file size must equal the header plus every tensor exactly.
 *
 * llama2.c rotates ADJACENT pairs (2i, 2i+1) in each head; the engine
 * rotates half-split pairs (i, i+hd/2), so q and k rows are permuted on load
 * (rope_layout.h; q with n_heads, k with n_kv_heads; section 7).
 * Later versions (magic "ak42") are recognised and refused by name.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "rope_layout.h"

/* Floats after the header: every tensor plus the two unused RoPE tables. */
static size_t llama2c_floats(const struct model_config *c)
{
    const size_t D = c->dim, F = c->hidden_dim, L = c->n_layers, V = c->vocab_size;
    const size_t KVD = (size_t)c->n_kv_heads * c->head_dim, T = c->max_seq_len;
    return V * D + L * D + L * D * D + 2 * L * KVD * D + L * D * D + L * D +
           3 * L * F * D + D + T * c->head_dim + (c->tied_embeddings ? 0 : V * D);
}

/* Read and check the header of path into c; with f non-NULL, leave *f open
 * just after the header. */
static int read_header(const char *path, struct model_config *c, FILE **fp,
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    int32_t h[7];
    char why[256];
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    long fsize = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    rewind(f);
    if (fsize < 28 || fread(h, sizeof h, 1, f) != 1) {
        snprintf(err, errlen, "%s: too short for a llama2.c header (%ld bytes)", path, fsize);
        fclose(f);
        return -1;
    }
    if ((uint32_t)h[0] == 0x616b3432u) {
        snprintf(err, errlen, "%s: llama2.c format version %d (\"ak42\" magic) is not "
                 "supported; export it as version 0 (legacy_export)", path, h[1]);
        fclose(f);
        return -1;
    }
    *c = (struct model_config){
        .dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3],
        .n_kv_heads = h[4], .vocab_size = h[5] < 0 ? -h[5] : h[5], .max_seq_len = h[6],
        .norm_eps = 1e-5f, .rope_theta = 10000.0f, .tied_embeddings = h[5] > 0,
        .bos_id = 1, .eos_id = 2,
    };
    c->head_dim = c->n_heads > 0 && c->dim % c->n_heads == 0 ? c->dim / c->n_heads : 0;
    if (h[5] == INT32_MIN || model_config_check(c, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s: bad llama2.c header: %s", path,
                 h[5] == INT32_MIN ? "vocab_size out of range" : why);
        fclose(f);
        return -1;
    }
    size_t n_floats = llama2c_floats(c);
    if ((uint64_t)fsize != 28 + 4 * (uint64_t)n_floats) {
        snprintf(err, errlen, "%s: size %ld bytes does not match the header "
                 "(expected %llu bytes for dim %d, %d layers, vocab %d)",
                 path, fsize, 28 + 4 * (unsigned long long)n_floats, c->dim,
                 c->n_layers, c->vocab_size);
        fclose(f);
        return -1;
    }
    if (fp)
        *fp = f;
    else
        fclose(f);
    return 0;
}

int llama2c_read_config(const char *path, struct model_config *c, char *err,
                        size_t errlen)
{
    return read_header(path, c, NULL, err, errlen);
}

int load_llama2c(const char *path, const struct backend *be, struct model *m,
                 char *err, size_t errlen)
{
    struct model_config c;
    FILE *f;
    float *data;
    if (read_header(path, &c, &f, err, errlen) != 0)
        return -1;
    const size_t D = c.dim, F = c.hidden_dim, L = c.n_layers, V = c.vocab_size;
    const size_t KVD = (size_t)c.n_kv_heads * c.head_dim, T = c.max_seq_len;
    const size_t n_floats = llama2c_floats(&c);
    data = malloc(n_floats * sizeof(float));
    if (!data || fread(data, sizeof(float), n_floats, f) != n_floats) {
        snprintf(err, errlen, "%s: %s", path, data ? "read failed" : "out of memory");
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    if (model_init(m, &c, be) != 0) {
        snprintf(err, errlen, "%s: cannot allocate %zu parameters", path,
                 model_param_floats(&c));
        free(data);
        return -1;
    }

    const float *p = data;
    const float *embed = p;           p += V * D;
    const float *rms_att = p;         p += L * D;
    const float *wq = p;              p += L * D * D;
    const float *wk = p;              p += L * KVD * D;
    const float *wv = p;              p += L * KVD * D;
    const float *wo = p;              p += L * D * D;
    const float *rms_ffn = p;         p += L * D;
    const float *w1 = p;              p += L * F * D;
    const float *w2 = p;              p += L * D * F;
    const float *w3 = p;              p += L * F * D;
    const float *rms_final = p;       p += D;
    p += T * c.head_dim;              /* the two unused RoPE tables */
    const float *wcls = c.tied_embeddings ? NULL : p;

    memcpy(m->w.embed, embed, V * D * sizeof(float));
    for (size_t l = 0; l < L; l++) {
        struct block_weights b = block_view(&c, m->w.blocks[l]);
        memcpy(b.attn_norm, rms_att + l * D, D * sizeof(float));
        rope_rows_adjacent_to_half_split(b.wq, wq + l * D * D, c.n_heads, c.head_dim,
                                         c.dim);
        rope_rows_adjacent_to_half_split(b.wk, wk + l * KVD * D, c.n_kv_heads,
                                         c.head_dim, c.dim);
        memcpy(b.wv, wv + l * KVD * D, KVD * D * sizeof(float));
        memcpy(b.wo, wo + l * D * D, D * D * sizeof(float));
        memcpy(b.ffn_norm, rms_ffn + l * D, D * sizeof(float));
        memcpy(b.w_gate, w1 + l * F * D, F * D * sizeof(float));
        memcpy(b.w_down, w2 + l * D * F, D * F * sizeof(float));
        memcpy(b.w_up, w3 + l * F * D, F * D * sizeof(float));
    }
    memcpy(m->w.final_norm, rms_final, D * sizeof(float));
    if (wcls)
        memcpy(m->w.lm_head, wcls, V * D * sizeof(float));
    free(data);
    return 0;
}
