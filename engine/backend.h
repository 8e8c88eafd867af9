/*
 * backend.h: the table of operations the model is built from.
 *
 * The engine never does arithmetic itself: model.c calls these function
 * pointers, and each backend (kernels/cpu, kernels/cuda) fills the table with
 * the same operations under the same names. The CPU backend is the oracle:
 * fp32, OpenBLAS for matrix products, OpenMP across cores.
 *
 * Dimension letters used in the shape comments:
 *   N  tokens in the batch (B*T)      D  model width       F  SwiGLU width
 *   B  sequences                      T  sequence length   V  vocabulary
 *   H  query heads   KV  key/value heads   hd  head width
 *
 * Tensors (float *) live in the backend's memory; index arrays (tokens,
 * targets: const int *) and scalar results are host memory in every op.
 *
 * Gradient convention (as llm.c): parameter gradients are ACCUMULATED (+=),
 * so gradient accumulation over micro-batches is free; activation gradients
 * are WRITTEN (=), except dx of rmsnorm_bwd and embedding tables, which
 * accumulate because they feed the residual stream / a parameter.
 */
#ifndef OWLORE_BACKEND_H
#define OWLORE_BACKEND_H

#include <stddef.h>

struct backend {
    const char *name;

    /* memory on the backend's device */
    void *(*alloc)(size_t bytes);        /* zero-filled; NULL on failure */
    void (*free)(void *p);
    /* dst (n) = src (n), both on the device */
    void (*copy)(float *dst, const float *src, size_t n);
    /* Between host and device memory (bytes): upload returns once src may
     * be reused, download once dst holds the data. zero fills device bytes. */
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    /* The operations return nothing: a backend whose calls can fail (CUDA)
     * records the first failure, and error() moves it into msg and returns
     * 1 (0 when all went well). The trainer asks after every step. */
    int (*error)(char *msg, size_t len);
    /* 1 when device memory is host memory (the CPU): the host may then read
     * and write it directly instead of through upload/download. */
    int host_memory;
    /* Peak bytes of device memory in use by this process so far beyond what
     * the backend held once opened (weights, states, activations, library
     * workspaces), or NULL where the backend does not know (the CPU: RSS). */
    size_t (*peak_bytes)(void);
    /* The device in words ("NVIDIA H100 80GB HBM3", "CPU, 16 threads") into
     * name (len bytes), and its memory in bytes (0 when unknown). */
    void (*describe)(char *name, size_t len, double *memory_bytes);

    /* C (M,N) = alpha * op(A) @ op(B) + beta * C, row-major.
     * op(A) is (M,K): A is (M,K) with lda, or (K,M) when trans_a.
     * op(B) is (K,N): B is (K,N) with ldb, or (N,K) when trans_b. */
    void (*matmul)(int trans_a, int trans_b, int M, int N, int K, float alpha,
                   const float *A, int lda, const float *B, int ldb, float beta,
                   float *C, int ldc);

    /* out (N,D) = table[tokens[n]] */
    void (*embedding_fwd)(float *out, const int *tokens, const float *table,
                          int N, int D);
    /* dtable (V,D) += scatter of dout (N,D) by tokens */
    void (*embedding_bwd)(float *dtable, const int *tokens, const float *dout,
                          int N, int D);

    /* out (N,D) = x / sqrt(mean(x^2) + eps) * g; rstd (N) saved for bwd */
    void (*rmsnorm_fwd)(float *out, float *rstd, const float *x,
                        const float *g, int N, int D, float eps);
    /* dx (N,D) += ..., dg (D) += ... (dg may be NULL: frozen gain) */
    void (*rmsnorm_bwd)(float *dx, float *dg, const float *dout, const float *x,
                        const float *g, const float *rstd, int N, int D);

    /* In place on x (B,T,nh,hd): rotate half-split pairs (i, i+hd/2) by the
     * angle (pos0 + t) * theta^(-2i/hd). rope_bwd applies the inverse. */
    void (*rope_fwd)(float *x, int B, int T, int nh, int hd, int pos0, float theta);
    void (*rope_bwd)(float *dx, int B, int T, int nh, int hd, int pos0, float theta);

