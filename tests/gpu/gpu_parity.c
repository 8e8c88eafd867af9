/*
 * gpu_parity.c: every operation of the CUDA backend against the CPU oracle.
 *
 * Each operation runs on the same random inputs on both backends; the
 * result is compared by normalised mean squared error,
 *   nmse = sum (cuda - cpu)^2 / sum cpu^2,
 * which must stay <= 1e-7 (fp32 mode; the projector of lowrank_basis, whose
 * singular vectors are only defined up to rounding of close singular values,
 * is compared through P itself on matrices with a spread spectrum and gets
 * 1e-5). The bf16 storage operations (bf16_expand, bf16_round,
 * bf16_narrow) must match bit for bit, on every fp32/bf16 class (NaN, infinities, denormals, values
 * that round into an infinity), at odd lengths and offsets, with a rounding
 * seed whose seed + i wraps, and past 2^32 elements (skipped when the GPU
 * lacks the 26 GB: a SKIP line), as must col_sumsq_add (calibration's
 * per-column sums, added in the same order) and the optimizer's elementwise
 * updates (adam_direction, apply_update, and on bf16 weights adamw_bf16 and
 * bf16_add_round, over whole arrays and from an odd offset: each product
 * and sum rounded as the CPU rounds it). matmul_bf16 (weights in bf16) is checked
 * in this fp32 mode, and with the argument bf16-products under
 * OWLORE_CUDA_MATH=bf16 (operands rounded to bf16 on tensor cores) alone,
 * to nmse 1e-4, beside matmul on a small product (its operands rounded
 * inside cuBLAS) and a large one (rounded by our kernel first), both also
 * with a long K split into slices, a Gram (one operand rounded once), and
 * attention on that mode's tensor-core path (attention_tc.cu: the training
 * shape at head widths 64 and 128, the 7B shape among them; its decode and
 * continuation checks take the GEMM path, whose products round to bf16 in
 * that mode too). One line per check: "PASS|FAIL op nmse
 * tol" ("bits differ in k of n" elements for the bit-exact ones); the exit
 * status is 1 when any check failed, 2 when no GPU opened. Shapes cover
 * GQA, odd sizes, a decode step (Tq = 1 with q_off), ignored targets and
 * every attention path (the label says which: [gemm] while one head's
 * scores fit the CUDA score cap of 16 MiB, [flash] past it, [tc] the
 * tensor-core path of bf16-products).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

static const struct backend *cpu, *gpu;
static int failures;
static unsigned long long seed = 12345;

static float urand(void)
{
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((seed >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

/* n random floats in [-a, a) on the host (freed by the caller) */
static float *host_rand(size_t n, float a)
{
    float *h = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = a * urand();
    return h;
}

/* a device copy of host h (n floats) on backend be */
static float *put(const struct backend *be, const float *h, size_t n)
{
    float *d = be->alloc(n * sizeof(float) + 4);
    be->upload(d, h, n * sizeof(float));
    return d;
}

/* compare n floats of backend memory: cuda result d against cpu result c */
static void check(const char *op, const float *d, const float *c, size_t n, double tol)
{
    float *h = malloc(n * sizeof(float));
    gpu->download(h, d, n * sizeof(float));
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)h[i] - c[i];
        num += e * e;
        den += (double)c[i] * c[i];
    }
    double nmse = den > 0 ? num / den : num;
    char why[512];
    int bad = !(nmse <= tol) || gpu->error(why, sizeof why);
    printf("%s %-28s nmse %.3e tol %.0e\n", bad ? "FAIL" : "PASS", op, nmse, tol);
    failures += bad;
    free(h);
}

/* one float array living on both backends */
struct pair { float *c, *g; size_t n; };

static struct pair pair_rand(size_t n, float a)
{
    float *h = host_rand(n, a);
    struct pair p = {put(cpu, h, n), put(gpu, h, n), n};
    free(h);
    return p;
}

static void pair_free(struct pair *p)
{
    cpu->free(p->c);
    gpu->free(p->g);
}

#define CHECK(op, p, tol) check(op, (p).g, (p).c, (p).n, tol)

/* Count the elements (size bytes each) of cuda result d (device) and cpu
 * result c (host) whose bits differ, n elements. */
static size_t bits_differ(const void *d, const void *c, size_t n, size_t size)
{
    unsigned char *h = malloc(n * size + 1);
    gpu->download(h, d, n * size);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++)
        diff += memcmp(h + i * size, (const unsigned char *)c + i * size, size) != 0;
    free(h);
    return diff;
}

static void report_bits(const char *op, size_t diff, size_t n)
{
    char why[512];
    int bad = diff != 0 || gpu->error(why, sizeof why);
    printf("%s %-28s bits differ in %zu of %zu tol 0\n", bad ? "FAIL" : "PASS", op, diff, n);
    failures += bad;
}

/* pair p's GPU result equal to its CPU one bit for bit */
#define BITS(op, p) report_bits(op, bits_differ((p).g, (p).c, (p).n, sizeof *(p).c), (p).n)

#define TOL 1e-7

/* matmul on (M,N,K) for each pair of transpose flags, the operands' row
 * strides pad columns beyond what they use */
