/*
 * bf16_update.cu: optimizer updates of weights stored in bf16 on the GPU
 * (backend.h: adamw_bf16, bf16_add_round), each one pass over the weights,
 * as kernels/cpu/bf16_update.c: an element is widened, updated in fp32
 * (adam_element, the apply_update arithmetic) and narrowed back by
 * stochastic rounding with bf16_round's noise, hash64(seed + i). Per
 * element of a 7B model's AdamW step that is 24 bytes of memory traffic
 * instead of 48 through the fp32 copy; for GaLore's update, 12 instead of
 * 20 (its product's output included). Grid-stride loops over size_t indices.
 */
#include <stdint.h>

#include "cuda_ops.h"

static __global__ void adamw_bf16_kernel(uint16_t *w, float *m, float *v, const float *g,
                                         size_t n, float beta1, float beta2, float eps,
                                         float step, float keep, unsigned long long seed)
{
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float dir = adam_element(&m[i], &v[i], g[i], beta1, beta2, c1, c2, eps);
        float x = (__uint_as_float((uint32_t)w[i] << 16) - step * dir) * keep;
        w[i] = bf16_stochastic(__float_as_uint(x), (uint32_t)hash64(seed + i));
    }
}

void cu_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n, float beta1,
                   float beta2, float eps, float step, float decay, unsigned long long seed)
{
    if (n == 0)
        return;
    adamw_bf16_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        reinterpret_cast<uint16_t *>(w), m, v, g, n, beta1, beta2, eps, step, 1.0f - decay,
        seed);
    CK_LAUNCH();
}

static __global__ void add_round_kernel(uint16_t *w, const float *d, size_t n, float keep,
                                        unsigned long long seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = (__uint_as_float((uint32_t)w[i] << 16) + d[i]) * keep;
        w[i] = bf16_stochastic(__float_as_uint(x), (uint32_t)hash64(seed + i));
    }
}

void cu_bf16_add_round(unsigned short *w, const float *d, size_t n, float decay,
                       unsigned long long seed)
{
    if (n == 0)
        return;
    add_round_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        reinterpret_cast<uint16_t *>(w), d, n, 1.0f - decay, seed);
    CK_LAUNCH();
}
