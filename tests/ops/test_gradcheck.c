/*
 * test_gradcheck.c: finite-difference checks of every backward operation of
 * the CPU backend, and of the whole model, on tiny shapes.
 *
 * Method. For an operation y = f(inputs) the scalar loss is
 * L = sum_i r_i * y_i with a fixed random r, accumulated in double. The
 * analytic gradient is the operation's backward with dout = r; the numeric
 * one is the central difference (L(x + e) - L(x - e)) / step for every input
 * element (and parameter), where step is the difference actually stored in
 * fp32, (float)(x + e) - (float)(x - e), not 2e. Cross-entropy uses its
 * summed loss, the model its mean loss (model_loss_and_grad with g = NULL,
 * up to 12 random elements of every named tensor). Forward passes are also
 * checked against direct computations in double (matmul, RoPE, attention,
 * cross-entropy). Gradient conventions of backend.h are checked too: the
 * accumulating backwards (+=) are called twice and must double, since
 * finite differences on zeroed buffers cannot tell "+=" from "="; the
 * writing ones (attention, SwiGLU) start from garbage-filled buffers.
 *
 * Tolerances. The operations run in fp32, so L carries rounding noise of
 * about 1e-7 relative; with e = 1e-2 that is ~1e-5 in a derivative, and the
 * truncation error of the central difference (e^2/6 * f''') is of the same
 * order. Operation gradients must satisfy
 *     max |num - ana| <= 1e-3 * max(1, max |num|),
 * ~50x above the errors seen (<= 2e-5) and far below what a dropped term or
 * a wrong sign gives (errors the size of the gradient, O(0.1..1) here).
 * Model gradients (of a mean over 8 tokens) are small, 1e-2..1e-1 per
 * tensor, so a bound relative to max(1, .) would let a wrong gradient of a
 * small tensor pass; the sampled elements of each tensor must satisfy
 *     max |num - ana| <= 2e-4 + 1e-2 * max |num|
 * with e = 5e-3: the mean loss comes back as a float (ulp ~2.4e-7, i.e.
 * ~2.5e-5 in a derivative), and e = 1e-2 already shows truncation errors up
 * to 2e-4 on embedding rows (they go through the RMSNorm of rows with rms
 * ~0.3, a strongly curved function). Errors seen stay below 6e-5.
 * Forward results against double references: 1e-5 relative. Two paths that
 * must give the same result (q_off attention, rope inverse, accumulation,
 * frozen blocks): 1e-6.
 *
 * GRADCHECK_VERBOSE=1 prints the error of every check and the worst of
 * every case.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "test.h"

#define FD_STEP 1e-2f       /* operations */
#define FD_STEP_MODEL 5e-3f /* whole model */
#define TOL_FD 1e-3         /* operation gradients, x max(1, max|num|) */
#define TOL_MODEL_ABS 2e-4  /* model gradients: abs + rel * max|num| */
#define TOL_MODEL_REL 1e-2
#define TOL_FWD 1e-5        /* forward against a double reference */
#define TOL_SAME 1e-6       /* two paths to the same result */

static const struct backend *be;

/* ---- deterministic random numbers: splitmix64 + Box-Muller ---- */

static uint64_t rng_state = 0x6a09e667f3bcc909ULL;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in (0, 1) */
static double rng_uniform(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void)
{
    return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}

static int rng_int(int n)
{
    return (int)(rng_next() % (uint64_t)n);
}

/* n floats drawn from N(0, scale^2); the caller frees */
static float *randn(size_t n, double scale)
{
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * rng_normal());
    return p;
}

static float *zeros(size_t n)
{
    return calloc(n, sizeof(float));
}

static float *dup_floats(const float *x, size_t n)
{
    float *p = malloc(sizeof(float) * n);
    memcpy(p, x, sizeof(float) * n);
    return p;
}

static double *dvec(size_t n)
{
    return calloc(n, sizeof(double));
}

static double wsum(const float *r, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * y[i];
    return s;
}

/* ---- per-case bookkeeping of the worst error (printed when verbose) ---- */

static int verbose;
static double worst_ratio, worst_err, worst_tol;
static char worst_what[160];

