/*
 * test_optim.c: AdamW, GaLore-AdamW and the GaLore projector (engine/optim.c,
 * kernels/cpu/optim_ops.c, kernels/cpu/linalg.c), after the test vectors of
 * the algorithm spec (owlore-algorithm.md section 11, items 8-11).
 *
 *   kernels             sumsq_add, scale, adam_direction (in place), apply_update
 *                       against double formulas
 *   sizes               state and scratch floats of each layout
 *   projector           P P^T = I (right) / P^T P = I (left) for the exact
 *                       SVD and the range finder; r >= min(m,n) truncates to
 *                       min(m,n) and back(project(G)) = G
 *   full_rank           full-rank GaLore (alpha 1, T 1) equals AdamW on a
 *                       diagonal gradient, differs from it on a generic one
 *                       and there equals Adam run on R = G P^T (double)
 *   one_step            first step = W - lr alpha back(R / (|R| + eps')),
 *                       eps' = eps / sqrt(1 - beta2), then x (1 - lr wd)
 *   refresh_cadence     refreshes = #{t in 0, T, 2T, ... below k}; a refresh
 *                       leaves the moments in place
 *   range_finder        subspace score ||P Pref^T||_F^2 / r >= 0.99 against
 *                       the exact SVD on a spectrum with a gap; equal seeds
 *                       give equal bases
 *   failure             a NaN gradient: with a previous P it is kept, without
 *                       one the step fails with a message and changes nothing
 *   factored_projection R from the factors dY, X of G = dY^T X equals
 *                       project(G) on both sides between refreshes; when the
 *                       factored way is chosen
 *   galore_torch        every weight after every step of galore-torch 1.0
 *                       GaLoreAdamW (fixtures from tests/ref/
 *                       make_optimizer_fixtures.py) within 1e-5 relative
 *                       (max-abs error / max-abs reference)
 *
 * Tolerances: results computed two ways in fp32 and double agree to a few
 * ulps of the weights (~1e-7 relative); 1e-5 leaves room for different SVD
 * roundings while a wrong formula moves weights by ~lr = 1e-2.
 */
#include <stdint.h>

#include "optim.h"
#include "safetensors.h"
#include "test.h"

static const struct backend *be;
static char err[512];

/* ---- helpers ---- */

static unsigned long long test_rng = 42;

static double randn(void)
{
    uint64_t a, b;
    test_rng += 0x9e3779b97f4a7c15ULL;
    a = test_rng;
    a = (a ^ (a >> 30)) * 0xbf58476d1ce4e5b9ULL;
    a = (a ^ (a >> 27)) * 0x94d049bb133111ebULL;
    a ^= a >> 31;
    test_rng += 0x9e3779b97f4a7c15ULL;
    b = test_rng;
    b = (b ^ (b >> 30)) * 0xbf58476d1ce4e5b9ULL;
    b = (b ^ (b >> 27)) * 0x94d049bb133111ebULL;
    b ^= b >> 31;
    double u1 = ((a >> 11) + 1) * 0x1.0p-53, u2 = (b >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static float *randn_alloc(size_t n, double scale)
{
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(scale * randn());
    return x;
}

/* max |a - ref| / max |ref| */
static double rel_err_f(const float *a, const float *ref, size_t n)
{
    double e = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - ref[i]));
        mx = fmax(mx, fabs((double)ref[i]));
    }
    return mx > 0 ? e / mx : e;
}

static double rel_err_d(const float *a, const double *ref, size_t n)
{
    double e = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        e = fmax(e, fabs((double)a[i] - ref[i]));
        mx = fmax(mx, fabs(ref[i]));
    }
    return mx > 0 ? e / mx : e;
}

/* Basis vector j of P (element i): row j for side 0 (d = cols), column j
 * for side 1 (d = rows). */
static double pvec(const float *P, int side, int r, int d, int j, int i)
{
    return side == 0 ? P[(size_t)j * d + i] : P[(size_t)i * r + j];
}

/* max |<p_i, p_j> - delta_ij| over the r basis vectors of length d. */
static double ortho_err(const float *P, int side, int r, int d)
{
    double worst = 0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double dot = 0;
            for (int i = 0; i < d; i++)
                dot += pvec(P, side, r, d, a, i) * pvec(P, side, r, d, b, i);
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    return worst;
}

/* ||P Pref^T||_F^2 / r (side 0) or ||P^T Pref||_F^2 / r (side 1). */
static double subspace_score(const float *P, const float *Pref, int side, int r, int d)
{
    double sum = 0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double dot = 0;
            for (int i = 0; i < d; i++)
                dot += pvec(P, side, r, d, a, i) * pvec(Pref, side, r, d, b, i);
            sum += dot * dot;
        }
    return sum / r;
}

