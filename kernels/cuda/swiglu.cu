/*
 * swiglu.cu: the SwiGLU gate h = silu(gate) * up and its gradient, one
 * thread per element of (N,F).
 *
 * With s = sigmoid(gate): dgate = dh * up * s * (1 + gate * (1 - s)),
 * dup = dh * gate * s.
 */
#include "cuda_ops.h"

static __global__ void swiglu_fwd_kernel(float *h, const float *gate, const float *up,
                                         size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        h[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void cu_swiglu_fwd(float *h, const float *gate, const float *up, int N, int F)
{
    size_t n = (size_t)N * F;
    if (n == 0)
        return;
    swiglu_fwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(h, gate, up, n);
    CK_LAUNCH();
}

static __global__ void swiglu_bwd_kernel(float *dgate, float *dup, const float *dh,
                                         const float *gate, const float *up, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = gate[i], s = 1.0f / (1.0f + expf(-g));
        float d = dh[i], u = up[i]; /* read first: outputs may alias inputs */
        dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
        dup[i] = d * g * s;
    }
}

void cu_swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate,
                   const float *up, int N, int F)
{
    size_t n = (size_t)N * F;
    if (n == 0)
        return;
    swiglu_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(dgate, dup, dh,
                                                                            gate, up, n);
    CK_LAUNCH();
}
