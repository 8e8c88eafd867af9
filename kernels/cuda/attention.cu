/*
 * attention.cu: causal grouped-query attention, forward and backward, on one
 * of three paths. In the bf16 math mode (OWLORE_CUDA_MATH=bf16) the training
 * shape (q_off = 0, Tq = Tk) at head widths 64 and 128 takes the tensor-core
 * path of attention_tc.cu (q, k, v, dout, P and dS rounded to bf16, sums in
 * fp32; the backward's D_i below is computed here first). Every other call,
 * and every call in fp32 mode, takes the GEMM path or the flash path below,
 * chosen by the size of one head's score matrix.
 *
 * Layouts (backend.h): q (B,Tq,H,hd); k, v (B,Tk,KV,hd); query head h reads
 * kv head g = h / group, group = H/KV; query row i sits at absolute position
 * q_off + i and sees keys 0..q_off+i. Scale 1/sqrt(hd). hd <= HD_MAX.
 * Only keys 0..nk-1, nk = q_off + Tq (<= Tk), are seen by any row.
 *
 * GEMM path, when one head's scores S (Tq,nk) in fp32 fit SCORE_CAP bytes
 * (training at Tq = Tk = T <= 2048): per sequence b and index j < group, the
 * query heads h = g*group + j of a chunk of consecutive kv heads g (as many
 * as fit SCORE_CAP) are one cuBLAS strided-batched product per step
 * (cu_matmul_strided: tensor cores when the math mode allows), the scores
 * of the chunk's n heads (n,Tq,nk) in a device scratch buffer:
 *   forward:  S = scale Q_h K_g^T;  a row kernel applies the causal mask and
 *             takes the max and the sum of expf in double (as the CPU),
 *             P = exp(S - max) / sum in place, lse = max + log(sum);
 *             O_h = P V_g.
 *   backward: D_i = dO_i . O_i;  S = scale Q_h K_g^T;  dP = dO_h V_g^T (a
 *             second buffer);  a row kernel makes P = exp(S - lse) and
 *             dS = P o (dP - D) * scale in place, 0 above the diagonal;
 *             dV_g (+)= P^T dO_h;  dQ_h = dS K_g;  dK_g (+)= dS^T Q_h,
 *             where (+)= overwrites for j = 0 and accumulates for j > 0, so
 *             dk/dv sum the heads of a group in head order.
 * The two buffers grow on demand up to SCORE_CAP and are kept for the
 * process.
 *
 * Flash path, for longer sequences (one head's scores over SCORE_CAP): the
 * scores live in registers one tile at a time and no score matrix exists in
 * memory. Blocks of 8 warps; a lane owns head dimensions d = lane + 32*x
 * (x < HD_MAX/32) of the row it accumulates; for scores a lane owns one key
 * (forward, dQ) or one query (dK/dV) of a 32-wide tile and computes the whole
 * dot product from shared memory, whose tiles read that way are padded by
 * one float per row against bank conflicts.
 * Forward, per (b, h, BR query rows): K/V tiles of 32 keys up to the block's
 * causal limit; per row the online softmax (running max m, sum l, output o
 * rescaled by exp(m_old - m_new)); out = o / l, lse = m + log l saved.
 * Backward, with P = exp(S - lse) recomputed and D_i = dO_i . O_i:
 *   dS = P o (dO V^T - D) * scale
 *   dQ kernel, per (b, h, BR query rows):   dQ_i = sum_j dS_ij K_j
 *   dKV kernel, per (b, kv head g, BK keys): over the query heads of group g
 *   in order and the queries i >= j in order,
 *     dV_j = sum P_ij dO_i,  dK_j = sum dS_ij Q_i
 *
 * All three paths: exponentials use expf (no fast math); no atomics, each
 * output element has one owner (a thread, a warp or a cuBLAS product) and a
 * fixed order of summation, so results are deterministic.
 */
#include <math.h>

#include "cuda_ops.h"

