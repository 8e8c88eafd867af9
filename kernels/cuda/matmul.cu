/*
 * matmul.cu: general matrix product through cuBLAS, row-major.
 *
 * C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. cuBLAS is
 * column-major, and a row-major (M,N) array with leading dimension ldc is
 * the column-major (N,M) matrix C^T; so the product is computed as
 *   C^T (N,M) = alpha * op(B)^T (N,K) @ op(A)^T (K,M) + beta * C^T
 * by swapping the operands and keeping each one's transpose flag.
 * With OWLORE_CUDA_MATH=bf16 (backend_cuda.cu) the product goes through
 * cublasGemmEx with compute type 32F_FAST_16BF: the same fp32 arrays, each
 * operand rounded to bf16 inside cuBLAS, products on bf16 tensor cores,
 * sums in fp32.
 */
#include "cuda_ops.h"

void cu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (cuda_ctx.fast_bf16) /* fp32 in and out, bf16 tensor-core products */
        CK_BLAS(cublasGemmEx(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, B, CUDA_R_32F, ldb,
                             A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc,
                             CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    else
        CK_BLAS(cublasSgemm(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta,
                            C, ldc));
}
