/*
 * recipe.c: method names, per-method defaults and the validity check of a
 * fine-tuning recipe (see recipe.h).
 *
 * Defaults follow owlore-algorithm.md sections 0 and 7 (paper values where
 * the paper fixes them, the released scripts otherwise):
 *   every method   AdamW beta 0.9/0.999, eps 1e-6 (GaLore-AdamW / HF AdamW
 *                  default as the OwLore code runs it; LMFlow's LISA used
 *                  adamw_hf with 1e-8, one eps is kept for all methods so
 *                  they differ only in what the table below says), wd 0,
 *                  lr 3e-4 (LLaMA-2-7B), linear decay to 0, no warmup,
 *                  clip 1.0, batch 16 x 512, accumulation 1, 1 epoch,
 *                  seed 111, tau 13, 128 calibration sequences, reset states,
 *                  staggered projector refreshes
 *   full           all blocks, AdamW
 *   lisa           uniform, gamma 2, K 20, AdamW
 *   galore         all blocks, GaLore r 8
 *   owlore_full_rank  owl, gamma 2, K 20, AdamW
 *   owlore         owl, gamma 5, K 50, GaLore r 128
 *   lora           all blocks frozen, adapters r 8 (the paper's LoRA
 *                  baseline), alpha 16 (2r), dropout 0.05, embedding, head
 *                  and norms frozen (PEFT's defaults); lr 3e-4 as the rest
 * GaLore settings (T 200, alpha 0.25: GaLore README; exact SVD; range finder
 * oversampling 10 and 2 power iterations when randomized) are set for every
 * method; rank 0 switches them off. Methods that train every block have no
 * sampling period: gamma and interval are 0 (unused).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "recipe.h"

static const char *const method_names[METHOD_COUNT] = {
    "full", "lisa", "galore", "owlore_full_rank", "owlore", "lora"};

const char *method_name(enum method m)
{
    return (unsigned)m < METHOD_COUNT ? method_names[m] : "unknown";
}

int method_parse(const char *s, enum method *m)
{
    for (int i = 0; i < METHOD_COUNT; i++)
        if (strcmp(s, method_names[i]) == 0) {
            *m = (enum method)i;
            return 0;
        }
    return -1;
}

const char *sampling_name(enum sampling s)
{
    static const char *const names[] = {"all", "owl", "uniform", "decrease", "fixed"};
    return (unsigned)s <= SAMPLING_FIXED ? names[s] : "unknown";
}

/* 1 for the methods whose blocks take GaLore steps (rank >= 1 required). */
static int method_low_rank(enum method m)
{
    return m == METHOD_GALORE || m == METHOD_OWLORE;
}

/* 1 for the methods that do not sample blocks (lora adapts every block). */
static int method_all_blocks(enum method m)
{
    return m == METHOD_FULL || m == METHOD_GALORE || m == METHOD_LORA;
}

void recipe_defaults(struct recipe *r, enum method m)
{
    memset(r, 0, sizeof *r);
    r->method = m;
    r->tau = 13.0f;
    r->state_policy = STATE_RESET;
    r->adamw = (struct adamw_hparams){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f,
                                      .weight_decay = 0.0f};
    r->galore = (struct galore_hparams){.rank = 0, .update_proj_gap = 200,
                                        .scale = 0.25f, .svd_method = 0,
                                        .oversample = 10, .power_iters = 2};
    r->lora = (struct lora_hparams){.rank = 8, .alpha = 16.0f, .dropout = 0.05f,
                                    .merge = 0};
    r->lr = 3e-4f;
    r->schedule = SCHEDULE_LINEAR;
    r->max_grad_norm = 1.0f;
    r->batch_size = 16;
    r->grad_accum = 1;
    r->seq_len = 512;
    r->epochs = 1;
    r->seed = 111;
    r->calib_samples = 128;
    r->stagger_refreshes = 1;
    switch (m) {
    case METHOD_LISA:
        r->sampling = SAMPLING_UNIFORM;
        r->gamma = 2;
        r->interval = 20;
        break;
    case METHOD_GALORE:
        r->sampling = SAMPLING_ALL;
        r->galore.rank = 8;
        break;
    case METHOD_OWLORE_FULL_RANK:
        r->sampling = SAMPLING_OWL;
        r->gamma = 2;
        r->interval = 20;
        break;
    case METHOD_OWLORE:
        r->sampling = SAMPLING_OWL;
        r->gamma = 5;
        r->interval = 50;
        r->galore.rank = 128;
        break;
    case METHOD_LORA:
        r->sampling = SAMPLING_ALL;
        r->freeze_embeddings = 1;
        break;
    default: /* METHOD_FULL */
        r->sampling = SAMPLING_ALL;
        break;
    }
}