static void case_begin(const char *name)
{
    test_begin(name);
    worst_ratio = worst_err = worst_tol = 0.0;
    worst_what[0] = 0;
}

static void case_end(void)
{
    if (verbose)
        printf("     %s: worst %.3g (%s, tolerance %.3g)\n", test_case_name,
               worst_err, worst_what, worst_tol);
    test_end();
}

static void note(const char *what, double err, double tol)
{
    if (verbose)
        printf("       %s: %.3g (tolerance %.3g)\n", what, err, tol);
    if (err / tol >= worst_ratio) {
        worst_ratio = err / tol;
        worst_err = err;
        worst_tol = tol;
        snprintf(worst_what, sizeof worst_what, "%s", what);
    }
}

/* got (n) against ref (n): fails when max |got - ref| > tol * max(1, max|ref|) */
static void compare(const char *what, const float *got, const double *ref,
                      size_t n, double tol)
{
    double scale = 1.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        if (!(err <= worst)) {
            worst = err;
            at = i;
        }
    }
    worst /= scale;
    note(what, worst, tol);
    CHECK_MSG(worst <= tol, "%s: error %.3g > %.3g at [%zu] (got %.7g, want %.7g)",
              what, worst, tol, at, n ? got[at] : 0.0f, n ? ref[at] : 0.0);
}

/* the same for two float arrays that must agree */
static void compare_f(const char *what, const float *got, const float *ref,
                      size_t n, double tol)
{
    double *r = dvec(n);
    for (size_t i = 0; i < n; i++)
        r[i] = ref[i];
    compare(what, got, r, n, tol);
    free(r);
}

/* ---- central differences ---- */

typedef double (*loss_fn)(void *ctx);

static double fd_at(loss_fn f, void *ctx, float *x, size_t i, float e)
{
    const float x0 = x[i], xp = x0 + e, xm = x0 - e;
    x[i] = xp;
    const double lp = f(ctx);
    x[i] = xm;
    const double lm = f(ctx);
    x[i] = x0;
    return (lp - lm) / ((double)xp - (double)xm);
}

/* numeric gradient of f w.r.t. all n elements of x, compared with ana */
static void gradcheck(const char *what, loss_fn f, void *ctx, float *x,
                      const float *ana, size_t n)
{
    double *num = dvec(n);
    for (size_t i = 0; i < n; i++)
        num[i] = fd_at(f, ctx, x, i, FD_STEP);
    compare(what, ana, num, n, TOL_FD);
    free(num);
}

/* ---- 1. matmul ---- */

static void test_matmul(void)
{
    /* C (3,5) = alpha * op(A) (3,4) @ op(B) (4,5) + beta * C, every leading
     * dimension padded past the row width */
    const int M = 3, N = 5, K = 4, ldc = N + 1;
    const float alpha = 0.75f;
    char what[64];
    case_begin("matmul_transposes_against_naive");
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int with_beta = 0; with_beta < 2; with_beta++) {
                const float beta = with_beta ? -0.5f : 0.0f;
                const int arows = ta ? K : M, lda = (ta ? M : K) + 2;
                const int brows = tb ? N : K, ldb = (tb ? K : N) + 3;
                float *A = randn((size_t)arows * lda, 1.0);
                float *B = randn((size_t)brows * ldb, 1.0);
                float *C = randn((size_t)M * ldc, 1.0), *C0 = dup_floats(C, (size_t)M * ldc);
                double *want = dvec((size_t)M * N);
                float *got = zeros((size_t)M * N);
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0.0;
                        for (int p = 0; p < K; p++)
                            s += (double)(ta ? A[p * lda + i] : A[i * lda + p]) *
                                 (tb ? B[j * ldb + p] : B[p * ldb + j]);
                        want[i * N + j] = alpha * s + (double)beta * C[i * ldc + j];
                    }
                be->matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
                for (int i = 0; i < M; i++)
                    memcpy(got + i * N, C + i * ldc, sizeof(float) * N);
                snprintf(what, sizeof what, "trans_a=%d trans_b=%d beta=%g", ta, tb, beta);
                compare(what, got, want, (size_t)M * N, TOL_FWD);
                for (int i = 0; i < M; i++)
                    CHECK_MSG(C[i * ldc + N] == C0[i * ldc + N],
                              "%s: padding of C row %d was written", what, i);
                free(A);
                free(B);
                free(C);
                free(C0);
                free(want);
                free(got);
            }
    case_end();
}

