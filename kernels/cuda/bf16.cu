/*
 * bf16.cu: widening and stochastic narrowing of bf16 weight storage
 * (backend.h: bf16_expand, bf16_round), the CPU backend's bits exactly
 * (kernels/cpu/bf16.c, rules in engine/bf16.h), and the rounding to nearest
 * of saved activations (bf16_narrow) and of a product's fp32 operand for
 * bf16 tensor cores (matmul.cu).
 *
 * Both work on bit patterns only, never on float arithmetic, so denormals,
 * signed zeros and NaN payloads pass as the CPU passes them. Rounding adds
 * the low 16 bits of splitmix64(seed + i) to element i's fp32 pattern and
 * keeps the high half (a finite value near the largest may carry into an
 * infinity, as on the CPU); NaN and infinities keep their high half, a NaN's
 * mantissa forced non-zero. The noise depends only on (seed, i), as the
 * dropout mask does. Grid-stride loops over size_t indices.
 */
#include <stdint.h>

#include "cuda_ops.h"

/* dst (n, fp32 bits) = src (n, bf16) widened */
struct expand_op {
    uint32_t *dst;
    const uint16_t *src;
    __device__ void one(size_t i) const
    {
        dst[i] = (uint32_t)src[i] << 16;
    }
    __device__ void four(size_t q) const
    {
        const ushort4 s = reinterpret_cast<const ushort4 *>(src)[q];
        reinterpret_cast<uint4 *>(dst)[q] =
            make_uint4((uint32_t)s.x << 16, (uint32_t)s.y << 16, (uint32_t)s.z << 16,
                       (uint32_t)s.w << 16);
    }
};

void cu_bf16_expand(float *dst, const unsigned short *src, size_t n)
{
    const expand_op op = {reinterpret_cast<uint32_t *>(dst),
                          reinterpret_cast<const uint16_t *>(src)};
    vec4_launch(op, n, aligned_to(dst, 16) && aligned_to(src, 8));
}

static __global__ void bf16_round_kernel(uint16_t *dst, const uint32_t *src, size_t n,
                                         unsigned long long seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        dst[i] = bf16_stochastic(src[i], (uint32_t)hash64(seed + i));
    }
}

void cu_bf16_round(unsigned short *dst, const float *src, size_t n, unsigned long long seed)
{
    if (n == 0)
        return;
    bf16_round_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        reinterpret_cast<uint16_t *>(dst), reinterpret_cast<const uint32_t *>(src), n, seed);
    CK_LAUNCH();
}

/* dst (rows,cols) = src (rows, cols; row stride ld), nearest even */
static __global__ void bf16_narrow_kernel(uint16_t *dst, const uint32_t *src, size_t rows,
                                          size_t cols, size_t ld)
{
    const size_t n = rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bf16_nearest(src[i / cols * ld + i % cols]);
}

void cu_bf16_narrow(unsigned short *dst, const float *src, int rows, int cols, int ld)
{
    if (rows <= 0 || cols <= 0)
        return;
    bf16_narrow_kernel<<<cuda_blocks((size_t)rows * cols), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        reinterpret_cast<uint16_t *>(dst), reinterpret_cast<const uint32_t *>(src),
        (size_t)rows, (size_t)cols, (size_t)ld);
    CK_LAUNCH();
}

static __global__ void bf16_narrow_n_kernel(uint16_t *dst, const uint32_t *src, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dst[i] = bf16_nearest(src[i]);
}

void cu_bf16_narrow_n(unsigned short *dst, const float *src, size_t n)
{
    if (n == 0)
        return;
    bf16_narrow_n_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        reinterpret_cast<uint16_t *>(dst), reinterpret_cast<const uint32_t *>(src), n);
    CK_LAUNCH();
}
