/*
 * cuda_ops.h: what the files of the CUDA backend share.
 *
 * Each .cu file of kernels/cuda implements the operations of one concern with
 * the contract of engine/backend.h (shapes, gradient conventions), mirroring
 * kernels/cpu/ op by op; backend_cuda.cu puts them into the table. Storage and
 * arithmetic are fp32 (the parity mode): matrix products run in cuBLAS with
 * TF32 off, reductions the CPU takes in double are taken in double here too.
 *
 * Error handling: every CUDA, cuBLAS and cuSOLVER call goes through CK_CUDA,
 * CK_BLAS or CK_SOLVER, and every kernel launch is followed by CK_LAUNCH().
 * A failure is never fatal: the first one is recorded as "file:line: call:
 * reason" (error.cu) and handed to the engine by backend->error(), which
 * fails the job; the operations after it still run and do no harm (their
 * calls fail too, or compute garbage that the failed job throws away).
 *
 * Index arrays (tokens, targets) are host memory in the backend contract;
 * cuda_stage_ints copies them into a device buffer on the backend's stream.
 * Everything runs on one stream, in order; the host waits only where a
 * result comes back (download, lowrank_basis, error) or a host buffer is
 * handed over (upload).
 */
#ifndef OWLORE_CUDA_OPS_H
#define OWLORE_CUDA_OPS_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error recording (error.cu) ---- */
/* Record a failure unless one is pending; returns 1 when code is a failure. */
int cuda_fail(const char *file, int line, const char *call, const char *why);
/* 1 while a failure is pending. */
int cuda_failed(void);
/* Move the pending failure into msg (len bytes) and clear it: 0 when none. */
int cuda_take_error(char *msg, size_t len);
const char *cublas_reason(cublasStatus_t s);
const char *cusolver_reason(cusolverStatus_t s);