#define HD_MAX 256
#define REG (HD_MAX / 32) /* head dims per lane */
#define WARPS 8
#define BR (2 * WARPS)    /* query rows per block (forward, dQ) */
#define BC 32             /* keys per tile (forward, dQ); queries per tile (dKV) */
#define BK (2 * WARPS)    /* keys per block (dKV) */
/* bytes of one score scratch buffer: the GEMM path takes a head whose (Tq,nk)
 * fp32 scores fit (Tq = nk = 2048 exactly does), the flash path the rest */
#define SCORE_CAP ((size_t)16 << 20)
#define ROW_THREADS 256   /* threads per block of the GEMM path's row kernels, a warp a row */

/* ---- flash path kernels (and D_i, which both paths use) ---- */

static size_t fwd_smem(int hd)
{
    return sizeof(float) * ((size_t)BR * hd + (size_t)BC * (hd + 1) + (size_t)BC * hd);
}

static size_t dq_smem(int hd)
{
    return sizeof(float) * (2 * (size_t)BR * hd + 2 * (size_t)BC * (hd + 1));
}

static size_t dkv_smem(int hd)
{
    return sizeof(float) * (2 * (size_t)BK * hd + 2 * (size_t)BC * (hd + 1) + 2 * BC);
}

/* dot product of two rows of n floats in shared memory */
static __device__ __forceinline__ float row_dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int d = 0; d < n; d++)
        s = fmaf(a[d], b[d], s);
    return s;
}

/* rows x hd floats of a (.., row stride ld) into shared memory with row stride lds */
static __device__ __forceinline__ void load_tile(float *dst, int lds, const float *src,
                                                 size_t ld, int rows, int hd)
{
    for (int x = threadIdx.x; x < rows * hd; x += blockDim.x) {
        int r = x / hd, d = x % hd;
        dst[r * lds + d] = src[(size_t)r * ld + d];
    }
}

static __global__ void __launch_bounds__(WARPS * 32)
attn_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                int Tq, int Tk, int q_off, int H, int KV, int hd, float scale)
{
    extern __shared__ float sm[];
    float *Qs = sm, *Ks = Qs + BR * hd, *Vs = Ks + BC * (hd + 1);
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BR;
    const int g = h / (H / KV), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t ldq = (size_t)H * hd, ldk = (size_t)KV * hd;
    const int rows = Tq - i0 < BR ? Tq - i0 : BR;
    const int nk = q_off + i0 + rows; /* keys 0..nk-1 are seen by some row */
    const float *kb = k + (size_t)b * Tk * ldk + (size_t)g * hd;
    const float *vb = v + (size_t)b * Tk * ldk + (size_t)g * hd;

    load_tile(Qs, hd, q + ((size_t)b * Tq + i0) * ldq + (size_t)h * hd, ldq, rows, hd);
    float m[2], l[2], o[2][REG];
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.0f;
#pragma unroll
        for (int x = 0; x < REG; x++)
            o[rr][x] = 0.0f;
    }
    for (int j0 = 0; j0 < nk; j0 += BC) {
        const int tile = nk - j0 < BC ? nk - j0 : BC;
        __syncthreads(); /* the previous tile is no longer read */
        load_tile(Ks, hd + 1, kb + (size_t)j0 * ldk, ldk, tile, hd);
        load_tile(Vs, hd, vb + (size_t)j0 * ldk, ldk, tile, hd);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int r = warp * 2 + rr, last = q_off + i0 + r; /* last visible key */
            if (r >= rows || j0 > last)
                continue; /* warp-uniform */
            const int cnt = last - j0 + 1 < tile ? last - j0 + 1 : tile;
            float s = -INFINITY;
            if (lane < cnt)
                s = scale * row_dot(Qs + r * hd, Ks + lane * (hd + 1), hd);
            const float mnew = fmaxf(m[rr], warp_max(s));
            const float p = lane < cnt ? expf(s - mnew) : 0.0f;
            const float corr = expf(m[rr] - mnew);
            l[rr] = l[rr] * corr + warp_sum(p);
            m[rr] = mnew;
#pragma unroll
            for (int x = 0; x < REG; x++)
                o[rr][x] *= corr;
            for (int jj = 0; jj < cnt; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
                for (int x = 0; x < REG; x++) {
                    const int d = lane + 32 * x;
                    if (d < hd)
                        o[rr][x] = fmaf(pj, Vs[jj * hd + d], o[rr][x]);
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int r = warp * 2 + rr;
        if (r >= rows)
            continue;
        const size_t ro = ((size_t)b * Tq + i0 + r) * ldq + (size_t)h * hd;
        const float inv = 1.0f / l[rr];
#pragma unroll
        for (int x = 0; x < REG; x++) {
            const int d = lane + 32 * x;
            if (d < hd)
                out[ro + d] = o[rr][x] * inv;
        }
        if (lane == 0)
            lse[((size_t)b * H + h) * Tq + i0 + r] = m[rr] + logf(l[rr]);
    }
}

/* Dd (B,H,T): D_i = dO_i . O_i, one warp per row */
static __global__ void attn_rowdot_kernel(float *Dd, const float *dout, const float *out,
                                          int B, int T, int H, int hd)
{
    const size_t row = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= (size_t)B * T * H)
        return;
    /* row enumerates (b, t, h) as stored; Dd is (b, h, t) */
    const size_t h = row % H, bt = row / H, b = bt / T, t = bt % T;
    const float *a = dout + row * hd, *c = out + row * hd;
    float s = 0.0f;
    for (int d = lane; d < hd; d += 32)
        s = fmaf(a[d], c[d], s);
    s = warp_sum(s);
    if (lane == 0)
        Dd[(b * H + h) * T + t] = s;
}

