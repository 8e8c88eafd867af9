/*
 * config.h: the shape of a LLaMA-family model.
 *
 * Every size the engine allocates is computed from this struct before
 * anything is allocated, so a plan ("does this job fit?") needs only a
 * config. Loaders fill it from a Hugging Face config.json, a GGUF header or a
 * llama2.c header; model_config_check() refuses inconsistent values.
 *
 * Internal conventions, fixed for every loader:
 *   - weight matrices are row-major [out, in] (PyTorch nn.Linear layout);
 *   - RoPE rotates half-split pairs (i, i + hd/2) inside each head, as
 *     Hugging Face does; files that use adjacent pairs (llama2.c, GGUF) have
 *     their q/k rows permuted on load (model-formats.md section 7).
 */
#ifndef OWLORE_CONFIG_H
#define OWLORE_CONFIG_H

#include <stddef.h>

struct model_config {
    int dim;              /* D: residual stream width */
    int hidden_dim;       /* F: SwiGLU inner width */
    int n_layers;         /* L: transformer blocks */
    int n_heads;          /* H: query heads */
    int n_kv_heads;       /* KV: key/value heads (H % KV == 0) */
    int head_dim;         /* hd: per-head width (D / H unless the file says) */
    int vocab_size;       /* V */
    int max_seq_len;      /* context length the model was trained for */
    float norm_eps;       /* RMSNorm epsilon */
    float rope_theta;     /* RoPE base */
    int tied_embeddings;  /* 1: the classifier reuses the embedding matrix */
    int bos_id, eos_id;   /* -1 when unknown */
};

/* Check that a config is usable; on failure write a message naming the bad
 * field into err (size errlen) and return -1. */
int model_config_check(const struct model_config *c, char *err, size_t errlen);

/* Parameter counts (elements). */
size_t model_config_block_params(const struct model_config *c);
size_t model_config_total_params(const struct model_config *c);

/* Print the config and parameter count in human-readable form. */
void model_config_print(const struct model_config *c, void *file /* FILE* */);

#endif
