/*
 * col_sumsq.cu: per-column sums of squares of a row-major matrix, the input
 * statistics of outlier calibration (backend.h: col_sumsq_add), the CPU
 * backend's sums bit for bit.
 *
 * One thread per column walks the rows in order, in double: a warp reads 32
 * consecutive floats of a row at a time. A square of a float is exact in
 * double, so a fused multiply-add changes nothing and the order alone fixes
 * the result.
 */
#include "cuda_ops.h"

static __global__ void col_sumsq_kernel(double *acc, const float *x, int rows, int cols)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= cols)
        return;
    double s = acc[j];
#pragma unroll 8
    for (long i = 0; i < rows; i++) {
        const double v = x[(size_t)i * cols + j];
        s += v * v;
    }
    acc[j] = s;
}

void cu_col_sumsq_add(double *acc, const float *x, int rows, int cols)
{
    if (rows <= 0 || cols <= 0)
        return;
    col_sumsq_kernel<<<(cols + CUDA_THREADS - 1) / CUDA_THREADS, CUDA_THREADS, 0,
                       cuda_ctx.stream>>>(acc, x, rows, cols);
    CK_LAUNCH();
}