/* R (double) = project(G) with P: (rows,r) for side 0, (r,cols) for side 1. */
static void project_d(double *R, const float *G, const float *P, int rows,
                      int cols, int r, int side)
{
    if (side == 0)
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < r; j++) {
                double acc = 0;
                for (int k = 0; k < cols; k++)
                    acc += (double)G[(size_t)i * cols + k] * P[(size_t)j * cols + k];
                R[(size_t)i * r + j] = acc;
            }
    else
        for (int j = 0; j < r; j++)
            for (int c = 0; c < cols; c++) {
                double acc = 0;
                for (int k = 0; k < rows; k++)
                    acc += (double)P[(size_t)k * r + j] * G[(size_t)k * cols + c];
                R[(size_t)j * cols + c] = acc;
            }
}

/* out (rows,cols) (double) = back(N) with P, no scale. */
static void back_d(double *out, const double *N, const float *P, int rows,
                   int cols, int r, int side)
{
    for (int i = 0; i < rows; i++)
        for (int c = 0; c < cols; c++) {
            double acc = 0;
            for (int j = 0; j < r; j++)
                acc += side == 0 ? N[(size_t)i * r + j] * P[(size_t)j * cols + c]
                                 : P[(size_t)i * r + j] * N[(size_t)j * cols + c];
            out[(size_t)i * cols + c] = acc;
        }
}

/* One GaLore-AdamW step in double with a given P (the state's, after its
 * refresh); m, v hold the R-shaped moments, t the step number (1-based). */
static void ref_galore_step(double *w, double *m, double *v, const float *g,
                            const float *P, int rows, int cols, int r, int side,
                            long t, const struct adamw_hparams *h, double scale,
                            double lr)
{
    size_t rs = (size_t)r * (side == 0 ? rows : cols), n = (size_t)rows * cols;
    double *R = malloc(rs * sizeof(double)), *B = malloc(n * sizeof(double));
    double b1 = h->beta1, b2 = h->beta2;
    project_d(R, g, P, rows, cols, r, side);
    for (size_t i = 0; i < rs; i++) {
        m[i] = b1 * m[i] + (1 - b1) * R[i];
        v[i] = b2 * v[i] + (1 - b2) * R[i] * R[i];
        R[i] = m[i] / (sqrt(v[i]) + h->eps);
    }
    back_d(B, R, P, rows, cols, r, side);
    double step = lr * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
    for (size_t i = 0; i < n; i++)
        w[i] = (w[i] - step * scale * B[i]) * (1 - lr * h->weight_decay);
    free(R);
    free(B);
}

static const struct adamw_hparams hp_default = {0.9f, 0.999f, 1e-6f, 0.0f};

/* ---- cases ---- */

static void test_kernels(void)
{
    const size_t n = 100003; /* not a multiple of the sumsq block count */
    float *x = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float));
    float *v = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    float *w = malloc(n * sizeof(float));
    double exact = 0, e_adam = 0, e_upd = 0;

    test_begin("kernels");
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)((int)(i % 7) - 3) * 0.5f; /* squares exact in double */
        exact += (double)x[i] * x[i];
    }
    double acc = 0.5; /* sumsq_add adds to what is there */
    be->sumsq_add(&acc, x, n);
    CHECK(acc == 0.5 + exact);
    be->sumsq_add(&acc, x, 0);
    CHECK(acc == 0.5 + exact);
    be->scale(x, n, -2.0f);
    CHECK(x[1] == 2.0f && x[6] == -3.0f);

    for (size_t i = 0; i < n; i++) {
        m[i] = (float)randn();
        v[i] = (float)fabs(randn());
        g[i] = (float)randn();
        w[i] = (float)randn();
    }
    float *m0 = malloc(n * sizeof(float)), *v0 = malloc(n * sizeof(float));
    float *g0 = malloc(n * sizeof(float)), *w0 = malloc(n * sizeof(float));
    memcpy(m0, m, n * sizeof(float));
    memcpy(v0, v, n * sizeof(float));
    memcpy(g0, g, n * sizeof(float));
    memcpy(w0, w, n * sizeof(float));
    be->adam_direction(g, m, v, g, n, 0.9f, 0.999f, 1e-6f); /* dir aliases g */
    be->apply_update(w, g, n, 0.01f, 0.001f);
    for (size_t i = 0; i < n; i++) {
        double mi = 0.9f * (double)m0[i] + (1 - 0.9f) * (double)g0[i];
        double vi = 0.999f * (double)v0[i] + (1 - 0.999f) * (double)g0[i] * g0[i];
        double di = mi / (sqrt(vi) + 1e-6f);
        double wi = (w0[i] - 0.01f * di) * (1 - 0.001f);
        e_adam = fmax(e_adam, fabs(g[i] - di) / fmax(1.0, fabs(di)));
        e_adam = fmax(e_adam, fabs(m[i] - mi) / fmax(1.0, fabs(mi)));
        e_adam = fmax(e_adam, fabs(v[i] - vi) / fmax(1.0, fabs(vi)));
        e_upd = fmax(e_upd, fabs(w[i] - wi) / fmax(1.0, fabs(wi)));
    }
    CHECK_MSG(e_adam <= 1e-5, "adam_direction error %.3g", e_adam);
    CHECK_MSG(e_upd <= 1e-6, "apply_update error %.3g", e_upd);
    free(x);
    free(m);
    free(v);
    free(g);
    free(w);
    free(m0);
    free(v0);
    free(g0);
    free(w0);
    test_end();
}