    /* Causal grouped-query attention; the scores of all heads at once never
     * exist (the CPU keeps 64 query rows at a time, CUDA as many heads as fit
     * 16 MiB, or tiles in registers for long sequences). q (B,Tq,H,hd); k, v (B,Tk,KV,hd); out (B,Tq,H,hd); lse (B,H,Tq) is the
     * log-sum-exp of each query row, saved for bwd. Query row i sits at
     * absolute position q_off + i and sees keys 0..q_off+i (Tk >= q_off+Tq).
     * Query head h reads key/value head h / (H/KV). Scale 1/sqrt(hd). */
    void (*attention_fwd)(float *out, float *lse, const float *q, const float *k,
                          const float *v, int B, int Tq, int Tk, int q_off,
                          int H, int KV, int hd);
    /* dq (B,T,H,hd), dk, dv (B,T,KV,hd) written; training shape Tq = Tk = T. */
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v,
                          const float *out, const float *lse, int B, int T,
                          int H, int KV, int hd);

    /* h (N,F) = silu(gate) * up */
    void (*swiglu_fwd)(float *h, const float *gate, const float *up, int N, int F);
    /* dgate, dup (N,F) written from dh (N,F) */
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dh,
                       const float *gate, const float *up, int N, int F);

    /* Softmax cross-entropy over rows of logits (N,V). losses[n] is the
     * negative log-likelihood of targets[n], or 0 when targets[n] < 0 or
     * >= V (ignored; datasets are validated before they get here). When dlogits_scale != 0 the logits are overwritten by
     * dlogits_scale * (softmax - onehot) (zero rows for ignored targets). */
    void (*crossentropy_fwd_bwd)(float *logits, float *losses, const int *targets,
                                 int N, int V, float dlogits_scale);

    /* y (n) += x (n) */
    void (*add_inplace)(float *y, const float *x, size_t n);
    /* Inverted dropout with a counter-based mask, so forward and backward
     * draw the same one: y (n) = x * keep_i / (1 - p), keep_i = 0 with
     * probability p from a hash of (seed, i). y may alias x. */
    void (*dropout)(float *y, const float *x, size_t n, float p,
                    unsigned long long seed);

    /* ---- optimizer arithmetic ---- */
    /* *acc += the sum of squares of x (n), in double (gradient clipping).
     * acc is one double in this backend's memory; the sum is queued, not
     * waited for, so a step's tensors add up without a host round trip each
     * (read acc with download). Equal inputs give equal sums: the order of
     * the reduction depends on n alone. */
    void (*sumsq_add)(double *acc, const float *x, size_t n);
    /* *acc += the dot product of x (n) and y (n), in double, on the same
     * terms as sumsq_add (queued; the order depends on n alone): streamed
     * GaLore's sum of squares of a weight gradient from its factors' Grams
     * (train.c). */
    void (*dot_add)(double *acc, const float *x, const float *y, size_t n);
    /* acc[j] (cols doubles in this backend's memory) += the sum over rows i
     * of x[i,j]^2, x (rows, cols) row-major: each column adds its rows in
     * order, in double (outlier calibration's input statistics); queued, not
     * waited for. */
    void (*col_sumsq_add)(double *acc, const float *x, int rows, int cols);
    /* x (n) *= a */
    void (*scale)(float *x, size_t n, float a);
    /* Adam moments and direction, elementwise over n:
     *   m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  dir = m / (sqrt(v) + eps)
     * dir may alias g. */
    void (*adam_direction)(float *dir, float *m, float *v, const float *g,
                           size_t n, float beta1, float beta2, float eps);
    /* w (n) = (w - step * dir) * (1 - decay): Hugging Face AdamW order,
     * decoupled weight decay applied after the update (decay = lr * wd). */
    void (*apply_update)(float *w, const float *dir, size_t n, float step, float decay);
    /* Orthonormal basis of the dominant r-dimensional subspace of G (m,n):
     *   side 0 (right, m >= n): P (r,n), rows = first r right singular vectors
     *   side 1 (left,  m <  n): P (m,r), columns = first r left singular vectors
     * method 0: exact SVD (LAPACK); method 1: randomized range finder with
     * `oversample` extra columns and `power_iters` power iterations, seeded by
     * *rng. Returns 0, or -1 when the factorisation failed (P untouched). */
    int (*lowrank_basis)(float *P, const float *G, int m, int n, int r, int side,
                         int method, int oversample, int power_iters,
                         unsigned long long *rng);

    /* ---- bf16 weight storage (model_bf16.c) ---- */
    /* dst (n) = src (n) widened from bf16 to fp32 (exact) */
    void (*bf16_expand)(float *dst, const unsigned short *src, size_t n);
    /* dst (n) = src (n) narrowed to bf16 by stochastic rounding: element i
     * adds the low 16 bits of splitmix64(seed + i) to the fp32 bit pattern and
     * keeps the high 16 bits, so dst is one of the two bf16 neighbours of
     * src[i] and equals it on average; NaN and infinities stay what they are. */
    void (*bf16_round)(unsigned short *dst, const float *src, size_t n,
                       unsigned long long seed);
    /* dst (n) = src (n) narrowed to the nearest bf16, ties to even (saved
     * activations, model.h bf16_saved); NaN and infinities as bf16_round. */
    void (*bf16_narrow)(unsigned short *dst, const float *src, size_t n);
    /* C (M,N) = alpha * A @ op(W) + beta * C, row-major, with W in bf16
     * storage: A is (M,K) with lda; op(W) is (K,N): W is (K,N) with ldw, or
     * (N,K) when trans_w. The product is A times W widened exactly (the
     * CPU; CUDA in its fp32 and TF32 modes), or, on bf16 tensor cores (CUDA
     * with OWLORE_CUDA_MATH=bf16), A rounded to bf16 times W as stored,
     * summed in fp32. */
    void (*matmul_bf16)(int trans_w, int M, int N, int K, float alpha, const float *A,
                        int lda, const unsigned short *W, int ldw, float beta, float *C,
                        int ldc);
    /* out (N,D) = table[tokens[n]] widened from bf16 (exact) */
    void (*embedding_fwd_bf16)(float *out, const int *tokens, const unsigned short *table,
                               int N, int D);
    /* The AdamW step of weights w (n) stored in bf16, in one pass: the
     * moments and direction of adam_direction, the update of apply_update
     * on w widened, the result narrowed as bf16_round does with seed. Bit
     * for bit bf16_expand, adam_direction, apply_update and bf16_round in
     * sequence, without the fp32 copy. */
    void (*adamw_bf16)(unsigned short *w, float *m, float *v, const float *g, size_t n,
                       float beta1, float beta2, float eps, float step, float decay,
                       unsigned long long seed);
    /* w (n) stored in bf16 := (w widened + d) * (1 - decay), narrowed as
     * bf16_round does with seed: an update computed elsewhere (GaLore's
     * back-projection, d (n) fp32) added in one pass. */
    void (*bf16_add_round)(unsigned short *w, const float *d, size_t n, float decay,
                           unsigned long long seed);
};

/* The CUDA backend (kernels/cuda), built when nvcc is present: NULL with
 * the reason in err when this build has none or no GPU can be opened. */
const struct backend *backend_cuda(char *err, size_t errlen);
/* "cpu", "cuda" or "auto" (CUDA when a GPU can be opened, else CPU);
 * NULL with a message in err for an unknown name or an unusable CUDA. */
const struct backend *backend_select(const char *name, char *err, size_t errlen);

/* The CPU reference backend (kernels/cpu). */
const struct backend *backend_cpu(void);
/* Call first thing in main(argv): re-executes the program once so that
 * OpenBLAS loads its fast kernels on CPUs it does not recognise and idle
 * OpenMP threads wait passively (kernels/cpu/blas_select.c). */
void backend_cpu_select_kernels(char **argv);

#endif
