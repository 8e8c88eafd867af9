/*
 * op_profile.h: where a training step's time goes, operation by operation.
 *
 * op_profile_wrap(be) returns a copy of a backend's table whose compute
 * operations wait for the device before and after each call, so each call's
 * wall time is its own; they add up calls and seconds per operation, and
 * for matmul and matmul_bf16 the FLOPs (2 M N K), so op_profile_json can
 * print the achieved rate of the matrix products beside the rest. The waits cost a few
 * microseconds per call and serialise the host with the device, so profiled
 * steps are slower than plain ones: the shares, not the total, are the
 * point. Projector refreshes (lowrank_basis) are timed by gpu_train itself.
 * Used by gpu_train (GPU_TRAIN_PROFILE=1), which calls op_profile_reset after
 * the first step, so the totals are those of steady steps.
 */
#ifndef OWLORE_OP_PROFILE_H
#define OWLORE_OP_PROFILE_H

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"

enum prof_op {
    P_MATMUL, P_EMBED_F, P_EMBED_B, P_RMS_F, P_RMS_B, P_ROPE_F, P_ROPE_B, P_ATT_F,
    P_ATT_B, P_SWIGLU_F, P_SWIGLU_B, P_CE, P_ADD, P_COPY, P_ZERO, P_SUMSQ, P_DOT, P_SCALE,
    P_ADAM, P_UPDATE, P_BF16_EXPAND, P_BF16_ROUND, P_MATMUL_BF16, P_EMBED_F_BF16,
    P_ADAMW_BF16, P_ADD_ROUND, P_BF16_NARROW, P_COUNT
};

static const char *const prof_names[P_COUNT] = {
    "matmul", "embedding_fwd", "embedding_bwd", "rmsnorm_fwd", "rmsnorm_bwd", "rope_fwd",
    "rope_bwd", "attention_fwd", "attention_bwd", "swiglu_fwd", "swiglu_bwd",
    "crossentropy_fwd_bwd", "add_inplace", "copy", "zero", "sumsq_add", "dot_add", "scale",
    "adam_direction", "apply_update", "bf16_expand", "bf16_round", "matmul_bf16",
    "embedding_fwd_bf16", "adamw_bf16", "bf16_add_round", "bf16_narrow"};

static struct {
    const struct backend *real;
    float *word; /* one device float: downloading it waits for queued work */
    long calls[P_COUNT];
    double seconds[P_COUNT];
    double matmul_flops; /* of matmul and matmul_bf16 */
} prof;

