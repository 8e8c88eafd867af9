/*
 * optim.c: AdamW and GaLore-AdamW steps on one tensor (formulas in optim.h).
 *
 * Every operation on tensor data goes through the backend table, so w, g, the
 * state and the scratch all live in the backend's memory:
 *   AdamW:  adam_direction into scratch, then apply_update, over chunks of at
 *           most OPTIM_CHUNK elements (both are elementwise, so chunking
 *           changes nothing but the scratch size).
 *   GaLore: lowrank_basis on a refresh step; R = project(G) into scratch
 *           (matmul); adam_direction in place (N overwrites R); the
 *           back-projection is accumulated straight into w by a matmul with
 *           beta = 1 and alpha = -step * scale, so no full-size scratch is
 *           needed; then scale(w, 1 - lr wd) when weight decay is on.
 * Weights stored in bf16 (the _bf16 functions) are never copied to fp32:
 *   AdamW:  adamw_bf16 over the whole tensor in one pass (no scratch).
 *   GaLore: as above, but the back-projection goes into the caller's delta
 *           (beta = 0), which bf16_add_round adds, decays and rounds back.
 * optim_project and optim_step_projected are GaLore's two halves, which
 * optim_step runs back to back; the trainer may run them apart (projecting
 * each block's gradient as backward finishes it, train.c), and between
 * refreshes may project from the gradient's factors (optim_project_factors:
 * two thin products instead of the gradient's product and its projection).
 * State memory is one backend allocation: m, v, then P for GaLore.
 */
#include <math.h>
#include <stdio.h>

#include "optim.h"

/* Largest AdamW chunk, in elements (16 MiB of fp32 scratch). */
#define OPTIM_CHUNK ((size_t)1 << 22)

/* Sizes of a (rows, cols) tensor at requested rank: *r effective rank (0 for
 * AdamW), *side, *msize floats per moment, *psize floats of P. */
static void layout(int rows, int cols, int rank, int *r, int *side,
                   size_t *msize, size_t *psize)
{
    *r = 0;
    *side = 0;
    *psize = 0;
    if (cols <= 0 || rank <= 0) {
        *msize = (size_t)rows * (cols > 0 ? (size_t)cols : 1);
        return;
    }
    int k = rows < cols ? rows : cols;
    *r = rank < k ? rank : k;
    *side = rows >= cols ? 0 : 1;
    /* right: R (rows,r), P (r,cols); left: R (r,cols), P (rows,r) */
    *msize = (size_t)*r * (*side == 0 ? (size_t)rows : (size_t)cols);
    *psize = (size_t)*r * (*side == 0 ? (size_t)cols : (size_t)rows);
}

size_t optim_state_floats(int rows, int cols, int rank)
{
    int r, side;
    size_t msize, psize;
    if (rows <= 0)
        return 0;
    layout(rows, cols, rank, &r, &side, &msize, &psize);
    return 2 * msize + psize;
}

size_t optim_scratch_floats(int rows, int cols, int rank)
{
    int r, side;
    size_t msize, psize;
    if (rows <= 0)
        return 0;
    layout(rows, cols, rank, &r, &side, &msize, &psize);
    if (r > 0)
        return msize; /* R, then N in place */
    return msize < OPTIM_CHUNK ? msize : OPTIM_CHUNK;
}

void optim_state_sizes(const struct optim_state *s, size_t *moment, size_t *proj)
{
    int r, side;
    layout(s->rows, s->cols, s->rank, &r, &side, moment, proj);
}

int optim_state_init(struct optim_state *s, const struct backend *be, int rows,
                     int cols, int rank)
{
    size_t msize, psize;
    *s = (struct optim_state){0};
    if (rows <= 0 || cols < 0)
        return -1;
    layout(rows, cols, rank, &s->rank, &s->side, &msize, &psize);
    s->mem = be->alloc((2 * msize + psize) * sizeof(float));
    if (!s->mem)
        return -1;
    s->be = be;
    s->rows = rows;
    s->cols = cols;
    s->m = s->mem;
    s->v = s->m + msize;
    s->proj = s->rank > 0 ? s->v + msize : NULL;
    return 0;
}

void optim_state_free(struct optim_state *s)
{
    if (s->mem)
        s->be->free(s->mem);
    *s = (struct optim_state){0};
}

int optim_refresh_due(const struct optim_state *s, const struct galore_hparams *gh)
{
    return s->refreshes == 0 || gh->update_proj_gap <= 0 ||
           (s->step + s->phase) % gh->update_proj_gap == 0;
}