/* ---- 2. embedding ---- */

struct emb_ctx {
    float *table, *out;
    const float *r;
    const int *tokens;
    int N, D;
};

static double emb_loss(void *p)
{
    struct emb_ctx *c = p;
    be->embedding_fwd(c->out, c->tokens, c->table, c->N, c->D);
    return wsum(c->r, c->out, (size_t)c->N * c->D);
}

static void test_embedding(void)
{
    /* table (6,D), 8 tokens with repeats (2 four times, 0 twice; 1 and 4
     * unused); D = 5 and D = 70 (the backward works in 64-column slices) */
    static const int tokens[8] = {2, 0, 2, 5, 2, 0, 3, 2};
    const int V = 6, N = 8, Ds[2] = {5, 70};
    char what[64];
    case_begin("embedding_repeated_tokens");
    for (int s = 0; s < 2; s++) {
        const int D = Ds[s];
        float *r = randn((size_t)N * D, 1.0);
        struct emb_ctx c = {randn((size_t)V * D, 1.0), zeros((size_t)N * D), r,
                            tokens, N, D};
        emb_loss(&c);
        for (int n = 0; n < N; n++)
            CHECK_MSG(memcmp(c.out + (size_t)n * D, c.table + (size_t)tokens[n] * D,
                             sizeof(float) * D) == 0,
                      "D=%d: forward row %d is not table row %d", D, n, tokens[n]);
        float *dt = zeros((size_t)V * D);
        be->embedding_bwd(dt, tokens, r, N, D);
        snprintf(what, sizeof what, "D=%d dtable", D);
        gradcheck(what, emb_loss, &c, c.table, dt, (size_t)V * D);
        /* accumulates: a second call doubles the gradient */
        float *twice = dup_floats(dt, (size_t)V * D);
        for (size_t i = 0; i < (size_t)V * D; i++)
            twice[i] *= 2.0f;
        be->embedding_bwd(dt, tokens, r, N, D);
        snprintf(what, sizeof what, "D=%d accumulation", D);
        compare_f(what, dt, twice, (size_t)V * D, TOL_SAME);
        free(twice);
        free(dt);
        free(c.table);
        free(c.out);
        free(r);
    }
    case_end();
}

/* ---- 3. rmsnorm ---- */

struct rms_ctx {
    float *x, *g, *out, *rstd;
    const float *r;
    int N, D;
    float eps;
};

static double rms_loss(void *p)
{
    struct rms_ctx *c = p;
    be->rmsnorm_fwd(c->out, c->rstd, c->x, c->g, c->N, c->D, c->eps);
    return wsum(c->r, c->out, (size_t)c->N * c->D);
}

static void test_rmsnorm(void)
{
    /* x (3,7), g (7) */
    const int N = 3, D = 7;
    const size_t n = (size_t)N * D;
    case_begin("rmsnorm_dx_dg");
    float *r = randn(n, 1.0), *g = randn(D, 0.3);
    for (int i = 0; i < D; i++)
        g[i] += 1.0f;
    struct rms_ctx c = {randn(n, 1.0), g, zeros(n), zeros(N), r, N, D, 1e-5f};
    float *dx = zeros(n), *dg = zeros(D);
    rms_loss(&c);
    be->rmsnorm_bwd(dx, dg, r, c.x, c.g, c.rstd, N, D);
    gradcheck("dx", rms_loss, &c, c.x, dx, n);
    gradcheck("dg", rms_loss, &c, c.g, dg, D);

    /* both accumulate: a second call doubles them */
    float *dx2 = dup_floats(dx, n), *dg2 = dup_floats(dg, D);
    for (size_t i = 0; i < n; i++)
        dx2[i] *= 2.0f;
    for (int i = 0; i < D; i++)
        dg2[i] *= 2.0f;
    rms_loss(&c);
    be->rmsnorm_bwd(dx, dg, r, c.x, c.g, c.rstd, N, D);
    compare_f("dx accumulation", dx, dx2, n, TOL_SAME);
    compare_f("dg accumulation", dg, dg2, D, TOL_SAME);

    /* dg == NULL (frozen gain): the same dx as the first call */
    float *dx_frozen = zeros(n);
    for (size_t i = 0; i < n; i++)
        dx2[i] *= 0.5f;
    be->rmsnorm_bwd(dx_frozen, NULL, r, c.x, c.g, c.rstd, N, D);
    compare_f("dx with dg == NULL", dx_frozen, dx2, n, TOL_SAME);

    free(dx_frozen);
    free(dx2);
    free(dg2);
    free(dx);
    free(dg);
    free(c.x);
    free(c.out);
    free(c.rstd);
    free(g);
    free(r);
    case_end();
}

