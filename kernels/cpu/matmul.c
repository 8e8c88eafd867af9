/*
 * matmul.c: general matrix product on the CPU, row-major, through OpenBLAS.
 *
 * C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. OpenBLAS uses its
 * own thread pool (both cores); the rest of the CPU backend uses OpenMP.
 * With bf16 weights (matmul_bf16) W is widened exactly into a temporary
 * fp32 copy first: the result is bit for bit that of cpu_matmul on the
 * widened weights.
 */
#include <cblas.h>
#include <stdlib.h>

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

void cpu_matmul_bf16(int trans_w, int M, int N, int K, float alpha, const float *A, int lda,
                     const unsigned short *W, int ldw, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    /* W is (N,K) when trans_w, else (K,N): the span its rows cover */
    const size_t n = K > 0 ? (size_t)((trans_w ? N : K) - 1) * ldw + (trans_w ? K : N) : 0;
    float *w = malloc((n ? n : 1) * sizeof(float));
    if (!w)
        abort(); /* as every CPU scratch: nothing here can fail gracefully */
    cpu_bf16_expand(w, W, n);
    cpu_matmul(0, trans_w, M, N, K, alpha, A, lda, w, ldw, beta, C, ldc);
    free(w);
}