#define REFUSE(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* The sampling part of recipe_check. */
static int check_sampling(const struct recipe *r, int n_layers, char *err, size_t errlen)
{
    const char *mn = method_name(r->method);
    if ((unsigned)r->sampling > SAMPLING_FIXED)
        REFUSE("sampling mode %d is not one of all, owl, uniform, decrease, fixed",
               (int)r->sampling);
    if (method_all_blocks(r->method)) {
        if (r->sampling != SAMPLING_ALL)
            REFUSE("method %s does not sample blocks; sampling must be 'all', "
                   "not '%s'", mn, sampling_name(r->sampling));
        return 0;
    }
    if (r->sampling == SAMPLING_ALL)
        REFUSE("method %s samples blocks; sampling 'all' is only for full, galore "
               "and lora", mn);
    if (r->gamma < 1)
        REFUSE("gamma (blocks trained per period) must be at least 1, got %d", r->gamma);
    if (r->gamma > n_layers)
        REFUSE("gamma %d is larger than the model's %d blocks", r->gamma, n_layers);
    if (r->interval < 1)
        REFUSE("interval (steps between block resampling, K) must be at least 1, got %d",
               r->interval);
    if (r->sampling == SAMPLING_FIXED) {
        if (r->n_fixed < 1 || r->n_fixed > RECIPE_MAX_FIXED)
            REFUSE("fixed sampling needs a list of 1 to %d blocks, got %d",
                   RECIPE_MAX_FIXED, r->n_fixed);
        for (int i = 0; i < r->n_fixed; i++) {
            if (r->fixed_blocks[i] < 0 || r->fixed_blocks[i] >= n_layers)
                REFUSE("fixed block %d is out of range: the model has blocks 0..%d",
                       r->fixed_blocks[i], n_layers - 1);
            for (int j = 0; j < i; j++)
                if (r->fixed_blocks[j] == r->fixed_blocks[i])
                    REFUSE("fixed block %d is listed twice", r->fixed_blocks[i]);
        }
        if (r->gamma != r->n_fixed)
            REFUSE("gamma %d does not match the %d fixed blocks", r->gamma, r->n_fixed);
    }
    if (r->state_policy != STATE_RESET && r->state_policy != STATE_KEEP)
        REFUSE("state policy %d is not reset or keep", (int)r->state_policy);
    return 0;
}