static void test_matmul(int M, int N, int K, int pad, double tol)
{
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad;
            struct pair A = pair_rand((size_t)(ta ? K : M) * lda, 1);
            struct pair B = pair_rand((size_t)(tb ? N : K) * ldb, 1);
            struct pair C = pair_rand((size_t)M * N, 1);
            cpu->matmul(ta, tb, M, N, K, 0.7f, A.c, lda, B.c, ldb, 0.5f, C.c, N);
            gpu->matmul(ta, tb, M, N, K, 0.7f, A.g, lda, B.g, ldb, 0.5f, C.g, N);
            char name[64];
            snprintf(name, sizeof name, "matmul %dx%dx%d ta=%d tb=%d", M, N, K, ta, tb);
            CHECK(name, C, tol);
            pair_free(&A);
            pair_free(&B);
            pair_free(&C);
        }
}

/* a Gram A A^T (M,M) of A (M,K), the one array passed as both operands */
static void test_gram(int M, int K, double tol)
{
    struct pair A = pair_rand((size_t)M * K, 1), C = pair_rand((size_t)M * M, 1);
    cpu->matmul(0, 1, M, M, K, 1.0f, A.c, K, A.c, K, 0.0f, C.c, M);
    gpu->matmul(0, 1, M, M, K, 1.0f, A.g, K, A.g, K, 0.0f, C.g, M);
    char name[64];
    snprintf(name, sizeof name, "matmul gram %dx%d", M, K);
    CHECK(name, C, tol);
    pair_free(&A);
    pair_free(&C);
}

/* matmul_bf16 on the same bf16 weights (random patterns of [-1, 1)) */
static void test_matmul_bf16(double tol)
{
    const int M = 37, N = 53, K = 129;
    for (int tw = 0; tw < 2; tw++) {
        const int ldw = tw ? K : N;
        const size_t nw = (size_t)(tw ? N : K) * ldw, bytes = nw * sizeof(unsigned short);
        unsigned short *h = malloc(bytes);
        for (size_t i = 0; i < nw; i++) {
            float x = urand();
            uint32_t bits;
            memcpy(&bits, &x, sizeof bits);
            h[i] = (unsigned short)(bits >> 16);
        }
        unsigned short *wc = cpu->alloc(bytes), *wg = gpu->alloc(bytes);
        cpu->upload(wc, h, bytes);
        gpu->upload(wg, h, bytes);
        struct pair A = pair_rand((size_t)M * K, 1), C = pair_rand((size_t)M * N, 1);
        cpu->matmul_bf16(tw, M, N, K, 0.7f, A.c, K, wc, ldw, 0.5f, C.c, N);
        gpu->matmul_bf16(tw, M, N, K, 0.7f, A.g, K, wg, ldw, 0.5f, C.g, N);
        char name[64];
        snprintf(name, sizeof name, "matmul_bf16 tw=%d", tw);
        CHECK(name, C, tol);
        pair_free(&A);
        pair_free(&C);
        cpu->free(wc);
        gpu->free(wg);
        free(h);
    }
}

static void test_embedding(void)
{
    const int V = 101, D = 96, N = 300;
    int tok[300];
    for (int i = 0; i < N; i++)
        tok[i] = (int)((urand() + 1.0f) * 0.5f * V) % V;
    tok[1] = tok[0]; /* repeated tokens reduce */
    struct pair T = pair_rand((size_t)V * D, 1), O = pair_rand((size_t)N * D, 1);
    cpu->embedding_fwd(O.c, tok, T.c, N, D);
    gpu->embedding_fwd(O.g, tok, T.g, N, D);
    CHECK("embedding_fwd", O, TOL);
    cpu->embedding_bwd(T.c, tok, O.c, N, D);
    gpu->embedding_bwd(T.g, tok, O.g, N, D);
    CHECK("embedding_bwd", T, TOL);
    pair_free(&T);
    pair_free(&O);
}

static void test_rmsnorm(void)
{
    const int N = 67, D = 300;
    struct pair x = pair_rand((size_t)N * D, 2), g = pair_rand(D, 1);
    struct pair o = pair_rand((size_t)N * D, 1), r = pair_rand(N, 1);
    struct pair dx = pair_rand((size_t)N * D, 1), dg = pair_rand(D, 1);
    struct pair dout = pair_rand((size_t)N * D, 1);
    cpu->rmsnorm_fwd(o.c, r.c, x.c, g.c, N, D, 1e-5f);
    gpu->rmsnorm_fwd(o.g, r.g, x.g, g.g, N, D, 1e-5f);
    CHECK("rmsnorm_fwd out", o, TOL);
    CHECK("rmsnorm_fwd rstd", r, TOL);
    cpu->rmsnorm_bwd(dx.c, dg.c, dout.c, x.c, g.c, r.c, N, D);
    gpu->rmsnorm_bwd(dx.g, dg.g, dout.g, x.g, g.g, r.g, N, D);
    CHECK("rmsnorm_bwd dx", dx, TOL);
    CHECK("rmsnorm_bwd dg", dg, TOL);
    struct pair *all[] = {&x, &g, &o, &r, &dx, &dg, &dout};
    for (int i = 0; i < 7; i++)
        pair_free(all[i]);
}