/* Refresh P when due (optim.h). -1 only when there is no P to fall back on. */
static int refresh_projector(struct optim_state *s, const float *g,
                             const struct galore_hparams *gh,
                             unsigned long long *rng, char *err, size_t errlen)
{
    if (!optim_refresh_due(s, gh))
        return 0;
    if (s->be->lowrank_basis(s->proj, g, s->rows, s->cols, s->rank, s->side,
                             gh->svd_method, gh->oversample, gh->power_iters,
                             rng) == 0) {
        s->refreshes++;
        return 0;
    }
    if (s->refreshes > 0)
        return 0; /* keep the previous P */
    snprintf(err, errlen,
             "GaLore projector of a (%d, %d) tensor at rank %d could not be "
             "computed (%s); step skipped",
             s->rows, s->cols, s->rank,
             gh->svd_method == 0 ? "SVD failed or gradient not finite"
                                 : "range finder failed or gradient not finite");
    return -1;
}

/* AdamW step and decay factor of the tensor's next step t at rate lr. */
static void step_sizes(const struct optim_state *s, const struct adamw_hparams *h, float lr,
                       float *step, float *decay)
{
    long t = s->step + 1;
    double bc1 = 1.0 - pow(h->beta1, (double)t);
    double bc2 = 1.0 - pow(h->beta2, (double)t);
    *step = (float)(lr * sqrt(bc2) / bc1);
    *decay = h->weight_decay > 0.0f ? lr * h->weight_decay : 0.0f;
}

int optim_project(struct optim_state *s, const float *g, float *R,
                  const struct galore_hparams *gh, unsigned long long *rng, char *err,
                  size_t errlen)
{
    const struct backend *be = s->be;
    int rows = s->rows, cols = s->cols, r = s->rank;
    if (!gh || gh->update_proj_gap <= 0) {
        snprintf(err, errlen, "GaLore step on a (%d, %d) tensor needs a positive "
                 "update_proj_gap", rows, cols);
        return -1;
    }
    if (refresh_projector(s, g, gh, rng, err, errlen))
        return -1;
    if (s->side == 0) /* R (rows,r) = G (rows,cols) P^T (cols,r) */
        be->matmul(0, 1, rows, r, cols, 1.0f, g, cols, s->proj, cols, 0.0f, R, r);
    else /* R (r,cols) = P^T (r,rows) G (rows,cols) */
        be->matmul(1, 0, r, cols, rows, 1.0f, s->proj, r, g, cols, 0.0f, R, cols);
    return 0;
}

void optim_project_factors(const struct optim_state *s, const float *dy, const float *x, int N,
                           float *R, float *tmp)
{
    const struct backend *be = s->be;
    const int rows = s->rows, cols = s->cols, r = s->rank;
    if (s->side == 0) { /* tmp (N,r) = X (N,cols) P^T;  R (rows,r) = dY^T (rows,N) tmp */
        be->matmul(0, 1, N, r, cols, 1.0f, x, cols, s->proj, cols, 0.0f, tmp, r);
        be->matmul(1, 0, rows, r, N, 1.0f, dy, rows, tmp, r, 0.0f, R, r);
    } else { /* tmp (N,r) = dY (N,rows) P;  R (r,cols) = tmp^T (r,N) X (N,cols) */
        be->matmul(0, 0, N, r, rows, 1.0f, dy, rows, s->proj, r, 0.0f, tmp, r);
        be->matmul(1, 0, r, cols, N, 1.0f, tmp, r, x, cols, 0.0f, R, cols);
    }
}

/* r' of a (rows, cols) tensor at requested rank */
static double effective_rank(int rows, int cols, int rank)
{
    int r, side;
    size_t msize, psize;
    layout(rows, cols, rank, &r, &side, &msize, &psize);
    return r;
}

/* the factored way's FLOPs at effective rank r (0: the Grams alone) */
static double factored_flops(int rows, int cols, double r, int N)
{
    return 2.0 * N * ((double)N + r) * ((double)rows + cols);
}

double optim_flops_from_factors(int rows, int cols, int rank, int N)
{
    return factored_flops(rows, cols, effective_rank(rows, cols, rank), N);
}

/* 1 when the factored way at effective rank r (0: the sum of squares
 * alone) takes fewer FLOPs than G's product and its projection and fits
 * the scratch */
static int factors_cheaper(int rows, int cols, double r, int N, size_t scratch_floats)
{
    const double from_gradient = 2.0 * ((double)N + r) * rows * cols;
    return 2.0 * N * N + N * r <= (double)scratch_floats &&
           factored_flops(rows, cols, r, N) < from_gradient;
}

int optim_use_factors(int rows, int cols, int rank, int N, size_t scratch_floats)
{
    const double r = effective_rank(rows, cols, rank);
    return r > 0 && factors_cheaper(rows, cols, r, N, scratch_floats);
}

