/*
 * optim_ops.c: the optimizer's elementwise arithmetic on the CPU.
 *
 * Sum of squares and dot product (for gradient-norm clipping), scaling, the
 * Adam moment and direction update, and the decoupled-weight-decay AdamW
 * apply, all over flat fp32 arrays of n elements (semantics in
 * engine/backend.h). Elementwise ops split the range statically across
 * OpenMP threads. dot_add (and sumsq_add, its x . x) reduces a fixed number
 * of contiguous blocks in double (each in SIMD lanes, summed in a fixed
 * order) and adds the block sums in order, so its result does not depend on
 * the thread count, then adds that total to the accumulator.
 */
#include <math.h>

#include "ops.h"

/* Blocks of the sumsq reduction: fixed, so the summation order is too. */
#define SUMSQ_BLOCKS 64

/* *acc += sum of x[i] * y[i] over SUMSQ_BLOCKS contiguous blocks, each in
 * SIMD lanes, the block sums added in order */
void cpu_dot_add(double *acc, const float *x, const float *y, size_t n)
{
    double part[SUMSQ_BLOCKS];
    size_t per = (n + SUMSQ_BLOCKS - 1) / SUMSQ_BLOCKS;

#pragma omp parallel for schedule(static)
    for (int b = 0; b < SUMSQ_BLOCKS; b++) {
        size_t lo = (size_t)b * per, hi = lo + per;
        double acc = 0.0;
        if (hi > n)
            hi = n;
#pragma omp simd reduction(+ : acc)
        for (size_t i = lo; i < hi; i++)
            acc += (double)x[i] * (double)y[i];
        part[b] = acc;
    }
    double total = 0.0;
    for (int b = 0; b < SUMSQ_BLOCKS; b++)
        total += part[b];
    *acc += total;
}

void cpu_sumsq_add(double *acc, const float *x, size_t n)
{
    cpu_dot_add(acc, x, x, n);
}

void cpu_scale(float *x, size_t n, float a)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= a;
}

void cpu_adam_direction(float *dir, float *m, float *v, const float *g, size_t n,
                        float beta1, float beta2, float eps)
{
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) /* g[i] is read before dir[i], which may alias it, is written */
        dir[i] = adam_element(&m[i], &v[i], g[i], beta1, beta2, c1, c2, eps);
}

void cpu_apply_update(float *w, const float *dir, size_t n, float step, float decay)
{
    const float keep = 1.0f - decay;

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        w[i] = (w[i] - step * dir[i]) * keep;
}
