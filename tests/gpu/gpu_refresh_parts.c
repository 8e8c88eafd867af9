/*
 * gpu_refresh_parts.c: the cuBLAS and cuSOLVER calls a GaLore projector
 * refresh on the GPU is made of (kernels/cuda/linalg.cu, the randomized
 * range finder), each timed on its own, so that a refresh's time
 * (gpu_refresh) can be placed and the alternatives for its small
 * eigenproblem compared.
 *
 *   gpu_refresh_parts [D E L]      default 4096 11008 138 (rank 128 + 10)
 *
 * X is (d,e); the finder keeps l columns. Parts, each the median of 9 calls
 * after a warm-up, the host waiting for the device on both sides (as the
 * engine's calls are followed by a read of cuSOLVER's info word):
 *   sync            a 4-byte read back: the floor under every info check
 *   sgemm_fp32/tf32 X Omega, (d,l) = (d,e)(e,l), without and with TF32
 *   dsyrk_d/e       the Gram matrix (l,l) of a (d,l) or (e,l) double block
 *   dpotrf          its Cholesky factor, info read back
 *   dtrsm_d/e       A R^-1 for A (d,l) or (e,l)
 *   dpotrf_batched  the same Cholesky factor by cusolverDnDpotrfBatched with a
 *                   batch of one (made for small matrices: fewer launches?)
 *   dsyevd          the (l,l) eigenproblem on the device (what linalg.cu does)
 *   ssyevd          the same in fp32
 *   dsyevj          the same by cuSOLVER's Jacobi method
 *   host_dsyevd     the same by LAPACKE on the host, with both copies
 *   xsyev_batch7/35 7 or 35 such eigenproblems in one cusolverDnXsyevBatched
 *                   call (a block's refreshes, an OwLore resample's): what
 *                   deferring a step's eigenproblems and batching them would
 *                   cost against 7 or 35 dsyevd
 *   householder_d   cusolverDnSgeqrf + Sorgqr of (d,l) (linalg.cu's fallback)
 * composed: the finder with q power iterations, from the parts, for each
 * eigensolver, as linalg.cu runs it: (2q+2) sgemm (fp32) + shifted
 * CholeskyQR passes (each dsyrk + dpotrf + dtrsm), q + 3 of d rows (one
 * for each basis between the power iterations, three for the last) and q
 * of e rows + dsyrk_e + the eigensolver. gpu_refresh's measured time minus this is the rest
 * (conversions to double, finiteness and sign passes, scratch). One JSON line:
 *   {"d", "e", "l", "parts_ms": {name: ms}, "composed_ms": {"dsyevd": [q0,
 *    q1, q2], "dsyevj": [...], "host_dsyevd": [...]}, "failed": msg or null}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>
#include <lapacke.h>

#define REPEATS 9
#define BATCH_MAX 35

struct ctx {
    int d, e, l;
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    float *x, *om, *y;         /* (d,e), (e,l), (d,l) column-major */
    double *ad, *ad0, *ae;     /* (d,l) and a pristine copy, (e,l) */
    double *g, *g0, *work;     /* (l,l), its pristine SPD copy, workspace */
    double *ev;                /* l eigenvalues */
    float *fwork, *tau;        /* Householder workspace and scalars */
    double *hg, *hev;          /* host (l,l) and l */
    int *info;
    int lwork, flwork;
    double **gptr;             /* a device array holding g: the batch of one */
    float *gf, *gf0, *evf, *swork; /* g0 in fp32 and its copy, values, workspace */
    int slwork;
    syevjInfo_t jparams;
    double *gb, *gb0, *evb;    /* BATCH_MAX copies of g and g0, their values */
    int *infob;
    void *bwork, *hwork;       /* the batched solver's workspaces */
    size_t bwork_bytes, hwork_bytes;
    cusolverDnParams_t params;
    const char *failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void check(struct ctx *c, int ok, const char *what)
{
    if (!ok && !c->failed)
        c->failed = what;
}