int optim_norm_from_factors(int rows, int cols, int N, size_t scratch_floats)
{
    return factors_cheaper(rows, cols, 0, N, scratch_floats);
}

/* The projected step's Adam direction N, in place in R, and the factor
 * alpha of its back-projection (-step * scale); *decay as step_sizes. */
static float projected_direction(struct optim_state *s, float *R,
                                 const struct adamw_hparams *h,
                                 const struct galore_hparams *gh, float lr, float *decay)
{
    float step;
    step_sizes(s, h, lr, &step, decay);
    size_t rsize = (size_t)s->rank * (s->side == 0 ? (size_t)s->rows : (size_t)s->cols);
    s->be->adam_direction(R, s->m, s->v, R, rsize, h->beta1, h->beta2, h->eps);
    return -step * gh->scale;
}

/* out (rows,cols) = alpha back(N) + beta out */
static void back_project(const struct optim_state *s, const float *N, float alpha, float beta,
                         float *out)
{
    const int rows = s->rows, cols = s->cols, r = s->rank;
    if (s->side == 0) /* N (rows,r) P (r,cols) */
        s->be->matmul(0, 0, rows, cols, r, alpha, N, r, s->proj, cols, beta, out, cols);
    else /* P (rows,r) N (r,cols) */
        s->be->matmul(0, 0, rows, cols, r, alpha, s->proj, r, N, cols, beta, out, cols);
}

void optim_step_projected(struct optim_state *s, float *w, float *R,
                          const struct adamw_hparams *h, const struct galore_hparams *gh,
                          float lr)
{
    float decay, alpha = projected_direction(s, R, h, gh, lr, &decay);
    back_project(s, R, alpha, 1.0f, w);
    if (decay > 0.0f)
        s->be->scale(w, (size_t)s->rows * s->cols, 1.0f - decay);
    s->step++;
}

void optim_step_projected_bf16(struct optim_state *s, unsigned short *w, float *R, float *delta,
                               const struct adamw_hparams *h,
                               const struct galore_hparams *gh, float lr,
                               unsigned long long seed)
{
    float decay, alpha = projected_direction(s, R, h, gh, lr, &decay);
    back_project(s, R, alpha, 0.0f, delta);
    s->be->bf16_add_round(w, delta, (size_t)s->rows * s->cols, decay, seed);
    s->step++;
}

int optim_step(struct optim_state *s, float *w, const float *g, float *scratch,
               const struct adamw_hparams *h, const struct galore_hparams *gh,
               float lr, unsigned long long *rng, char *err, size_t errlen)
{
    if (s->rank > 0) {
        if (optim_project(s, g, scratch, gh, rng, err, errlen) != 0)
            return -1;
        optim_step_projected(s, w, scratch, h, gh, lr);
        return 0;
    }
    size_t n = (size_t)s->rows * (s->cols > 0 ? (size_t)s->cols : 1);
    for (size_t off = 0; off < n; off += OPTIM_CHUNK) {
        size_t len = n - off < OPTIM_CHUNK ? n - off : OPTIM_CHUNK;
        optim_step_range(s, w + off, scratch, g + off, off, len, h, lr);
    }
    s->step++;
    return 0;
}

void optim_step_range(struct optim_state *s, float *w, float *dir, const float *g, size_t off,
                      size_t len, const struct adamw_hparams *h, float lr)
{
    float step, decay;
    step_sizes(s, h, lr, &step, &decay);
    s->be->adam_direction(dir, s->m + off, s->v + off, g, len, h->beta1, h->beta2, h->eps);
    s->be->apply_update(w, dir, len, step, decay);
}

void optim_step_range_bf16(struct optim_state *s, unsigned short *w, const float *g, size_t off,
                           size_t len, const struct adamw_hparams *h, float lr,
                           unsigned long long seed)
{
    float step, decay;
    step_sizes(s, h, lr, &step, &decay);
    s->be->adamw_bf16(w, s->m + off, s->v + off, g, len, h->beta1, h->beta2, h->eps, step, decay,
                      seed);
}

int optim_step_bf16(struct optim_state *s, unsigned short *w, const float *g, float *scratch,
                    float *delta, const struct adamw_hparams *h,
                    const struct galore_hparams *gh, float lr, unsigned long long seed,
                    unsigned long long *rng, char *err, size_t errlen)
{
    if (s->rank > 0) {
        if (optim_project(s, g, scratch, gh, rng, err, errlen) != 0)
            return -1;
        optim_step_projected_bf16(s, w, scratch, delta, h, gh, lr, seed);
        return 0;
    }
    optim_step_range_bf16(s, w, g, 0, (size_t)s->rows * (s->cols > 0 ? (size_t)s->cols : 1), h,
                          lr, seed);
    s->step++;
    return 0;
}