/* ---- 4. rope ---- */

struct rope_ctx {
    float *x, *y;
    const float *r;
    int B, T, nh, hd, pos0;
    float theta;
};

static double rope_loss(void *p)
{
    struct rope_ctx *c = p;
    const size_t n = (size_t)c->B * c->T * c->nh * c->hd;
    memcpy(c->y, c->x, sizeof(float) * n);
    be->rope_fwd(c->y, c->B, c->T, c->nh, c->hd, c->pos0, c->theta);
    return wsum(c->r, c->y, n);
}

static void test_rope(void)
{
    /* x (2,5,3,6): B=2, T=5, nh=3, hd=6 */
    const int B = 2, T = 5, nh = 3, hd = 6, half = hd / 2;
    const size_t n = (size_t)B * T * nh * hd;
    const int pos0s[2] = {0, 3};
    const float thetas[2] = {10000.0f, 500.0f};
    char what[96];
    case_begin("rope_fd_inverse_formula");
    for (int pi = 0; pi < 2; pi++)
        for (int ti = 0; ti < 2; ti++) {
            const int pos0 = pos0s[pi];
            const float theta = thetas[ti];
            float *r = randn(n, 1.0);
            struct rope_ctx c = {randn(n, 1.0), zeros(n), r, B, T, nh, hd, pos0, theta};

            /* forward against the half-split rotation in double */
            double *want = dvec(n);
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                    for (int h = 0; h < nh; h++) {
                        const size_t o = (((size_t)b * T + t) * nh + h) * hd;
                        for (int i = 0; i < half; i++) {
                            double ang = (pos0 + t) * pow(theta, -2.0 * i / hd);
                            double x0 = c.x[o + i], x1 = c.x[o + i + half];
                            want[o + i] = x0 * cos(ang) - x1 * sin(ang);
                            want[o + i + half] = x0 * sin(ang) + x1 * cos(ang);
                        }
                    }
            rope_loss(&c);
            snprintf(what, sizeof what, "pos0=%d theta=%g forward", pos0, theta);
            compare(what, c.y, want, n, TOL_FWD);

            /* rope_bwd undoes rope_fwd */
            be->rope_bwd(c.y, B, T, nh, hd, pos0, theta);
            snprintf(what, sizeof what, "pos0=%d theta=%g bwd(fwd(x))", pos0, theta);
            compare_f(what, c.y, c.x, n, TOL_SAME);

            float *dx = dup_floats(r, n);
            be->rope_bwd(dx, B, T, nh, hd, pos0, theta);
            snprintf(what, sizeof what, "pos0=%d theta=%g dx", pos0, theta);
            gradcheck(what, rope_loss, &c, c.x, dx, n);

            free(dx);
            free(want);
            free(c.x);
            free(c.y);
            free(r);
        }
    case_end();
}

/* ---- 5. attention ---- */

struct attn_ctx {
    float *q, *k, *v, *out, *lse;
    const float *r;
    int B, T, H, KV, hd;
};

static double attn_loss(void *p)
{
    struct attn_ctx *c = p;
    be->attention_fwd(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->T, 0,
                      c->H, c->KV, c->hd);
    return wsum(c->r, c->out, (size_t)c->B * c->T * c->H * c->hd);
}

