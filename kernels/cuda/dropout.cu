/*
 * dropout.cu: inverted dropout with a stateless mask (backend.h: dropout),
 * the CPU backend's mask bit for bit.
 *
 * Element i is kept unless the top 24 bits of splitmix64(seed + i) fall
 * below p * 2^24; a kept element is scaled by 1 / (1 - p). The mask depends
 * only on (seed, i), so backward redraws the forward mask. y may alias x.
 */
#include <stdint.h>

#include "cuda_ops.h"

static __global__ void dropout_kernel(float *y, const float *x, size_t n, uint64_t cut,
                                      float keep_scale, unsigned long long seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = (hash64(seed + i) >> 40) < cut ? 0.0f : x[i] * keep_scale;
}

void cu_dropout(float *y, const float *x, size_t n, float p, unsigned long long seed)
{
    if (n == 0)
        return;
    const uint64_t cut = (uint64_t)((double)p * (double)(1u << 24));
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    dropout_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(y, x, n, cut,
                                                                         keep_scale, seed);
    CK_LAUNCH();
}
