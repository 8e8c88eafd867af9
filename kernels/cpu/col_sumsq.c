/*
 * col_sumsq.c: per-column sums of squares of a row-major matrix, the input
 * statistics of outlier calibration (backend.h: col_sumsq_add).
 *
 * Columns are split statically into fixed chunks across OpenMP threads;
 * each column adds its rows in order, in double, so the sums do not depend
 * on the thread count and equal the CUDA backend's bit for bit.
 */
#include "ops.h"

/* Columns per chunk: a cache line of doubles per row, many chunks a call. */
#define COL_CHUNK 8

void cpu_col_sumsq_add(double *acc, const float *x, int rows, int cols)
{
    const int chunks = (cols + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < chunks; c++) {
        const int j0 = c * COL_CHUNK, j1 = j0 + COL_CHUNK < cols ? j0 + COL_CHUNK : cols;
        for (long i = 0; i < rows; i++) {
            const float *row = x + (size_t)i * cols;
            for (int j = j0; j < j1; j++)
                acc[j] += (double)row[j] * row[j];
        }
    }
}