static __global__ void __launch_bounds__(WARPS * 32)
attn_dq_kernel(float *dq, const float *dout, const float *q, const float *k,
               const float *v, const float *lse, const float *Dd, int T, int H, int KV,
               int hd, float scale)
{
    extern __shared__ float sm[];
    float *Qs = sm, *dOs = Qs + BR * hd, *Ks = dOs + BR * hd, *Vs = Ks + BC * (hd + 1);
    const int b = blockIdx.z, h = blockIdx.y, i0 = blockIdx.x * BR;
    const int g = h / (H / KV), lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t ldq = (size_t)H * hd, ldk = (size_t)KV * hd;
    const int rows = T - i0 < BR ? T - i0 : BR, nk = i0 + rows;
    const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * hd;
    const float *kb = k + (size_t)b * T * ldk + (size_t)g * hd;
    const float *vb = v + (size_t)b * T * ldk + (size_t)g * hd;

    load_tile(Qs, hd, q + qo, ldq, rows, hd);
    load_tile(dOs, hd, dout + qo, ldq, rows, hd);
    float li[2], Di[2], acc[2][REG];
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int r = warp * 2 + rr;
        const size_t so = ((size_t)b * H + h) * T + i0 + r;
        li[rr] = r < rows ? lse[so] : 0.0f;
        Di[rr] = r < rows ? Dd[so] : 0.0f;
#pragma unroll
        for (int x = 0; x < REG; x++)
            acc[rr][x] = 0.0f;
    }
    for (int j0 = 0; j0 < nk; j0 += BC) {
        const int tile = nk - j0 < BC ? nk - j0 : BC;
        __syncthreads();
        load_tile(Ks, hd + 1, kb + (size_t)j0 * ldk, ldk, tile, hd);
        load_tile(Vs, hd + 1, vb + (size_t)j0 * ldk, ldk, tile, hd);
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const int r = warp * 2 + rr, last = i0 + r;
            if (r >= rows || j0 > last)
                continue;
            const int cnt = last - j0 + 1 < tile ? last - j0 + 1 : tile;
            float ds = 0.0f;
            if (lane < cnt) {
                const float s = scale * row_dot(Qs + r * hd, Ks + lane * (hd + 1), hd);
                const float p = expf(s - li[rr]);
                const float dp = row_dot(dOs + r * hd, Vs + lane * (hd + 1), hd);
                ds = p * (dp - Di[rr]) * scale;
            }
            for (int jj = 0; jj < cnt; jj++) {
                const float dsj = __shfl_sync(0xffffffffu, ds, jj);
#pragma unroll
                for (int x = 0; x < REG; x++) {
                    const int d = lane + 32 * x;
                    if (d < hd)
                        acc[rr][x] = fmaf(dsj, Ks[jj * (hd + 1) + d], acc[rr][x]);
                }
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int r = warp * 2 + rr;
        if (r >= rows)
            continue;
#pragma unroll
        for (int x = 0; x < REG; x++) {
            const int d = lane + 32 * x;
            if (d < hd)
                dq[qo + (size_t)r * ldq + d] = acc[rr][x];
        }
    }
}