/* causal GQA attention with the (T,T) softmax materialised, in double */
static void attn_naive(const struct attn_ctx *c, double *out, double *lse)
{
    const int B = c->B, T = c->T, H = c->H, KV = c->KV, hd = c->hd;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = dvec((size_t)T * T);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / (H / KV);
            for (int i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0.0;
                for (int j = 0; j <= i; j++) {
                    double d = 0.0;
                    for (int e = 0; e < hd; e++)
                        d += (double)c->q[(((size_t)b * T + i) * H + h) * hd + e] *
                             c->k[(((size_t)b * T + j) * KV + g) * hd + e];
                    s[i * T + j] = scale * d;
                    mx = fmax(mx, s[i * T + j]);
                }
                for (int j = 0; j <= i; j++)
                    sum += exp(s[i * T + j] - mx);
                lse[((size_t)b * H + h) * T + i] = mx + log(sum);
                double *o = out + (((size_t)b * T + i) * H + h) * hd;
                for (int e = 0; e < hd; e++) {
                    double acc = 0.0;
                    for (int j = 0; j <= i; j++)
                        acc += exp(s[i * T + j] - mx) / sum *
                               c->v[(((size_t)b * T + j) * KV + g) * hd + e];
                    o[e] = acc;
                }
            }
        }
    free(s);
}

static void test_attention(const char *name, int H, int KV)
{
    /* q (2,5,H,4); k, v (2,5,KV,4); out (2,5,H,4); lse (2,H,5) */
    const int B = 2, T = 5, hd = 4, Tq = 2, q_off = 3;
    const size_t nq = (size_t)B * T * H * hd, nkv = (size_t)B * T * KV * hd;
    const size_t nl = (size_t)B * H * T;
    case_begin(name);
    float *r = randn(nq, 1.0);
    struct attn_ctx c = {randn(nq, 1.0), randn(nkv, 1.0), randn(nkv, 1.0),
                         zeros(nq), zeros(nl), r, B, T, H, KV, hd};

    /* forward against the naive version */
    double *want = dvec(nq), *want_lse = dvec(nl);
    attn_naive(&c, want, want_lse);
    attn_loss(&c);
    compare("forward out", c.out, want, nq, TOL_FWD);
    compare("forward lse", c.lse, want_lse, nl, TOL_FWD);

    /* q_off path: queries 3..4 against keys 0..4 give rows 3..4 of the full
     * forward; q_sub, out_sub (2,2,H,4), lse_sub (2,H,2) */
    const size_t row = (size_t)H * hd;
    float *q_sub = zeros((size_t)B * Tq * row), *out_sub = zeros((size_t)B * Tq * row);
    float *lse_sub = zeros((size_t)B * H * Tq);
    float *want_sub = zeros((size_t)B * Tq * row), *want_lse_sub = zeros((size_t)B * H * Tq);
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < Tq; i++) {
            memcpy(q_sub + ((size_t)b * Tq + i) * row,
                   c.q + ((size_t)b * T + q_off + i) * row, sizeof(float) * row);
            memcpy(want_sub + ((size_t)b * Tq + i) * row,
                   c.out + ((size_t)b * T + q_off + i) * row, sizeof(float) * row);
        }
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++)
                want_lse_sub[((size_t)b * H + h) * Tq + i] =
                    c.lse[((size_t)b * H + h) * T + q_off + i];
    }
    be->attention_fwd(out_sub, lse_sub, q_sub, c.k, c.v, B, Tq, T, q_off, H, KV, hd);
    compare_f("q_off=3 Tq=2 out", out_sub, want_sub, (size_t)B * Tq * row, TOL_SAME);
    compare_f("q_off=3 Tq=2 lse", lse_sub, want_lse_sub, (size_t)B * H * Tq, TOL_SAME);

    /* backward writes (the buffers start with garbage) */
    float *dq = randn(nq, 5.0), *dk = randn(nkv, 5.0), *dv = randn(nkv, 5.0);
    attn_loss(&c);
    be->attention_bwd(dq, dk, dv, r, c.q, c.k, c.v, c.out, c.lse, B, T, H, KV, hd);
    gradcheck("dq", attn_loss, &c, c.q, dq, nq);
    gradcheck("dk", attn_loss, &c, c.k, dk, nkv);
    gradcheck("dv", attn_loss, &c, c.v, dv, nkv);

    free(dq);
    free(dk);
    free(dv);
    free(q_sub);
    free(out_sub);
    free(lse_sub);
    free(want_sub);
    free(want_lse_sub);
    free(want);
    free(want_lse);
    free(c.q);
    free(c.k);
    free(c.v);
    free(c.out);
    free(c.lse);
    free(r);
    case_end();
}