static double prof_wait(void)
{
    float w;
    struct timespec ts;
    prof.real->download(&w, prof.word, sizeof w);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define PROF_BEGIN double prof_t0 = prof_wait()
#define PROF_END(op) (prof.seconds[op] += prof_wait() - prof_t0, prof.calls[op]++)

static void prof_matmul(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                        int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    PROF_BEGIN;
    prof.real->matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    PROF_END(P_MATMUL);
    prof.matmul_flops += 2.0 * M * N * K;
}
static void prof_matmul_bf16(int tw, int M, int N, int K, float alpha, const float *A, int lda,
                             const unsigned short *W, int ldw, float beta, float *C, int ldc)
{
    PROF_BEGIN;
    prof.real->matmul_bf16(tw, M, N, K, alpha, A, lda, W, ldw, beta, C, ldc);
    PROF_END(P_MATMUL_BF16);
    prof.matmul_flops += 2.0 * M * N * K;
}
static void prof_embedding_fwd(float *o, const int *t, const float *tab, int N, int D)
{
    PROF_BEGIN;
    prof.real->embedding_fwd(o, t, tab, N, D);
    PROF_END(P_EMBED_F);
}
static void prof_embedding_fwd_bf16(float *o, const int *t, const unsigned short *tab, int N,
                                    int D)
{
    PROF_BEGIN;
    prof.real->embedding_fwd_bf16(o, t, tab, N, D);
    PROF_END(P_EMBED_F_BF16);
}
static void prof_embedding_bwd(float *dt, const int *t, const float *d, int N, int D)
{
    PROF_BEGIN;
    prof.real->embedding_bwd(dt, t, d, N, D);
    PROF_END(P_EMBED_B);
}
static void prof_rmsnorm_fwd(float *o, float *r, const float *x, const float *g, int N, int D,
                             float eps)
{
    PROF_BEGIN;
    prof.real->rmsnorm_fwd(o, r, x, g, N, D, eps);
    PROF_END(P_RMS_F);
}
static void prof_rmsnorm_bwd(float *dx, float *dg, const float *d, const float *x,
                             const float *g, const float *r, int N, int D)
{
    PROF_BEGIN;
    prof.real->rmsnorm_bwd(dx, dg, d, x, g, r, N, D);
    PROF_END(P_RMS_B);
}
static void prof_rope_fwd(float *x, int B, int T, int nh, int hd, int p0, float th)
{
    PROF_BEGIN;
    prof.real->rope_fwd(x, B, T, nh, hd, p0, th);
    PROF_END(P_ROPE_F);
}
static void prof_rope_bwd(float *x, int B, int T, int nh, int hd, int p0, float th)
{
    PROF_BEGIN;
    prof.real->rope_bwd(x, B, T, nh, hd, p0, th);
    PROF_END(P_ROPE_B);
}
static void prof_attention_fwd(float *o, float *lse, const float *q, const float *k,
                               const float *v, int B, int Tq, int Tk, int off, int H, int KV,
                               int hd)
{
    PROF_BEGIN;
    prof.real->attention_fwd(o, lse, q, k, v, B, Tq, Tk, off, H, KV, hd);
    PROF_END(P_ATT_F);
}
static void prof_attention_bwd(float *dq, float *dk, float *dv, const float *d,
                               const float *q, const float *k, const float *v,
                               const float *o, const float *lse, int B, int T, int H, int KV,
                               int hd)
{
    PROF_BEGIN;
    prof.real->attention_bwd(dq, dk, dv, d, q, k, v, o, lse, B, T, H, KV, hd);
    PROF_END(P_ATT_B);
}
static void prof_swiglu_fwd(float *h, const float *g, const float *u, int N, int F)
{
    PROF_BEGIN;
    prof.real->swiglu_fwd(h, g, u, N, F);
    PROF_END(P_SWIGLU_F);
}
static void prof_swiglu_bwd(float *dg, float *du, const float *dh, const float *g,
                            const float *u, int N, int F)
{
    PROF_BEGIN;
    prof.real->swiglu_bwd(dg, du, dh, g, u, N, F);
    PROF_END(P_SWIGLU_B);
}
static void prof_crossentropy(float *lg, float *ls, const int *t, int N, int V, float s)
{
    PROF_BEGIN;
    prof.real->crossentropy_fwd_bwd(lg, ls, t, N, V, s);
    PROF_END(P_CE);
}
static void prof_add_inplace(float *y, const float *x, size_t n)
{
    PROF_BEGIN;
    prof.real->add_inplace(y, x, n);
    PROF_END(P_ADD);
}
static void prof_copy(float *d, const float *s, size_t n)
{
    PROF_BEGIN;
    prof.real->copy(d, s, n);
    PROF_END(P_COPY);
}
static void prof_zero(void *p, size_t bytes)
{
    PROF_BEGIN;
    prof.real->zero(p, bytes);
    PROF_END(P_ZERO);
}
static void prof_sumsq_add(double *acc, const float *x, size_t n)
{
    PROF_BEGIN;
    prof.real->sumsq_add(acc, x, n);
    PROF_END(P_SUMSQ);
}
static void prof_dot_add(double *acc, const float *x, const float *y, size_t n)
{
    PROF_BEGIN;
    prof.real->dot_add(acc, x, y, n);
    PROF_END(P_DOT);
}
static void prof_scale(float *x, size_t n, float a)
{
    PROF_BEGIN;
    prof.real->scale(x, n, a);
    PROF_END(P_SCALE);
}
static void prof_adam(float *dir, float *m, float *v, const float *g, size_t n, float b1,
                      float b2, float eps)
{
    PROF_BEGIN;
    prof.real->adam_direction(dir, m, v, g, n, b1, b2, eps);
    PROF_END(P_ADAM);
}
static void prof_update(float *w, const float *dir, size_t n, float step, float decay)
{
    PROF_BEGIN;
    prof.real->apply_update(w, dir, n, step, decay);
    PROF_END(P_UPDATE);
}
static void prof_bf16_expand(float *d, const unsigned short *s, size_t n)
{
    PROF_BEGIN;
    prof.real->bf16_expand(d, s, n);
    PROF_END(P_BF16_EXPAND);
}
static void prof_bf16_round(unsigned short *d, const float *s, size_t n, unsigned long long sd)
{
    PROF_BEGIN;
    prof.real->bf16_round(d, s, n, sd);
    PROF_END(P_BF16_ROUND);
}
static void prof_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n,
                            float b1, float b2, float eps, float step, float decay,
                            unsigned long long sd)
{
    PROF_BEGIN;
    prof.real->adamw_bf16(w, m, v, g, n, b1, b2, eps, step, decay, sd);
    PROF_END(P_ADAMW_BF16);
}
static void prof_add_round(unsigned short *w, const float *d, size_t n, float decay,
                           unsigned long long sd)
{
    PROF_BEGIN;
    prof.real->bf16_add_round(w, d, n, decay, sd);
    PROF_END(P_ADD_ROUND);
}
static void prof_bf16_narrow(unsigned short *d, const float *s, size_t n)
{
    PROF_BEGIN;
    prof.real->bf16_narrow(d, s, n);
    PROF_END(P_BF16_NARROW);
}

