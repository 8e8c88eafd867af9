/*
 * load_gguf.c: LLaMA-family models from GGUF files (llama.cpp's format).
 *
 * The config comes from the llama.* metadata (general.architecture must be
 * "llama"): block_count, embedding_length, feed_forward_length,
 * attention.head_count (required), attention.head_count_kv (default: the
 * head count), attention.key_length or rope.dimension_count (head size,
 * default D/H), rope.freq_base (default 10000),
 * attention.layer_norm_rms_epsilon (required), context_length (default
 * 2048); the vocabulary size from llama.vocab_size, else the length of
 * tokenizer.ggml.tokens, else the rows of token_embd.weight; bos/eos from
 * tokenizer.ggml.{bos,eos}_token_id (-1 when absent). The embeddings are tied
 * exactly when there is no output.weight. Mixture-of-experts files, RoPE
 * scaling and RoPE frequency-factor tensors are refused by name.
 *
 * Tensors (GGUF lists dims contiguous first, so a (rows, cols) matrix has
 * dims {cols, rows}):
 *   token_embd.weight {D, V}      output_norm.weight {D}     output.weight {D, V}
 *   blk.N.attn_norm.weight {D}    blk.N.ffn_norm.weight {D}
 *   blk.N.attn_q.weight {D, H*hd} blk.N.attn_k.weight {D, KV*hd}
 *   blk.N.attn_v.weight {D, KV*hd} blk.N.attn_output.weight {H*hd, D}
 *   blk.N.ffn_gate.weight {D, F}  blk.N.ffn_up.weight {D, F}  blk.N.ffn_down.weight {F, D}
 * Every tensor in the file must be one of these, and every one of these must
 * be there with exactly that shape. Each is dequantized to fp32 straight into
 * the parameter memory; q and k rows are stored for llama.cpp's adjacent-pair
 * RoPE and are permuted to the engine's half-split order (rope_layout.h; q
 * with n_heads, k with n_kv_heads).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "load.h"
#include "rope_layout.h"

/* An integer key in [0, INT_MAX]; absent gives dflt, or an error when
 * dflt < 0 (the key is required). */