/* ---- 6. swiglu ---- */

struct swiglu_ctx {
    float *gate, *up, *h;
    const float *r;
    int N, F;
};

static double swiglu_loss(void *p)
{
    struct swiglu_ctx *c = p;
    be->swiglu_fwd(c->h, c->gate, c->up, c->N, c->F);
    return wsum(c->r, c->h, (size_t)c->N * c->F);
}

static void test_swiglu(void)
{
    /* gate, up, h (3,5); gate ~ N(0, 4) reaches both saturated ends of silu */
    const int N = 3, F = 5;
    const size_t n = (size_t)N * F;
    case_begin("swiglu_dgate_dup");
    float *r = randn(n, 1.0);
    struct swiglu_ctx c = {randn(n, 2.0), randn(n, 1.0), zeros(n), r, N, F};
    float *dgate = randn(n, 5.0), *dup = randn(n, 5.0); /* written, not accumulated */
    be->swiglu_bwd(dgate, dup, r, c.gate, c.up, N, F);
    gradcheck("dgate", swiglu_loss, &c, c.gate, dgate, n);
    gradcheck("dup", swiglu_loss, &c, c.up, dup, n);
    free(dgate);
    free(dup);
    free(c.gate);
    free(c.up);
    free(c.h);
    free(r);
    case_end();
}

/* ---- 7. cross-entropy ---- */

struct ce_ctx {
    float *logits, *work, *losses;
    const int *targets;
    int N, V;
};

/* summed loss over the counted rows; logits untouched (dscale 0) */
static double ce_loss(void *p)
{
    struct ce_ctx *c = p;
    double s = 0.0;
    memcpy(c->work, c->logits, sizeof(float) * (size_t)c->N * c->V);
    be->crossentropy_fwd_bwd(c->work, c->losses, c->targets, c->N, c->V, 0.0f);
    for (int n = 0; n < c->N; n++)
        if (c->targets[n] >= 0)
            s += c->losses[n];
    return s;
}

static void test_crossentropy(void)
{
    /* logits (4,7), row 1 ignored */
    static const int targets[4] = {3, -1, 0, 6};
    const int N = 4, V = 7;
    const size_t n = (size_t)N * V;
    case_begin("crossentropy_losses_dlogits");
    struct ce_ctx c = {randn(n, 2.0), zeros(n), zeros(N), targets, N, V};

    /* losses = logsumexp - target logit, in double; dscale 0 leaves logits */
    double want[4];
    for (int i = 0; i < N; i++) {
        const float *row = c.logits + (size_t)i * V;
        double mx = row[0], sum = 0.0;
        for (int j = 1; j < V; j++)
            mx = fmax(mx, row[j]);
        for (int j = 0; j < V; j++)
            sum += exp(row[j] - mx);
        want[i] = targets[i] < 0 ? 0.0 : mx + log(sum) - row[targets[i]];
    }
    ce_loss(&c);
    compare("losses", c.losses, want, N, TOL_FWD);
    CHECK_MSG(c.losses[1] == 0.0f, "ignored row loss %g", c.losses[1]);
    CHECK_MSG(memcmp(c.work, c.logits, sizeof(float) * n) == 0,
              "dlogits_scale 0 modified the logits");

    float *grad = dup_floats(c.logits, n), *grad4 = dup_floats(c.logits, n);
    float *losses = zeros(N);
    be->crossentropy_fwd_bwd(grad, losses, targets, N, V, 1.0f);
    compare_f("losses with dscale 1", losses, c.losses, N, TOL_SAME);
    for (int j = 0; j < V; j++)
        CHECK_MSG(grad[V + j] == 0.0f, "ignored row gradient [%d] = %g", j, grad[V + j]);
    gradcheck("dlogits", ce_loss, &c, c.logits, grad, n);

    /* the gradient scales with dscale */
    be->crossentropy_fwd_bwd(grad4, losses, targets, N, V, 0.25f);
    for (size_t i = 0; i < n; i++)
        grad[i] *= 0.25f;
    compare_f("dscale 0.25", grad4, grad, n, TOL_SAME);

    free(grad);
    free(grad4);
    free(losses);
    free(c.logits);
    free(c.work);
    free(c.losses);
    case_end();
}