/* be with its compute operations timed; word: one float of be's memory. */
static struct backend op_profile_wrap(const struct backend *be, float *word)
{
    struct backend w = *be;
    prof.real = be;
    prof.word = word;
    w.matmul = prof_matmul;
    w.embedding_fwd = prof_embedding_fwd;
    w.embedding_bwd = prof_embedding_bwd;
    w.rmsnorm_fwd = prof_rmsnorm_fwd;
    w.rmsnorm_bwd = prof_rmsnorm_bwd;
    w.rope_fwd = prof_rope_fwd;
    w.rope_bwd = prof_rope_bwd;
    w.attention_fwd = prof_attention_fwd;
    w.attention_bwd = prof_attention_bwd;
    w.swiglu_fwd = prof_swiglu_fwd;
    w.swiglu_bwd = prof_swiglu_bwd;
    w.crossentropy_fwd_bwd = prof_crossentropy;
    w.add_inplace = prof_add_inplace;
    w.copy = prof_copy;
    w.zero = prof_zero;
    w.sumsq_add = prof_sumsq_add;
    w.dot_add = prof_dot_add;
    w.scale = prof_scale;
    w.adam_direction = prof_adam;
    w.apply_update = prof_update;
    w.bf16_expand = prof_bf16_expand;
    w.bf16_round = prof_bf16_round;
    w.matmul_bf16 = prof_matmul_bf16;
    w.embedding_fwd_bf16 = prof_embedding_fwd_bf16;
    w.adamw_bf16 = prof_adamw_bf16;
    w.bf16_add_round = prof_add_round;
    w.bf16_narrow = prof_bf16_narrow;
    return w;
}

/* forgets what was counted so far (a run's first step, which also pays for
 * first uses: cuBLAS's kernels loaded, scratch grown) */
static void op_profile_reset(void)
{
    memset(prof.calls, 0, sizeof prof.calls);
    memset(prof.seconds, 0, sizeof prof.seconds);
    prof.matmul_flops = 0;
}

/* The totals as JSON members: "profile": {op: [calls, seconds], ...},
 * "matmul_tflops": achieved rate of the matrix products. */
static void op_profile_json(FILE *f)
{
    fprintf(f, "\"profile\": {");
    int first = 1;
    for (int i = 0; i < P_COUNT; i++) {
        if (!prof.calls[i])
            continue;
        fprintf(f, "%s\"%s\": [%ld, %.6f]", first ? "" : ", ", prof_names[i], prof.calls[i],
                prof.seconds[i]);
        first = 0;
    }
    const double t = prof.seconds[P_MATMUL] + prof.seconds[P_MATMUL_BF16];
    fprintf(f, "}, \"matmul_tflops\": %.2f, ", t > 0 ? prof.matmul_flops / t / 1e12 : 0.0);
}

#endif
