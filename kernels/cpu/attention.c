/*
 * attention.c: causal grouped-query attention, forward and backward.
 *
 * Flash-attention style on the CPU, in tiles through BLAS: the (T,T) score
 * matrix is never stored. Work is split into blocks of up to BLK consecutive
 * query rows [i0, i1) of one (sequence b, query head h); query head h reads
 * key/value head g = h / (H/KV). A block only meets keys 0..q_off+i1-1 (later
 * keys are never computed), its scores S (rows, nk) live in per-thread
 * scratch of BLK x Tk floats (backward: S/P and dP, two of them), and the
 * entries above the causal diagonal inside the block are masked. Q, K, V, O
 * and their gradients are read and written in place as strided matrices:
 * the rows of head h have leading dimension H*hd, those of kv head g leading
 * dimension KV*hd. Products of one query row (decoding) skip BLAS, and the
 * exponentials use a vectorisable exp.
 *
 * Forward, per block:
 *   S = scale * Q_blk . K^T;  row softmax (max-subtracted, sum in double);
 *   lse_i = max_i + log(sum_i) saved;  O_blk = P . V.
 * Backward recomputes P from S and the saved lse, per block:
 *   P = exp(S - lse);  dP = dO_blk . V^T;  D_i = dO_i . O_i;
 *   dS = P o (dP - D) * scale;  dQ_blk = dS . K;
 *   dK_h += dS^T . Q_blk;  dV_h += P^T . dO_blk.
 * Forward tasks are (b, h, block), backward tasks (b, h) since the blocks of
 * a head accumulate into the same dK_h/dV_h. BLAS called inside the OpenMP
 * region runs single-threaded. The first head of each kv group writes its
 * dK_h/dV_h straight into dk/dv, the others into scratch (B,KV,group-1,T,hd),
 * added afterwards in head order: results are deterministic and do not
 * depend on the schedule.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "vexp.h"

#define BLK 64 /* query rows per block */

static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* C (M,N) = alpha * op(A) . op(B) + beta * C, row-major. One-row products
 * (the decode path, a last block of one row) run as dot products and axpys
 * here, which skips the packing of B that BLAS would do. */
static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M > 1) {
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                    tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
                    ldb, beta, C, ldc);
        return;
    }
    /* c (N) = alpha * a (K) . op(B) + beta * c, a[x] = A[x * inca] */
    const int inca = ta ? lda : 1;
    for (int n = 0; n < N; n++)
        C[n] = beta != 0.0f ? beta * C[n] : 0.0f;
    if (tb) { /* B (N,K) */
        for (int n = 0; n < N; n++) {
            const float *bn = B + (size_t)n * ldb;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int x = 0; x < K; x++)
                s += A[(size_t)x * inca] * bn[x];
            C[n] += alpha * s;
        }
    } else { /* B (K,N) */
        for (int x = 0; x < K; x++) {
            const float *bx = B + (size_t)x * ldb, ax = alpha * A[(size_t)x * inca];
#pragma omp simd
            for (int n = 0; n < N; n++)
                C[n] += ax * bx[n];
        }
    }
}

void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int q_off,
                       int H, int KV, int hd)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KV, ldq = H * hd, ldk = KV * hd;
    const int rows = Tq < BLK ? Tq : BLK, nblk = (Tq + BLK - 1) / BLK;
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * (size_t)rows * Tk); /* (rows, Tk) */
        if (!s)
            abort();
        /* last blocks first: they meet the most keys */
#pragma omp for collapse(3) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int ib = nblk - 1; ib >= 0; ib--) {
                    const int i0 = ib * BLK, m = Tq - i0 < BLK ? Tq - i0 : BLK;
                    const int nk = q_off + i0 + m; /* keys 0..nk-1 */
                    const size_t qo = ((size_t)b * Tq + i0) * ldq + (size_t)h * hd;
                    const size_t ko = (size_t)b * Tk * ldk + (size_t)(h / group) * hd;
                    /* S (m, nk) = scale * Q_blk (m,hd) . K^T (hd,nk) */
                    gemm(0, 1, m, nk, hd, scale, q + qo, ldq, k + ko, ldk, 0.0f, s, nk);
                    for (int r = 0; r < m; r++) {
                        float *sr = s + (size_t)r * nk;
                        const int nv = q_off + i0 + r + 1; /* visible keys */
                        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
                        for (int j = 0; j < nv; j++)
                            mx = sr[j] > mx ? sr[j] : mx;
                        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
                        for (int j = 0; j < nv; j++) {
                            sr[j] = exp_v(sr[j] - mx);
                            sum += sr[j];
                        }
                        const float inv = (float)(1.0 / sum);
#pragma omp simd
                        for (int j = 0; j < nv; j++)
                            sr[j] *= inv;
                        memset(sr + nv, 0, sizeof(float) * (size_t)(nk - nv));
                        lse[((size_t)b * H + h) * Tq + i0 + r] = mx + (float)log(sum);
                    }
                    /* O_blk (m, hd) = P (m,nk) . V (nk,hd) */
                    gemm(0, 0, m, hd, nk, 1.0f, s, nk, v + ko, ldk, 0.0f, out + qo, ldq);
                }
        free(s);
    }
}

