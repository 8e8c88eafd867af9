/*
 * embedding.cu: token embedding lookup and its gradient.
 *
 * tokens (N) are host memory (backend contract) and are staged to the
 * device first. Forward: out (N,D) = table[tokens[n]], one thread per
 * element, from an fp32 table or a bf16 one (widened exactly, by bit
 * pattern as bf16.cu does). Backward: dtable (V,D) += scatter of dout (N,D);
 * repeated tokens make it a reduction. The host groups the rows by token
 * (a sort of (token, row) pairs) and one block per distinct token adds that
 * token's rows, in row order, onto its table row, a thread per column: no
 * atomics, the same sums in the same order as the CPU, spread over every
 * distinct token instead of D threads each walking all N rows.
 */
#include <stdint.h>
#include <stdlib.h>

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

/* Block u adds the rows of distinct token u (plan: the N rows grouped by
 * token, row order within a token | U + 1 group starts | U tokens) onto its
 * table row. */
static __global__ void embedding_bwd_kernel(float *dtable, const int *plan, int N, int U,
                                            const float *dout, int D)
{
    const int u = blockIdx.x;
    const int *rows = plan, *start = plan + N, *token = start + U + 1;
    float *dst = dtable + (size_t)token[u] * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float s = dst[c];
        for (int k = start[u]; k < start[u + 1]; k++)
            s += dout[(size_t)rows[k] * D + c];
        dst[c] = s;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The plan of embedding_bwd_kernel for the N host tokens (>= 0) into plan
 * (3 N + 1 ints), by sorting (token, row) pairs in keys (N); the number of
 * distinct tokens. */
static int group_rows(int *plan, uint64_t *keys, const int *tokens, int N)
{
    for (int n = 0; n < N; n++)
        keys[n] = (uint64_t)(uint32_t)tokens[n] << 32 | (uint32_t)n;
    qsort(keys, (size_t)N, sizeof *keys, cmp_u64);
    int U = 0;
    for (int k = 0; k < N; k++) {
        plan[k] = (int)(keys[k] & 0xFFFFFFFFu);
        if (k == 0 || keys[k] >> 32 != keys[k - 1] >> 32)
            plan[N + U++] = k; /* a group starts */
    }
    plan[N + U] = N;
    int *token = plan + N + U + 1;
    for (int u = 0; u < U; u++)
        token[u] = (int)(keys[plan[N + u]] >> 32);
    return U;
}

void cu_embedding_bwd(float *dtable, const int *tokens, const float *dout, int N, int D)
{
    if (N <= 0)
        return;
    int *plan = (int *)malloc((3 * (size_t)N + 1) * sizeof(int));
    uint64_t *keys = (uint64_t *)malloc((size_t)N * sizeof(uint64_t));
    if (!plan || !keys) {
        cuda_fail(__FILE__, __LINE__, "malloc(embedding_bwd plan)", "out of host memory");
    } else {
        const int U = group_rows(plan, keys, tokens, N);
        const int *t = cuda_stage_ints(plan, (size_t)N + 2 * (size_t)U + 1);
        if (t) {
            embedding_bwd_kernel<<<U, 128, 0, cuda_ctx.stream>>>(dtable, t, N, U, dout, D);
            CK_LAUNCH();
        }
    }
    free(plan);
    free(keys);
}