/* reads the info word back (the engine does after every factorisation) */
static void read_info(struct ctx *c)
{
    int info = -1;
    check(c, cudaMemcpyAsync(&info, c->info, sizeof info, cudaMemcpyDeviceToHost,
                             c->stream) == cudaSuccess, "info copy");
    check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
    check(c, info == 0, "a factorisation reported failure");
}

static void restore(struct ctx *c, void *dst, const void *src, size_t bytes)
{
    check(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream) ==
                 cudaSuccess, "restore copy");
}

/* ---- the parts: setup (untimed) and run ---- */

static void part_sync(struct ctx *c)
{
    read_info(c);
}

static void sgemm(struct ctx *c)
{
    const float one = 1.0f, zero = 0.0f;
    check(c, cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, c->d, c->l, c->e, &one, c->x, c->d,
                         c->om, c->e, &zero, c->y, c->d) == CUBLAS_STATUS_SUCCESS, "sgemm");
}

static void set_fp32(struct ctx *c)
{
    check(c, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH) == CUBLAS_STATUS_SUCCESS, "math");
}

static void set_tf32(struct ctx *c)
{
    check(c, cublasSetMathMode(c->blas, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS,
          "math");
}

static void syrk(struct ctx *c, const double *a, int rows)
{
    const double one = 1.0, zero = 0.0;
    check(c, cublasDsyrk(c->blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, c->l, rows, &one, a,
                         rows, &zero, c->g, c->l) == CUBLAS_STATUS_SUCCESS, "dsyrk");
}

static void syrk_d(struct ctx *c)
{
    syrk(c, c->ad, c->d);
}

static void syrk_e(struct ctx *c)
{
    syrk(c, c->ae, c->e);
}

static void reset_g(struct ctx *c)
{
    restore(c, c->g, c->g0, (size_t)c->l * c->l * sizeof(double));
}

static void potrf(struct ctx *c)
{
    check(c, cusolverDnDpotrf(c->solver, CUBLAS_FILL_MODE_UPPER, c->l, c->g, c->l, c->work,
                              c->lwork, c->info) == CUSOLVER_STATUS_SUCCESS, "dpotrf");
    read_info(c);
}

/* g0's Cholesky factor into g, for the triangular solves */
static void factor_g(struct ctx *c)
{
    reset_g(c);
    potrf(c);
    restore(c, c->ad, c->ad0, (size_t)c->d * c->l * sizeof(double));
}

static void trsm(struct ctx *c, double *a, int rows)
{
    const double one = 1.0;
    check(c, cublasDtrsm(c->blas, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N,
                         CUBLAS_DIAG_NON_UNIT, rows, c->l, &one, c->g, c->l, a, rows) ==
                 CUBLAS_STATUS_SUCCESS, "dtrsm");
}

static void trsm_d(struct ctx *c)
{
    trsm(c, c->ad, c->d);
}

static void trsm_e(struct ctx *c)
{
    trsm(c, c->ae, c->e);
}

static void syevd(struct ctx *c)
{
    check(c, cusolverDnDsyevd(c->solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, c->l,
                              c->g, c->l, c->ev, c->work, c->lwork, c->info) ==
                 CUSOLVER_STATUS_SUCCESS, "dsyevd");
    read_info(c);
}

static void potrf_batched(struct ctx *c)
{
    check(c, cusolverDnDpotrfBatched(c->solver, CUBLAS_FILL_MODE_UPPER, c->l, c->gptr, c->l,
                                     c->info, 1) == CUSOLVER_STATUS_SUCCESS,
          "dpotrfBatched");
    read_info(c);
}

static void reset_gf(struct ctx *c)
{
    restore(c, c->gf, c->gf0, (size_t)c->l * c->l * sizeof(float));
}

static void ssyevd(struct ctx *c)
{
    check(c, cusolverDnSsyevd(c->solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, c->l,
                              c->gf, c->l, c->evf, c->swork, c->slwork, c->info) ==
                 CUSOLVER_STATUS_SUCCESS, "ssyevd");
    read_info(c);
}

static void syevj(struct ctx *c)
{
    check(c, cusolverDnDsyevj(c->solver, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, c->l,
                              c->g, c->l, c->ev, c->work, c->lwork, c->info, c->jparams) ==
                 CUSOLVER_STATUS_SUCCESS, "dsyevj");
    read_info(c);
}

static void host_syevd(struct ctx *c)
{
    const size_t bytes = (size_t)c->l * c->l * sizeof(double);
    check(c, cudaMemcpyAsync(c->hg, c->g, bytes, cudaMemcpyDeviceToHost, c->stream) ==
                 cudaSuccess, "copy to host");
    check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
    check(c, LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', c->l, c->hg, c->l, c->hev) == 0,
          "LAPACKE_dsyevd");
    check(c, cudaMemcpyAsync(c->g, c->hg, bytes, cudaMemcpyHostToDevice, c->stream) ==
                 cudaSuccess, "copy to device");
    check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
}

static void reset_gb(struct ctx *c)
{
    restore(c, c->gb, c->gb0, (size_t)BATCH_MAX * c->l * c->l * sizeof(double));
}

static void syev_batched(struct ctx *c, int count)
{
    int info[BATCH_MAX];
    check(c, cusolverDnXsyevBatched(c->solver, c->params, CUSOLVER_EIG_MODE_VECTOR,
                                    CUBLAS_FILL_MODE_UPPER, c->l, CUDA_R_64F, c->gb, c->l,
                                    CUDA_R_64F, c->evb, CUDA_R_64F, c->bwork, c->bwork_bytes,
                                    c->hwork, c->hwork_bytes, c->infob, count) ==
                 CUSOLVER_STATUS_SUCCESS, "cusolverDnXsyevBatched");
    check(c, cudaMemcpyAsync(info, c->infob, count * sizeof(int), cudaMemcpyDeviceToHost,
                             c->stream) == cudaSuccess, "info copy");
    check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
    for (int i = 0; i < count; i++)
        check(c, info[i] == 0, "a batched eigenproblem reported failure");
}

static void syev_batch7(struct ctx *c)
{
    syev_batched(c, 7);
}

static void syev_batch35(struct ctx *c)
{
    syev_batched(c, BATCH_MAX);
}

static void reset_y(struct ctx *c)
{
    sgemm(c);
}

static void householder(struct ctx *c)
{
    check(c, cusolverDnSgeqrf(c->solver, c->d, c->l, c->y, c->d, c->tau, c->fwork, c->flwork,
                              c->info) == CUSOLVER_STATUS_SUCCESS, "sgeqrf");
    read_info(c);
    check(c, cusolverDnSorgqr(c->solver, c->d, c->l, c->l, c->y, c->d, c->tau, c->fwork,
                              c->flwork, c->info) == CUSOLVER_STATUS_SUCCESS, "sorgqr");
    read_info(c);
}

static void reset_ad(struct ctx *c)
{
    restore(c, c->ad, c->ad0, (size_t)c->d * c->l * sizeof(double));
}

struct part {
    const char *name;
    void (*setup)(struct ctx *); /* before each call, untimed */
    void (*run)(struct ctx *);
};

static const struct part parts[] = {
    {"sync", NULL, part_sync},
    {"sgemm_fp32", set_fp32, sgemm},
    {"sgemm_tf32", set_tf32, sgemm},
    {"dsyrk_d", set_fp32, syrk_d},
    {"dsyrk_e", NULL, syrk_e},
    {"dpotrf", reset_g, potrf},
    {"dpotrf_batched", reset_g, potrf_batched},
    {"dtrsm_d", factor_g, trsm_d},
    {"dtrsm_e", factor_g, trsm_e},
    {"dsyevd", reset_g, syevd},
    {"ssyevd", reset_gf, ssyevd},
    {"dsyevj", reset_g, syevj},
    {"host_dsyevd", reset_g, host_syevd},
    {"xsyev_batch7", reset_gb, syev_batch7},
    {"xsyev_batch35", reset_gb, syev_batch35},
    {"householder_d", reset_y, householder},
};
#define N_PARTS (sizeof parts / sizeof parts[0])

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* median seconds of REPEATS calls after a warm-up */
static double time_part(struct ctx *c, const struct part *p)
{
    double t[REPEATS];
    for (int i = -1; i < REPEATS && !c->failed; i++) {
        if (p->setup)
            p->setup(c);
        check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
        double t0 = now_s();
        p->run(c);
        check(c, cudaStreamSynchronize(c->stream) == cudaSuccess, "sync");
        if (i >= 0)
            t[i] = now_s() - t0;
    }
    if (c->failed)
        return 0.0;
    qsort(t, REPEATS, sizeof t[0], cmp_double);
    return t[REPEATS / 2];
}

/* n values from a fixed linear congruential stream, uniform in [-1, 1) */
static unsigned long long lcg = 11;
static void *random_host(size_t n, int dbl)
{
    char *h = malloc(n * (dbl ? sizeof(double) : sizeof(float)));
    for (size_t i = 0; h && i < n; i++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        double v = (double)(lcg >> 11) * 0x1.0p-52 - 1.0;
        if (dbl)
            ((double *)h)[i] = v;
        else
            ((float *)h)[i] = (float)v;
    }
    return h;
}

static void *device_random(struct ctx *c, size_t n, int dbl)
{
    const size_t bytes = n * (dbl ? sizeof(double) : sizeof(float));
    void *h = random_host(n, dbl), *d = NULL;
    check(c, h && cudaMalloc(&d, bytes) == cudaSuccess &&
                 cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess,
          "out of memory");
    free(h);
    return d;
}

static void *device_zeros(struct ctx *c, size_t bytes)
{
    void *d = NULL;
    check(c, cudaMalloc(&d, bytes) == cudaSuccess && cudaMemset(d, 0, bytes) == cudaSuccess,
          "out of memory");
    return d;
}

/* the buffers, workspaces sized for every part, and g0 = ad0^T ad0 + d I */
static void setup(struct ctx *c)
{
    const size_t dl = (size_t)c->d * c->l, el = (size_t)c->e * c->l, ll = (size_t)c->l * c->l;
    check(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) == cudaSuccess &&
                 cublasCreate(&c->blas) == CUBLAS_STATUS_SUCCESS &&
                 cublasSetStream(c->blas, c->stream) == CUBLAS_STATUS_SUCCESS &&
                 cusolverDnCreate(&c->solver) == CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnSetStream(c->solver, c->stream) == CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnCreateSyevjInfo(&c->jparams) == CUSOLVER_STATUS_SUCCESS,
          "CUDA, cuBLAS or cuSOLVER cannot be opened");
    if (c->failed)
        return;
    c->x = device_random(c, (size_t)c->d * c->e, 0);
    c->om = device_random(c, (size_t)c->e * c->l, 0);
    c->y = device_zeros(c, dl * sizeof(float));
    c->ad = device_random(c, dl, 1);
    c->ad0 = device_zeros(c, dl * sizeof(double));
    c->ae = device_random(c, el, 1);
    c->g = device_zeros(c, ll * sizeof(double));
    c->g0 = device_zeros(c, ll * sizeof(double));
    c->ev = device_zeros(c, (size_t)c->l * sizeof(double));
    c->info = device_zeros(c, sizeof(int));
    c->tau = device_zeros(c, (size_t)c->l * sizeof(float));
    c->hg = malloc(ll * sizeof(double));
    c->hev = malloc((size_t)c->l * sizeof(double));
    check(c, c->hg && c->hev, "out of host memory");
    if (c->failed)
        return;
    restore(c, c->ad0, c->ad, dl * sizeof(double));
    const double one = 1.0, zero = 0.0;
    check(c, cublasDsyrk(c->blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_T, c->l, c->d, &one, c->ad,
                         c->d, &zero, c->g0, c->l) == CUBLAS_STATUS_SUCCESS, "dsyrk");
    double *hg0 = malloc(ll * sizeof(double)); /* + d on the diagonal: well conditioned */
    check(c, hg0 && cudaMemcpy(hg0, c->g0, ll * sizeof(double), cudaMemcpyDeviceToHost) ==
                        cudaSuccess, "copy");
    for (int i = 0; hg0 && i < c->l; i++)
        hg0[(size_t)i * c->l + i] += c->d;
    check(c, hg0 && cudaMemcpy(c->g0, hg0, ll * sizeof(double), cudaMemcpyHostToDevice) ==
                        cudaSuccess, "copy");
    float *hf0 = malloc(ll * sizeof(float)); /* g0 in fp32, for ssyevd */
    for (size_t i = 0; hg0 && hf0 && i < ll; i++)
        hf0[i] = (float)hg0[i];
    c->gf = device_zeros(c, ll * sizeof(float));
    c->gf0 = device_zeros(c, ll * sizeof(float));
    c->evf = device_zeros(c, (size_t)c->l * sizeof(float));
    c->gptr = device_zeros(c, sizeof(double *));
    check(c, !c->failed && hf0 && cudaMemcpy(c->gf0, hf0, ll * sizeof(float),
                                             cudaMemcpyHostToDevice) == cudaSuccess &&
                 cudaMemcpy(c->gptr, &c->g, sizeof(double *), cudaMemcpyHostToDevice) ==
                     cudaSuccess, "copy");
    free(hf0);
    free(hg0);
    int lp = 0, le = 0, lj = 0, lq = 0, lo = 0;
    check(c, cusolverDnDpotrf_bufferSize(c->solver, CUBLAS_FILL_MODE_UPPER, c->l, c->g, c->l,
                                         &lp) == CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnDsyevd_bufferSize(c->solver, CUSOLVER_EIG_MODE_VECTOR,
                                             CUBLAS_FILL_MODE_UPPER, c->l, c->g, c->l, c->ev,
                                             &le) == CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnDsyevj_bufferSize(c->solver, CUSOLVER_EIG_MODE_VECTOR,
                                             CUBLAS_FILL_MODE_UPPER, c->l, c->g, c->l, c->ev,
                                             &lj, c->jparams) == CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnSgeqrf_bufferSize(c->solver, c->d, c->l, c->y, c->d, &lq) ==
                     CUSOLVER_STATUS_SUCCESS &&
                 cusolverDnSorgqr_bufferSize(c->solver, c->d, c->l, c->l, c->y, c->d, c->tau,
                                             &lo) == CUSOLVER_STATUS_SUCCESS,
          "workspace query");
    check(c, cusolverDnSsyevd_bufferSize(c->solver, CUSOLVER_EIG_MODE_VECTOR,
                                         CUBLAS_FILL_MODE_UPPER, c->l, c->gf, c->l, c->evf,
                                         &c->slwork) == CUSOLVER_STATUS_SUCCESS,
          "workspace query");
    c->swork = device_zeros(c, (size_t)(c->slwork > 0 ? c->slwork : 1) * sizeof(float));
    c->lwork = lp > le ? (lp > lj ? lp : lj) : (le > lj ? le : lj);
    c->flwork = lq > lo ? lq : lo;
    c->work = device_zeros(c, (size_t)c->lwork * sizeof(double));
    c->fwork = device_zeros(c, (size_t)c->flwork * sizeof(float));
    c->gb = device_zeros(c, (size_t)BATCH_MAX * ll * sizeof(double));
    c->gb0 = device_zeros(c, (size_t)BATCH_MAX * ll * sizeof(double));
    c->evb = device_zeros(c, (size_t)BATCH_MAX * c->l * sizeof(double));
    c->infob = device_zeros(c, BATCH_MAX * sizeof(int));
    check(c, cusolverDnCreateParams(&c->params) == CUSOLVER_STATUS_SUCCESS, "params");
    if (c->failed)
        return;
    for (int i = 0; i < BATCH_MAX; i++)
        restore(c, c->gb0 + (size_t)i * ll, c->g0, ll * sizeof(double));
    check(c, cusolverDnXsyevBatched_bufferSize(
                 c->solver, c->params, CUSOLVER_EIG_MODE_VECTOR, CUBLAS_FILL_MODE_UPPER, c->l,
                 CUDA_R_64F, c->gb, c->l, CUDA_R_64F, c->evb, CUDA_R_64F, &c->bwork_bytes,
                 &c->hwork_bytes, BATCH_MAX) == CUSOLVER_STATUS_SUCCESS,
          "batched workspace query");
    c->bwork = device_zeros(c, c->bwork_bytes ? c->bwork_bytes : 1);
    c->hwork = malloc(c->hwork_bytes ? c->hwork_bytes : 1);
    check(c, c->hwork != NULL, "out of host memory");
}

