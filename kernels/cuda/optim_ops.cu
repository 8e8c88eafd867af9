/*
 * optim_ops.cu: elementwise arithmetic on flat fp32 arrays of n elements:
 * the residual add, sum of squares and dot product (gradient clipping),
 * scaling, the Adam moments and direction, and the decoupled-weight-decay
 * AdamW apply (semantics in engine/backend.h).
 *
 * Elementwise kernels are grid-stride loops. dot_add (and sumsq_add, its
 * x . x) reduces in double over a fixed grid of SUMSQ_BLOCKS blocks, each a
 * fixed contiguous range (enough blocks to fill an H100's SMs, whose loads
 * must be many in flight), then one block adds the block sums in a fixed
 * order onto the accumulator: the result depends on n alone, not on the
 * device or the schedule, and nothing waits for it.
 */
#include "cuda_ops.h"

static __global__ void add_kernel(float *y, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

void cu_add_inplace(float *y, const float *x, size_t n)
{
    if (n == 0)
        return;
    add_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(y, x, n);
    CK_LAUNCH();
}

/* part[b] = sum of x[i] * y[i] over block b's range, in double (y == x:
 * the sum of squares, x read once). Each thread keeps SUMSQ_UNROLL sums
 * over strided elements, so that many loads are in flight (a reduction is
 * bound by memory), and adds them in order. */
#define SUMSQ_UNROLL 4
template <bool SQUARES>
static __global__ void dot_partial(double *part, const float *x, const float *y, size_t n,
                                   size_t per)
{
    __shared__ double sh[32];
    const size_t lo = blockIdx.x * per, hi = lo + per < n ? lo + per : n;
    const size_t step = (size_t)blockDim.x * SUMSQ_UNROLL;
    double acc[SUMSQ_UNROLL] = {0.0};
    size_t i = lo + threadIdx.x;
    for (; i + (SUMSQ_UNROLL - 1) * blockDim.x < hi; i += step)
#pragma unroll
        for (int u = 0; u < SUMSQ_UNROLL; u++) {
            const double a = x[i + u * blockDim.x];
            acc[u] += a * (SQUARES ? a : (double)y[i + u * blockDim.x]);
        }
    for (int u = 0; i < hi; i += blockDim.x, u++) { /* the tail: fewer than SUMSQ_UNROLL */
        const double a = x[i];
        acc[u] += a * (SQUARES ? a : (double)y[i]);
    }
    double t = 0.0;
#pragma unroll
    for (int u = 0; u < SUMSQ_UNROLL; u++)
        t += acc[u];
    t = block_sum_d(t, sh);
    if (threadIdx.x == 0)
        part[blockIdx.x] = t;
}

/* *acc += the sum of part[0..SUMSQ_BLOCKS-1] by one block of SUMSQ_BLOCKS
 * threads, in block_sum_d's fixed order */
static __global__ void dot_total(double *acc, const double *part)
{
    __shared__ double sh[32];
    const double t = block_sum_d(part[threadIdx.x], sh);
    if (threadIdx.x == 0)
        *acc += t;
}

void cu_dot_add(double *acc, const float *x, const float *y, size_t n)
{
    if (n == 0)
        return;
    size_t per = (n + SUMSQ_BLOCKS - 1) / SUMSQ_BLOCKS;
    if (y == x)
        dot_partial<true><<<SUMSQ_BLOCKS, CUDA_THREADS, 0, cuda_ctx.stream>>>(cuda_ctx.reduce,
                                                                             x, y, n, per);
    else
        dot_partial<false><<<SUMSQ_BLOCKS, CUDA_THREADS, 0, cuda_ctx.stream>>>(cuda_ctx.reduce,
                                                                              x, y, n, per);
    CK_LAUNCH();
    dot_total<<<1, SUMSQ_BLOCKS, 0, cuda_ctx.stream>>>(acc, cuda_ctx.reduce);
    CK_LAUNCH();
}

void cu_sumsq_add(double *acc, const float *x, size_t n)
{
    cu_dot_add(acc, x, x, n);
}

static __global__ void scale_kernel(float *x, size_t n, float a)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= a;
}

void cu_scale(float *x, size_t n, float a)
{
    if (n == 0)
        return;
    scale_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(x, n, a);
    CK_LAUNCH();
}

static __global__ void adam_kernel(float *dir, float *m, float *v, const float *g,
                                   size_t n, float beta1, float beta2, float eps)
{
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) /* g[i] is read before dir[i] (may alias) */
        dir[i] = adam_element(&m[i], &v[i], g[i], beta1, beta2, c1, c2, eps);
}

void cu_adam_direction(float *dir, float *m, float *v, const float *g, size_t n,
                       float beta1, float beta2, float eps)
{
    if (n == 0)
        return;
    adam_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(dir, m, v, g, n,
                                                                      beta1, beta2, eps);
    CK_LAUNCH();
}

static __global__ void apply_kernel(float *w, const float *dir, size_t n, float step,
                                    float keep)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        w[i] = apply_element(w[i], dir[i], step, keep);
}

void cu_apply_update(float *w, const float *dir, size_t n, float step, float decay)
{
    if (n == 0)
        return;
    apply_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(w, dir, n, step,
                                                                       1.0f - decay);
    CK_LAUNCH();
}
