/*
 * embedding.c: token embedding lookup and its gradient on the CPU.
 *
 * Forward copies rows of the (V,D) table (widened, for a table stored in
 * bf16); backward scatters the (N,D) output
 * gradient back into the table gradient. Repeated tokens make the scatter a
 * reduction, so it runs over column slices in parallel (each thread owns
 * whole columns) and stays deterministic.
 */
#include <string.h>

#include "bf16.h"
#include "ops.h"

void cpu_embedding_fwd(float *out, const int *tokens, const float *table, int N, int D)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * D, table + (size_t)tokens[n] * D, (size_t)D * sizeof(float));
}

void cpu_embedding_fwd_bf16(float *out, const int *tokens, const unsigned short *table, int N,
                            int D)
{
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const unsigned short *row = table + (size_t)tokens[n] * D;
        for (int c = 0; c < D; c++)
            out[(size_t)n * D + c] = bf16_to_f32(row[c]);
    }
}

void cpu_embedding_bwd(float *dtable, const int *tokens, const float *dout, int N, int D)
{
    const int slice = 64;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < D; c0 += slice) {
        int c1 = c0 + slice < D ? c0 + slice : D;
        for (int n = 0; n < N; n++) {
            float *row = dtable + (size_t)tokens[n] * D;
            const float *d = dout + (size_t)n * D;
            for (int c = c0; c < c1; c++)
                row[c] += d[c];
        }
    }
}