static int meta_int(const struct gguf_file *f, const char *key, int dflt, int *out,
                    char *err, size_t errlen)
{
    int64_t v;
    if (!gguf_has(f, key)) {
        if (dflt < 0) {
            snprintf(err, errlen, "%s: metadata key '%s' is missing", gguf_path(f), key);
            return -1;
        }
        *out = dflt;
        return 0;
    }
    if (gguf_get_int(f, key, &v, err, errlen) < 0)
        return -1;
    if (v < 0 || v > INT_MAX) {
        snprintf(err, errlen, "%s: metadata key '%s': %" PRId64 " is out of range",
                 gguf_path(f), key, v);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* A number key; absent gives dflt, or an error when required. */
static int meta_float(const struct gguf_file *f, const char *key, int required,
                      double dflt, float *out, char *err, size_t errlen)
{
    double v = dflt;
    if (!gguf_has(f, key) && required) {
        snprintf(err, errlen, "%s: metadata key '%s' is missing", gguf_path(f), key);
        return -1;
    }
    if (gguf_has(f, key) && gguf_get_float(f, key, &v, err, errlen) < 0)
        return -1;
    *out = (float)v;
    return 0;
}

/* Refuse what a plain LLaMA graph cannot run. */
static int check_plain_llama(const struct gguf_file *f, char *err, size_t errlen)
{
    const char *s;
    int experts = 0;
    if (gguf_get_str(f, "general.architecture", &s, NULL, err, errlen) < 0)
        return -1;
    if (strcmp(s, "llama") != 0) {
        snprintf(err, errlen, "%s: general.architecture is \"%s\"; only \"llama\" is "
                 "supported", gguf_path(f), s);
        return -1;
    }
    if (meta_int(f, "llama.expert_count", 0, &experts, err, errlen) < 0)
        return -1;
    if (experts > 0) {
        snprintf(err, errlen, "%s: llama.expert_count is %d: mixture-of-experts models "
                 "are not supported", gguf_path(f), experts);
        return -1;
    }
    if (gguf_has(f, "llama.rope.scaling.type")) {
        if (gguf_get_str(f, "llama.rope.scaling.type", &s, NULL, err, errlen) < 0)
            return -1;
        if (strcmp(s, "none") != 0) {
            snprintf(err, errlen, "%s: llama.rope.scaling.type is \"%s\": RoPE scaling "
                     "is not supported (plain RoPE only)", gguf_path(f), s);
            return -1;
        }
    }
    return 0;
}

/* The vocabulary size: llama.vocab_size, the tokenizer, or the embedding. */
static int read_vocab(const struct gguf_file *f, int *V, char *err, size_t errlen)
{
    const struct gguf_tensor *emb = gguf_find_tensor(f, "token_embd.weight");
    if (gguf_has(f, "llama.vocab_size"))
        return meta_int(f, "llama.vocab_size", -1, V, err, errlen);
    if (gguf_has(f, "tokenizer.ggml.tokens")) {
        struct gguf_arr a;
        if (gguf_get_arr(f, "tokenizer.ggml.tokens", &a, err, errlen) < 0)
            return -1;
        *V = a.count > INT_MAX ? INT_MAX : (int)a.count;
        return 0;
    }
    if (!emb) {
        snprintf(err, errlen, "%s: tensor 'token_embd.weight' is missing", gguf_path(f));
        return -1;
    }
    *V = emb->n_dims == 2 && emb->dims[1] <= INT_MAX ? (int)emb->dims[1] : 0;
    return 0;
}

static int read_config(const struct gguf_file *f, struct model_config *c, char *err,
                       size_t errlen)
{
    int rope_dims = 0;
    memset(c, 0, sizeof *c);
    if (check_plain_llama(f, err, errlen) < 0 ||
        meta_int(f, "llama.block_count", -1, &c->n_layers, err, errlen) < 0 ||
        meta_int(f, "llama.embedding_length", -1, &c->dim, err, errlen) < 0 ||
        meta_int(f, "llama.feed_forward_length", -1, &c->hidden_dim, err, errlen) < 0 ||
        meta_int(f, "llama.attention.head_count", -1, &c->n_heads, err, errlen) < 0 ||
        meta_int(f, "llama.attention.head_count_kv", c->n_heads, &c->n_kv_heads, err,
                 errlen) < 0 ||
        meta_int(f, "llama.context_length", 2048, &c->max_seq_len, err, errlen) < 0 ||
        meta_float(f, "llama.attention.layer_norm_rms_epsilon", 1, 0, &c->norm_eps,
                   err, errlen) < 0 ||
        meta_float(f, "llama.rope.freq_base", 0, 10000.0, &c->rope_theta, err,
                   errlen) < 0 ||
        read_vocab(f, &c->vocab_size, err, errlen) < 0)
        return -1;
    int dflt_hd = c->n_heads > 0 ? c->dim / c->n_heads : 0;
    if (meta_int(f, "llama.attention.key_length", dflt_hd, &c->head_dim, err,
                 errlen) < 0 ||
        meta_int(f, "llama.rope.dimension_count", c->head_dim, &rope_dims, err,
                 errlen) < 0)
        return -1;
    if (rope_dims != c->head_dim) {
        snprintf(err, errlen, "%s: llama.rope.dimension_count %d differs from the head "
                 "size %d: partial rotary embeddings are not supported", gguf_path(f),
                 rope_dims, c->head_dim);
        return -1;
    }
    if (gguf_has(f, "llama.attention.value_length")) {
        int vl;
        if (meta_int(f, "llama.attention.value_length", -1, &vl, err, errlen) < 0)
            return -1;
        if (vl != c->head_dim) {
            snprintf(err, errlen, "%s: llama.attention.value_length %d differs from the "
                     "key length %d", gguf_path(f), vl, c->head_dim);
            return -1;
        }
    }
    static const char *const ids[2] = {"tokenizer.ggml.bos_token_id",
                                       "tokenizer.ggml.eos_token_id"};
    int *dst[2] = {&c->bos_id, &c->eos_id};
    for (int i = 0; i < 2; i++) {
        *dst[i] = -1;
        if (gguf_has(f, ids[i]) && meta_int(f, ids[i], -1, dst[i], err, errlen) < 0)
            return -1;
    }
    c->tied_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    char why[512];
    if (model_config_check(c, why, sizeof why) < 0) {
        snprintf(err, errlen, "%s: %s", gguf_path(f), why);
        return -1;
    }
    return 0;
}

int gguf_read_config(const char *path, struct model_config *c, char *err,
                     size_t errlen)
{
    struct gguf_file *f = gguf_open(path, err, errlen);
    if (!f)
        return -1;
    int rc = read_config(f, c, err, errlen);
    gguf_close(f);
    return rc;
}

/* One parameter: its GGUF name, where it goes, its (rows, cols) shape
 * (cols 0 for a vector) and, for q and k, the heads to permute (else 0). */
struct slot {
    char name[48];
    float *dst;
    int rows, cols, rope_heads;
};

static int cmp_slot(const void *a, const void *b)
{
    return strcmp(((const struct slot *)a)->name, ((const struct slot *)b)->name);
}

/* Every parameter of m, sorted by name; *n receives the count. */
static struct slot *list_slots(const struct model *m, int *n)
{
    const struct model_config *c = &m->cfg;
    const int D = c->dim, F = c->hidden_dim, V = c->vocab_size;
    const int Q = c->n_heads * c->head_dim, KV = c->n_kv_heads * c->head_dim;
    struct slot *s = calloc((size_t)c->n_layers * 9 + 3, sizeof *s);
    int k = 0;
    if (!s)
        return NULL;
#define SLOT(ptr, r, cl, heads, ...) do { \
        snprintf(s[k].name, sizeof s[k].name, __VA_ARGS__); \
        s[k].dst = (ptr); s[k].rows = (r); s[k].cols = (cl); s[k].rope_heads = (heads); \
        k++; \
    } while (0)
    SLOT(m->w.embed, V, D, 0, "token_embd.weight");
    for (int l = 0; l < c->n_layers; l++) {
        struct block_weights b = block_view(c, m->w.blocks[l]);
        SLOT(b.attn_norm, D, 0, 0, "blk.%d.attn_norm.weight", l);
        SLOT(b.wq, Q, D, c->n_heads, "blk.%d.attn_q.weight", l);
        SLOT(b.wk, KV, D, c->n_kv_heads, "blk.%d.attn_k.weight", l);
        SLOT(b.wv, KV, D, 0, "blk.%d.attn_v.weight", l);
        SLOT(b.wo, D, Q, 0, "blk.%d.attn_output.weight", l);
        SLOT(b.ffn_norm, D, 0, 0, "blk.%d.ffn_norm.weight", l);
        SLOT(b.w_gate, F, D, 0, "blk.%d.ffn_gate.weight", l);
        SLOT(b.w_up, F, D, 0, "blk.%d.ffn_up.weight", l);
        SLOT(b.w_down, D, F, 0, "blk.%d.ffn_down.weight", l);
    }
    SLOT(m->w.final_norm, D, 0, 0, "output_norm.weight");
    if (!c->tied_embeddings)
        SLOT(m->w.lm_head, V, D, 0, "output.weight");
#undef SLOT
    qsort(s, (size_t)k, sizeof *s, cmp_slot);
    *n = k;
    return s;
}

static const char *dims_str(char *buf, size_t len, const int64_t *dims, int n)
{
    size_t used = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%" PRId64, i ? ", " : "",
                                 dims[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* Every file tensor is a parameter; every parameter is there, shaped right. */
static int check_tensors(const struct gguf_file *f, const struct slot *s, int n,
                         const struct model_config *c, char *err, size_t errlen)
{
    for (int i = 0; i < gguf_tensor_count(f); i++) {
        const char *name = gguf_tensor_at(f, i)->name;
        struct slot key;
        snprintf(key.name, sizeof key.name, "%s", name);
        if (strlen(name) < sizeof key.name &&
            bsearch(&key, s, (size_t)n, sizeof *s, cmp_slot))
            continue;
        if (strcmp(name, "rope_freqs.weight") == 0)
            snprintf(err, errlen, "%s: tensor 'rope_freqs.weight' holds RoPE frequency "
                     "factors (Llama 3.1-style scaling), which are not supported",
                     gguf_path(f));
        else
            snprintf(err, errlen, "%s: tensor '%s' is not a parameter of this model "
                     "(%d layers, %s embeddings)", gguf_path(f), name, c->n_layers,
                     c->tied_embeddings ? "tied" : "untied");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, s[i].name);
        if (!t) {
            snprintf(err, errlen, "%s: tensor '%s' is missing", gguf_path(f), s[i].name);
            return -1;
        }
        const int64_t want[2] = {s[i].cols ? s[i].cols : s[i].rows, s[i].rows};
        const int nd = s[i].cols ? 2 : 1;
        if (t->n_dims != nd || t->dims[0] != want[0] || (nd == 2 && t->dims[1] != want[1])) {
            char found[128], expect[128];
            snprintf(err, errlen, "%s: tensor '%s': GGUF dims %s in the file, but the "
                     "metadata implies %s (contiguous dimension first)", gguf_path(f),
                     t->name, dims_str(found, sizeof found, t->dims, t->n_dims),
                     dims_str(expect, sizeof expect, want, nd));
            return -1;
        }
    }
    return 0;
}

static int load_tensors(const struct gguf_file *f, const struct slot *s, int n,
                        float *tmp, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, s[i].name);
        size_t count = (size_t)s[i].rows * (size_t)(s[i].cols ? s[i].cols : 1);
        const int hd = s[i].rope_heads ? s[i].rows / s[i].rope_heads : 0;
        if (gguf_tensor_read_f32(f, t, s[i].rope_heads ? tmp : s[i].dst, count, err,
                                 errlen) < 0)
            return -1;
        if (s[i].rope_heads)
            rope_rows_adjacent_to_half_split(s[i].dst, tmp, s[i].rope_heads, hd,
                                             s[i].cols);
    }
    return 0;
}

int load_gguf(const char *path, const struct backend *be, struct model *m,
              char *err, size_t errlen)
{
    struct model_config c;
    struct slot *s = NULL;
    float *tmp = NULL;
    int n = 0, rc = -1;
    memset(m, 0, sizeof *m);
    struct gguf_file *f = gguf_open(path, err, errlen);
    if (!f)
        return -1;
    if (read_config(f, &c, err, errlen) < 0)
        goto out;
    if (model_init(m, &c, be) < 0) {
        snprintf(err, errlen, "%s: cannot allocate %zu parameters", path,
                 model_param_floats(&c));
        goto out;
    }
    /* scratch for one q matrix (q is at least as large as k) */
    tmp = malloc(sizeof(float) * (size_t)c.n_heads * c.head_dim * c.dim);
    if (!(s = list_slots(m, &n)) || !tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    if (check_tensors(f, s, n, &c, err, errlen) < 0 ||
        load_tensors(f, s, n, tmp, err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(tmp);
    free(s);
    gguf_close(f);
    if (rc < 0)
        model_free(m);
    return rc;
}