static void test_rope(void)
{
    const int B = 2, T = 33, nh = 3, hd = 64;
    struct pair x = pair_rand((size_t)B * T * nh * hd, 1);
    cpu->rope_fwd(x.c, B, T, nh, hd, 5, 10000.0f);
    gpu->rope_fwd(x.g, B, T, nh, hd, 5, 10000.0f);
    CHECK("rope_fwd", x, TOL);
    cpu->rope_bwd(x.c, B, T, nh, hd, 5, 500000.0f);
    gpu->rope_bwd(x.g, B, T, nh, hd, 5, 500000.0f);
    CHECK("rope_bwd", x, TOL);
    /* positions past those seen so far (the CUDA table grows), then a head
     * width not seen (it is rebuilt) */
    cpu->rope_fwd(x.c, B, T, nh, hd, 700, 500000.0f);
    gpu->rope_fwd(x.g, B, T, nh, hd, 700, 500000.0f);
    CHECK("rope_fwd pos0=700", x, TOL);
    cpu->rope_fwd(x.c, B, T, nh * 2, hd / 2, 3, 500000.0f);
    gpu->rope_fwd(x.g, B, T, nh * 2, hd / 2, 3, 500000.0f);
    CHECK("rope_fwd hd=32", x, TOL);
    pair_free(&x);
}

/* attention check `what` to nmse tol, labelled with the CUDA path it takes */
static void check_attn(const char *what, const char *path, struct pair p, double tol)
{
    char name[96];
    snprintf(name, sizeof name, "attention_%s [%s]", what, path);
    CHECK(name, p, tol);
}

/* path: the CUDA path of the (T,T) training shape, "gemm", "flash" or "tc"
 * (bf16 mode's tensor cores); the decode step and the continuation (q_off >
 * 0) never take "tc", they take the GEMM path (in bf16 mode its cuBLAS
 * products round their operands to bf16 too, hence the same tol) */
static void test_attention(const char *path, int B, int T, int H, int KV, int hd, double tol)
{
    const char *cont = strcmp(path, "tc") == 0 ? "gemm" : path; /* the continuation's */
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd;
    struct pair q = pair_rand(nq, 1), k = pair_rand(nk, 1), v = pair_rand(nk, 1);
    struct pair o = pair_rand(nq, 1), lse = pair_rand((size_t)B * H * T, 1);
    struct pair dq = pair_rand(nq, 1), dk = pair_rand(nk, 1), dv = pair_rand(nk, 1);
    struct pair dout = pair_rand(nq, 1);
    char name[96];
    cpu->attention_fwd(o.c, lse.c, q.c, k.c, v.c, B, T, T, 0, H, KV, hd);
    gpu->attention_fwd(o.g, lse.g, q.g, k.g, v.g, B, T, T, 0, H, KV, hd);
    snprintf(name, sizeof name, "fwd T=%d H=%d/%d hd=%d", T, H, KV, hd);
    check_attn(name, path, o, tol);
    check_attn("fwd lse", path, lse, tol);
    cpu->attention_bwd(dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, o.c, lse.c, B, T, H, KV, hd);
    gpu->attention_bwd(dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, o.g, lse.g, B, T, H, KV, hd);
    check_attn("bwd dq", path, dq, tol);
    check_attn("bwd dk", path, dk, tol);
    check_attn("bwd dv", path, dv, tol);
    /* a decode step: one query row at position T-1 over T keys, whose
     * (1,T) scores always take the GEMM path */
    struct pair o1 = pair_rand((size_t)B * H * hd, 1), l1 = pair_rand((size_t)B * H, 1);
    struct pair q1 = pair_rand((size_t)B * H * hd, 1);
    cpu->attention_fwd(o1.c, l1.c, q1.c, k.c, v.c, B, 1, T, T - 1, H, KV, hd);
    gpu->attention_fwd(o1.g, l1.g, q1.g, k.g, v.g, B, 1, T, T - 1, H, KV, hd);
    check_attn("fwd decode", "gemm", o1, tol);
    check_attn("fwd decode lse", "gemm", l1, tol);
    /* a continuation: Tc query rows at positions off.. over T keys, the last
     * off of which no row sees (the training shape's path, but gemm for tc) */
    const int off = T / 200 + 1, Tc = T - 2 * off;
    struct pair oc = pair_rand((size_t)B * Tc * H * hd, 1), lc = pair_rand((size_t)B * H * Tc, 1);
    struct pair qc = pair_rand((size_t)B * Tc * H * hd, 1);
    cpu->attention_fwd(oc.c, lc.c, qc.c, k.c, v.c, B, Tc, T, off, H, KV, hd);
    gpu->attention_fwd(oc.g, lc.g, qc.g, k.g, v.g, B, Tc, T, off, H, KV, hd);
    check_attn("fwd q_off", cont, oc, tol);
    check_attn("fwd q_off lse", cont, lc, tol);
    struct pair *all[] = {&q, &k, &v, &o, &lse, &dq, &dk, &dv, &dout, &o1, &l1, &q1,
                          &oc, &lc, &qc};
    for (int i = 0; i < 15; i++)
        pair_free(all[i]);
}

static void test_swiglu(void)
{
    const int N = 45, F = 333;
    size_t n = (size_t)N * F;
    struct pair g = pair_rand(n, 4), u = pair_rand(n, 2), h = pair_rand(n, 1);
    struct pair dg = pair_rand(n, 1), du = pair_rand(n, 1), dh = pair_rand(n, 1);
    cpu->swiglu_fwd(h.c, g.c, u.c, N, F);
    gpu->swiglu_fwd(h.g, g.g, u.g, N, F);
    CHECK("swiglu_fwd", h, TOL);
    cpu->swiglu_bwd(dg.c, du.c, dh.c, g.c, u.c, N, F);
    gpu->swiglu_bwd(dg.g, du.g, dh.g, g.g, u.g, N, F);
    CHECK("swiglu_bwd dgate", dg, TOL);
    CHECK("swiglu_bwd dup", du, TOL);
    struct pair *all[] = {&g, &u, &h, &dg, &du, &dh};
    for (int i = 0; i < 6; i++)
        pair_free(all[i]);
}

