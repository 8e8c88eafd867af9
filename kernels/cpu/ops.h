/*
 * ops.h: the CPU reference operations, one function per backend entry.
 *
 * Each function here is what backend_cpu() puts in the operation table; the
 * semantics, shapes and gradient conventions are documented once, in
 * engine/backend.h. Plain C11 fp32 with OpenMP across rows/heads; matrix
 * products go to OpenBLAS, factorisations (linalg.c) to LAPACKE. No
 * atomics: every result is deterministic for a given thread count, which
 * exact resume relies on.
 */
#ifndef OWLORE_CPU_OPS_H
#define OWLORE_CPU_OPS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

void cpu_matmul(int trans_a, int trans_b, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta,
                float *C, int ldc);
void cpu_embedding_fwd(float *out, const int *tokens, const float *table, int N, int D);
void cpu_embedding_bwd(float *dtable, const int *tokens, const float *dout, int N, int D);
void cpu_rmsnorm_fwd(float *out, float *rstd, const float *x, const float *g,
                     int N, int D, float eps);
void cpu_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x,
                     const float *g, const float *rstd, int N, int D);
void cpu_rope_fwd(float *x, int B, int T, int nh, int hd, int pos0, float theta);
void cpu_rope_bwd(float *dx, int B, int T, int nh, int hd, int pos0, float theta);
void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int q_off,
                       int H, int KV, int hd);
void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                       const float *q, const float *k, const float *v,
                       const float *out, const float *lse, int B, int T,
                       int H, int KV, int hd);
void cpu_swiglu_fwd(float *h, const float *gate, const float *up, int N, int F);
void cpu_swiglu_bwd(float *dgate, float *dup, const float *dh, const float *gate,
                    const float *up, int N, int F);
void cpu_crossentropy_fwd_bwd(float *logits, float *losses, const int *targets,
                              int N, int V, float dlogits_scale);
void cpu_add_inplace(float *y, const float *x, size_t n);
void cpu_dropout(float *y, const float *x, size_t n, float p, unsigned long long seed);

/* bf16 weight storage (bf16.c) */
void cpu_bf16_expand(float *dst, const unsigned short *src, size_t n);
void cpu_bf16_round(unsigned short *dst, const float *src, size_t n, unsigned long long seed);
void cpu_bf16_narrow(unsigned short *dst, const float *src, size_t n);
void cpu_matmul_bf16(int trans_w, int M, int N, int K, float alpha, const float *A, int lda,
                     const unsigned short *W, int ldw, float beta, float *C, int ldc);
void cpu_embedding_fwd_bf16(float *out, const int *tokens, const unsigned short *table, int N,
                            int D);
/* optimizer updates of bf16 weights in one pass (bf16_update.c) */
void cpu_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n, float beta1,
                    float beta2, float eps, float step, float decay, unsigned long long seed);
void cpu_bf16_add_round(unsigned short *w, const float *d, size_t n, float decay,
                        unsigned long long seed);

/* One element's Adam moments, updated in place, and its direction
 * m / (sqrt(v) + eps) (c1 = 1 - beta1, c2 = 1 - beta2): adam_direction's
 * arithmetic, shared by adamw_bf16 so the two agree bit for bit. */
static inline float adam_element(float *m, float *v, float g, float beta1, float beta2,
                                 float c1, float c2, float eps)
{
    float mi = beta1 * *m + c1 * g;
    float vi = beta2 * *v + c2 * g * g;
    *m = mi;
    *v = vi;
    return mi / (sqrtf(vi) + eps);
}

/* splitmix64's output function: the counter-based random bits of dropout
 * masks and stochastic rounding (element i draws hash64(seed + i)) */
static inline uint64_t hash64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* optimizer arithmetic (optim_ops.c, linalg.c) */
void cpu_sumsq_add(double *acc, const float *x, size_t n);
void cpu_dot_add(double *acc, const float *x, const float *y, size_t n);
void cpu_col_sumsq_add(double *acc, const float *x, int rows, int cols);
void cpu_scale(float *x, size_t n, float a);
void cpu_adam_direction(float *dir, float *m, float *v, const float *g, size_t n,
                        float beta1, float beta2, float eps);
void cpu_apply_update(float *w, const float *dir, size_t n, float step, float decay);
int cpu_lowrank_basis(float *P, const float *G, int m, int n, int r, int side,
                      int method, int oversample, int power_iters,
                      unsigned long long *rng);

#endif
