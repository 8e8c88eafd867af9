/*
 * embedding.cu: token embedding lookup and its gradient.
 *
 * tokens (N) are host memory (backend contract) and are staged to the
 * device first. Forward: out (N,D) = table[tokens[n]], one thread per
 * element, also from a table stored in bf16 (widened exactly). Backward: dtable (V,D) += scatter of dout (N,D); repeated tokens
 * make it a reduction, so each thread owns one column c and walks the N rows
 * in order: no atomics, the same sums in the same order as the CPU.
 */
#include <stdint.h>

#include "cuda_ops.h"

static __global__ void embedding_fwd_kernel(float *out, const int *tokens,
                                            const float *table, int N, int D)
{
    size_t total = (size_t)N * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / D, c = i % D;
        out[i] = table[(size_t)tokens[n] * D + c];
    }
}

void cu_embedding_fwd(float *out, const int *tokens, const float *table, int N, int D)
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

/* the same from a bf16 table, widened by its bit pattern (bf16.cu) */
static __global__ void embedding_fwd_bf16_kernel(uint32_t *out, const int *tokens,
                                                 const uint16_t *table, int N, int D)
{
    size_t total = (size_t)N * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / D, c = i % D;
        out[i] = (uint32_t)table[(size_t)tokens[n] * D + c] << 16;
    }
}

void cu_embedding_fwd_bf16(float *out, const int *tokens, const unsigned short *table, int N,
                           int D)
{
    if (N <= 0)
        return;
    const int *t = cuda_stage_ints(tokens, (size_t)N);
    if (!t)
        return;
    embedding_fwd_bf16_kernel<<<cuda_blocks((size_t)N * D), CUDA_THREADS, 0,
                                cuda_ctx.stream>>>(reinterpret_cast<uint32_t *>(out), t,
                                                   reinterpret_cast<const uint16_t *>(table),
                                                   N, D);
    CK_LAUNCH();
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
