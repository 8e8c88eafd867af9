/*
 * rmsnorm.c: RMSNorm forward and backward on the CPU.
 *
 * out = x * r * g with r = 1/sqrt(mean(x^2) + eps) per row, as Hugging Face
 * computes it in fp32. Backward, per row with u = g * dout:
 *   dx_j += r * u_j - r^3 / D * x_j * sum_i(u_i * x_i)
 *   dg_j += sum over rows of dout_j * x_j * r
 * The row sums are taken in double; dg is reduced per column so no two
 * threads write the same element.
 */
#include <math.h>

#include "ops.h"

void cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g,
                     int N, int D, float eps)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D;
        float *o = out + (size_t)n * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++)
            ss += (double)xr[i] * xr[i];
        float r = (float)(1.0 / sqrt(ss / D + (double)eps));
        rstd[n] = r;
        for (int i = 0; i < D; i++)
            o[i] = xr[i] * r * g[i];
    }
}

void cpu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x,
                     const float *g, const float *rstd, int N, int D)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * D, *d = dout + (size_t)n * D;
        float *dxr = dx + (size_t)n * D;
        double dot = 0.0;
        for (int i = 0; i < D; i++)
            dot += (double)g[i] * d[i] * xr[i];
        float r = rstd[n];
        float c = (float)(dot * r * r * r / D);
        for (int i = 0; i < D; i++)
            dxr[i] += r * g[i] * d[i] - c * xr[i];
    }
    if (!dg)
        return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < D; i++) {
        double s = 0.0;
        for (int n = 0; n < N; n++)
            s += (double)dout[(size_t)n * D + i] * x[(size_t)n * D + i] * rstd[n];
        dg[i] += (float)s;
    }
}