static void test_crossentropy(void)
{
    const int N = 64, V = 32003;
    int t[64];
    for (int i = 0; i < N; i++)
        t[i] = (int)((urand() + 1.0f) * 0.5f * V) % V;
    t[3] = -100;
    t[7] = V; /* ignored */
    for (int pass = 0; pass < 2; pass++) {
        struct pair lg = pair_rand((size_t)N * V, 8), ls = pair_rand(N, 1);
        float sc = pass ? 1.0f / 61 : 0.0f;
        cpu->crossentropy_fwd_bwd(lg.c, ls.c, t, N, V, sc);
        gpu->crossentropy_fwd_bwd(lg.g, ls.g, t, N, V, sc);
        CHECK(pass ? "crossentropy losses (bwd)" : "crossentropy losses", ls, TOL);
        if (pass)
            CHECK("crossentropy dlogits", lg, TOL);
        pair_free(&lg);
        pair_free(&ls);
    }
}

static void test_elementwise(void)
{
    const size_t n = 1000003;
    struct pair y = pair_rand(n, 1), x = pair_rand(n, 1), m = pair_rand(n, 0.1f);
    struct pair v = pair_rand(n, 0.1f), dir = pair_rand(n, 1);
    cpu->add_inplace(y.c, x.c, n);
    gpu->add_inplace(y.g, x.g, n);
    CHECK("add_inplace", y, TOL);
    cpu->scale(y.c, n, 0.37f);
    gpu->scale(y.g, n, 0.37f);
    CHECK("scale", y, TOL);
    cpu->dropout(x.c, y.c, n, 0.1f, 777);
    gpu->dropout(x.g, y.g, n, 0.1f, 777);
    CHECK("dropout", x, TOL);
    cpu->scale(v.c, n, 0.0f); /* second moments must be >= 0 */
    gpu->scale(v.g, n, 0.0f);
    cpu->adam_direction(dir.c, m.c, v.c, x.c, n, 0.9f, 0.999f, 1e-8f);
    gpu->adam_direction(dir.g, m.g, v.g, x.g, n, 0.9f, 0.999f, 1e-8f);
    BITS("adam_direction dir", dir);
    BITS("adam_direction m", m);
    BITS("adam_direction v", v);
    cpu->apply_update(y.c, dir.c, n, 1e-3f, 1e-5f);
    gpu->apply_update(y.g, dir.g, n, 1e-3f, 1e-5f);
    BITS("apply_update", y);
    /* on identical input (y already differs by rounding): only the
     * summation order of the double reduction may differ; added twice onto
     * an accumulator in each backend's memory. Lengths: this test's, fewer
     * than the device's blocks, and a block range that leaves each thread a
     * tail of 1 to 3 elements beyond its unrolled loads */
    const size_t lens[] = {n, 5, 1024 * 1027 + 333};
    for (int t = 0; t < 6; t++) { /* sumsq_add, then dot_add (w . u) */
        const size_t len = lens[t % 3];
        struct pair w = pair_rand(len, 1), u = pair_rand(len, 1);
        double sc = 0.0, sg = 0.0, *acc = gpu->alloc(sizeof *acc);
        gpu->zero(acc, sizeof *acc);
        for (int k = 0; k < 2; k++) {
            if (t < 3) {
                cpu->sumsq_add(&sc, w.c, len);
                gpu->sumsq_add(acc, w.g, len);
            } else {
                cpu->dot_add(&sc, w.c, u.c, len);
                gpu->dot_add(acc, w.g, u.g, len);
            }
        }
        gpu->download(&sg, acc, sizeof sg);
        gpu->free(acc);
        double rel = fabs(sc - sg) / fabs(sc);
        pair_free(&w);
        pair_free(&u);
        char name[64];
        snprintf(name, sizeof name, "%s n=%zu", t < 3 ? "sumsq" : "dot", len);
        printf("%s %-28s rel %.3e tol 1e-12\n", rel <= 1e-12 ? "PASS" : "FAIL", name, rel);
        failures += !(rel <= 1e-12);
    }
    struct pair *all[] = {&y, &x, &m, &v, &dir};
    for (int i = 0; i < 5; i++)
        pair_free(all[i]);
}

/* G (m,n) = U diag(s) W^T with a decaying spectrum, so the top subspace is
 * well separated */
static float *spread_matrix(int m, int n)
{
    float *a = host_rand((size_t)m * n, 1), *g = calloc((size_t)m * n, sizeof(float));
    int k = m < n ? m : n;
    for (int j = 0; j < k; j++) {
        float s = powf(0.8f, (float)j);
        for (int i = 0; i < m; i++)
            for (int c = 0; c < n; c++)
                g[(size_t)i * n + c] += s * a[(size_t)i * n + j % n] * a[(size_t)(j % m) * n + c];
    }
    free(a);
    return g;
}

/* The randomized method once per solver of the small eigenproblem
 * (OWLORE_CUDA_EIG, read at each refresh), the exact one once. */
