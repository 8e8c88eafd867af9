/*
 * gpu_step_parts.c: parts of a 7B-shaped OwLore step timed on their own.
 * First the matrix products whose operands are fp32 activations or
 * gradients (not bf16 weights), each in every way cuBLAS can run it, so
 * that the bf16 mode's choice (kernels/cuda/matmul.cu: round both operands
 * to bf16 first when all three sizes are >= 256, else leave the rounding to
 * cuBLAS) rests on a measurement; then the CUDA backend's attention forward
 * and backward at 512 tokens, 32 heads of 128, in the process's math mode
 * (OWLORE_CUDA_MATH), whose share of a step the op profile reports but
 * whose parts it cannot separate.
 *
 *   gpu_step_parts            (no arguments; needs a CUDA device)
 *
 * Products, as the engine hands them to cuBLAS (column-major, op(A) (m,k),
 * op(B) (k,n), at 512 tokens):
 *   wgrad_mlp     dW of an MLP matrix, X^T dY over the tokens  4096 x 11008 x 512
 *   wgrad_attn    dW of an attention matrix                    4096 x 4096 x 512
 *   wgrad_head    dW of the classifier                         4096 x 32000 x 512
 *   project       GaLore's R = P^T G                            128 x 11008 x 4096
 *   back_project  GaLore's P R                                  4096 x 11008 x 128
 *   forward_bf16  a block's forward product on bf16 weights    11008 x 512 x 4096
 * Ways, each the median of 9 calls after a warm-up, the host waiting on both
 * sides: fp32 (cublasSgemm), tf32 (32F_FAST_TF32), fast16bf (fp32 operands,
 * 32F_FAST_16BF: cuBLAS rounds them), bf16 (operands already bf16,
 * COMPUTE_32F) and narrow (both fp32 operands rounded to bf16 by the CUDA
 * backend's bf16_round, on its own stream: the traffic of matmul.cu's
 * rounding), so that narrow + bf16 is what bf16 mode's large products
 * cost. forward_bf16 has a bf16 weight and is timed as bf16 only: the rate
 * cuBLAS reaches at this token count. One JSON line:
 *   {"products": [{"name", "m", "n", "k", "ms": {way: ms}}], "math",
 *    "attention_ms": {"fwd", "bwd"}, "failed": msg or null}
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"

#define REPEATS 9

struct product {
    const char *name;
    int ta, tb, m, n, k;
    int weights_bf16; /* timed as bf16 only */
};

static const struct product products[] = {
    {"wgrad_mlp", 0, 1, 4096, 11008, 512, 0},
    {"wgrad_attn", 0, 1, 4096, 4096, 512, 0},
    {"wgrad_head", 0, 1, 4096, 32000, 512, 0},
    {"project", 1, 0, 128, 11008, 4096, 0},
    {"back_project", 0, 0, 4096, 11008, 128, 0},
    {"forward_bf16", 1, 0, 11008, 512, 4096, 1},
};
#define N_PRODUCTS (sizeof products / sizeof products[0])
#define MAX_ELEMS ((size_t)4096 * 32000) /* the largest operand or result */

static const char *ways[] = {"fp32", "tf32", "fast16bf", "bf16", "narrow"};
#define N_WAYS (sizeof ways / sizeof ways[0])

static const struct backend *be;
static cublasHandle_t blas;
static float *a, *b, *c;          /* fp32 operands and result */
static unsigned short *a16, *b16; /* bf16 operands */
static const char *failed;

static void check(int ok, const char *what)
{
    if (!ok && !failed)
        failed = what;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y)
{
    double p = *(const double *)x, q = *(const double *)y;
    return p < q ? -1 : p > q;
}