#define CK_CUDA(call)                                                          \
    do {                                                                       \
        cudaError_t ck_e_ = (call);                                            \
        if (ck_e_ != cudaSuccess)                                              \
            cuda_fail(__FILE__, __LINE__, #call, cudaGetErrorString(ck_e_));   \
    } while (0)
#define CK_BLAS(call)                                                          \
    do {                                                                       \
        cublasStatus_t ck_s_ = (call);                                         \
        if (ck_s_ != CUBLAS_STATUS_SUCCESS)                                    \
            cuda_fail(__FILE__, __LINE__, #call, cublas_reason(ck_s_));        \
    } while (0)
#define CK_SOLVER(call)                                                        \
    do {                                                                       \
        cusolverStatus_t ck_s_ = (call);                                       \
        if (ck_s_ != CUSOLVER_STATUS_SUCCESS)                                  \
            cuda_fail(__FILE__, __LINE__, #call, cusolver_reason(ck_s_));      \
    } while (0)
/* after every <<<...>>> launch */
#define CK_LAUNCH() CK_CUDA(cudaGetLastError())

/* ---- the backend's context (backend_cuda.cu) ---- */
struct cuda_ctx {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    syevjInfo_t syevj;  /* syevj's settings and report (linalg.cu), kept for
                           the process: a call may still write it after it
                           returns */
    int *ints;          /* staging for host index arrays */
    size_t ints_cap;    /* elements */
    double *reduce;     /* SUMSQ_BLOCKS doubles: dot_add's block sums */
    int *flag;          /* one int for finiteness checks */
    int fast_bf16;      /* 1: matrix products round their fp32 operands to
                           bf16 on bf16 tensor cores (OWLORE_CUDA_MATH=bf16) */
    int linalg_tf32;    /* 1: the projector refresh's products with the
                           gradient use TF32 tensor cores (OWLORE_CUDA_MATH
                           tf32 or bf16; linalg.cu) */
};
extern struct cuda_ctx cuda_ctx;

/* Device copy of n host ints (valid until the next call), NULL on failure.
 * host is ordinary pageable memory, which cudaMemcpyAsync stages into the
 * driver's pinned buffers before it returns, so the caller may reuse or
 * free it at once (embedding_bwd frees its plan); pinned host memory
 * would need a wait first. */
const int *cuda_stage_ints(const int *host, size_t n);
/* Sample the device's memory in use (after every cudaMalloc, so the peak
 * of backend->peak_bytes sees each growth). */
void cuda_note_memory(void);
/* Device scratch of n floats, NULL (not a backend failure) when out of
 * memory. Stream-ordered (the device's memory pool, which keeps what it
 * frees): scratch is taken and given back without the device-wide
 * synchronisation of cudaMalloc/cudaFree. */
float *cuda_scratch(size_t n);
void cuda_scratch_free(void *p);
/* *buf, a device buffer of *cap floats kept for the process, grown to n
 * floats when smaller (after the stream's pending work, which may still
 * read it); NULL, with a recorded failure, when out of memory. For scratch
 * that every step needs, so it is allocated once. */
float *cuda_grow(float **buf, size_t *cap, size_t n);
/* Blocks of 256 threads covering n elements, capped for grid-stride loops. */
unsigned cuda_blocks(size_t n);

#define CUDA_THREADS 256
/* sumsq_add's blocks: 8 per SM of 132 fill an H100; at most 1024, the
 * threads of the one block that adds their sums */
#define SUMSQ_BLOCKS 1024

/* ---- device helpers ---- */
/* The two reductions below: a sum and a max. */
struct reduce_sum {
    template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
};
struct reduce_max {
    __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
/* v reduced by op over the 32 lanes of a warp, butterfly: every lane gets it */
template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op)
{
    for (int o = 16; o > 0; o >>= 1)
        v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* v reduced by op over a block of blockDim.x (a multiple of 32, <= 1024)
 * threads: each warp's result, then the warps' in order from init (a fixed
 * order); every thread gets it. sh holds 32 values. */
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T *sh, T init, Op op)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads(); /* sh may still be read from a previous call */
    if (lane == 0)
        sh[warp] = v;
    __syncthreads();
    T r = init;
    for (int w = 0; w < (int)(blockDim.x >> 5); w++)
        r = op(r, sh[w]);
    return r;
}
__device__ __forceinline__ float warp_sum(float v)
{
    return warp_reduce(v, reduce_sum());
}
__device__ __forceinline__ double warp_sum_d(double v)
{
    return warp_reduce(v, reduce_sum());
}
__device__ __forceinline__ float warp_max(float v)
{
    return warp_reduce(v, reduce_max());
}
__device__ __forceinline__ float block_max(float v, float *sh)
{
    return block_reduce(v, sh, -INFINITY, reduce_max());
}
__device__ __forceinline__ double block_sum_d(double v, double *sh)
{
    return block_reduce(v, sh, 0.0, reduce_sum());
}
/* splitmix64's output function, the CPU's hash64 (kernels/cpu/ops.h):
 * element i of a dropout mask or a stochastic rounding draws hash64(seed + i) */
__device__ __forceinline__ uint64_t hash64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
/* The bf16 of a NaN or an infinity (exponent all ones): the high half, a
 * NaN's mantissa forced non-zero (engine/bf16.h bf16_special) */
__device__ __forceinline__ uint16_t bf16_special(uint32_t bits)
{
    return (uint16_t)((bits & 0x007FFFFFu) ? (bits >> 16) | 0x0040u : bits >> 16);
}
/* fp32 bits narrowed to bf16 by stochastic rounding with 16 bits of noise
 * (engine/bf16.h bf16_from_f32_stochastic): bits only, no float arithmetic */
__device__ __forceinline__ uint16_t bf16_stochastic(uint32_t bits, uint32_t noise)
{
    if ((bits & 0x7F800000u) == 0x7F800000u) /* NaN or infinity */
        return bf16_special(bits);
    return (uint16_t)((bits + (noise & 0xFFFFu)) >> 16);
}
/* fp32 bits narrowed to the nearest bf16, ties to even (engine/bf16.h
 * bf16_from_f32): bits only */
__device__ __forceinline__ uint16_t bf16_nearest(uint32_t bits)
{
    if ((bits & 0x7F800000u) == 0x7F800000u) /* NaN or infinity */
        return bf16_special(bits);
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}
/* One element's Adam moments, updated in place, and its direction
 * m / (sqrt(v) + eps) (c1 = 1 - beta1, c2 = 1 - beta2): adam_direction's
 * arithmetic, shared by adamw_bf16 (the CPU's adam_element, kernels/cpu/ops.h).
 * The products and sums are rounded one by one (_rn intrinsics, which the
 * compiler never fuses into multiply-adds), as the CPU's ISO C does, and
 * the square root and division are IEEE's: the CPU's bits exactly. */
__device__ __forceinline__ float adam_element(float *m, float *v, float g, float beta1,
                                              float beta2, float c1, float c2, float eps)
{
    float mi = __fadd_rn(__fmul_rn(beta1, *m), __fmul_rn(c1, g));
    float vi = __fadd_rn(__fmul_rn(beta2, *v), __fmul_rn(__fmul_rn(c2, g), g));
    *m = mi;
    *v = vi;
    return mi / (sqrtf(vi) + eps);
}
/* (w - step * dir) * keep, the decoupled-weight-decay AdamW apply, rounded
 * as the CPU rounds it (no fused multiply-add) */
__device__ __forceinline__ float apply_element(float w, float dir, float step, float keep)
{
    return __fmul_rn(__fsub_rn(w, __fmul_rn(step, dir)), keep);
}

/* Elementwise work in a grid-stride loop over n elements: with VEC, op.four(q)
 * on elements 4q..4q+3 first (16-byte loads and stores, several in flight
 * per thread, which a memory-bound update needs to reach the memory's
 * speed), then op.one(i) on the rest; without, op.one(i) on all. Each
 * element gets the same arithmetic either way. */
template <bool VEC, class Op> static __global__ void vec4_kernel(Op op, size_t n)
{
    const size_t first = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if constexpr (VEC) {
        for (size_t q = first; q < n / 4; q += stride)
            op.four(q);
        done = n / 4 * 4;
    }
    for (size_t i = done + first; i < n; i += stride)
        op.one(i);
}
/* Launches vec4_kernel on the stream, vectorised when every array the op
 * touches starts on a 16-byte boundary (fp32) or an 8-byte one (bf16), as
 * whole tensors do; a slice at an odd offset takes the scalar loop. */
template <class Op> static void vec4_launch(const Op &op, size_t n, bool aligned)
{
    if (n == 0)
        return;
    if (aligned)
        vec4_kernel<true><<<cuda_blocks((n + 3) / 4), CUDA_THREADS, 0, cuda_ctx.stream>>>(op, n);
    else
        vec4_kernel<false><<<cuda_blocks(n), CUDA_THREADS, 0, cuda_ctx.stream>>>(op, n);
    CK_LAUNCH();
}
/* whether p starts on a multiple of bytes */
static inline bool aligned_to(const void *p, size_t bytes)
{
    return (uintptr_t)p % bytes == 0;
}

/* ---- operations (engine/backend.h has the contracts) ---- */
void cu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc);
/* C_i = alpha * op(A_i) @ op(B_i) + beta * C_i for i < batch, row-major like
 * cu_matmul; X_i = X + i * sX (element strides, 0 allowed) */
void cu_matmul_strided(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, long long sA, const float *B, int ldb,
                       long long sB, float beta, float *C, int ldc, long long sC, int batch);
void cu_embedding_fwd(float *out, const int *tokens, const float *table, int N, int D);
void cu_embedding_bwd(float *dtable, const int *tokens, const float *dout, int N, int D);
void cu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g,
                    int N, int D, float eps);