static void test_lowrank(void)
{
    const int shapes[2][2] = {{96, 40}, {40, 96}};
    const char *eigs[] = {"syevd", "syevj", "host"};
    for (int s = 0; s < 2; s++)
        for (int variant = 0; variant < 4; variant++) {
            int m = shapes[s][0], n = shapes[s][1], r = 8, side = m >= n ? 0 : 1;
            int method = variant > 0;
            if (method)
                setenv("OWLORE_CUDA_EIG", eigs[variant - 1], 1);
            float *g = spread_matrix(m, n);
            struct pair G = {put(cpu, g, (size_t)m * n), put(gpu, g, (size_t)m * n),
                             (size_t)m * n};
            size_t np = (size_t)r * (side == 0 ? n : m);
            struct pair P = pair_rand(np, 1);
            unsigned long long r1 = 99, r2 = 99;
            int rc1 = cpu->lowrank_basis(P.c, G.c, m, n, r, side, method, 10, 2, &r1);
            int rc2 = gpu->lowrank_basis(P.g, G.g, m, n, r, side, method, 10, 2, &r2);
            char name[64];
            snprintf(name, sizeof name, "lowrank_basis side=%d %s", side,
                     method ? eigs[variant - 1] : "exact");
            if (rc1 != 0 || rc2 != 0) {
                printf("FAIL %-28s rc cpu %d cuda %d\n", name, rc1, rc2);
                failures++;
            } else {
                CHECK(name, P, 1e-5);
            }
            free(g);
            pair_free(&G);
            pair_free(&P);
        }
    unsetenv("OWLORE_CUDA_EIG");
}

/* The finder's l = 18 columns on gradients of rank below them: P must be
 * orthonormal and its span must hold G, ||G - P P^T G|| / ||G|| (side 1)
 * or ||G - G P^T P|| / ||G|| (side 0) <= 1e-5 (the basis beyond the rank is
 * arbitrary, so the CPU's P is no reference). */
static void check_basis_holds(const char *what, const float *g, int m, int n, int side)
{
    const int r = 8, len = side ? m : n;
    float *p = malloc((size_t)r * len * sizeof(float));
    float *G = put(gpu, g, (size_t)m * n), *P = gpu->alloc((size_t)r * len * sizeof(float));
    unsigned long long rng = 7;
    int rc = gpu->lowrank_basis(P, G, m, n, r, side, 1, 10, 2, &rng);
    gpu->download(p, P, (size_t)r * len * sizeof(float));
    double num = 0, den = 0, orth = 0;
    for (int i = 0; i < m; i++) /* residual of G row i (side 0) or column j (side 1) */
        for (int j = 0; j < n; j++) {
            double proj = 0;
            for (int k = 0; k < r; k++) {
                double c = 0; /* coefficient of G's row i / column j on vector k */
                for (int t = 0; t < len; t++)
                    c += side ? (double)p[(size_t)t * r + k] * g[(size_t)t * n + j]
                              : (double)p[(size_t)k * len + t] * g[(size_t)i * n + t];
                proj += c * (side ? p[(size_t)i * r + k] : p[(size_t)k * len + j]);
            }
            double e = g[(size_t)i * n + j] - proj;
            num += e * e;
            den += (double)g[(size_t)i * n + j] * g[(size_t)i * n + j];
        }
    for (int k = 0; k < r; k++) /* |<p_k, p_k2> - [k == k2]| */
        for (int k2 = 0; k2 < r; k2++) {
            double dot = 0;
            for (int t = 0; t < len; t++)
                dot += side ? (double)p[(size_t)t * r + k] * p[(size_t)t * r + k2]
                            : (double)p[(size_t)k * len + t] * p[(size_t)k2 * len + t];
            orth = fmax(orth, fabs(dot - (k == k2)));
        }
    char why[512], name[64];
    double res = rc != 0 ? INFINITY : den > 0 ? num / den : 0.0;
    int bad = !(res <= 1e-5) || !(orth <= 1e-5) || gpu->error(why, sizeof why);
    snprintf(name, sizeof name, "lowrank_basis %s side=%d", what, side);
    printf("%s %-28s nmse %.3e orth %.1e tol 1e-05\n", bad ? "FAIL" : "PASS", name, res, orth);
    failures += bad;
    free(p);
    gpu->free(G);
    gpu->free(P);
}

/* Three gradients of rank below l. A dense rank-3 product: fp32 rounding
 * fills the sketch's other columns, so CholeskyQR (in double) may succeed
 * on a Gram matrix of condition about 1e14 and its Q must still be right.
 * Three nonzero columns (side 0) or rows (side 1): the sketches have
 * exactly three nonzero rows, the second factorisation of the last
 * CholeskyQR3 fails (as in a host emulation with LAPACK's dpotrf) and the
 * finder runs again by Householder QR. Zero: the first one fails. */
static void test_lowrank_rank_deficient(void)
{
    const int shapes[2][2] = {{96, 40}, {40, 96}}, rank = 3, lines[3] = {1, 17, 30};
    for (int s = 0; s < 2; s++) {
        const int m = shapes[s][0], n = shapes[s][1], side = m >= n ? 0 : 1;
        float *a = host_rand((size_t)m * rank, 1), *b = host_rand((size_t)rank * n, 1);
        float *g = calloc((size_t)m * n, sizeof(float));
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < rank; k++)
                    g[(size_t)i * n + j] += a[(size_t)i * rank + k] * b[(size_t)k * n + j];
        check_basis_holds("rank 3", g, m, n, side);
        memset(g, 0, (size_t)m * n * sizeof(float));
        for (int k = 0; k < rank; k++) /* side 0: columns lines[k]; side 1: rows */
            for (int t = 0; t < (side ? n : m); t++)
                g[side ? (size_t)lines[k] * n + t : (size_t)t * n + lines[k]] =
                    a[(size_t)(t % m) * rank + k] + 0.5f;
        check_basis_holds("3 lines", g, m, n, side);
        memset(g, 0, (size_t)m * n * sizeof(float));
        check_basis_holds("zero", g, m, n, side);
        free(a);
        free(b);
        free(g);
    }
}

