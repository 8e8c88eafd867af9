/*
 * plan.h: predicted memory and throughput of a fine-tuning run.
 *
 * The planner answers "does this job fit, and how long will it take?" from a
 * model config and a recipe alone, without allocating anything, using the
 * same size functions the engine allocates with (model_param_floats,
 * model_activation_floats, optim_state_floats, ...). Byte counts follow the
 * storage dtype: PLAN_FP32 is this engine on either backend (fp32, with the
 * embedding, blocks and head in bf16 when the recipe asks for bf16_weights); PLAN_BF16 is "pure
 * bf16" as the released OwLore code (weights, gradients and Adam moments in
 * bf16), the paper's memory analysis.
 */
#ifndef OWLORE_PLAN_H
#define OWLORE_PLAN_H

#include <stddef.h>

#include "config.h"
#include "recipe.h"

enum plan_dtype { PLAN_FP32, PLAN_BF16 };

struct plan {
    double weights;          /* bytes */
    double gradients;
    double optimizer_state;
    double activations;
    double workspace;
    double total_static;     /* weights + gradients + optimizer_state */
    double total_peak;       /* total_static + activations + workspace */
    double flops_per_token;  /* training FLOPs per token (PaLM formula) */
    double tokens_per_s;     /* predicted */
};

/* The optimizer scratch (floats) the trainer allocates for cfg trained
 * with r over N token rows a micro-batch: the largest need of any tensor of
 * the model, trained now or not (optim_scratch_floats), and, with
 * update_in_backward's norm pass, the Grams of a linear layer whose sum of
 * squares comes from them (optim_norm_from_factors). */
size_t plan_scratch_floats(const struct model_config *cfg, const struct recipe *r, int N);

/* The memory-saving settings that r leaves off, for a message that
 * suggests them: turned on in the order of what they cost (bf16_weights;
 * update_in_backward where it applies; bf16_activations; activation
 * checkpointing of the lowest blocks, one more at a time; then of every
 * block, with bf16_activations 0, which has none left to keep) until the
 * planner's peak at micro-batch B x T is within limit bytes, or all of them
 * when none is (or limit is 0, or r's own peak is already within it: then
 * memory was not short of the limit). *lean is r with them, *lean_plan its
 * plan, *fits 1 when it is within limit, names lists them ("a: 1, b: 1 and
 * c: 8"). Returns how many settings changed (0: none left, the outputs
 * untouched). */
int plan_savings(const struct model_config *cfg, const struct recipe *r, int B, int T,
                 double limit, struct recipe *lean, struct plan *lean_plan, int *fits,
                 char *names, size_t len);

/* Fill p for cfg trained with r at micro-batch B x T. */
void plan_compute(const struct model_config *cfg, const struct recipe *r, int B,
                  int T, enum plan_dtype dtype, struct plan *p);

#endif