static void test_sizes(void)
{
    test_begin("sizes");
    CHECK(optim_state_floats(24, 16, 4) == 2 * 24 * 4 + 4 * 16); /* right */
    CHECK(optim_state_floats(12, 20, 4) == 2 * 4 * 20 + 12 * 4); /* left */
    CHECK(optim_state_floats(16, 0, 4) == 2 * 16);               /* 1-D */
    CHECK(optim_state_floats(10, 10, 0) == 2 * 100);             /* AdamW */
    CHECK(optim_state_floats(6, 4, 100) == 2 * 6 * 4 + 4 * 4);   /* r' = 4 */
    CHECK(optim_scratch_floats(24, 16, 4) == 24 * 4);
    CHECK(optim_scratch_floats(12, 20, 4) == 4 * 20);
    CHECK(optim_scratch_floats(16, 0, 0) == 16);
    CHECK(optim_scratch_floats(32000, 4096, 0) == (size_t)1 << 22);

    struct optim_state s;
    CHECK(optim_state_init(&s, be, 24, 16, 4) == 0);
    CHECK(s.rank == 4 && s.side == 0 && s.proj == s.v + 24 * 4 && s.step == 0);
    optim_state_free(&s);
    CHECK(optim_state_init(&s, be, 12, 20, 50) == 0);
    CHECK(s.rank == 12 && s.side == 1 && s.proj == s.v + 12 * 20);
    optim_state_free(&s);
    CHECK(optim_state_init(&s, be, 16, 0, 4) == 0);
    CHECK(s.rank == 0 && s.proj == NULL && s.v == s.m + 16);
    optim_state_free(&s);
    CHECK(optim_state_init(&s, be, 0, 4, 4) == -1);
    test_end();
}

static void test_projector(void)
{
    static const int shapes[2][3] = {{40, 24, 0}, {20, 36, 1}}; /* m, n, side */
    test_begin("projector");
    for (int method = 0; method < 2; method++)
        for (int c = 0; c < 2; c++) {
            int m = shapes[c][0], n = shapes[c][1], side = shapes[c][2], r = 6;
            int d = side == 0 ? n : m;
            float *G = randn_alloc((size_t)m * n, 1.0);
            float *P = malloc((size_t)r * d * sizeof(float));
            unsigned long long seed = 7;
            CHECK(be->lowrank_basis(P, G, m, n, r, side, method, 10, 2, &seed) == 0);
            double e = ortho_err(P, side, r, d);
            CHECK_MSG(e <= 1e-5, "method %d (%d,%d): orthonormality error %.3g",
                      method, m, n, e);
            free(G);
            free(P);
        }

    /* r >= min(m,n): truncated to min(m,n), and P spans everything, so
     * back(project(G)) = G */
    static const int full[2][2] = {{9, 6}, {5, 8}};
    for (int method = 0; method < 2; method++)
        for (int c = 0; c < 2; c++) {
            int m = full[c][0], n = full[c][1];
            struct optim_state s;
            CHECK(optim_state_init(&s, be, m, n, 1000) == 0);
            CHECK(s.rank == (m < n ? m : n) && s.side == (m >= n ? 0 : 1));
            int r = s.rank;
            float *G = randn_alloc((size_t)m * n, 1.0);
            float *R = malloc((size_t)r * (m > n ? m : n) * sizeof(float));
            float *B = malloc((size_t)m * n * sizeof(float));
            unsigned long long seed = 11;
            CHECK(be->lowrank_basis(s.proj, G, m, n, r, s.side, method, 10, 2, &seed) == 0);
            if (s.side == 0) {
                be->matmul(0, 1, m, r, n, 1.0f, G, n, s.proj, n, 0.0f, R, r);
                be->matmul(0, 0, m, n, r, 1.0f, R, r, s.proj, n, 0.0f, B, n);
            } else {
                be->matmul(1, 0, r, n, m, 1.0f, s.proj, r, G, n, 0.0f, R, n);
                be->matmul(0, 0, m, n, r, 1.0f, s.proj, r, R, n, 0.0f, B, n);
            }
            double e = rel_err_f(B, G, (size_t)m * n);
            CHECK_MSG(e <= 1e-5, "method %d (%d,%d): back(project(G)) error %.3g",
                      method, m, n, e);
            CHECK(ortho_err(s.proj, s.side, r, s.side == 0 ? n : m) <= 1e-5);
            free(G);
            free(R);
            free(B);
            optim_state_free(&s);
        }
    test_end();
}