static __global__ void __launch_bounds__(WARPS * 32)
attn_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                const float *v, const float *lse, const float *Dd, int T, int H, int KV,
                int hd, float scale)
{
    extern __shared__ float sm[];
    float *Ks = sm, *Vs = Ks + BK * hd, *Qs = Vs + BK * hd, *dOs = Qs + BC * (hd + 1);
    float *ls = dOs + BC * (hd + 1), *Ds = ls + BC;
    const int b = blockIdx.z, g = blockIdx.y, j0 = blockIdx.x * BK;
    const int group = H / KV, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const size_t ldq = (size_t)H * hd, ldk = (size_t)KV * hd;
    const int keys = T - j0 < BK ? T - j0 : BK;
    const size_t ko = ((size_t)b * T + j0) * ldk + (size_t)g * hd;

    load_tile(Ks, hd, k + ko, ldk, keys, hd);
    load_tile(Vs, hd, v + ko, ldk, keys, hd);
    float ak[2][REG], av[2][REG];
#pragma unroll
    for (int kk = 0; kk < 2; kk++)
#pragma unroll
        for (int x = 0; x < REG; x++)
            ak[kk][x] = av[kk][x] = 0.0f;
    for (int hh = 0; hh < group; hh++) {
        const int h = g * group + hh;
        for (int i0 = j0 / BC * BC; i0 < T; i0 += BC) {
            const int tile = T - i0 < BC ? T - i0 : BC;
            const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * hd;
            const size_t so = ((size_t)b * H + h) * T + i0;
            __syncthreads();
            load_tile(Qs, hd + 1, q + qo, ldq, tile, hd);
            load_tile(dOs, hd + 1, dout + qo, ldq, tile, hd);
            for (int x = threadIdx.x; x < tile; x += blockDim.x) {
                ls[x] = lse[so + x];
                Ds[x] = Dd[so + x];
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                const int c = warp * 2 + kk, j = j0 + c;
                if (c >= keys || i0 + tile - 1 < j)
                    continue; /* warp-uniform: no query of the tile sees key j */
                float p = 0.0f, ds = 0.0f;
                if (lane < tile && i0 + lane >= j) {
                    const float s = scale * row_dot(Qs + lane * (hd + 1), Ks + c * hd, hd);
                    p = expf(s - ls[lane]);
                    const float dp = row_dot(dOs + lane * (hd + 1), Vs + c * hd, hd);
                    ds = p * (dp - Ds[lane]) * scale;
                }
                for (int ii = 0; ii < tile; ii++) {
                    const float pi = __shfl_sync(0xffffffffu, p, ii);
                    const float dsi = __shfl_sync(0xffffffffu, ds, ii);
#pragma unroll
                    for (int x = 0; x < REG; x++) {
                        const int d = lane + 32 * x;
                        if (d < hd) {
                            av[kk][x] = fmaf(pi, dOs[ii * (hd + 1) + d], av[kk][x]);
                            ak[kk][x] = fmaf(dsi, Qs[ii * (hd + 1) + d], ak[kk][x]);
                        }
                    }
                }
            }
        }
    }
#pragma unroll
    for (int kk = 0; kk < 2; kk++) {
        const int c = warp * 2 + kk;
        if (c >= keys)
            continue;
#pragma unroll
        for (int x = 0; x < REG; x++) {
            const int d = lane + 32 * x;
            if (d < hd) {
                dk[ko + (size_t)c * ldk + d] = ak[kk][x];
                dv[ko + (size_t)c * ldk + d] = av[kk][x];
            }
        }
    }
}

/* ---- GEMM path: row kernels over the score scratch ---- */

/* One warp per row of s (n,Tq,nk), rows rows, row = c*Tq + i for chunk
 * head c: the causal softmax of the scaled scores in place (P, 0 for keys
 * past q_off+i) and lse[c*lse_stride + i] = max + log(sum). A warp's
 * reductions are shuffles (every lane ends with the same value); a row's
 * few KB stay in cache between its passes. */
