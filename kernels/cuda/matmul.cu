/*
 * matmul.cu: general matrix product through cuBLAS, row-major.
 *
 * C (M,N) = alpha * op(A) (M,K) @ op(B) (K,N) + beta * C. cuBLAS is
 * column-major, and a row-major (M,N) array with leading dimension ldc is
 * the column-major (N,M) matrix C^T; so the product is computed as
 *   C^T (N,M) = alpha * op(B)^T (N,K) @ op(A)^T (K,M) + beta * C^T
 * by swapping the operands and keeping each one's transpose flag.
 * cu_matmul_strided does the same for a batch of products
 *   C_i = alpha * op(A_i) @ op(B_i) + beta * C_i,  i < batch,
 * with A_i = A + i*sA, B_i = B + i*sB, C_i = C + i*sC (element strides, 0
 * repeats an operand) in one cublas*StridedBatched call.
 * With OWLORE_CUDA_MATH=bf16 (backend_cuda.cu) the product goes through
 * cublasGemmEx (cublasGemmStridedBatchedEx) with compute type
 * 32F_FAST_16BF: the same fp32 arrays, each operand rounded to bf16 inside
 * cuBLAS, products on bf16 tensor cores, sums in fp32. A product whose
 * three sizes are all at least NARROW_MIN (compute-bound: the weight
 * gradients, dW = dY^T X over the batch's tokens) has its operands rounded
 * to bf16 by our kernel first, the same rounding, and multiplied by
 * cuBLAS's bf16 kernels; the others (GaLore's projections, K or M = r, read
 * or write a gradient-sized array and are bound by memory) leave the
 * rounding to cuBLAS, which saves the copy.
 * A product with few output tiles and a long sum (a Gram dY dY^T over a
 * gradient's rows, a GaLore factor X P^T) would leave most SMs idle: its K
 * is split into slices whose products run side by side and are then added
 * in a fixed order (gemm_split), in every mode.
 * cu_matmul_bf16 multiplies by weights stored in bf16: in that mode the two
 * bf16 operands go to cublasGemmEx as they are (W never widened), and in
 * the others W is widened exactly and multiplied in fp32.
 */
#include "cuda_ops.h"

/* the smallest size, in each of M, N and K, of a product whose operands bf16
 * mode narrows itself */
#define NARROW_MIN 256

/* bf16 copies of the two fp32 operands of a large product in bf16 mode,
 * grown to the largest product seen */
static float *narrowed[2];
static size_t narrowed_cap[2];

/* the stored (rows,cols) array of an operand, ld its row stride, narrowed
 * to contiguous bf16 in narrowed[slot]; NULL when out of memory (recorded) */
static const unsigned short *narrow_operand(int slot, const float *X, int rows, int cols, int ld)
{
    const size_t half = ((size_t)rows * cols + 1) / 2; /* bf16 in floats, rounded up */
    unsigned short *x16 = (unsigned short *)cuda_grow(&narrowed[slot], &narrowed_cap[slot], half);
    if (x16)
        cu_bf16_narrow(x16, X, rows, cols, ld);
    return x16;
}

/* Operands of one product as cuBLAS gets them: element type, the compute
 * type, and the stored arrays with their leading dimensions. */
struct gemm_operands {
    const void *a, *b;
    int lda, ldb;
    cudaDataType_t type;
    size_t elem; /* bytes of one element */
    cublasComputeType_t compute;
};

/* C_i (M,N) = alpha op(A_i) op(B_i) + beta C_i, i < batch, with A_i, B_i
 * `sa`, `sb` elements apart and C_i `sc` floats apart (row-major, swapped
 * for cuBLAS as above) */
static void gemm(const struct gemm_operands *o, int trans_a, int trans_b, int M, int N, int K,
                 float alpha, long long sa, long long sb, float beta, float *C, int ldc,
                 long long sc, int batch)
{
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (batch == 1)
        CK_BLAS(cublasGemmEx(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, o->b, o->type, o->ldb,
                             o->a, o->type, o->lda, &beta, C, CUDA_R_32F, ldc, o->compute,
                             CUBLAS_GEMM_DEFAULT));
    else
        CK_BLAS(cublasGemmStridedBatchedEx(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, o->b,
                                           o->type, o->ldb, sb, o->a, o->type, o->lda, sa,
                                           &beta, C, CUDA_R_32F, ldc, sc, batch, o->compute,
                                           CUBLAS_GEMM_DEFAULT));
}