/* Runs `steps` steps of GaLore (rank = full, alpha 1, T 1) and AdamW from the
 * same W and gradients; the GaLore run is also replayed in double with the
 * state's P. Returns max |W_galore - W_adamw|; *ref_err the GaLore error
 * against the double replay (relative to max |W|). */
static double galore_vs_adamw(int rows, int cols, const float *grads, int steps,
                              const float *w0, double *ref_err)
{
    size_t n = (size_t)rows * cols;
    int k = rows < cols ? rows : cols;
    struct galore_hparams gh = {k, 1, 1.0f, 0, 0, 0};
    struct adamw_hparams h = hp_default;
    struct optim_state sg, sa;
    float *wg = malloc(n * sizeof(float)), *wa = malloc(n * sizeof(float));
    float *scratch = malloc(n * sizeof(float));
    double *wr = malloc(n * sizeof(double));
    double *mr = calloc(n, sizeof(double)), *vr = calloc(n, sizeof(double));
    float lr = 1e-2f;

    optim_state_init(&sg, be, rows, cols, k);
    optim_state_init(&sa, be, rows, cols, 0);
    memcpy(wg, w0, n * sizeof(float));
    memcpy(wa, w0, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        wr[i] = w0[i];
    for (int t = 0; t < steps; t++) {
        const float *g = grads + (size_t)t * n;
        CHECK(optim_step(&sg, wg, g, scratch, &h, &gh, lr, NULL, err, sizeof err) == 0);
        CHECK(optim_step(&sa, wa, g, scratch, &h, NULL, lr, NULL, err, sizeof err) == 0);
        ref_galore_step(wr, mr, vr, g, sg.proj, rows, cols, k, sg.side, t + 1, &h,
                        1.0, lr);
    }
    CHECK(sg.refreshes == steps);
    *ref_err = rel_err_d(wg, wr, n);
    double diff = 0;
    for (size_t i = 0; i < n; i++)
        diff = fmax(diff, fabs((double)wg[i] - wa[i]));
    optim_state_free(&sg);
    optim_state_free(&sa);
    free(wg);
    free(wa);
    free(scratch);
    free(wr);
    free(mr);
    free(vr);
    return diff;
}

static void test_full_rank(void)
{
    test_begin("full_rank");
    /* square diagonal gradients, distinct magnitudes in a fixed order, signs
     * varying: the singular vectors are a signed permutation */
    enum { D = 8, STEPS = 3 };
    float *w0 = randn_alloc(D * D, 1.0);
    float *grads = calloc((size_t)STEPS * D * D, sizeof(float));
    for (int t = 0; t < STEPS; t++)
        for (int i = 0; i < D; i++)
            grads[(size_t)t * D * D + i * D + i] =
                (float)(((i + t) % 3 ? 1 : -1) * (i + 1) * 0.3 * (1 + 0.5 * t));
    double ref_err, diff = galore_vs_adamw(D, D, grads, STEPS, w0, &ref_err);
    CHECK_MSG(diff <= 1e-6, "diagonal gradient: GaLore - AdamW = %.3g", diff);
    CHECK_MSG(ref_err <= 1e-5, "diagonal gradient: error vs reference %.3g", ref_err);
    free(w0);
    free(grads);

    /* generic gradients, right (6,6) and left (5,8) */
    static const int shapes[2][2] = {{6, 6}, {5, 8}};
    for (int c = 0; c < 2; c++) {
        int rows = shapes[c][0], cols = shapes[c][1];
        w0 = randn_alloc((size_t)rows * cols, 1.0);
        grads = randn_alloc((size_t)STEPS * rows * cols, 1.0);
        diff = galore_vs_adamw(rows, cols, grads, STEPS, w0, &ref_err);
        CHECK_MSG(diff >= 1e-3, "(%d,%d) generic: GaLore equals AdamW (%.3g)", rows,
                  cols, diff);
        CHECK_MSG(ref_err <= 1e-5, "(%d,%d) generic: error vs reference %.3g", rows,
                  cols, ref_err);
        free(w0);
        free(grads);
    }
    test_end();
}

static void test_one_step(void)
{
    static const int shapes[3][2] = {{10, 6}, {5, 9}, {16, 0}};
    struct adamw_hparams h = {0.9f, 0.999f, 1e-6f, 0.1f};
    struct galore_hparams gh = {3, 200, 0.25f, 0, 0, 0};
    const double lr = 1e-2;
    double eps_eff = h.eps / sqrt(1.0 - (double)h.beta2);

    test_begin("one_step");
    CHECK_MSG(fabs(eps_eff - 3.162e-5) <= 1e-3 * 3.162e-5, "effective eps %.6g", eps_eff);
    for (int c = 0; c < 3; c++) {
        int rows = shapes[c][0], cols = shapes[c][1];
        size_t n = (size_t)rows * (cols ? cols : 1);
        struct optim_state s;
        CHECK(optim_state_init(&s, be, rows, cols, cols ? gh.rank : 0) == 0);
        float *w = randn_alloc(n, 1.0), *g = randn_alloc(n, 1.0);
        float *scratch = malloc(optim_scratch_floats(rows, cols, s.rank) * sizeof(float));
        double *expect = malloc(n * sizeof(double));
        for (size_t i = 0; i < n; i++)
            expect[i] = w[i];
        CHECK(optim_step(&s, w, g, scratch, &h, &gh, (float)lr, NULL, err, sizeof err) == 0);

        double *dir = malloc(n * sizeof(double));
        if (s.rank == 0) { /* AdamW: W - lr g / (|g| + eps') */
            for (size_t i = 0; i < n; i++)
                dir[i] = g[i] / (fabs(g[i]) + eps_eff);
        } else { /* W - lr alpha back(R / (|R| + eps')) */
            size_t rs = (size_t)s.rank * (s.side == 0 ? rows : cols);
            double *R = malloc(rs * sizeof(double));
            project_d(R, g, s.proj, rows, cols, s.rank, s.side);
            for (size_t i = 0; i < rs; i++)
                R[i] = R[i] / (fabs(R[i]) + eps_eff) * gh.scale;
            back_d(dir, R, s.proj, rows, cols, s.rank, s.side);
            free(R);
        }
        for (size_t i = 0; i < n; i++)
            expect[i] = (expect[i] - lr * dir[i]) * (1.0 - lr * h.weight_decay);
        double e = rel_err_d(w, expect, n);
        CHECK_MSG(e <= 1e-6, "(%d,%d): error %.3g", rows, cols, e);
        CHECK(s.step == 1);
        optim_state_free(&s);
        free(w);
        free(g);
        free(scratch);
        free(expect);
        free(dir);
    }
    test_end();
}

static void test_refresh_cadence(void)
{
    static const int shapes[2][2] = {{12, 8}, {6, 14}};
    const int T = 3, STEPS = 10;
    struct adamw_hparams h = hp_default;
    struct galore_hparams gh = {3, T, 1.0f, 0, 0, 0};

    test_begin("refresh_cadence");
    for (int c = 0; c < 2; c++) {
        int rows = shapes[c][0], cols = shapes[c][1];
        size_t n = (size_t)rows * cols;
        struct optim_state s;
        CHECK(optim_state_init(&s, be, rows, cols, gh.rank) == 0);
        size_t rs = (size_t)s.rank * (s.side == 0 ? rows : cols);
        size_t ps = (size_t)s.rank * (s.side == 0 ? cols : rows);
        float *w = randn_alloc(n, 1.0);
        float *scratch = malloc(optim_scratch_floats(rows, cols, gh.rank) * sizeof(float));
        float *m_old = malloc(rs * sizeof(float)), *v_old = malloc(rs * sizeof(float));
        float *p_old = malloc(ps * sizeof(float));
        double *R = malloc(rs * sizeof(double));
        for (int k = 1; k <= STEPS; k++) {
            float *g = randn_alloc(n, 1.0);
            int due = (k - 1) % T == 0; /* t before the step */
            memcpy(m_old, s.m, rs * sizeof(float));
            memcpy(v_old, s.v, rs * sizeof(float));
            memcpy(p_old, s.proj, ps * sizeof(float));
            CHECK(optim_step(&s, w, g, scratch, &h, &gh, 1e-2f, NULL, err, sizeof err) == 0);
            long want = (k + T - 1) / T; /* #{t in 0, T, 2T, ... : t < k} */
            CHECK_MSG(s.refreshes == want, "(%d,%d) after %d steps: %ld refreshes, "
                      "expected %ld", rows, cols, k, s.refreshes, want);
            int changed = memcmp(p_old, s.proj, ps * sizeof(float)) != 0;
            CHECK_MSG(changed == due, "(%d,%d) step %d: P %s", rows, cols, k,
                      changed ? "changed" : "unchanged");
            /* moments continue from the old values with the new R */
            project_d(R, g, s.proj, rows, cols, s.rank, s.side);
            double em = 0, ev = 0;
            for (size_t i = 0; i < rs; i++) {
                double mi = h.beta1 * (double)m_old[i] + (1 - (double)h.beta1) * R[i];
                double vi = h.beta2 * (double)v_old[i] + (1 - (double)h.beta2) * R[i] * R[i];
                em = fmax(em, fabs(s.m[i] - mi) / fmax(1.0, fabs(mi)));
                ev = fmax(ev, fabs(s.v[i] - vi) / fmax(1.0, fabs(vi)));
            }
            CHECK_MSG(em <= 1e-5 && ev <= 1e-5, "(%d,%d) step %d: moment errors %.3g %.3g",
                      rows, cols, k, em, ev);
            free(g);
        }
        CHECK(s.step == STEPS);
        optim_state_free(&s);
        free(w);
        free(scratch);
        free(m_old);
        free(v_old);
        free(p_old);
        free(R);
    }
    test_end();
}

/* G (m,n) = U diag(sv) V^T with random orthonormal U (m,k), V (n,k). */
static float *spectrum_matrix(int m, int n, const double *sv)
{
    int k = m < n ? m : n;
    double *U = malloc((size_t)m * k * sizeof(double));
    double *V = malloc((size_t)n * k * sizeof(double));
    double *X[2] = {U, V};
    int len[2] = {m, n};
    for (int f = 0; f < 2; f++) { /* modified Gram-Schmidt on columns */
        double *A = X[f];
        int L = len[f];
        for (size_t i = 0; i < (size_t)L * k; i++)
            A[i] = randn();
        for (int j = 0; j < k; j++) {
            for (int p = 0; p < j; p++) {
                double dot = 0;
                for (int i = 0; i < L; i++)
                    dot += A[(size_t)i * k + j] * A[(size_t)i * k + p];
                for (int i = 0; i < L; i++)
                    A[(size_t)i * k + j] -= dot * A[(size_t)i * k + p];
            }
            double nrm = 0;
            for (int i = 0; i < L; i++)
                nrm += A[(size_t)i * k + j] * A[(size_t)i * k + j];
            nrm = sqrt(nrm);
            for (int i = 0; i < L; i++)
                A[(size_t)i * k + j] /= nrm;
        }
    }
    float *G = malloc((size_t)m * n * sizeof(float));
    for (int i = 0; i < m; i++)
        for (int c = 0; c < n; c++) {
            double acc = 0;
            for (int j = 0; j < k; j++)
                acc += U[(size_t)i * k + j] * sv[j] * V[(size_t)c * k + j];
            G[(size_t)i * n + c] = (float)acc;
        }
    free(U);
    free(V);
    return G;
}

static void test_range_finder(void)
{
    static const int shapes[2][3] = {{120, 80, 0}, {60, 150, 1}};
    const int r = 8;
    test_begin("range_finder");
    for (int c = 0; c < 2; c++) {
        int m = shapes[c][0], n = shapes[c][1], side = shapes[c][2];
        int k = m < n ? m : n, d = side == 0 ? n : m;
        double *sv = malloc(k * sizeof(double));
        /* top r: 100 .. 100 * 0.85^7 = 32; then a 10x gap: 3.2 * 0.95^i */
        for (int i = 0; i < k; i++)
            sv[i] = i < r ? 100 * pow(0.85, i) : 3.2 * pow(0.95, i - r);
        float *G = spectrum_matrix(m, n, sv);
        size_t ps = (size_t)r * d;
        float *Pref = malloc(ps * sizeof(float)), *P = malloc(ps * sizeof(float));
        float *P2 = malloc(ps * sizeof(float));
        CHECK(be->lowrank_basis(Pref, G, m, n, r, side, 0, 0, 0, NULL) == 0);
        unsigned long long seed = 1234, seed2 = 1234;
        CHECK(be->lowrank_basis(P, G, m, n, r, side, 1, 10, 2, &seed) == 0);
        CHECK(be->lowrank_basis(P2, G, m, n, r, side, 1, 10, 2, &seed2) == 0);
        CHECK_MSG(memcmp(P, P2, ps * sizeof(float)) == 0, "(%d,%d): equal seeds, "
                  "different bases", m, n);
        CHECK(seed != 1234); /* the generator advanced */
        double score = subspace_score(P, Pref, side, r, d);
        CHECK_MSG(score >= 0.99, "(%d,%d): subspace score %.6f", m, n, score);
        CHECK(ortho_err(P, side, r, d) <= 1e-5);
        /* with the same sign rule, well-separated singular values give the
         * same vectors, not just the same span */
        double e = rel_err_f(P, Pref, ps);
        CHECK_MSG(e <= 1e-3, "(%d,%d): randomized vs exact vectors %.3g", m, n, e);
        printf("     range_finder (%d,%d) r %d: score %.8f, vectors max err %.2e\n",
               m, n, r, score, e);
        free(sv);
        free(G);
        free(Pref);
        free(P);
        free(P2);
    }
    test_end();
}

static void test_failure(void)
{
    const int rows = 10, cols = 6;
    size_t n = (size_t)rows * cols;
    struct adamw_hparams h = hp_default;
    struct galore_hparams gh = {2, 1, 1.0f, 0, 0, 0};
    struct optim_state s;

    test_begin("failure");
    for (int method = 0; method < 2; method++) {
        gh.svd_method = method;
        CHECK(optim_state_init(&s, be, rows, cols, gh.rank) == 0);
        size_t ps = (size_t)s.rank * cols;
        float *w = randn_alloc(n, 1.0), *g = randn_alloc(n, 1.0);
        float *bad = randn_alloc(n, 1.0);
        float *w0 = malloc(n * sizeof(float)), *p_old = malloc(ps * sizeof(float));
        float *scratch = malloc(optim_scratch_floats(rows, cols, gh.rank) * sizeof(float));
        bad[17] = NAN;
        memcpy(w0, w, n * sizeof(float));
        unsigned long long seed = 3;

        /* no P yet: the step fails, says why, and changes nothing */
        err[0] = 0;
        CHECK(optim_step(&s, w, bad, scratch, &h, &gh, 1e-2f, &seed, err, sizeof err) == -1);
        CHECK_MSG(strstr(err, "projector") != NULL, "message: '%s'", err);
        CHECK(memcmp(w, w0, n * sizeof(float)) == 0);
        CHECK(s.step == 0 && s.refreshes == 0);
        double state_sumsq = 0.0;
        be->sumsq_add(&state_sumsq, s.mem, optim_state_floats(rows, cols, gh.rank));
        CHECK(state_sumsq == 0.0);

        /* a good step, then a NaN at a refresh step (T = 1): P is kept */
        CHECK(optim_step(&s, w, g, scratch, &h, &gh, 1e-2f, &seed, err, sizeof err) == 0);
        CHECK(s.refreshes == 1);
        memcpy(p_old, s.proj, ps * sizeof(float));
        CHECK(optim_step(&s, w, bad, scratch, &h, &gh, 1e-2f, &seed, err, sizeof err) == 0);
        CHECK(s.refreshes == 1 && s.step == 2);
        CHECK(memcmp(p_old, s.proj, ps * sizeof(float)) == 0);

        /* the backend entry itself: -1 and P untouched */
        CHECK(be->lowrank_basis(p_old, bad, rows, cols, 2, 0, method, 4, 1, &seed) == -1);
        CHECK(memcmp(p_old, s.proj, ps * sizeof(float)) == 0);
        CHECK(be->lowrank_basis(p_old, g, rows, cols, 0, 0, method, 4, 1, &seed) == -1);
        CHECK(be->lowrank_basis(p_old, g, rows, cols, 7, 0, method, 4, 1, &seed) == -1);
        CHECK(memcmp(p_old, s.proj, ps * sizeof(float)) == 0);
        optim_state_free(&s);
        free(w);
        free(g);
        free(bad);
        free(w0);
        free(p_old);
        free(scratch);
    }

    /* a GaLore step needs a refresh gap */
    CHECK(optim_state_init(&s, be, rows, cols, 2) == 0);
    float *w = randn_alloc(n, 1.0), *g = randn_alloc(n, 1.0);
    float scratch[2 * 10];
    gh.update_proj_gap = 0;
    CHECK(optim_step(&s, w, g, scratch, &h, &gh, 1e-2f, NULL, err, sizeof err) == -1);
    CHECK(optim_step(&s, w, g, scratch, &h, NULL, 1e-2f, NULL, err, sizeof err) == -1);
    CHECK(s.step == 0);
    optim_state_free(&s);
    free(w);
    free(g);
    test_end();
}

/* ---- against galore-torch ---- */

static double meta_num(const struct st_file *f, const char *key)
{
    const char *v = st_metadata(f, key);
    if (!v) {
        test_fail(__FILE__, __LINE__, "%s: no metadata '%s'", st_path(f), key);
        return 0;
    }
    return strtod(v, NULL);
}

/* Tensor name of f into buf as fp32 (n floats). */
static int read_tensor(const struct st_file *f, const char *name, float *buf, size_t n)
{
    const struct st_tensor *t = st_find(f, name);
    if (!t || st_read_f32(f, t, buf, n, err, sizeof err)) {
        test_fail(__FILE__, __LINE__, "%s: cannot read %s: %s", st_path(f), name,
                  t ? err : "missing");
        return -1;
    }
    return 0;
}

static void test_galore_torch(void)
{
    static const char *files[2] = {"galore_wd0.01.safetensors", "galore_wd0.safetensors"};
    static const char *names[3] = {"w_right", "w_left", "w_bias"};
    static const int shapes[3][2] = {{24, 16}, {12, 20}, {16, 0}};
    char path[256], name[64];

    test_begin("galore_torch");
    for (int fi = 0; fi < 2; fi++) {
        snprintf(path, sizeof path, "tests/unit/fixtures/optim/%s", files[fi]);
        struct st_file *f = st_open(path, err, sizeof err);
        if (!f) {
            test_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        struct adamw_hparams h = {(float)meta_num(f, "beta1"), (float)meta_num(f, "beta2"),
                                  (float)meta_num(f, "eps"),
                                  (float)meta_num(f, "weight_decay")};
        struct galore_hparams gh = {(int)meta_num(f, "rank"),
                                    (int)meta_num(f, "update_proj_gap"),
                                    (float)meta_num(f, "scale"), 0, 0, 0};
        float lr = (float)meta_num(f, "lr");
        int steps = (int)meta_num(f, "steps");
        for (int p = 0; p < 3; p++) {
            int rows = shapes[p][0], cols = shapes[p][1];
            int rank = cols ? gh.rank : 0;
            size_t n = (size_t)rows * (cols ? cols : 1);
            struct optim_state s;
            float *w = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
            float *ref = malloc(n * sizeof(float));
            float *scratch = malloc(optim_scratch_floats(rows, cols, rank) * sizeof(float));
            double worst = 0;
            CHECK(optim_state_init(&s, be, rows, cols, rank) == 0);
            snprintf(name, sizeof name, "%s.init", names[p]);
            int ok = read_tensor(f, name, w, n) == 0;
            for (int k = 0; ok && k < steps; k++) {
                snprintf(name, sizeof name, "%s.grad.%d", names[p], k);
                ok = read_tensor(f, name, g, n) == 0;
                snprintf(name, sizeof name, "%s.after.%d", names[p], k);
                ok = ok && read_tensor(f, name, ref, n) == 0;
                if (!ok)
                    break;
                CHECK(optim_step(&s, w, g, scratch, &h, &gh, lr, NULL, err, sizeof err) == 0);
                double e = rel_err_f(w, ref, n);
                worst = fmax(worst, e);
                CHECK_MSG(e <= 1e-5, "%s %s step %d: relative error %.3g", files[fi],
                          names[p], k, e);
            }
            if (rank)
                CHECK(s.refreshes == (steps + gh.update_proj_gap - 1) / gh.update_proj_gap);
            printf("     galore_torch %s %-7s (%d,%d) rank %d: worst relative error "
                   "%.2e over %d steps\n", files[fi], names[p], rows, cols, s.rank,
                   worst, steps);
            optim_state_free(&s);
            free(w);
            free(g);
            free(ref);
            free(scratch);
        }
        st_close(f);
    }
    test_end();
}

/* Between refreshes, R from the factors dY (N, rows), X (N, cols) equals
 * project(dY^T X) on both sides, and the factored way is chosen when it is
 * cheaper and fits the scratch. */
static void test_factored_projection(void)
{
    static const int shapes[2][2] = {{48, 30}, {30, 52}}; /* right, left */
    const int N = 7, rank = 5;
    const struct galore_hparams gh = {.rank = rank, .update_proj_gap = 10, .scale = 1.0f,
                                      .svd_method = 0};
    test_begin("factored_projection");
    for (int c = 0; c < 2; c++) {
        const int rows = shapes[c][0], cols = shapes[c][1];
        struct optim_state s;
        unsigned long long seed = 3;
        float *G0 = randn_alloc((size_t)rows * cols, 1.0);
        float *dy = randn_alloc((size_t)N * rows, 1.0), *x = randn_alloc((size_t)N * cols, 1.0);
        float *G = malloc(sizeof(float) * rows * cols);
        float *R = malloc(sizeof(float) * optim_scratch_floats(rows, cols, rank));
        float *Rf = malloc(sizeof(float) * optim_scratch_floats(rows, cols, rank));
        float *tmp = malloc(sizeof(float) * N * rank);
        CHECK(optim_state_init(&s, be, rows, cols, rank) == 0);
        CHECK(s.side == c);
        CHECK(optim_refresh_due(&s, &gh));
        CHECK(optim_project(&s, G0, R, &gh, &seed, err, sizeof err) == 0); /* P from G0 */
        s.step = 1;
        CHECK(!optim_refresh_due(&s, &gh));
        be->matmul(1, 0, rows, cols, N, 1.0f, dy, rows, x, cols, 0.0f, G, cols);
        CHECK(optim_project(&s, G, R, &gh, &seed, err, sizeof err) == 0);
        CHECK(s.refreshes == 1);
        optim_project_factors(&s, dy, x, N, Rf, tmp);
        size_t n = optim_scratch_floats(rows, cols, rank);
        double e = rel_err_f(Rf, R, n);
        CHECK_MSG(e < 1e-5, "(%d, %d): factored R off by %.3g", rows, cols, e);
        /* chosen: cheaper at N = 7 and fits 2 N^2 + N r floats, not at N = 60
         * (dearer) or with a scratch one float short */
        CHECK(optim_use_factors(rows, cols, rank, N, 2 * N * N + N * rank));
        CHECK(!optim_use_factors(rows, cols, rank, N, 2 * N * N + N * rank - 1));
        CHECK(!optim_use_factors(rows, cols, rank, 60, 1 << 20));
        CHECK(!optim_use_factors(rows, cols, 0, N, 1 << 20));
        optim_state_free(&s);
        free(G0);
        free(dy);
        free(x);
        free(G);
        free(R);
        free(Rf);
        free(tmp);
    }
    test_end();
}

int main(void)
{
    be = backend_cpu();
    test_kernels();
    test_sizes();
    test_projector();
    test_full_rank();
    test_one_step();
    test_refresh_cadence();
    test_range_finder();
    test_failure();
    test_galore_torch();
    test_factored_projection();
    return test_finish();
}