void cu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x,
                    const float *g, const float *rstd, int N, int D);
void cu_rope_fwd(float *x, int B, int T, int nh, int hd, int pos0, float theta);
void cu_rope_bwd(float *dx, int B, int T, int nh, int hd, int pos0, float theta);
void cu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                      const float *v, int B, int Tq, int Tk, int q_off,
                      int H, int KV, int hd);
void cu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                      const float *q, const float *k, const float *v,
                      const float *out, const float *lse, int B, int T,
                      int H, int KV, int hd);
/* raise the shared-memory limits of the attention kernels (once, at init) */
void cu_attention_init(void);
/* Tensor-core attention of the bf16 math mode (attention_tc.cu), training
 * shape only (q_off = 0, Tq = Tk = T), hd 64 or 128; Dd (B,H,T) holds
 * D_i = dO_i . O_i. 0 when it ran, -1 when it declines the shape (the
 * caller takes another path). cu_attention_tc_init raises its kernels'
 * shared-memory limits (from cu_attention_init). */
int cu_attention_tc_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                        int B, int T, int H, int KV, int hd);
int cu_attention_tc_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *Dd, const float *lse,
                        int B, int T, int H, int KV, int hd);
void cu_attention_tc_init(void);
void cu_swiglu_fwd(float *h, const float *gate, const float *up, int N, int F);
void cu_swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate,
                   const float *up, int N, int F);
void cu_crossentropy_fwd_bwd(float *logits, float *losses, const int *targets,
                             int N, int V, float dlogits_scale);
void cu_add_inplace(float *y, const float *x, size_t n);
void cu_dropout(float *y, const float *x, size_t n, float p, unsigned long long seed);
void cu_bf16_expand(float *dst, const unsigned short *src, size_t n);
void cu_bf16_round(unsigned short *dst, const float *src, size_t n, unsigned long long seed);
/* dst (rows,cols) contiguous = src (rows,cols, row stride ld) rounded to the
 * nearest bf16, ties to even (engine/bf16.h bf16_from_f32) */
void cu_bf16_narrow(unsigned short *dst, const float *src, int rows, int cols, int ld);
/* dst (n) = src (n) to the nearest bf16 (backend.h bf16_narrow) */
void cu_bf16_narrow_n(unsigned short *dst, const float *src, size_t n);
void cu_matmul_bf16(int trans_w, int M, int N, int K, float alpha, const float *A, int lda,
                    const unsigned short *W, int ldw, float beta, float *C, int ldc);
void cu_embedding_fwd_bf16(float *out, const int *tokens, const unsigned short *table, int N,
                           int D);
void cu_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n, float beta1,
                   float beta2, float eps, float step, float decay, unsigned long long seed);
void cu_bf16_add_round(unsigned short *w, const float *d, size_t n, float decay,
                       unsigned long long seed);
void cu_sumsq_add(double *acc, const float *x, size_t n);
void cu_dot_add(double *acc, const float *x, const float *y, size_t n);
void cu_col_sumsq_add(double *acc, const float *x, int rows, int cols);
void cu_scale(float *x, size_t n, float a);
void cu_adam_direction(float *dir, float *m, float *v, const float *g, size_t n,
                       float beta1, float beta2, float eps);
void cu_apply_update(float *w, const float *dir, size_t n, float step, float decay);
int cu_lowrank_basis(float *P, const float *G, int m, int n, int r, int side,
                     int method, int oversample, int power_iters,
                     unsigned long long *rng);
/* 1 when all n floats of x are finite (waits for the stream). */
int cu_all_finite(const float *x, size_t n);

#endif
