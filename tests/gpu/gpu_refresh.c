/*
 * gpu_refresh.c: what a GaLore projector refresh costs on a backend, and
 * what the randomized range finder gives up for it.
 *
 *   gpu_refresh [BACKEND [M N R]]     default cuda 4096 11008 128
 *
 * G (M,N) = A (M,K) diag(s) B (K,N), K = 4R, with Gaussian A and B and
 * s_i = 1/(1+i): a gradient-like matrix whose spectrum decays, so the top R
 * subspace is well defined. The exact basis (lowrank_basis method 0, an SVD)
 * is the reference; then the randomized range finder (method 1, oversample
 * 10) with 0, 1 and 2 power iterations (2 is the recipe default), on CUDA
 * once per solver of its small eigenproblem (OWLORE_CUDA_EIG: syevd, syevj,
 * host), each timed as the median of 5 calls with the host waiting for the
 * device on both sides. captured = ||P P0^T||_F^2 / R: the share of the
 * exact subspace that a basis spans (1 when equal). The backend's math
 * mode (OWLORE_CUDA_MATH, fp32 when unset) decides whether the finder's
 * products use TF32. One JSON line:
 *   {"backend", "math", "m", "n", "r", "exact_s", "runs": [{"eig",
 *    "power_iters", "seconds", "captured"}, ...], "failed": message or null}
 * tools/gpu_check.sh runs it; the refresh share of a run is the seconds of
 * a refresh times the matrices refreshed per period over the period's time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

#define REPEATS 5
#define MAX_RUNS 9 /* 3 eigensolvers x 3 power-iteration counts */