/* ---- bf16 storage: bit-exact ---- */

static uint32_t ubits(void)
{
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(seed >> 32);
}

/* n bf16 patterns: a quarter special (NaN, infinities, zeros, denormals,
 * extremes), the rest random */
static uint16_t *bf16_patterns(size_t n)
{
    static const uint16_t special[] = {
        0x7F80, 0xFF80,                         /* +-Inf */
        0x7FC0, 0xFFC0, 0x7F81, 0xFF81, 0x7FFF, 0xFFFF, /* NaN, quiet and signalling */
        0x0000, 0x8000,                         /* +-0 */
        0x0001, 0x8001, 0x007F, 0x807F, 0x0040, /* denormals */
        0x0080, 0x7F7F, 0xFF7F, 0x3F80, 0xBF81, /* smallest normal, largest, near 1 */
    };
    const size_t ns = sizeof special / sizeof special[0];
    uint16_t *h = malloc(n * sizeof *h + 1);
    for (size_t i = 0; i < n; i++)
        h[i] = i % 4 == 1 ? special[(ubits() >> 8) % ns] : (uint16_t)(ubits() >> 16);
    return h;
}

/* n fp32 values: random bit patterns (every class, NaN included), specials
 * (NaN payloads, infinities, zeros, denormals, the largest finite values,
 * which may round up into an infinity), values of any exponent, and small
 * weights */
static float *f32_patterns(size_t n)
{
    static const uint32_t special[] = {
        0x7F800000u, 0xFF800000u,                           /* +-Inf */
        0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, /* NaN */
        0x7FBFFFFFu, 0x7FFFFFFFu, 0xFFFFFFFFu, 0x7F80FFFFu,
        0x00000000u, 0x80000000u,                           /* +-0 */
        0x00000001u, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu, /* denormals */
        0x0000FFFFu, 0x00010000u, 0x8000FFFFu, 0x007F8000u,
        0x00800000u, 0x80800000u,                           /* smallest normal */
        0x7F7FFFFFu, 0xFF7FFFFFu, 0x7F7F8000u, 0x7F7F0001u, /* largest finite */
        0x3F800000u, 0x3F80FFFFu, 0xBF807FFFu, 0x3F808000u, /* 1 and neighbours */
    };
    const size_t ns = sizeof special / sizeof special[0];
    float *h = malloc(n * sizeof *h + 1);
    for (size_t i = 0; i < n; i++) {
        uint32_t b; /* stored as bits: a signalling NaN stays what it is */
        float x;
        switch (i % 4) {
        case 0:
            b = ubits();
            break;
        case 1:
            b = special[(ubits() >> 8) % ns];
            break;
        case 2: /* exponents 2^-150 .. 2^127: denormals to near the largest */
            x = ldexpf(urand(), (int)(ubits() % 278) - 150);
            memcpy(&b, &x, sizeof b);
            break;
        default:
            x = 0.02f * urand();
            memcpy(&b, &x, sizeof b);
        }
        memcpy(h + i, &b, sizeof b);
    }
    return h;
}

/* bf16_expand of n patterns from element off of h (off + n of them) on both
 * backends; the destinations, zero around the written range, compared in
 * full (a write out of range shows too) */
static void expand_case(const char *name, const uint16_t *h, size_t n, size_t off)
{
    size_t total = off + n + 2;
    unsigned short *gs = gpu->alloc(total * sizeof *gs);
    float *gd = gpu->alloc(total * sizeof *gd), *cd = calloc(total, sizeof *cd);
    gpu->upload(gs, h, (off + n) * sizeof *gs);
    gpu->bf16_expand(gd + off, gs + off, n);
    cpu->bf16_expand(cd + off, h + off, n);
    report_bits(name, bits_differ(gd, cd, total, sizeof *cd), total);
    gpu->free(gs);
    gpu->free(gd);
    free(cd);
}

/* bf16_round of n values from element off of h with seed s, or with
 * nearest set bf16_narrow (to nearest, no seed), as expand_case */
static void round_case(const char *name, const float *h, size_t n, size_t off,
                       unsigned long long s, int nearest)
{
    size_t total = off + n + 2;
    float *gs = gpu->alloc(total * sizeof *gs);
    unsigned short *gd = gpu->alloc(total * sizeof *gd), *cd = calloc(total, sizeof *cd);
    gpu->upload(gs, h, (off + n) * sizeof *gs);
    if (nearest) {
        gpu->bf16_narrow(gd + off, gs + off, n);
        cpu->bf16_narrow(cd + off, h + off, n);
    } else {
        gpu->bf16_round(gd + off, gs + off, n, s);
        cpu->bf16_round(cd + off, h + off, n, s);
    }
    report_bits(name, bits_differ(gd, cd, total, sizeof *cd), total);
    gpu->free(gs);
    gpu->free(gd);
    free(cd);
}