void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                       const float *q, const float *k, const float *v,
                       const float *out, const float *lse, int B, int T,
                       int H, int KV, int hd)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KV, ldq = H * hd, ldk = KV * hd;
    const int rows = T < BLK ? T : BLK;
    const size_t head_block = (size_t)T * hd; /* one (T,hd) partial */
    const size_t npart = (size_t)B * KV * (group - 1) * head_block;
    float *pk = NULL, *pv = NULL;
    if (group > 1) {
        pk = malloc(sizeof(float) * 2 * npart);
        if (!pk)
            abort(); /* activations-sized scratch: out of memory here is fatal */
        pv = pk + npart;
    }
#pragma omp parallel
    {
        /* P, dP (rows, T) */
        float *p = malloc(sizeof(float) * 2 * (size_t)rows * T);
        if (!p)
            abort();
        float *dp = p + (size_t)rows * T;
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int g = h / group, rh = h % group;
                const size_t ko = (size_t)b * T * ldk + (size_t)g * hd;
                /* dK_h, dV_h (T, hd) with leading dimension ldh */
                float *dkh, *dvh;
                int ldh;
                if (rh == 0) {
                    dkh = dk + ko;
                    dvh = dv + ko;
                    ldh = ldk;
                } else {
                    const size_t po = (((size_t)b * KV + g) * (group - 1) + rh - 1) * head_block;
                    dkh = pk + po;
                    dvh = pv + po;
                    ldh = hd;
                }
                for (int i0 = 0; i0 < T; i0 += BLK) {
                    const int m = T - i0 < BLK ? T - i0 : BLK, nk = i0 + m;
                    const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * hd;
                    const float *lh = lse + ((size_t)b * H + h) * T + i0;
                    /* S (m, nk) = scale * Q_blk . K^T;  dP (m, nk) = dO_blk . V^T */
                    gemm(0, 1, m, nk, hd, scale, q + qo, ldq, k + ko, ldk, 0.0f, p, nk);
                    gemm(0, 1, m, nk, hd, 1.0f, dout + qo, ldq, v + ko, ldk, 0.0f, dp, nk);
                    /* P = exp(S - lse), dS = P o (dP - D) * scale, in place */
                    for (int r = 0; r < m; r++) {
                        float *pr = p + (size_t)r * nk, *dpr = dp + (size_t)r * nk;
                        const size_t ro = qo + (size_t)r * ldq;
                        const float Di = dot(dout + ro, out + ro, hd), li = lh[r];
                        const int nv = i0 + r + 1;
#pragma omp simd
                        for (int j = 0; j < nv; j++) {
                            pr[j] = exp_v(pr[j] - li);
                            dpr[j] = pr[j] * (dpr[j] - Di) * scale;
                        }
                        memset(pr + nv, 0, sizeof(float) * (size_t)(nk - nv));
                        memset(dpr + nv, 0, sizeof(float) * (size_t)(nk - nv));
                    }
                    /* dQ_blk (m,hd) = dS . K;  keys 0..i0-1 accumulate into
                     * dK_h/dV_h (nk,hd), keys i0..nk-1 are met the first time */
                    gemm(0, 0, m, hd, nk, 1.0f, dp, nk, k + ko, ldk, 0.0f, dq + qo, ldq);
                    if (i0 > 0) {
                        gemm(1, 0, i0, hd, m, 1.0f, dp, nk, q + qo, ldq, 1.0f, dkh, ldh);
                        gemm(1, 0, i0, hd, m, 1.0f, p, nk, dout + qo, ldq, 1.0f, dvh, ldh);
                    }
                    float *dkn = dkh + (size_t)i0 * ldh, *dvn = dvh + (size_t)i0 * ldh;
                    gemm(1, 0, m, hd, m, 1.0f, dp + i0, nk, q + qo, ldq, 0.0f, dkn, ldh);
                    gemm(1, 0, m, hd, m, 1.0f, p + i0, nk, dout + qo, ldq, 0.0f, dvn, ldh);
                }
            }
        free(p);
    }
    if (group == 1)
        return;
    /* dk, dv (B,T,KV,hd) += the partials of the other heads of each group,
     * in head order */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
            for (int g = 0; g < KV; g++) {
                float *dkj = dk + (((size_t)b * T + j) * KV + g) * hd;
                float *dvj = dv + (((size_t)b * T + j) * KV + g) * hd;
                for (int rh = 1; rh < group; rh++) {
                    const size_t po = (((size_t)b * KV + g) * (group - 1) + rh - 1) * head_block +
                                      (size_t)j * hd;
                    for (int d = 0; d < hd; d++) {
                        dkj[d] += pk[po + d];
                        dvj[d] += pv[po + d];
                    }
                }
            }
    free(pk);
}