/* one call of product p in way w */
static void run(const struct product *p, int w)
{
    const float one = 1.0f, zero = 0.0f;
    const cublasOperation_t oa = p->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t ob = p->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int lda = p->ta ? p->k : p->m, ldb = p->tb ? p->n : p->k;
    const char *way = ways[w];
    if (strcmp(way, "narrow") == 0) { /* both operands, as matmul.cu rounds them */
        be->bf16_round(a16, a, (size_t)p->m * p->k, 1);
        be->bf16_round(b16, b, (size_t)p->k * p->n, 2);
    } else if (strcmp(way, "fp32") == 0)
        check(cublasSgemm(blas, oa, ob, p->m, p->n, p->k, &one, a, lda, b, ldb, &zero, c,
                          p->m) == CUBLAS_STATUS_SUCCESS, "cublasSgemm");
    else if (strcmp(way, "tf32") == 0 || strcmp(way, "fast16bf") == 0)
        check(cublasGemmEx(blas, oa, ob, p->m, p->n, p->k, &one, a, CUDA_R_32F, lda, b,
                           CUDA_R_32F, ldb, &zero, c, CUDA_R_32F, p->m,
                           way[0] == 't' ? CUBLAS_COMPUTE_32F_FAST_TF32
                                         : CUBLAS_COMPUTE_32F_FAST_16BF,
                           CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "cublasGemmEx");
    else
        check(cublasGemmEx(blas, oa, ob, p->m, p->n, p->k, &one, a16, CUDA_R_16BF, lda, b16,
                           CUDA_R_16BF, ldb, &zero, c, CUDA_R_32F, p->m, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS, "cublasGemmEx bf16");
}

/* attention at the 7B shape, B 1, T 512, 32 heads of 128 (q, k, v, out,
 * dout, dq, dk, dv: (512, 4096) slices of the big buffers): forward when
 * w is 0, else backward */
#define ATT_T 512
#define ATT_H 32
#define ATT_HD 128
static void attention(const struct product *p, int w)
{
    (void)p;
    const size_t n = (size_t)ATT_T * ATT_H * ATT_HD;
    float *q = a, *k = a + n, *v = a + 2 * n, *out = b, *dout = b + n, *lse = b + 2 * n;
    float *dq = c, *dk = c + n, *dv = c + 2 * n;
    if (w == 0)
        be->attention_fwd(out, lse, q, k, v, 1, ATT_T, ATT_T, 0, ATT_H, ATT_H, ATT_HD);
    else
        be->attention_bwd(dq, dk, dv, dout, q, k, v, out, lse, 1, ATT_T, ATT_H, ATT_H, ATT_HD);
}

/* median seconds of REPEATS calls of call(p, w) after a warm-up */
static double time_median(void (*call)(const struct product *, int), const struct product *p,
                          int w)
{
    double t[REPEATS];
    for (int i = -1; i < REPEATS && !failed; i++) {
        check(cudaDeviceSynchronize() == cudaSuccess, "sync");
        double t0 = now_s();
        call(p, w);
        check(cudaDeviceSynchronize() == cudaSuccess, "sync");
        if (i >= 0)
            t[i] = now_s() - t0;
    }
    if (failed)
        return 0.0;
    qsort(t, REPEATS, sizeof t[0], cmp_double);
    return t[REPEATS / 2];
}

/* the buffers, filled with values in [-1, 1) and their bf16 roundings */
static void setup(void)
{
    char err[256];
    be = backend_cuda(err, sizeof err);
    if (!be) {
        failed = "no CUDA device";
        return;
    }
    check(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS, "cuBLAS cannot be opened");
    float *h = malloc(MAX_ELEMS * sizeof(float));
    a = be->alloc(MAX_ELEMS * sizeof(float));
    b = be->alloc(MAX_ELEMS * sizeof(float));
    c = be->alloc(MAX_ELEMS * sizeof(float));
    a16 = be->alloc(MAX_ELEMS * sizeof(unsigned short));
    b16 = be->alloc(MAX_ELEMS * sizeof(unsigned short));
    check(h && a && b && c && a16 && b16, "out of memory");
    if (failed) {
        free(h);
        return;
    }
    unsigned long long s = 5;
    for (size_t i = 0; i < MAX_ELEMS; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        h[i] = (float)((s >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
    }
    be->upload(a, h, MAX_ELEMS * sizeof(float));
    be->upload(b, h, MAX_ELEMS * sizeof(float));
    be->bf16_round(a16, a, MAX_ELEMS, 3);
    be->bf16_round(b16, b, MAX_ELEMS, 4);
    check(cudaDeviceSynchronize() == cudaSuccess, "setup");
    free(h);
}

int main(void)
{
    setup();
    printf("{\"products\": [");
    for (size_t i = 0; i < N_PRODUCTS && !failed; i++) {
        const struct product *p = &products[i];
        printf("%s{\"name\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"ms\": {", i ? ", " : "",
               p->name, p->m, p->n, p->k);
        int first = 1;
        for (size_t w = 0; w < N_WAYS; w++) {
            if (p->weights_bf16 && strcmp(ways[w], "bf16") != 0) /* only bf16 */
                continue;
            double t = time_median(run, p, (int)w);
            printf("%s\"%s\": %.4f", first ? "" : ", ", ways[w], 1e3 * t);
            first = 0;
        }
        printf("}}");
    }
    printf("], \"math\": \"%s\", ", getenv("OWLORE_CUDA_MATH") ? getenv("OWLORE_CUDA_MATH")
                                                                : "fp32");
    if (!failed) {
        double fwd = time_median(attention, NULL, 0), bwd = time_median(attention, NULL, 1);
        printf("\"attention_ms\": {\"fwd\": %.4f, \"bwd\": %.4f}, ", 1e3 * fwd, 1e3 * bwd);
    }
    printf("\"failed\": ");
    if (failed)
        printf("\"%s\"}\n", failed);
    else
        printf("null}\n");
    return failed ? 1 : 0;
}