/* embedding_fwd_bf16: rows of a (V,D) table of bf16 patterns, widened */
static void embedding_bf16_case(const uint16_t *h)
{
    enum { V = 101, D = 96, N = 300 };
    int tok[N];
    for (int i = 0; i < N; i++)
        tok[i] = (int)((urand() + 1.0f) * 0.5f * V) % V;
    unsigned short *gt = gpu->alloc((size_t)V * D * sizeof *gt);
    float *go = gpu->alloc((size_t)N * D * sizeof *go), *co = malloc((size_t)N * D * sizeof *co);
    gpu->upload(gt, h, (size_t)V * D * sizeof *gt);
    gpu->embedding_fwd_bf16(go, tok, gt, N, D);
    cpu->embedding_fwd_bf16(co, tok, h, N, D);
    report_bits("embedding_fwd_bf16", bits_differ(go, co, (size_t)N * D, sizeof *co),
                (size_t)N * D);
    gpu->free(gt);
    gpu->free(go);
    free(co);
}

static void test_bf16(void)
{
    const size_t n = 1000003; /* not a multiple of the block size */
    uint16_t *h16 = bf16_patterns(n);
    expand_case("bf16_expand", h16, n, 0);
    expand_case("bf16_expand n=257 at 3", h16, 257, 3);
    expand_case("bf16_expand n=1", h16, 1, 0);
    expand_case("bf16_expand n=0", h16, 0, 1);
    embedding_bf16_case(h16);
    free(h16);
    float *h32 = f32_patterns(n);
    round_case("bf16_round", h32, n, 0, 777, 0);
    /* seed + i passes 2^64 at i = 128 */
    round_case("bf16_round n=257 at 3, wraps", h32, 257, 3, 0ULL - 128, 0);
    round_case("bf16_round n=1", h32, 1, 0, 5, 0);
    round_case("bf16_round n=0", h32, 0, 1, 5, 0);
    round_case("bf16_narrow", h32, n, 0, 0, 1);
    round_case("bf16_narrow n=257 at 3", h32, 257, 3, 0, 1);
    round_case("bf16_narrow n=0", h32, 0, 1, 0, 1);
    free(h32);
}

/* n bf16 weights (patterns of values in [-2, 2)) on both backends: the
 * host copy (freed by the caller) and a device copy in *dev */
static unsigned short *bf16_weights(size_t n, unsigned short **dev)
{
    unsigned short *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        float x = 2.0f * urand();
        uint32_t b;
        memcpy(&b, &x, sizeof b);
        h[i] = (unsigned short)(b >> 16);
    }
    *dev = gpu->alloc(n * sizeof *h);
    gpu->upload(*dev, h, n * sizeof *h);
    return h;
}

/* the fused optimizer updates of bf16 weights (adamw_bf16, bf16_add_round)
 * on the same inputs, weight decay on */
static void test_bf16_updates(void)
{
    const size_t n = 1000003;
    unsigned short *gw, *hw = bf16_weights(n, &gw);
    struct pair g = pair_rand(n, 1), m = pair_rand(n, 0.1f), v = pair_rand(n, 1);
    float *hv = malloc(n * sizeof *hv);
    cpu->download(hv, v.c, n * sizeof *hv);
    for (size_t i = 0; i < n; i++) /* second moments are >= 0 */
        hv[i] *= hv[i];
    cpu->upload(v.c, hv, n * sizeof *hv);
    gpu->upload(v.g, hv, n * sizeof *hv);
    /* whole arrays (four elements at a time and a tail), then all but the
     * first element (an odd offset: one at a time) */
    for (size_t o = 0; o < 2; o++) {
        cpu->adamw_bf16(hw + o, m.c + o, v.c + o, g.c + o, n - o, 0.9f, 0.999f, 1e-8f, 1e-3f,
                        1e-4f, 4321);
        gpu->adamw_bf16(gw + o, m.g + o, v.g + o, g.g + o, n - o, 0.9f, 0.999f, 1e-8f, 1e-3f,
                        1e-4f, 4321);
        report_bits(o ? "adamw_bf16 w at 1" : "adamw_bf16 w",
                    bits_differ(gw, hw, n, sizeof *hw), n);
        BITS(o ? "adamw_bf16 m at 1" : "adamw_bf16 m", m);
        BITS(o ? "adamw_bf16 v at 1" : "adamw_bf16 v", v);
        cpu->bf16_add_round(hw + o, g.c + o, n - o, 1e-4f, 8765);
        gpu->bf16_add_round(gw + o, g.g + o, n - o, 1e-4f, 8765);
        report_bits(o ? "bf16_add_round at 1" : "bf16_add_round",
                    bits_differ(gw, hw, n, sizeof *hw), n);
    }
    free(hw);
    free(hv);
    gpu->free(gw);
    pair_free(&g);
    pair_free(&m);
    pair_free(&v);
}

/* Both operations on N > 2^32 elements: a random chunk of C values repeated
 * over the device array by doubling copies, rounded with a seed for which
 * seed + i wraps past 2^64 at i = 2^31 + 5, widened back; windows at 2^31
 * and at the end compared with the CPU on the same values (the CPU rounds
 * a window starting at a with seed + a). */
