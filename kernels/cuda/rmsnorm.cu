/*
 * rmsnorm.cu: RMSNorm forward and backward.
 *
 * out = x * r * g with r = 1/sqrt(mean(x^2) + eps) per row. Backward, per
 * row with u = g * dout:
 *   dx_j += r * u_j - r^3 / D * x_j * sum_i(u_i * x_i)
 *   dg_j += sum over rows of dout_j * x_j * r
 * One block per row for the row sums (taken in double, as on the CPU). dg
 * in double, no atomics, in two passes: DG_SPLIT fixed ranges of rows, a
 * thread per (column, range) summing its rows in order, then a thread per
 * column adding the ranges' sums in order, so the order is fixed by the
 * shape alone and the work spreads over D x DG_SPLIT threads instead of D
 * threads each walking all N rows.
 */
#include "cuda_ops.h"

#define ROW_THREADS 256
#define DG_SPLIT 16

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

/* part (DG_SPLIT, D): part[s][i] = the sum over rows s*chunk .. of range s
 * of dout x r in column i, in double, rows in order */
static __global__ void rmsnorm_dg_part_kernel(double *part, const float *dout, const float *x,
                                              const float *rstd, int N, int D, int chunk)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, s = blockIdx.y;
    if (i >= D)
        return;
    const int n0 = s * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
    double acc = 0.0;
    for (int n = n0; n < n1; n++)
        acc += (double)dout[(size_t)n * D + i] * x[(size_t)n * D + i] * rstd[n];
    part[(size_t)s * D + i] = acc;
}

/* dg[i] += the DG_SPLIT range sums of column i, in order */
static __global__ void rmsnorm_dg_sum_kernel(float *dg, const double *part, int D)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D)
        return;
    double s = 0.0;
    for (int k = 0; k < DG_SPLIT; k++)
        s += part[(size_t)k * D + i];
    dg[i] += (float)s;
}

/* the range sums of dg, kept for the process */
static float *dg_part;
static size_t dg_part_cap;

void cu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x,
                    const float *g, const float *rstd, int N, int D)
{
    if (N <= 0)
        return;
    rmsnorm_dx_kernel<<<N, ROW_THREADS, 0, cuda_ctx.stream>>>(dx, dout, x, g, rstd, D);
    CK_LAUNCH();
    if (!dg)
        return;
    double *part = (double *)cuda_grow(&dg_part, &dg_part_cap, 2 * (size_t)DG_SPLIT * D);
    if (!part) /* out of memory, recorded */
        return;
    const dim3 grid((D + 127) / 128, DG_SPLIT);
    rmsnorm_dg_part_kernel<<<grid, 128, 0, cuda_ctx.stream>>>(part, dout, x, rstd, N, D,
                                                              (N + DG_SPLIT - 1) / DG_SPLIT);
    CK_LAUNCH();
    rmsnorm_dg_sum_kernel<<<(D + 127) / 128, 128, 0, cuda_ctx.stream>>>(dg, part, D);
    CK_LAUNCH();
}
