/*
 * embedding.cu: token embedding lookup and its gradient.
 *
 * tokens (N) are host memory (backend contract) and are staged to the
 * device first. Forward: out (N,D) = table[tokens[n]], one thread per
 * element, from an fp32 table or a bf16 one (widened exactly, by bit
 * pattern as bf16.cu does). Backward: dtable (V,D) += scatter of dout (N,D);
 * repeated tokens make it a reduction, so each thread owns one column c and
 * walks the N rows in order: no atomics, the same sums in the same order as
 * the CPU.
 */
#include <stdint.h>

#include "cuda_ops.h"

/* an element of a table as fp32 bits: itself, or a bf16 pattern widened */
static __device__ __forceinline__ float widen(float x)
{
    return x;
}
static __device__ __forceinline__ uint32_t widen(uint16_t h)
{
    return (uint32_t)h << 16;
}

template <typename Out, typename In>
static __global__ void embedding_fwd_kernel(Out *out, const int *tokens, const In *table, int N,
                                            int D)
{
    size_t total = (size_t)N * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / D, c = i % D;
        out[i] = widen(table[(size_t)tokens[n] * D + c]);
    }
}

/* out (N,D) = the rows of table for the host tokens */
template <typename Out, typename In>
static void embedding_fwd(Out *out, const int *tokens, const In *table, int N, int D)
{
    if (N <= 0)
        return;
    const int *t = cuda_stage_ints(tokens, (size_t)N);
    if (!t)
        return;
    embedding_fwd_kernel<<<cuda_blocks((size_t)N * D), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        out, t, table, N, D);
    CK_LAUNCH();
}

void cu_embedding_fwd(float *out, const int *tokens, const float *table, int N, int D)
{
    embedding_fwd(out, tokens, table, N, D);
}

void cu_embedding_fwd_bf16(float *out, const int *tokens, const unsigned short *table, int N,
                           int D)
{
    embedding_fwd(reinterpret_cast<uint32_t *>(out), tokens,
                  reinterpret_cast<const uint16_t *>(table), N, D);
}

/* one thread per column c of the table */
static __global__ void embedding_bwd_kernel(float *dtable, const int *tokens,
                                            const float *dout, int N, int D)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D)
        return;
    for (int n = 0; n < N; n++)
        dtable[(size_t)tokens[n] * D + c] += dout[(size_t)n * D + c];
}

void cu_embedding_bwd(float *dtable, const int *tokens, const float *dout, int N, int D)
{
    if (N <= 0)
        return;
    const int *t = cuda_stage_ints(tokens, (size_t)N);
    if (!t)
        return;
    embedding_bwd_kernel<<<(D + 127) / 128, 128, 0, cuda_ctx.stream>>>(dtable, t, dout, N, D);
    CK_LAUNCH();
}
