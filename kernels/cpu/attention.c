/*
 * attention.c: causal grouped-query attention, forward and backward.
 *
 * Flash-attention style on the CPU: the (T,T) score matrix is never stored.
 * Forward keeps one row of scores per thread and saves the log-sum-exp of
 * every query row; backward recomputes p_ij = exp(s_ij - lse_i) from it:
 *   D_i   = dO_i . O_i
 *   dS_ij = p_ij * (dO_i . v_j - D_i)
 *   dq_i  = scale * sum_j dS_ij k_j      dk_j += scale * dS_ij q_i
 *   dv_j += p_ij dO_i
 * Query head h reads key/value head h / (H/KV). Backward runs one task per
 * (sequence, query head), each writing its own dk/dv partials into scratch
 * (B,H,T,hd); the partials of a group are then summed in head order, so the
 * result is deterministic without atomics.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

static inline __attribute__((always_inline)) float dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

void cpu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                       const float *v, int B, int Tq, int Tk, int q_off,
                       int H, int KV, int hd)
{
    const float scale = 1.0f / sqrtf((float)hd);
    const int group = H / KV;
#pragma omp parallel
    {
        float *s = malloc(sizeof(float) * (size_t)Tk);
#pragma omp for collapse(2) schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                const int g = h / group;
                for (int i = 0; i < Tq; i++) {
                    const float *qi = q + (((size_t)b * Tq + i) * H + h) * hd;
                    float *oi = out + (((size_t)b * Tq + i) * H + h) * hd;
                    const int nj = q_off + i + 1;
                    float mx = -INFINITY;
                    for (int j = 0; j < nj; j++) {
                        s[j] = scale * dot(qi, k + (((size_t)b * Tk + j) * KV + g) * hd, hd);
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    double sum = 0.0;
                    for (int j = 0; j < nj; j++) {
                        s[j] = expf(s[j] - mx);
                        sum += s[j];
                    }
                    const float inv = (float)(1.0 / sum);
                    memset(oi, 0, sizeof(float) * (size_t)hd);
                    for (int j = 0; j < nj; j++) {
                        const float *vj = v + (((size_t)b * Tk + j) * KV + g) * hd;
                        const float p = s[j] * inv;
                        for (int d = 0; d < hd; d++)
                            oi[d] += p * vj[d];
                    }
                    lse[((size_t)b * H + h) * Tq + i] = mx + (float)log(sum);
                }
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
    const int group = H / KV;
    const size_t head_block = (size_t)T * hd; /* one (T,hd) partial */
    float *pk = malloc(sizeof(float) * 2 * (size_t)B * H * head_block);
    float *pv = pk + (size_t)B * H * head_block;
    if (!pk)
        abort(); /* activations-sized scratch: out of memory here is fatal */
    memset(pk, 0, sizeof(float) * 2 * (size_t)B * H * head_block);
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const int g = h / group;
            float *dkh = pk + ((size_t)b * H + h) * head_block;
            float *dvh = pv + ((size_t)b * H + h) * head_block;
            for (int i = 0; i < T; i++) {
                const size_t qo = (((size_t)b * T + i) * H + h) * hd;
                const float *qi = q + qo, *doi = dout + qo;
                float *dqi = dq + qo;
                const float Di = dot(doi, out + qo, hd);
                const float li = lse[((size_t)b * H + h) * T + i];
                memset(dqi, 0, sizeof(float) * (size_t)hd);
                for (int j = 0; j <= i; j++) {
                    const size_t ko = (((size_t)b * T + j) * KV + g) * hd;
                    const float *kj = k + ko;
                    const float p = expf(scale * dot(qi, kj, hd) - li);
                    const float ds = p * (dot(doi, v + ko, hd) - Di) * scale;
                    float *dkj = dkh + (size_t)j * hd, *dvj = dvh + (size_t)j * hd;
#pragma omp simd
                    for (int d = 0; d < hd; d++) {
                        dqi[d] += ds * kj[d];
                        dkj[d] += ds * qi[d];
                        dvj[d] += p * doi[d];
                    }
                }
            }
        }
    /* dk, dv (B,T,KV,hd) = sum over the query heads of each group */
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
            for (int g = 0; g < KV; g++) {
                float *dkj = dk + (((size_t)b * T + j) * KV + g) * hd;
                float *dvj = dv + (((size_t)b * T + j) * KV + g) * hd;
                memset(dkj, 0, sizeof(float) * (size_t)hd);
                memset(dvj, 0, sizeof(float) * (size_t)hd);
                for (int h = g * group; h < (g + 1) * group; h++) {
                    const float *sk = pk + ((size_t)b * H + h) * head_block + (size_t)j * hd;
                    const float *sv = pv + ((size_t)b * H + h) * head_block + (size_t)j * hd;
                    for (int d = 0; d < hd; d++) {
                        dkj[d] += sk[d];
                        dvj[d] += sv[d];
                    }
                }
            }
    free(pk);
}