static __global__ void __launch_bounds__(ROW_THREADS)
attn_softmax_rows_kernel(float *s, float *lse, size_t rows, int Tq, int nk, int q_off,
                         size_t lse_stride)
{
    const size_t row = (size_t)blockIdx.x * (ROW_THREADS / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (row >= rows) /* the whole warp */
        return;
    const size_t c = row / Tq;
    const int i = (int)(row % Tq), nv = q_off + i + 1; /* visible keys */
    float *sr = s + row * nk;
    float mx = -INFINITY;
    for (int j = lane; j < nv; j += 32)
        mx = sr[j] > mx ? sr[j] : mx;
    mx = warp_max(mx);
    double sum = 0.0;
    for (int j = lane; j < nv; j += 32) {
        sr[j] = expf(sr[j] - mx);
        sum += sr[j];
    }
    sum = warp_sum_d(sum);
    const float inv = (float)(1.0 / sum);
    for (int j = lane; j < nk; j += 32) /* a lane rescales its own */
        sr[j] = j < nv ? sr[j] * inv : 0.0f;
    if (lane == 0)
        lse[c * lse_stride + i] = mx + (float)log(sum);
}

/* One warp per row of p, dp (n,T,T), rows rows, row = c*T + i: p holds
 * scale Q K^T and becomes P = exp(S - lse_i), dp holds dO V^T and becomes
 * dS = P o (dP - D_i) * scale, both 0 for keys past i. lse, Dd are read at
 * c*stat_stride + i. */
static __global__ void __launch_bounds__(ROW_THREADS)
attn_dscores_rows_kernel(float *p, float *dp, const float *lse, const float *Dd, size_t rows,
                         int T, size_t stat_stride, float scale)
{
    const size_t row = (size_t)blockIdx.x * (ROW_THREADS / 32) + threadIdx.x / 32;
    if (row >= rows)
        return;
    const size_t c = row / T;
    const int i = (int)(row % T);
    const float li = lse[c * stat_stride + i], Di = Dd[c * stat_stride + i];
    float *pr = p + row * T, *dpr = dp + row * T;
    for (int j = threadIdx.x & 31; j < T; j += 32) {
        float pj = 0.0f, dsj = 0.0f;
        if (j <= i) {
            pj = expf(pr[j] - li);
            dsj = pj * (dpr[j] - Di) * scale;
        }
        pr[j] = pj;
        dpr[j] = dsj;
    }
}

/* blocks of the row kernels for `rows` rows, a warp each */
static unsigned row_blocks(size_t rows)
{
    return (unsigned)((rows + ROW_THREADS / 32 - 1) / (ROW_THREADS / 32));
}

void cu_attention_init(void)
{
    CK_CUDA(cudaFuncSetAttribute(attn_fwd_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)fwd_smem(HD_MAX)));
    CK_CUDA(cudaFuncSetAttribute(attn_dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dq_smem(HD_MAX)));
    CK_CUDA(cudaFuncSetAttribute(attn_dkv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dkv_smem(HD_MAX)));
    cu_attention_tc_init();
}

/* the head width is a model property: one past HD_MAX fails the job */
static int check_head_dim(int hd)
{
    if (hd >= 1 && hd <= HD_MAX)
        return 0;
    cuda_fail(__FILE__, __LINE__, "attention", "head width outside 1..256 is not supported");
    return -1;
}

/* score buffers of the GEMM path (at most SCORE_CAP bytes each); D (B,H,T) */
static float *scores[2], *rowdot;
static size_t scores_cap[2], rowdot_cap;

/* kv heads per GEMM-path chunk for (rows, cols) scores per head, at most KV;
 * 0 when one head's scores exceed SCORE_CAP (flash path) */
static int heads_per_chunk(int rows, int cols, int KV)
{
    const size_t head = (size_t)rows * cols * sizeof(float);
    if (head > SCORE_CAP)
        return 0;
    const size_t n = SCORE_CAP / head;
    return n < (size_t)KV ? (int)n : KV;
}

