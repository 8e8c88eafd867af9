/*
 * config.c: checking, counting and printing a model_config.
 *
 * model_config_check is the one gate every loader passes through: a config
 * that gets past it can be allocated and run without any other size check.
 */
#include <stdio.h>

#include "config.h"
#include "model.h"

int model_config_check(const struct model_config *c, char *err, size_t errlen)
{
#define REFUSE(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)
    if (c->dim <= 0 || c->dim > 65536)
        REFUSE("model config: dim %d out of range", c->dim);
    if (c->hidden_dim <= 0 || c->hidden_dim > 262144)
        REFUSE("model config: hidden_dim %d out of range", c->hidden_dim);
    if (c->n_layers <= 0 || c->n_layers > 1024)
        REFUSE("model config: n_layers %d out of range", c->n_layers);
    if (c->n_heads <= 0 || c->n_heads > 1024)
        REFUSE("model config: n_heads %d out of range", c->n_heads);
    if (c->n_kv_heads <= 0 || c->n_kv_heads > c->n_heads ||
        c->n_heads % c->n_kv_heads != 0)
        REFUSE("model config: n_kv_heads %d must divide n_heads %d",
               c->n_kv_heads, c->n_heads);
    if (c->head_dim <= 0 || c->head_dim % 2 != 0 || c->head_dim > 1024)
        REFUSE("model config: head_dim %d must be even and positive", c->head_dim);
    if (c->vocab_size <= 0 || c->vocab_size > 4194304)
        REFUSE("model config: vocab_size %d out of range", c->vocab_size);
    if (c->max_seq_len <= 0)
        REFUSE("model config: max_seq_len %d must be positive", c->max_seq_len);
    if (!(c->norm_eps > 0.0f && c->norm_eps < 1.0f))
        REFUSE("model config: norm_eps %g out of range", (double)c->norm_eps);
    if (!(c->rope_theta > 1.0f))
        REFUSE("model config: rope_theta %g must be > 1", (double)c->rope_theta);
    if ((double)model_config_total_params(c) > 1e12)
        REFUSE("model config: %zu parameters is more than this engine holds",
               model_config_total_params(c));
#undef REFUSE
    return 0;
}

size_t model_config_block_params(const struct model_config *c)
{
    return model_block_floats(c);
}

size_t model_config_total_params(const struct model_config *c)
{
    return model_param_floats(c);
}

void model_config_print(const struct model_config *c, void *file)
{
    FILE *f = file;
    size_t total = model_config_total_params(c);
    size_t embed = (size_t)c->vocab_size * c->dim;
    fprintf(f, "dim            %d\n", c->dim);
    fprintf(f, "hidden_dim     %d\n", c->hidden_dim);
    fprintf(f, "n_layers       %d\n", c->n_layers);
    fprintf(f, "n_heads        %d\n", c->n_heads);
    fprintf(f, "n_kv_heads     %d\n", c->n_kv_heads);
    fprintf(f, "head_dim       %d\n", c->head_dim);
    fprintf(f, "vocab_size     %d\n", c->vocab_size);
    fprintf(f, "max_seq_len    %d\n", c->max_seq_len);
    fprintf(f, "norm_eps       %g\n", (double)c->norm_eps);
    fprintf(f, "rope_theta     %g\n", (double)c->rope_theta);
    fprintf(f, "tied           %s\n", c->tied_embeddings ? "yes" : "no");
    fprintf(f, "parameters     %zu (%.2f M; embedding %.2f M, per block %.2f M)\n",
            total, total / 1e6, embed / 1e6, model_config_block_params(c) / 1e6);
}
