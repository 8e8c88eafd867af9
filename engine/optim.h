/*
 * optim.h: AdamW and GaLore-AdamW, one state per trainable tensor.
 *
 * AdamW is Hugging Face's (transformers.AdamW / galore_torch.AdamW):
 *   t += 1; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2
 *   step = lr * sqrt(1 - b2^t) / (1 - b1^t)      (bias correction folded in)
 *   w = w - step * m / (sqrt(v) + eps);  then w = w - lr * wd * w
 * GaLore-AdamW (galore_torch, proj_type "std") runs the same moments on the
 * projected gradient R of a 2-D tensor G (rows m, cols n):
 *   right (m >= n): P (r,n) = first r rows of V^T;  R = G P^T (m,r);  back(N) = N P
 *   left  (m <  n): P (m,r) = first r cols of U;    R = P^T G (r,n);  back(N) = P N
 * with r' = min(r, m, n); P is refreshed from the current gradient whenever
 * the tensor's own step count t (before incrementing) is a multiple of the
 * refresh gap T (shifted by the state's phase, when staggered), and at its
 * first step; moments are kept across refreshes (no re-projection), and
 * the update is scaled by alpha: w -= step * alpha * back(N).
 * If the factorisation fails, the previous P is kept (or, with none yet, the
 * refresh is retried next step and this step is skipped, which is reported).
 *
 * Arithmetic goes through the backend (adam_direction, apply_update, matmul,
 * lowrank_basis; adamw_bf16 and bf16_add_round for bf16 weights), so the
 * same code drives CPU and CUDA.
 */
#ifndef OWLORE_OPTIM_H
#define OWLORE_OPTIM_H

#include <stddef.h>

#include "backend.h"

struct adamw_hparams {
    float beta1, beta2, eps, weight_decay;
};

struct galore_hparams {
    int rank;            /* r; <= 0 means full-rank AdamW */
    int update_proj_gap; /* T, in the tensor's own steps */
    float scale;         /* alpha */
    int svd_method;      /* 0 exact SVD, 1 randomized range finder */
    int oversample;      /* range finder extra columns (e.g. 10) */
    int power_iters;     /* range finder power iterations (e.g. 2) */
};

/* State of one tensor (rows, cols); cols == 0 for 1-D tensors (always AdamW). */
struct optim_state {
    const struct backend *be;
    int rows, cols;
    int rank;        /* effective r' (0: full-rank AdamW) */
    int side;        /* 0 right, 1 left (GaLore only) */
    long step;       /* t: this tensor's own completed steps */
    long refreshes;  /* number of successful projector refreshes */
    long phase;      /* refresh when (t + phase) % T == 0 (and at the first
                        step); 0: galore_torch's schedule. Set by the owner
                        before each step (train.c staggers refreshes) */
    float *mem;      /* one allocation: m, v, P */
    float *m, *v;    /* moments: full shape, or (m,r') right / (r',n) left */
    float *proj;     /* P, NULL for AdamW */
};

/* Floats the state of a (rows, cols) tensor holds with GaLore rank r
 * (r <= 0 or cols == 0: AdamW): what the planner counts. */
size_t optim_state_floats(int rows, int cols, int rank);
/* Scratch floats galore_adamw_step needs for a (rows, cols) tensor at rank r
 * (shared by all tensors; size it for the largest). */
size_t optim_scratch_floats(int rows, int cols, int rank);

int optim_state_init(struct optim_state *s, const struct backend *be, int rows,
                     int cols, int rank);
/* Floats in each moment (m, v) and in P of an initialised state. */
void optim_state_sizes(const struct optim_state *s, size_t *moment, size_t *proj);
void optim_state_free(struct optim_state *s);

/* One optimizer step on w with gradient g (same shape). lr is this step's
 * learning rate. scratch holds optim_scratch_floats(...) floats. rng seeds
 * the randomized range finder. Returns 0, or -1 when the GaLore projector
 * could not be computed (the step is skipped; err says why). */
int optim_step(struct optim_state *s, float *w, const float *g, float *scratch,
               const struct adamw_hparams *h, const struct galore_hparams *gh,
               float lr, unsigned long long *rng, char *err, size_t errlen);