/* ---- 8. whole model ---- */

enum { MB = 2, MT = 5, MN = MB * MT, SAMPLES = 12 };

struct tiny {
    struct model m;
    struct model_grads g;
    struct activations a;
    int tokens[MN], targets[MN];
};

static const struct model_config tiny_cfg = {
    .dim = 16, .hidden_dim = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
    .head_dim = 4, .vocab_size = 11, .max_seq_len = 16, .norm_eps = 1e-5f,
    .rope_theta = 10000.0f, .tied_embeddings = 0, .bos_id = -1, .eos_id = -1};

static size_t tensor_len(const struct named_tensor *t)
{
    return (size_t)t->rows * (t->cols ? t->cols : 1);
}

/* random weights (~N(0, 0.09)), gains ~ 1 + 0.1 N(0,1), tokens, and targets
 * with positions 2 and 7 ignored; grads zero */
static int tiny_init(struct tiny *t, int tied)
{
    struct model_config cfg = tiny_cfg;
    char err[256];
    memset(t, 0, sizeof *t);
    cfg.tied_embeddings = tied;
    CHECK_MSG(model_config_check(&cfg, err, sizeof err) == 0, "config: %s", err);
    if (model_init(&t->m, &cfg, be) != 0)
        return -1;
    if (grads_init_full(&t->g, &t->m) != 0 || activations_init(&t->a, &t->m, MB, MT) != 0)
        return -1;
    for (int i = 0; i < model_tensor_count(&cfg); i++) {
        struct named_tensor w;
        model_tensor_at(&cfg, &t->m.w, i, &w);
        for (size_t j = 0; j < tensor_len(&w); j++)
            w.data[j] = (float)(w.cols ? 0.3 * rng_normal() : 1.0 + 0.1 * rng_normal());
    }
    for (int i = 0; i < MN; i++) {
        t->tokens[i] = rng_int(cfg.vocab_size);
        t->targets[i] = (i == 2 || i == 7) ? -1 : rng_int(cfg.vocab_size);
    }
    return 0;
}

static void tiny_free(struct tiny *t)
{
    activations_free(&t->a, &t->m);
    grads_free(&t->g, &t->m);
    model_free(&t->m);
}

static double tiny_loss(void *p)
{
    struct tiny *t = p;
    return model_loss_and_grad(&t->m, &t->a, NULL, t->tokens, t->targets, MB, MT);
}

static void test_model(const char *name, int tied)
{
    struct tiny t;
    case_begin(name);
    if (tiny_init(&t, tied) != 0) {
        CHECK_MSG(0, "cannot allocate the tiny model");
        tiny_free(&t);
        case_end();
        return;
    }
    const float loss = model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    CHECK_MSG(loss == (float)tiny_loss(&t), "loss with grads %.9g differs from without",
              loss);
    for (int i = 0; i < model_tensor_count(&t.m.cfg); i++) {
        struct named_tensor w, gt;
        float ana[SAMPLES];
        double num[SAMPLES], scale = 0.0, worst = 0.0;
        int at = 0;
        model_tensor_at(&t.m.cfg, &t.m.w, i, &w);
        model_tensor_at(&t.m.cfg, &t.g.g, i, &gt);
        const size_t len = tensor_len(&w);
        const int k = len < SAMPLES ? (int)len : SAMPLES;
        for (int s = 0; s < k; s++) {
            const size_t j = len <= SAMPLES ? (size_t)s : (size_t)rng_int((int)len);
            ana[s] = gt.data[j];
            num[s] = fd_at(tiny_loss, &t, w.data, j, FD_STEP_MODEL);
            scale = fmax(scale, fabs(num[s]));
        }
        for (int s = 0; s < k; s++)
            if (fabs(num[s] - ana[s]) > worst) {
                worst = fabs(num[s] - ana[s]);
                at = s;
            }
        const double tol = TOL_MODEL_ABS + TOL_MODEL_REL * scale;
        note(w.name, worst, tol);
        CHECK_MSG(worst <= tol, "%s: worst |num - ana| %.3g > %.3g (num %.6g, ana %.6g)",
                  w.name, worst, tol, num[at], ana[at]);
    }
    /* parameter gradients accumulate: a second call doubles all of them */
    float *twice = dup_floats(t.g.mem, t.g.n_floats);
    for (size_t i = 0; i < t.g.n_floats; i++)
        twice[i] *= 2.0f;
    model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    compare_f("second call accumulates", t.g.mem, twice, t.g.n_floats, TOL_SAME);
    free(twice);
    tiny_free(&t);
    case_end();
}

