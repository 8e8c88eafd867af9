/*
 * lora.h: LoRA adapters on the seven linear layers of every block.
 *
 * For a linear layer y = x W^T with W (out, in), the adapter adds
 *   y += s * u B^T,   u = drop(x) A^T,   s = alpha / r
 * with A (r, in) (Kaiming-uniform, bound 1/sqrt(in), as PEFT) and B (out, r)
 * (zero), so training starts from the base model exactly. Dropout acts on
 * the adapter input while training only; its mask is redrawn in backward
 * from (seed, layer, linear) through the backend's dropout op.
 * Backward, given dy (N, out):
 *   dB += s dy^T u;  du = s dy B;  dA += du^T drop(x);  dx += drop'(du A)
 * The base weights stay frozen: the model's gradient storage has no block
 * (no weight-gradient products), only the adapters have gradients.
 *
 * Adapter index a = 7 * l + linear_id (model.h order: q, k, v, o, gate, up,
 * down). Memory: one allocation for A|B of every adapter, one for their
 * gradients, one for the saved u (L*7, N, r) plus two scratch buffers.
 */
#ifndef OWLORE_LORA_H
#define OWLORE_LORA_H

#include "model.h"
#include "optim.h"
#include "recipe.h"

struct lora {
    const struct backend *be;
    struct model_config cfg;
    int rank;
    float scale;          /* alpha / r */
    float dropout;
    int training;         /* 1: dropout on (set by the trainer) */
    unsigned long long mask_seed; /* this micro-batch's dropout seed */
    int n;                /* adapters: 7 * L */
    float *mem, *gmem;    /* parameters, gradients */
    size_t n_floats;
    float **A, **B;       /* (n) views: A (r, in), B (out, r) */
    float **dA, **dB;     /* (n) gradient views, same shapes */
    struct optim_state *states; /* (2n): A of adapter a at 2a, B at 2a + 1 */
    int cap;              /* tokens the activation buffers hold */
    float *act;           /* one allocation: u | xd | du */
    float *u;             /* (n, cap, r) saved by forward */
    float *xd;            /* (cap, max in) dropped input / scratch */
    float *du;            /* (cap, r) */
    float *scratch;       /* optimizer scratch for the largest adapter tensor */
};

/* Floats of parameters of every adapter of a model with config c, rank r. */
size_t lora_param_floats(const struct model_config *c, int rank);

/* Allocate adapters for m (A random from seed, B zero), gradients and
 * activation buffers for `tokens` tokens (B*T). 0, or -1 out of memory. */
int lora_init(struct lora *lo, const struct model *m, const struct lora_hparams *h,
              unsigned long long seed, int tokens);
void lora_free(struct lora *lo);
void lora_zero_grads(struct lora *lo);

/* Forward of adapter (l, id) on input x (N, in), adding into y (N, out). */
void lora_forward(struct lora *lo, int l, enum linear_id id, const float *x,
                  float *y, int N);
/* Backward of adapter (l, id): dy (N, out) -> dA, dB accumulated and
 * dx (N, in) += the adapter's input gradient. x is the forward's input. */
void lora_backward(struct lora *lo, int l, enum linear_id id, const float *x,
                   const float *dy, float *dx, int N);

/* *acc (one double in backend memory) += the sum of squares of every
 * adapter gradient (global-norm clipping); scaling of all of them by a. */
void lora_grad_sumsq_add(const struct lora *lo, double *acc);
void lora_grad_scale(struct lora *lo, float a);

/* One AdamW step on every adapter. 0, or -1 (out of memory, err says). */
int lora_optim_step(struct lora *lo, const struct adamw_hparams *h, float lr,
                    char *err, size_t errlen);

/* W += s B A in the model's weights for every adapter (the merged model). */
void lora_merge(const struct lora *lo, struct model *m);

/* The Hugging Face / PEFT name and shape of adapter a's A (which 0) or B
 * (which 1), e.g. "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight". */
void lora_tensor_name(const struct lora *lo, int a, int which, char *name, size_t len,
                      int *rows, int *cols);

#endif