static unsigned long long lcg = 7;
static float gauss_ish(void) /* sum of 4 uniforms, centred: enough here */
{
    float s = 0.0f;
    for (int i = 0; i < 4; i++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        s += (float)((lcg >> 40) * 0x1.0p-24);
    }
    return s - 2.0f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* a device array of n floats filled on the host by f(i) */
static float *device_fill(const struct backend *be, size_t n, float (*f)(size_t))
{
    float *h = malloc(n * sizeof(float)), *d = be->alloc(n * sizeof(float));
    if (!h || !d) {
        free(h);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = f(i);
    be->upload(d, h, n * sizeof(float));
    free(h);
    return d;
}

static float gauss_at(size_t i)
{
    (void)i;
    return gauss_ish();
}

static int B_cols; /* row i of B (K,N) is scaled by s_i */
static float decay_at(size_t i)
{
    return gauss_ish() / (float)(1 + i / (size_t)B_cols);
}

/* ||P P0^T||_F^2 / r for two (len, r) or (r, len) bases given as r vectors
 * of len floats (side 1: columns of (m,r) row-major; side 0: rows) */
static double captured(const float *p, const float *p0, int r, int len, int side)
{
    double total = 0.0;
    for (int a = 0; a < r; a++)
        for (int b = 0; b < r; b++) {
            double dot = 0.0;
            for (int k = 0; k < len; k++)
                dot += side ? (double)p[(size_t)k * r + a] * p0[(size_t)k * r + b]
                            : (double)p[(size_t)a * len + k] * p0[(size_t)b * len + k];
            total += dot * dot;
        }
    return total / r;
}

/* one lowrank_basis call timed between two waits on the device */
static int timed_basis(const struct backend *be, float *P, const float *G, int m, int n, int r,
                       int side, int method, int power_iters, double *seconds)
{
    unsigned long long rng = 12345;
    float w;
    be->download(&w, G, sizeof w);
    double t0 = now_s();
    int rc = be->lowrank_basis(P, G, m, n, r, side, method, 10, power_iters, &rng);
    be->download(&w, P, sizeof w);
    *seconds = now_s() - t0;
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    char err[512] = "";
    const struct backend *be = backend_select(argc > 1 ? argv[1] : "cuda", err, sizeof err);
    const int m = argc > 4 ? atoi(argv[2]) : 4096, n = argc > 4 ? atoi(argv[3]) : 11008;
    const int r = argc > 4 ? atoi(argv[4]) : 128, k = 4 * r;
    if (!be || m < 1 || n < 1 || r < 1 || r > (m < n ? m : n)) {
        fprintf(stderr, "gpu_refresh: %s\nusage: gpu_refresh [cpu|cuda [M N R]]\n",
                be ? "bad shape" : err);
        return 2;
    }
    const int side = m < n, len = side ? m : n; /* GaLore's choice, optim.c */
    B_cols = n;
    float *A = device_fill(be, (size_t)m * k, gauss_at);
    float *B = device_fill(be, (size_t)k * n, decay_at);
    float *G = be->alloc((size_t)m * n * sizeof(float));
    float *P0 = be->alloc((size_t)r * len * sizeof(float));
    float *P = be->alloc((size_t)r * len * sizeof(float));
    float *h0 = malloc((size_t)r * len * sizeof(float)), *h = malloc((size_t)r * len * sizeof(float));
    const char *failed = NULL;
    const int cuda = strcmp(be->name, "cuda") == 0;
    const char *eigs[] = {"syevd", "syevj", "host"};
    const char *run_eig[MAX_RUNS];
    int run_q[MAX_RUNS], n_runs = 0;
    double exact_s = 0, sec[MAX_RUNS] = {0}, cap[MAX_RUNS] = {0};
    if (!A || !B || !G || !P0 || !P || !h0 || !h) {
        failed = "out of memory";
        goto out;
    }
    be->matmul(0, 0, m, n, k, 1.0f, A, k, B, n, 0.0f, G, n); /* G = A diag(s) B */
    if (timed_basis(be, P0, G, m, n, r, side, 0, 0, &exact_s) != 0) {
        failed = "the exact basis failed";
        goto out;
    }
    be->download(h0, P0, (size_t)r * len * sizeof(float));
    for (int v = 0; v < (cuda ? 3 : 1); v++) {
        if (cuda)
            setenv("OWLORE_CUDA_EIG", eigs[v], 1);
        for (int q = 0; q <= 2; q++, n_runs++) {
            double t[REPEATS];
            run_eig[n_runs] = cuda ? eigs[v] : "lapack";
            run_q[n_runs] = q;
            for (int i = 0; i < REPEATS; i++)
                if (timed_basis(be, P, G, m, n, r, side, 1, q, &t[i]) != 0) {
                    failed = "the randomized basis failed";
                    goto out;
                }
            qsort(t, REPEATS, sizeof t[0], cmp_double);
            sec[n_runs] = t[REPEATS / 2];
            be->download(h, P, (size_t)r * len * sizeof(float));
            cap[n_runs] = captured(h, h0, r, len, side);
        }
    }
    if (be->error(err, sizeof err)) {
        for (char *c = err; *c; c++) /* the message goes inside a JSON string */
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '\'';
        failed = err;
    }
out:
    printf("{\"backend\": \"%s\", \"math\": \"%s\", \"m\": %d, \"n\": %d, \"r\": %d, "
           "\"exact_s\": %.4f, \"runs\": [",
           be->name, getenv("OWLORE_CUDA_MATH") ? getenv("OWLORE_CUDA_MATH") : "fp32", m, n, r,
           exact_s);
    for (int i = 0; i < n_runs; i++)
        printf("%s{\"eig\": \"%s\", \"power_iters\": %d, \"seconds\": %.5f, "
               "\"captured\": %.6f}",
               i ? ", " : "", run_eig[i], run_q[i], sec[i], cap[i]);
    printf("], \"failed\": %s%s%s}\n", failed ? "\"" : "", failed ? failed : "null",
           failed ? "\"" : "");
    free(h0);
    free(h);
    if (A)
        be->free(A);
    if (B)
        be->free(B);
    if (G)
        be->free(G);
    if (P0)
        be->free(P0);
    if (P)
        be->free(P);
    return failed ? 1 : 0;
}