static void teardown(struct ctx *c)
{
    void *dev[] = {c->x, c->om, c->y, c->ad, c->ad0, c->ae, c->g, c->g0, c->ev, c->info,
                   c->tau, c->work, c->fwork, c->gb, c->gb0, c->evb, c->infob, c->bwork,
                   c->gptr, c->gf, c->gf0, c->evf, c->swork};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i])
            cudaFree(dev[i]);
    free(c->hg);
    free(c->hev);
    free(c->hwork);
    if (c->params)
        cusolverDnDestroyParams(c->params);
}

static double ms(const char *name, const double *sec)
{
    for (size_t i = 0; i < N_PARTS; i++)
        if (strcmp(parts[i].name, name) == 0)
            return 1e3 * sec[i];
    return 0.0;
}

int main(int argc, char **argv)
{
    struct ctx c = {.d = argc > 3 ? atoi(argv[1]) : 4096,
                    .e = argc > 3 ? atoi(argv[2]) : 11008,
                    .l = argc > 3 ? atoi(argv[3]) : 138};
    if (c.d < 1 || c.e < 1 || c.l < 1 || c.l > c.d || c.l > c.e) {
        fprintf(stderr, "usage: gpu_refresh_parts [D E L], L <= D, E\n");
        return 2;
    }
    double sec[N_PARTS] = {0};
    setup(&c);
    for (size_t i = 0; i < N_PARTS && !c.failed; i++)
        sec[i] = time_part(&c, &parts[i]);
    printf("{\"d\": %d, \"e\": %d, \"l\": %d, \"parts_ms\": {", c.d, c.e, c.l);
    for (size_t i = 0; i < N_PARTS; i++)
        printf("%s\"%s\": %.4f", i ? ", " : "", parts[i].name, 1e3 * sec[i]);
    printf("}, \"composed_ms\": {");
    const char *eig[] = {"dsyevd", "dsyevj", "host_dsyevd"};
    const double pass_d = ms("dsyrk_d", sec) + ms("dpotrf", sec) + ms("dtrsm_d", sec);
    const double pass_e = ms("dsyrk_e", sec) + ms("dpotrf", sec) + ms("dtrsm_e", sec);
    for (int k = 0; k < 3; k++) {
        printf("%s\"%s\": [", k ? ", " : "", eig[k]);
        for (int q = 0; q <= 2; q++)
            printf("%s%.4f", q ? ", " : "",
                   (2 * q + 2) * ms("sgemm_fp32", sec) + (q + 3) * pass_d + q * pass_e +
                       ms("dsyrk_e", sec) + ms(eig[k], sec));
        printf("]");
    }
    printf("}, \"failed\": %s%s%s}\n", c.failed ? "\"" : "", c.failed ? c.failed : "null",
           c.failed ? "\"" : "");
    teardown(&c);
    return c.failed ? 1 : 0;
}