/* GEMM-path forward, chunks of `heads` kv heads. Per (b, j, chunk of n kv
 * heads from g0), h0 = g0*group + j, chunk head c is query head h0 + c*group:
 *   S (Tq,nk)_c = scale Q (Tq,hd)_c . K (nk,hd)_c^T   Q ld H*hd stride group*hd,
 *                                                     K ld KV*hd stride hd
 *   O (Tq,hd)_c = P (Tq,nk)_c . V (nk,hd)_c           S/P ld nk stride Tq*nk */
static void attn_fwd_gemm(float *out, float *lse, const float *q, const float *k,
                          const float *v, int B, int Tq, int Tk, int q_off, int H, int KV,
                          int hd, int heads)
{
    const int group = H / KV, nk = q_off + Tq, ldq = H * hd, ldk = KV * hd;
    const long long area = (long long)Tq * nk, sq = (long long)group * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *s = cuda_grow(&scores[0], &scores_cap[0], (size_t)heads * area);
    if (!s)
        return;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < group; j++)
            for (int g0 = 0; g0 < KV; g0 += heads) {
                const int n = KV - g0 < heads ? KV - g0 : heads, h0 = g0 * group + j;
                const size_t qo = (size_t)b * Tq * ldq + (size_t)h0 * hd;
                const size_t ko = (size_t)b * Tk * ldk + (size_t)g0 * hd;
                cu_matmul_strided(0, 1, Tq, nk, hd, scale, q + qo, ldq, sq, k + ko, ldk, hd,
                                  0.0f, s, nk, area, n);
                attn_softmax_rows_kernel<<<row_blocks((size_t)n * Tq), ROW_THREADS, 0,
                                           cuda_ctx.stream>>>(
                    s, lse + ((size_t)b * H + h0) * Tq, (size_t)n * Tq, Tq, nk, q_off,
                    (size_t)group * Tq);
                CK_LAUNCH();
                cu_matmul_strided(0, 0, Tq, hd, nk, 1.0f, s, nk, area, v + ko, ldk, hd, 0.0f,
                                  out + qo, ldq, sq, n);
            }
}

/* GEMM-path backward, chunks of `heads` kv heads, D in rowdot. Per (b, j,
 * chunk of n kv heads from g0), h0 = g0*group + j, c the chunk head; Q, dO,
 * dQ ld H*hd stride group*hd; K, V, dK, dV ld KV*hd stride hd; P, dP/dS
 * (T,T) ld T stride T*T; beta = 0 for j = 0, else 1:
 *   S_c  = scale Q_c . K_c^T     (T,T,hd)   dP_c = dO_c . V_c^T  (T,T,hd)
 *   dV_c = P_c^T . dO_c + beta dV_c         (T,hd,T)
 *   dQ_c = dS_c . K_c                       (T,hd,T)
 *   dK_c = dS_c^T . Q_c + beta dK_c         (T,hd,T) */
static void attn_bwd_gemm(float *dq, float *dk, float *dv, const float *dout,
                          const float *q, const float *k, const float *v, const float *lse,
                          int B, int T, int H, int KV, int hd, int heads)
{
    const int group = H / KV, ldq = H * hd, ldk = KV * hd;
    const long long area = (long long)T * T, sq = (long long)group * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    float *p = cuda_grow(&scores[0], &scores_cap[0], (size_t)heads * area);
    float *dp = cuda_grow(&scores[1], &scores_cap[1], (size_t)heads * area);
    if (!p || !dp)
        return;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < group; j++)
            for (int g0 = 0; g0 < KV; g0 += heads) {
                const int n = KV - g0 < heads ? KV - g0 : heads, h0 = g0 * group + j;
                const size_t qo = (size_t)b * T * ldq + (size_t)h0 * hd;
                const size_t ko = (size_t)b * T * ldk + (size_t)g0 * hd;
                const size_t so = ((size_t)b * H + h0) * T;
                const float beta = j == 0 ? 0.0f : 1.0f;
                cu_matmul_strided(0, 1, T, T, hd, scale, q + qo, ldq, sq, k + ko, ldk, hd, 0.0f,
                                  p, T, area, n);
                cu_matmul_strided(0, 1, T, T, hd, 1.0f, dout + qo, ldq, sq, v + ko, ldk, hd,
                                  0.0f, dp, T, area, n);
                attn_dscores_rows_kernel<<<row_blocks((size_t)n * T), ROW_THREADS, 0,
                                           cuda_ctx.stream>>>(
                    p, dp, lse + so, rowdot + so, (size_t)n * T, T, (size_t)group * T, scale);
                CK_LAUNCH();
                cu_matmul_strided(1, 0, T, hd, T, 1.0f, p, T, area, dout + qo, ldq, sq, beta,
                                  dv + ko, ldk, hd, n);
                cu_matmul_strided(0, 0, T, hd, T, 1.0f, dp, T, area, k + ko, ldk, hd, 0.0f,
                                  dq + qo, ldq, sq, n);
                cu_matmul_strided(1, 0, T, hd, T, 1.0f, dp, T, area, q + qo, ldq, sq, beta,
                                  dk + ko, ldk, hd, n);
            }
}