/* The AdamW step of a tensor without projector (rank 0) on its elements
 * off..off+len-1: w (len) those elements (w[0] is element off), g (len)
 * their gradient, dir (len) scratch for the direction (it may be g). optim_step is this over every range of the
 * tensor and then s->step++, which a caller taking the ranges itself does
 * after the last one. */
void optim_step_range(struct optim_state *s, float *w, float *dir, const float *g, size_t off,
                      size_t len, const struct adamw_hparams *h, float lr);

/* GaLore's two halves (rank > 0): optim_project refreshes P from g when due
 * and writes R = project(g) into R (optim_scratch_floats of the tensor);
 * -1 as optim_step. optim_step_projected then takes the step from R (Adam
 * direction in place, back-projection into w, decay). R may be scaled in
 * between (gradient clipping: projection is linear). */
int optim_project(struct optim_state *s, const float *g, float *R,
                  const struct galore_hparams *gh, unsigned long long *rng, char *err,
                  size_t errlen);
void optim_step_projected(struct optim_state *s, float *w, float *R,
                          const struct adamw_hparams *h, const struct galore_hparams *gh,
                          float lr);

/* GaLore's projection from the factors of a weight gradient G = dY^T X
 * (rows, cols) over N token rows, dY (N, rows) and X (N, cols) row-major,
 * without forming G:
 *   right: R (rows,r) = dY^T (X P^T),   left: R (r,cols) = (dY P)^T X,
 * the inner (N, r) product in tmp. Only while no refresh is due (a refresh
 * needs G itself); optim_refresh_due says when one is (always for a
 * tensor that has no P yet or no valid gap). */
int optim_refresh_due(const struct optim_state *s, const struct galore_hparams *gh);
void optim_project_factors(const struct optim_state *s, const float *dy, const float *x, int N,
                           float *R, float *tmp);
/* 1 when a (rows, cols) tensor at requested rank over N token rows takes
 * its projected gradient R and the sum of squares of G (gradient clipping)
 * from the factors: when that takes fewer FLOPs than from G (its product,
 * 2 N rows cols, and its projection, 2 r' rows cols) and the Grams and the
 * inner product fit a scratch of scratch_floats (2 N^2 + N r'). */
int optim_use_factors(int rows, int cols, int rank, int N, size_t scratch_floats);
/* FLOPs of the factored way: the two (N, r') products, 2 N r' (rows +
 * cols), and the Grams dY dY^T and X X^T, whose elementwise product sums to
 * |G|^2, 2 N^2 (rows + cols). */
double optim_flops_from_factors(int rows, int cols, int rank, int N);
/* 1 when the sum of squares alone of a (rows, cols) gradient over N token
 * rows (update_in_backward's norm pass) takes fewer FLOPs from the Grams
 * than from G's product, 2 N^2 (rows + cols) < 2 N rows cols, and the two
 * Grams fit a scratch of scratch_floats (2 N^2). */
int optim_norm_from_factors(int rows, int cols, int N, size_t scratch_floats);

/* The same three for weights stored in bf16 (model_bf16.c): each updates w
 * in fp32 and rounds it back stochastically, element i of w drawing its
 * noise from seed + i (backend.h bf16_round), without an fp32 copy of w.
 * AdamW steps in one pass (adamw_bf16: bit for bit the fp32 step on the
 * widened w, then bf16_round); GaLore builds its back-projected update in
 * delta (rows x cols floats) and adds it in one pass (bf16_add_round). */
int optim_step_bf16(struct optim_state *s, unsigned short *w, const float *g, float *scratch,
                    float *delta, const struct adamw_hparams *h,
                    const struct galore_hparams *gh, float lr, unsigned long long seed,
                    unsigned long long *rng, char *err, size_t errlen);
void optim_step_range_bf16(struct optim_state *s, unsigned short *w, const float *g, size_t off,
                           size_t len, const struct adamw_hparams *h, float lr,
                           unsigned long long seed);
void optim_step_projected_bf16(struct optim_state *s, unsigned short *w, float *R, float *delta,
                               const struct adamw_hparams *h,
                               const struct galore_hparams *gh, float lr,
                               unsigned long long seed);

#endif
