/*
 * matmul.c: general matrix product on the CPU, row-major, through OpenBLAS.
 *
 * C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. OpenBLAS uses its
 * own thread pool (both cores); the rest of the CPU backend uses OpenMP.
 */
#include <cblas.h>

#include "ops.h"

void cpu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
                ldb, beta, C, ldc);
}