/* ---- 9. frozen block 0 ---- */

/* every tensor of grads g that has storage equals the same tensor of the full
 * run (full, laid out as g->mem); tensors without storage must be untouched
 * zeros in g->mem */
static void check_same_grads(const char *step, const struct tiny *t,
                             const struct model_weights *layout, const float *full)
{
    char what[160];
    for (int i = 0; i < model_tensor_count(&t->m.cfg); i++) {
        struct named_tensor now, all;
        model_tensor_at(&t->m.cfg, &t->g.g, i, &now);
        model_tensor_at(&t->m.cfg, layout, i, &all);
        const size_t off = (size_t)(all.data - t->g.mem), len = tensor_len(&all);
        if (now.data) {
            snprintf(what, sizeof what, "%s: %s", step, now.name);
            compare_f(what, now.data, full + off, len, TOL_SAME);
        } else {
            for (size_t j = 0; j < len; j++)
                CHECK_MSG(all.data[j] == 0.0f, "%s: frozen %s[%zu] written (%g)", step,
                          all.name, j, all.data[j]);
        }
    }
}

static void test_frozen_block(void)
{
    struct tiny t;
    case_begin("model_frozen_block0");
    if (tiny_init(&t, 0) != 0) {
        CHECK_MSG(0, "cannot allocate the tiny model");
        tiny_free(&t);
        case_end();
        return;
    }
    const float loss = model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    float *full = dup_floats(t.g.mem, t.g.n_floats);
    /* the full layout (the tiny model has 2 blocks), kept while t.g.g loses
     * pointers */
    float *blocks[2] = {t.g.g.blocks[0], t.g.g.blocks[1]};
    const struct model_weights layout = {t.g.g.embed, blocks, t.g.g.final_norm,
                                         t.g.g.lm_head};

    t.g.g.blocks[0] = NULL;
    grads_zero(&t.g);
    const float l2 = model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    CHECK_MSG(l2 == loss, "loss %.9g with block 0 frozen, %.9g without", l2, loss);
    check_same_grads("block 0 frozen", &t, &layout, full);

    t.g.g.embed = NULL;
    grads_zero(&t.g);
    model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    check_same_grads("block 0 and embedding frozen", &t, &layout, full);

    t.g.g.lm_head = NULL;
    grads_zero(&t.g);
    model_loss_and_grad(&t.m, &t.a, &t.g, t.tokens, t.targets, MB, MT);
    check_same_grads("block 0, embedding and head frozen", &t, &layout, full);

    t.g.g.blocks[0] = layout.blocks[0];
    t.g.g.embed = layout.embed;
    t.g.g.lm_head = layout.lm_head;
    free(full);
    tiny_free(&t);
    case_end();
}

int main(void)
{
    be = backend_cpu();
    verbose = getenv("GRADCHECK_VERBOSE") != NULL;
    test_matmul();
    test_embedding();
    test_rmsnorm();
    test_rope();
    test_attention("attention_gqa_H4_KV2", 4, 2);
    test_attention("attention_mha_H2_KV2", 2, 2);
    test_swiglu();
    test_crossentropy();
    test_model("model_untied", 0);
    test_model("model_tied", 1);
    test_frozen_block();
    return test_finish();
}