/* slices of K for a product of few output tiles (cuBLAS's are about
 * SPLIT_TILE square) and a long sum: enough to give SPLIT_TARGET tiles in
 * all, each slice at least SPLIT_MIN_K long; 1 for no split */
#define SPLIT_TILE 128
#define SPLIT_TARGET 128
#define SPLIT_MIN_K 1024
static int split_count(int M, int N, int K)
{
    const int tiles = ((M + SPLIT_TILE - 1) / SPLIT_TILE) * ((N + SPLIT_TILE - 1) / SPLIT_TILE);
    int s = SPLIT_TARGET / tiles;
    if (s > K / SPLIT_MIN_K)
        s = K / SPLIT_MIN_K;
    return s < 2 ? 1 : s;
}

/* C (M,N, ldc) = alpha * (the sum of the n (M,N) slices of parts, in
 * order) + beta * C (C not read when beta is 0) */
static __global__ void sum_slices_kernel(float *C, int ldc, const float *parts, int n, int M,
                                         int N, float alpha, float beta)
{
    const size_t area = (size_t)M * N;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < area;
         e += (size_t)gridDim.x * blockDim.x) {
        float t = 0.0f;
        for (int c = 0; c < n; c++)
            t += parts[c * area + e];
        float *out = C + (e / N) * ldc + e % N;
        *out = alpha * t + (beta != 0.0f ? beta * *out : 0.0f);
    }
}

/* the (M,N) partial products of K's slices, grown to the largest seen */
static float *partials;
static size_t partials_cap;

/* The product, its K split into slices of equal length Kc (a multiple of
 * 16, so narrowed rows stay 32-byte aligned) and a shorter last one when
 * it has few output tiles and a long sum (split_count): the slices'
 * products are one strided-batched call into `partials`, added in order by
 * sum_slices_kernel; so every output tile has its own blocks and the
 * result is deterministic. */
static void gemm_split(const struct gemm_operands *o, int trans_a, int trans_b, int M, int N,
                       int K, float alpha, float beta, float *C, int ldc)
{
    const int s = split_count(M, N, K);
    if (s == 1) {
        gemm(o, trans_a, trans_b, M, N, K, alpha, 0, 0, beta, C, ldc, 0, 1);
        return;
    }
    const int Kc = ((K + s - 1) / s + 15) / 16 * 16, full = K / Kc, rest = K - full * Kc;
    const long long area = (long long)M * N;
    /* a slice's start, in elements: K runs along A's rows when A is (M,K)
     * (trans_a 0) and down its columns when it is stored (K,M); B the
     * other way round */
    const long long sa = trans_a ? (long long)Kc * o->lda : Kc;
    const long long sb = trans_b ? Kc : (long long)Kc * o->ldb;
    float *p = cuda_grow(&partials, &partials_cap, (size_t)area * (full + (rest > 0)));
    if (!p) /* out of memory, recorded */
        return;
    gemm(o, trans_a, trans_b, M, N, Kc, 1.0f, sa, sb, 0.0f, p, N, area, full);
    if (rest > 0) {
        struct gemm_operands tail = *o;
        tail.a = (const char *)o->a + (size_t)(full * sa) * o->elem;
        tail.b = (const char *)o->b + (size_t)(full * sb) * o->elem;
        gemm(&tail, trans_a, trans_b, M, N, rest, 1.0f, 0, 0, 0.0f, p + full * area, N, 0, 1);
    }
    sum_slices_kernel<<<cuda_blocks((size_t)area), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        C, ldc, p, full + (rest > 0), M, N, alpha, beta);
    CK_LAUNCH();
}