static void test_bf16_large(void)
{
    const size_t N = ((size_t)1 << 32) + 1027, C = (size_t)1 << 22, W = (size_t)1 << 16;
    const unsigned long long s = 0ULL - ((1ULL << 31) + 5);
    float *big32 = gpu->alloc(N * sizeof(float));
    unsigned short *big16 = big32 ? gpu->alloc(N * sizeof(unsigned short)) : NULL;
    if (!big16) {
        if (big32)
            gpu->free(big32);
        printf("SKIP %-28s not enough GPU memory (%.1f GB)\n", "bf16 past 2^32 elements",
               (double)N * 6 / 1e9);
        return;
    }
    float *h = f32_patterns(C), *src = malloc(W * sizeof *src);
    float *c32 = malloc(W * sizeof *c32);
    unsigned short *c16 = malloc(W * sizeof *c16), *g16 = malloc(W * sizeof *g16);
    gpu->upload(big32, h, C * sizeof(float));
    for (size_t k = C; k < N; k *= 2) /* big32[i] = h[i % C] */
        gpu->copy(big32 + k, big32, k < N - k ? k : N - k);
    gpu->bf16_round(big16, big32, N, s);
    gpu->bf16_expand(big32, big16, N); /* in order on the stream: after the rounding */
    const size_t at[2] = {((size_t)1 << 31) - W / 2, N - W};
    size_t diff_round = 0, diff_expand = 0;
    for (int w = 0; w < 2; w++) {
        size_t a = at[w];
        for (size_t j = 0; j < W; j++)
            src[j] = h[(a + j) % C];
        cpu->bf16_round(c16, src, W, s + a);
        diff_round += bits_differ(big16 + a, c16, W, sizeof *c16);
        gpu->download(g16, big16 + a, W * sizeof *g16);
        cpu->bf16_expand(c32, g16, W);
        diff_expand += bits_differ(big32 + a, c32, W, sizeof *c32);
    }
    report_bits("bf16_round 2^32+1027", diff_round, 2 * W);
    report_bits("bf16_expand 2^32+1027", diff_expand, 2 * W);
    gpu->free(big32);
    gpu->free(big16);
    free(h);
    free(src);
    free(c32);
    free(c16);
    free(g16);
}

/* Calibration statistics: each column's squares added in row order, in
 * double, onto accumulators that hold something already (twice, so the
 * second call adds to the first): bit for bit the CPU's. */
static void test_col_sumsq(void)
{
    enum { ROWS = 333, COLS = 1000 };
    struct pair x = pair_rand((size_t)ROWS * COLS, 3);
    double *c = malloc(COLS * sizeof *c), *g = gpu->alloc(COLS * sizeof *g);
    for (int j = 0; j < COLS; j++)
        c[j] = 0.25 * j;
    gpu->upload(g, c, COLS * sizeof *c);
    for (int k = 0; k < 2; k++) {
        cpu->col_sumsq_add(c, x.c, ROWS, COLS);
        gpu->col_sumsq_add(g, x.g, ROWS, COLS);
    }
    report_bits("col_sumsq_add", bits_differ(g, c, COLS, sizeof *c), COLS);
    free(c);
    gpu->free(g);
    pair_free(&x);
}

int main(int argc, char **argv)
{
    char err[512];
    cpu = backend_cpu();
    gpu = backend_cuda(err, sizeof err);
    if (!gpu) {
        fprintf(stderr, "gpu_parity: %s\n", err);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "bf16-products") == 0) {
        /* OWLORE_CUDA_MATH=bf16: the products' operands rounded to bf16
         * (relative error 2^-9 each), sums in fp32 */
        const char *math = getenv("OWLORE_CUDA_MATH");
        if (!math || strcmp(math, "bf16") != 0) {
            fprintf(stderr, "gpu_parity: bf16-products needs OWLORE_CUDA_MATH=bf16\n");
            return 2;
        }
        test_matmul(37, 53, 129, 0, 1e-4);  /* operands rounded by cuBLAS */
        test_matmul(300, 260, 264, 3, 1e-4); /* rounded by our kernel first */
        test_matmul(64, 40, 5000, 1, 1e-4);  /* K split, rounded by cuBLAS */
        test_matmul(300, 280, 9000, 2, 1e-4); /* K split, rounded by our kernel */
        test_gram(512, 4100, 1e-4);          /* one operand rounded once, K split */
        test_matmul_bf16(1e-4);
        /* the tensor-core attention path: q, k, v, dout, P and dS rounded to
         * bf16 (relative error up to 2^-8, about 2^-9 rms, each), sums in
         * fp32; the dot products' relative errors add up to an nmse of about
         * 1e-5 in dq, dk (three roundings deep), less in out and dv */
        test_attention("tc", 1, 512, 32, 32, 128, 1e-4); /* the 7B shape */
        test_attention("tc", 2, 77, 4, 2, 64, 1e-4);     /* tails, GQA */
        test_attention("tc", 1, 300, 8, 2, 128, 1e-4);   /* tails, groups of 4 */
        printf("%s: %d failed\n", failures ? "FAIL" : "PASS", failures);
        return failures ? 1 : 0;
    }
    test_matmul(37, 53, 129, 0, TOL);
    test_matmul(300, 260, 264, 3, TOL);
    test_matmul(64, 40, 4100, 1, TOL); /* K split into 4 slices, the last shorter */
    test_gram(512, 4100, TOL);
    test_matmul_bf16(TOL);
    test_embedding();
    test_rmsnorm();
    test_rope();
    test_attention("gemm", 2, 77, 4, 2, 64, TOL);
    test_attention("gemm", 1, 130, 8, 8, 128, TOL);
    test_attention("gemm", 2, 40, 8, 4, 8, TOL);
    test_attention("flash", 1, 2100, 2, 1, 64, TOL); /* 2100^2 floats > 16 MiB */
    test_swiglu();
    test_crossentropy();
    test_elementwise();
    test_col_sumsq();
    test_lowrank();
    test_lowrank_rank_deficient();
    test_bf16();
    test_bf16_updates();
    test_bf16_large();
    printf("%s: %d failed\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
