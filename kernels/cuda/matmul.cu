/*
 * matmul.cu: general matrix product through cuBLAS, row-major.
 *
 * C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. cuBLAS is
 * column-major, and a row-major (M,N) array with leading dimension ldc is
 * the column-major (N,M) matrix C^T; so the product is computed as
 *   C^T (N,M) = alpha * op(B)^T (N,K) @ op(A)^T (K,M) + beta * C^T
 * by swapping the operands and keeping each one's transpose flag.
 */
#include "cuda_ops.h"

void cu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    CK_BLAS(cublasSgemm(cuda_ctx.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
                        ldb, A, lda, &beta, C, ldc));
}
