/*
 * swiglu.c: the SwiGLU gate h = silu(gate) * up and its gradient.
 *
 * With s = sigmoid(gate): dgate = dh * up * s * (1 + gate * (1 - s)),
 * dup = dh * gate * s. The exponential is the vectorised exp_v.
 */
#include "ops.h"
#include "vexp.h"

void cpu_swiglu_fwd(float *h, const float *gate, const float *up, int N, int F)
{
    size_t n = (size_t)N * F;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i];
        h[i] = g / (1.0f + exp_v(-g)) * up[i];
    }
}

void cpu_swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, int N, int F)
{
    size_t n = (size_t)N * F;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + exp_v(-g));
        dgate[i] = dh[i] * up[i] * s * (1.0f + g * (1.0f - s));
        dup[i] = dh[i] * g * s;
    }
}
