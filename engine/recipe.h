/*
 * recipe.h: what a fine-tuning run is asked to do (method + hyperparameters).
 *
 * One struct shared by the trainer, the planner, the CLI and (later) the
 * server. recipe_defaults() fills the defaults of each method from the
 * OwLore specification (owlore-algorithm.md): every field stays overridable.
 *
 *   method            blocks trained             update of sampled blocks
 *   full              all, every step            AdamW
 *   lisa              gamma=2 uniform, K=20      AdamW (full rank)
 *   galore            all, every step            GaLore-AdamW r=8
 *   owlore_full_rank  gamma=2 outlier-weighted   AdamW (full rank)
 *   owlore            gamma=5 outlier-weighted,  GaLore-AdamW r=128, T=200
 *                     K=50
 *   lora              none (base frozen)         AdamW on rank-r adapters of
 *                                                the 7 linear layers per block
 * Embedding, head and final norm always train (AdamW) unless frozen (lora
 * freezes them by default, as PEFT does).
 */
#ifndef OWLORE_RECIPE_H
#define OWLORE_RECIPE_H

#include "optim.h"

enum method { METHOD_FULL, METHOD_LISA, METHOD_GALORE, METHOD_OWLORE_FULL_RANK,
              METHOD_OWLORE, METHOD_LORA, METHOD_COUNT };

enum sampling { SAMPLING_ALL, SAMPLING_OWL, SAMPLING_UNIFORM, SAMPLING_DECREASE,
                SAMPLING_FIXED };

enum state_policy { STATE_RESET, STATE_KEEP };
enum lr_schedule { SCHEDULE_LINEAR, SCHEDULE_COSINE, SCHEDULE_CONSTANT };

#define RECIPE_MAX_FIXED 256

/* LoRA (method lora): W x + (alpha / rank) * B A dropout(x) on every linear
 * layer; merge 1: the final checkpoint holds the merged weights
 * (model.safetensors) instead of the adapter. */
struct lora_hparams {
    int rank;       /* r */
    float alpha;    /* scale = alpha / r */
    float dropout;  /* on the adapter input while training, [0, 1) */
    int merge;      /* 0 adapter only, 1 also merged weights */
};

struct recipe {
    enum method method;
    enum sampling sampling;     /* ALL for full/galore */
    int gamma;                  /* sampled blocks per period */
    int interval;               /* K: resample every K optimizer steps */
    float tau;                  /* outlier threshold (owl sampling) */
    int fixed_blocks[RECIPE_MAX_FIXED]; /* SAMPLING_FIXED: the blocks */
    int n_fixed;
    enum state_policy state_policy;
    int freeze_embeddings;      /* 1: embedding/head/final norm do not train */

    struct adamw_hparams adamw;
    struct galore_hparams galore; /* rank <= 0: full-rank AdamW for blocks */
    struct lora_hparams lora;     /* used by method lora only */

    float lr;
    enum lr_schedule schedule;
    int warmup_steps;
    float min_lr_ratio;         /* floor of the decay, as a fraction of lr */
    float max_grad_norm;        /* 0: no clipping */

    int batch_size;             /* sequences per micro-batch */
    int grad_accum;             /* micro-batches per optimizer step */
    int seq_len;
    int checkpoint_activations; /* 1: keep block inputs only, recompute each
                                   block in backward (less memory, one more
                                   forward pass of the blocks) */
    int recompute_blocks;       /* with checkpoint_activations: only the
                                   lowest this many blocks are recomputed,
                                   the others keep their internals (0: all;
                                   recipe_recomputed_blocks) */
    int bf16_activations;       /* 1: the internals of the blocks that are
                                   not recomputed are kept in bf16 from the
                                   forward to the backward pass (half their
                                   memory; backward reads them rounded) */
    int stagger_refreshes;      /* 1: when every block trains by GaLore, each
                                   matrix refreshes its projector at its own
                                   phase of the gap, not all at one step */
    int bf16_weights;           /* 1: block weights stored in bf16 (no fp32
                                   copy), each update rounded stochastically;
                                   gradients and optimizer state stay fp32 */
    int update_in_backward;     /* 1 (full-rank methods, grad_accum 1): each
                                   block tensor takes its AdamW step in
                                   backward as soon as its gradient is
                                   complete, so no block gradient is kept;
                                   with clipping, a first backward pass finds
                                   the gradient norm (recipe_backward_passes) */
    int max_steps;              /* optimizer steps (0: derived from epochs) */
    int epochs;
    unsigned long long seed;

    int eval_every;             /* steps between validation losses (0: end only) */
    int save_every;             /* steps between checkpoints (0: end only) */
    int calib_samples;          /* outlier calibration sequences */
};

const char *method_name(enum method m);
int method_parse(const char *s, enum method *m); /* 0 ok, -1 unknown */
const char *sampling_name(enum sampling s);

/* Defaults of method m (paper/spec values). */
void recipe_defaults(struct recipe *r, enum method m);

/* Check r against a model with n_layers blocks; -1 with a message naming the
 * offending hyperparameter. */
int recipe_check(const struct recipe *r, int n_layers, char *err, size_t errlen);

/* Blocks that backward recomputes (activation checkpointing), the lowest
 * of n_layers: 0 without checkpointing, else recompute_blocks, or every
 * block when that is 0. */
int recipe_recomputed_blocks(const struct recipe *r, int n_layers);

/* Blocks whose weights have gradients at once: n_layers for full/galore,
 * 0 for lora (only its adapters train), gamma else. */
int recipe_active_blocks(const struct recipe *r, int n_layers);

/* 1 when the trainer takes each of a block's gradients as soon as
 * backward has computed it (train.c): one step per micro-batch (grad_accum
 * 1) and GaLore blocks (rank > 0), whose gradients it projects, or
 * update_in_backward, whose tensors it steps. Full-size gradients then
 * exist for one tensor at a time. */
int recipe_streams_gradients(const struct recipe *r);

/* Backward passes a step makes: 2 when update_in_backward clips (the first
 * only sums the squares of the block gradients, the second steps each
 * tensor with the clipping factor they gave), else 1. */
int recipe_backward_passes(const struct recipe *r);

struct model_config;
/* Token positions of a step (B * T * grad_accum) whose rows of the
 * embedding output's gradient the trainer keeps instead of the embedding's
 * dense (V, D) gradient (model_grads.embed_rows), when the embedding trains
 * on its own (not frozen, not tied to the head, not lora) and they are
 * fewer than V; 0: the gradient is dense. */
size_t recipe_sparse_embedding_rows(const struct recipe *r, const struct model_config *c, int B,
                                    int T);

#endif
