/*
 * rmsnorm.cu: RMSNorm forward and backward.
 *
 * out = x * r * g with r = 1/sqrt(mean(x^2) + eps) per row. Backward, per
 * row with u = g * dout:
 *   dx_j += r * u_j - r^3 / D * x_j * sum_i(u_i * x_i)
 *   dg_j += sum over rows of dout_j * x_j * r
 * One block per row for the row sums (taken in double, as on the CPU); dg
 * has one thread per column walking the rows in order (no atomics).
 */
#include "cuda_ops.h"

#define ROW_THREADS 256

static __global__ void rmsnorm_fwd_kernel(float *out, float *rstd, const float *x,
                                          const float *g, int D, float eps)
{
    __shared__ double sh[32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * D;
    float *o = out + row * D;
    double ss = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        ss += (double)xr[i] * xr[i];
    ss = block_sum_d(ss, sh);
    float r = (float)(1.0 / sqrt(ss / D + (double)eps));
    if (threadIdx.x == 0)
        rstd[row] = r;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        o[i] = xr[i] * r * g[i];
}

void cu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g,
                    int N, int D, float eps)
{
    if (N <= 0)
        return;
    rmsnorm_fwd_kernel<<<N, ROW_THREADS, 0, cuda_ctx.stream>>>(out, rstd, x, g, D, eps);
    CK_LAUNCH();
}

static __global__ void rmsnorm_dx_kernel(float *dx, const float *dout, const float *x,
                                         const float *g, const float *rstd, int D)
{
    __shared__ double sh[32];
    const size_t row = blockIdx.x;
    const float *xr = x + row * D, *d = dout + row * D;
    float *dxr = dx + row * D;
    double dot = 0.0;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        dot += (double)g[i] * d[i] * xr[i];
    dot = block_sum_d(dot, sh);
    float r = rstd[row];
    float c = (float)(dot * r * r * r / D);
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        dxr[i] += r * g[i] * d[i] - c * xr[i];
}

static __global__ void rmsnorm_dg_kernel(float *dg, const float *dout, const float *x,
                                         const float *rstd, int N, int D)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D)
        return;
    double s = 0.0;
    for (int n = 0; n < N; n++)
        s += (double)dout[(size_t)n * D + i] * x[(size_t)n * D + i] * rstd[n];
    dg[i] += (float)s;
}

void cu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x,
                    const float *g, const float *rstd, int N, int D)
{
    if (N <= 0)
        return;
    rmsnorm_dx_kernel<<<N, ROW_THREADS, 0, cuda_ctx.stream>>>(dx, dout, x, g, rstd, D);
    CK_LAUNCH();
    if (!dg)
        return;
    rmsnorm_dg_kernel<<<(D + 127) / 128, 128, 0, cuda_ctx.stream>>>(dg, dout, x, rstd, N, D);
    CK_LAUNCH();
}