int recipe_check(const struct recipe *r, int n_layers, char *err, size_t errlen)
{
    const char *mn = method_name(r->method);
    const struct galore_hparams *g = &r->galore;
    const struct adamw_hparams *a = &r->adamw;
    if ((unsigned)r->method >= METHOD_COUNT)
        REFUSE("method %d is not one of full, lisa, galore, owlore_full_rank, owlore, "
               "lora", (int)r->method);
    if (n_layers < 1)
        REFUSE("the model has %d blocks", n_layers);
    if (check_sampling(r, n_layers, err, errlen) != 0)
        return -1;
    if (!isfinite(r->tau) || r->tau <= 0)
        REFUSE("tau (outlier threshold) must be a positive number, got %g", (double)r->tau);
    if (method_low_rank(r->method)) {
        if (g->rank < 1)
            REFUSE("rank must be a positive integer for method %s, got %d", mn, g->rank);
        if (g->update_proj_gap < 1)
            REFUSE("proj_gap (steps between GaLore subspace updates, T) must be at "
                   "least 1, got %d", g->update_proj_gap);
        if (!isfinite(g->scale) || g->scale <= 0)
            REFUSE("scale (GaLore alpha) must be a positive number, got %g",
                   (double)g->scale);
        if (g->svd_method != 0 && g->svd_method != 1)
            REFUSE("svd method %d is not 0 (exact) or 1 (randomized)", g->svd_method);
        if (g->oversample < 0 || g->power_iters < 0)
            REFUSE("randomized SVD oversample %d and power iterations %d must be >= 0",
                   g->oversample, g->power_iters);
    } else if (g->rank != 0) {
        REFUSE("rank must be 0 for method %s, which updates blocks at full rank "
               "(got %d); use galore or owlore for low-rank updates", mn, g->rank);
    }
    if (r->method == METHOD_LORA) {
        const struct lora_hparams *lo = &r->lora;
        if (lo->rank < 1)
            REFUSE("lora_rank must be a positive integer, got %d", lo->rank);
        if (!isfinite(lo->alpha) || lo->alpha <= 0)
            REFUSE("lora_alpha must be a positive number, got %g", (double)lo->alpha);
        if (!(lo->dropout >= 0 && lo->dropout < 1))
            REFUSE("lora_dropout must lie in [0, 1), got %g", (double)lo->dropout);
        if (lo->merge != 0 && lo->merge != 1)
            REFUSE("lora merge must be 0 or 1, got %d", lo->merge);
    }
    if (r->checkpoint_activations != 0 && r->checkpoint_activations != 1)
        REFUSE("activation_checkpointing must be 0 or 1, got %d", r->checkpoint_activations);
    if (r->recompute_blocks < 0 || r->recompute_blocks > n_layers)
        REFUSE("recompute_blocks must lie in [0, %d] (the model's blocks; 0: all), got %d",
               n_layers, r->recompute_blocks);
    if (r->recompute_blocks > 0 && !r->checkpoint_activations)
        REFUSE("recompute_blocks %d applies with activation_checkpointing 1",
               r->recompute_blocks);
    if (r->bf16_activations != 0 && r->bf16_activations != 1)
        REFUSE("bf16_activations must be 0 or 1, got %d", r->bf16_activations);
    if (r->bf16_activations && recipe_recomputed_blocks(r, n_layers) == n_layers)
        REFUSE("bf16_activations keeps the activations of the blocks that are not "
               "recomputed, and activation_checkpointing recomputes all %d; set "
               "recompute_blocks below %d, or activation_checkpointing 0", n_layers,
               n_layers);
    if (r->stagger_refreshes != 0 && r->stagger_refreshes != 1)
        REFUSE("stagger_refreshes must be 0 or 1, got %d", r->stagger_refreshes);
    if (r->bf16_weights != 0 && r->bf16_weights != 1)
        REFUSE("bf16_weights must be 0 or 1, got %d", r->bf16_weights);
    if (r->update_in_backward != 0 && r->update_in_backward != 1)
        REFUSE("update_in_backward must be 0 or 1, got %d", r->update_in_backward);
    if (r->update_in_backward && (method_low_rank(r->method) || r->method == METHOD_LORA))
        REFUSE("update_in_backward is for the full-rank methods (full, lisa, "
               "owlore_full_rank); method %s %s", mn,
               r->method == METHOD_LORA ? "trains adapters only"
                                        : "already streams its GaLore gradients");
    if (r->update_in_backward && r->grad_accum != 1)
        REFUSE("update_in_backward steps each tensor from one micro-batch's gradient; "
               "grad_accum must be 1, got %d", r->grad_accum);
    if (!(a->beta1 >= 0 && a->beta1 < 1) || !(a->beta2 >= 0 && a->beta2 < 1))
        REFUSE("AdamW betas must lie in [0, 1), got %g and %g", (double)a->beta1,
               (double)a->beta2);
    if (!isfinite(a->eps) || a->eps <= 0)
        REFUSE("AdamW eps must be a positive number, got %g", (double)a->eps);
    if (!isfinite(a->weight_decay) || a->weight_decay < 0)
        REFUSE("weight_decay must be a non-negative number, got %g",
               (double)a->weight_decay);
    if (!isfinite(r->lr) || r->lr <= 0)
        REFUSE("lr (learning rate) must be a positive number, got %g", (double)r->lr);
    if ((unsigned)r->schedule > SCHEDULE_CONSTANT)
        REFUSE("lr schedule %d is not linear, cosine or constant", (int)r->schedule);
    if (r->warmup_steps < 0)
        REFUSE("warmup steps must be >= 0, got %d", r->warmup_steps);
    if (!(r->min_lr_ratio >= 0 && r->min_lr_ratio <= 1))
        REFUSE("min_lr_ratio must lie in [0, 1], got %g", (double)r->min_lr_ratio);
    if (!(r->max_grad_norm >= 0))
        REFUSE("max_grad_norm (clip) must be a number >= 0 (0: no clipping), got %g",
               (double)r->max_grad_norm);
    if (r->freeze_embeddings != 0 && r->freeze_embeddings != 1)
        REFUSE("freeze_embeddings must be 0 or 1, got %d", r->freeze_embeddings);
    if (r->batch_size < 1)
        REFUSE("batch size must be at least 1, got %d", r->batch_size);
    if (r->grad_accum < 1)
        REFUSE("gradient accumulation must be at least 1, got %d", r->grad_accum);
    if (r->seq_len < 1)
        REFUSE("sequence length must be at least 1, got %d", r->seq_len);
    if (r->max_steps < 0)
        REFUSE("max_steps must be >= 0, got %d", r->max_steps);
    if (r->epochs < 0 || (r->max_steps == 0 && r->epochs < 1))
        REFUSE("epochs must be at least 1 when max_steps is 0, got %d", r->epochs);
    if (r->eval_every < 0 || r->save_every < 0)
        REFUSE("eval_every %d and save_every %d must be >= 0", r->eval_every,
               r->save_every);
    if (r->calib_samples < 0)
        REFUSE("calib_samples must be >= 0, got %d", r->calib_samples);
    return 0;
}
#undef REFUSE

int recipe_streams_gradients(const struct recipe *r)
{
    return r->grad_accum == 1 && r->method != METHOD_LORA &&
           (r->galore.rank > 0 || r->update_in_backward);
}

int recipe_recomputed_blocks(const struct recipe *r, int n_layers)
{
    if (!r->checkpoint_activations)
        return 0;
    return r->recompute_blocks > 0 ? r->recompute_blocks : n_layers;
}

int recipe_backward_passes(const struct recipe *r)
{
    return r->update_in_backward && r->max_grad_norm > 0 ? 2 : 1;
}

size_t recipe_sparse_embedding_rows(const struct recipe *r, const struct model_config *c, int B,
                                    int T)
{
    const size_t rows = (size_t)B * T * (size_t)r->grad_accum;
    if (r->freeze_embeddings || r->method == METHOD_LORA || c->tied_embeddings ||
        rows >= (size_t)c->vocab_size)
        return 0;
    return rows;
}

int recipe_active_blocks(const struct recipe *r, int n_layers)
{
    if (r->method == METHOD_LORA)
        return 0;
    if (method_all_blocks(r->method) || r->sampling == SAMPLING_ALL)
        return n_layers;
    return r->gamma;
}