static void attn_fwd_flash(float *out, float *lse, const float *q, const float *k,
                           const float *v, int B, int Tq, int Tk, int q_off, int H, int KV,
                           int hd)
{
    dim3 grid((Tq + BR - 1) / BR, H, B);
    attn_fwd_kernel<<<grid, WARPS * 32, fwd_smem(hd), cuda_ctx.stream>>>(
        out, lse, q, k, v, Tq, Tk, q_off, H, KV, hd, 1.0f / sqrtf((float)hd));
    CK_LAUNCH();
}

/* flash-path backward, D in rowdot */
static void attn_bwd_flash(float *dq, float *dk, float *dv, const float *dout,
                           const float *q, const float *k, const float *v, const float *lse,
                           int B, int T, int H, int KV, int hd)
{
    const float scale = 1.0f / sqrtf((float)hd);
    dim3 gq((T + BR - 1) / BR, H, B);
    attn_dq_kernel<<<gq, WARPS * 32, dq_smem(hd), cuda_ctx.stream>>>(
        dq, dout, q, k, v, lse, rowdot, T, H, KV, hd, scale);
    CK_LAUNCH();
    dim3 gk((T + BK - 1) / BK, KV, B);
    attn_dkv_kernel<<<gk, WARPS * 32, dkv_smem(hd), cuda_ctx.stream>>>(
        dk, dv, dout, q, k, v, lse, rowdot, T, H, KV, hd, scale);
    CK_LAUNCH();
}

void cu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                      const float *v, int B, int Tq, int Tk, int q_off, int H, int KV,
                      int hd)
{
    if (B <= 0 || Tq <= 0 || check_head_dim(hd))
        return;
    if (cuda_ctx.fast_bf16 && q_off == 0 && Tq == Tk &&
        cu_attention_tc_fwd(out, lse, q, k, v, B, Tq, H, KV, hd) == 0)
        return;
    const int heads = heads_per_chunk(Tq, q_off + Tq, KV);
    if (heads > 0)
        attn_fwd_gemm(out, lse, q, k, v, B, Tq, Tk, q_off, H, KV, hd, heads);
    else
        attn_fwd_flash(out, lse, q, k, v, B, Tq, Tk, q_off, H, KV, hd);
}

void cu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                      const float *q, const float *k, const float *v,
                      const float *out, const float *lse, int B, int T,
                      int H, int KV, int hd)
{
    if (B <= 0 || T <= 0 || check_head_dim(hd))
        return;
    const size_t rows = (size_t)B * H * T;
    if (!cuda_grow(&rowdot, &rowdot_cap, rows))
        return;
    attn_rowdot_kernel<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, cuda_ctx.stream>>>(
        rowdot, dout, out, B, T, H, hd);
    CK_LAUNCH();
    if (cuda_ctx.fast_bf16 &&
        cu_attention_tc_bwd(dq, dk, dv, dout, q, k, v, rowdot, lse, B, T, H, KV, hd) == 0)
        return;
    const int heads = heads_per_chunk(T, T, KV);
    if (heads > 0)
        attn_bwd_gemm(dq, dk, dv, dout, q, k, v, lse, B, T, H, KV, hd, heads);
    else
        attn_bwd_flash(dq, dk, dv, dout, q, k, v, lse, B, T, H, KV, hd);
}