void cu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    struct gemm_operands o = {A, B, lda, ldb, CUDA_R_32F, sizeof(float), CUBLAS_COMPUTE_32F};
    if (cuda_ctx.fast_bf16 && M >= NARROW_MIN && N >= NARROW_MIN && K >= NARROW_MIN) {
        /* a compute-bound product (a weight gradient over the batch's
         * tokens, a Gram): both operands rounded to bf16 first, nearest
         * even as 32F_FAST_16BF does, so that cuBLAS runs its bf16 kernels;
         * an operand that is the other one (A A^T) rounded once */
        const int ra = trans_a ? K : M, ca = trans_a ? M : K;
        const int rb = trans_b ? N : K, cb = trans_b ? K : N;
        const unsigned short *a16 = narrow_operand(0, A, ra, ca, lda);
        const unsigned short *b16 =
            B == A && rb == ra && cb == ca && ldb == lda ? a16 : narrow_operand(1, B, rb, cb, ldb);
        if (!a16 || !b16) /* out of memory, recorded */
            return;
        o = (struct gemm_operands){a16, b16, ca, cb, CUDA_R_16BF, sizeof(unsigned short),
                                   CUBLAS_COMPUTE_32F};
    } else if (cuda_ctx.fast_bf16) { /* fp32 in and out, bf16 tensor-core products */
        o.compute = CUBLAS_COMPUTE_32F_FAST_16BF;
    }
    gemm_split(&o, trans_a, trans_b, M, N, K, alpha, beta, C, ldc);
}

void cu_matmul_strided(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, long long sA, const float *B, int ldb,
                       long long sB, float beta, float *C, int ldc, long long sC, int batch)
{
    if (M <= 0 || N <= 0 || batch <= 0)
        return;
    const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (cuda_ctx.fast_bf16)
        CK_BLAS(cublasGemmStridedBatchedEx(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, B,
                                           CUDA_R_32F, ldb, sB, A, CUDA_R_32F, lda, sA, &beta,
                                           C, CUDA_R_32F, ldc, sC, batch,
                                           CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    else
        CK_BLAS(cublasSgemmStridedBatched(cuda_ctx.blas, op_b, op_a, N, M, K, &alpha, B, ldb,
                                          sB, A, lda, sA, &beta, C, ldc, sC, batch));
}

/* the widened weights (fp32 and TF32 modes) or the bf16 operand (bf16 mode)
 * of cu_matmul_bf16, grown to the largest product seen */
static float *operand;
static size_t operand_cap;

/* C (M,N) = alpha * A (M,K) @ op(W) + beta * C with W in bf16 storage
 * (backend.h matmul_bf16). With bf16 products (OWLORE_CUDA_MATH=bf16) A is
 * rounded to bf16 and cublasGemmEx multiplies the two bf16 operands on
 * tensor cores, summing in fp32:
 *   C^T (N,M) = alpha * op(W)^T (N,K) @ A16^T (K,M) + beta * C^T;
 * otherwise W is widened exactly and multiplied by cu_matmul. */
void cu_matmul_bf16(int trans_w, int M, int N, int K, float alpha, const float *A, int lda,
                    const unsigned short *W, int ldw, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (!cuda_ctx.fast_bf16) {
        /* W is (N,K) when trans_w, else (K,N): the span its rows cover */
        const size_t n = K > 0 ? (size_t)((trans_w ? N : K) - 1) * ldw + (trans_w ? K : N) : 0;
        float *w = cuda_grow(&operand, &operand_cap, n);
        if (!w && n) /* out of memory, recorded */
            return;
        cu_bf16_expand(w, W, n);
        cu_matmul(0, trans_w, M, N, K, alpha, A, lda, w, ldw, beta, C, ldc);
        return;
    }
    /* (M,K) bf16 in half as many floats, rounded up */
    const size_t half = ((size_t)M * (K > 0 ? K : 0) + 1) / 2;
    unsigned short *a16 = (unsigned short *)cuda_grow(&operand, &operand_cap, half);
    if (!a16 && half) /* out of memory, recorded */
        return;
    cu_bf16_narrow(a16, A, M, K, lda);
    CK_BLAS(cublasGemmEx(cuda_ctx.blas, trans_w ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N, N, M,
                         K, &alpha, W, CUDA_R_16BF, ldw, a16, CUDA_R_16BF, K > 0 ? K : 1, &beta, C,
                         CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
