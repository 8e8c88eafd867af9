/*
 * attention.cu: causal grouped-query attention, forward and backward,
 * flash-attention style: scores live in registers one tile at a time and the
 * (T,T) matrix never exists in memory.
 *
 * Layouts (backend.h): q (B,Tq,H,hd); k, v (B,Tk,KV,hd); query head h reads
 * kv head h / (H/KV); query row i sits at absolute position q_off + i and
 * sees keys 0..q_off+i. Scale 1/sqrt(hd). hd <= HD_MAX.
 *
 * Thread layout: blocks of 8 warps. A lane owns head dimensions
 * d = lane + 32*x (x < HD_MAX/32) of the row it accumulates; for scores a
 * lane owns one key (forward, dQ) or one query (dK/dV) of a 32-wide tile and
 * computes the whole dot product from shared memory, whose tiles read that
 * way are padded by one float per row against bank conflicts. Exponentials
 * use expf (no fast math).
 *
 * Forward, per (b, h, BR query rows): K/V tiles of 32 keys up to the block's
 * causal limit; per row the online softmax (running max m, sum l, output o
 * rescaled by exp(m_old - m_new)); out = o / l, lse = m + log l saved.
 * Backward, with P = exp(S - lse) recomputed and D_i = dO_i . O_i:
 *   dS = P o (dO V^T - D) * scale
 *   dQ kernel, per (b, h, BR query rows):   dQ_i = sum_j dS_ij K_j
 *   dKV kernel, per (b, kv head g, BK keys): over the query heads of group g
 *   in order and the queries i >= j in order,
 *     dV_j = sum P_ij dO_i,  dK_j = sum dS_ij Q_i
 * No atomics: each output element has one owner thread and a fixed order of
 * summation, so results are deterministic; dK/dV need no per-head partials.
 */
#include <math.h>

#include "cuda_ops.h"

#define HD_MAX 256
#define REG (HD_MAX / 32) /* head dims per lane */
#define WARPS 8
#define BR (2 * WARPS)    /* query rows per block (forward, dQ) */
#define BC 32             /* keys per tile (forward, dQ); queries per tile (dKV) */
#define BK (2 * WARPS)    /* keys per block (dKV) */

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

void cu_attention_init(void)
{
    CK_CUDA(cudaFuncSetAttribute(attn_fwd_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)fwd_smem(HD_MAX)));
    CK_CUDA(cudaFuncSetAttribute(attn_dq_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dq_smem(HD_MAX)));
    CK_CUDA(cudaFuncSetAttribute(attn_dkv_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)dkv_smem(HD_MAX)));
}

/* the head width is a model property: one past HD_MAX fails the job */
static int check_head_dim(int hd)
{
    if (hd >= 1 && hd <= HD_MAX)
        return 0;
    cuda_fail(__FILE__, __LINE__, "attention", "head width outside 1..256 is not supported");
    return -1;
}

void cu_attention_fwd(float *out, float *lse, const float *q, const float *k,
                      const float *v, int B, int Tq, int Tk, int q_off, int H, int KV,
                      int hd)
{
    if (B <= 0 || Tq <= 0 || check_head_dim(hd))
        return;
    dim3 grid((Tq + BR - 1) / BR, H, B);
    attn_fwd_kernel<<<grid, WARPS * 32, fwd_smem(hd), cuda_ctx.stream>>>(
        out, lse, q, k, v, Tq, Tk, q_off, H, KV, hd, 1.0f / sqrtf((float)hd));
    CK_LAUNCH();
}

/* D scratch (B,H,T), grown on demand */
static float *rowdot;
static size_t rowdot_cap;

void cu_attention_bwd(float *dq, float *dk, float *dv, const float *dout,
                      const float *q, const float *k, const float *v,
                      const float *out, const float *lse, int B, int T,
                      int H, int KV, int hd)
{
    if (B <= 0 || T <= 0 || check_head_dim(hd))
        return;
    const size_t rows = (size_t)B * H * T;
    if (rows > rowdot_cap) {
        CK_CUDA(cudaStreamSynchronize(cuda_ctx.stream));
        CK_CUDA(cudaFree(rowdot));
        rowdot = NULL;
        rowdot_cap = 0;
        if (cudaMalloc((void **)&rowdot, rows * sizeof(float)) != cudaSuccess) {
            cudaGetLastError();
            rowdot = NULL;
            cuda_fail(__FILE__, __LINE__, "cudaMalloc(attention scratch)", "out of GPU memory");
            return;
        }
        rowdot_cap = rows;
        cuda_note_memory();
    }
    const float scale = 1.0f / sqrtf((float)hd);
    attn_rowdot_kernel<<<(unsigned)((rows * 32 + 255) / 256), 256, 0, cuda_ctx.stream>>>(
        rowdot, dout, out, B, T, H, hd);
    CK_LAUNCH();
    dim3 gq((T + BR - 1) / BR, H, B);
    attn_dq_kernel<<<gq, WARPS * 32, dq_smem(hd), cuda_ctx.stream>>>(
        dq, dout, q, k, v, lse, rowdot, T, H, KV, hd, scale);
    CK_LAUNCH();
    dim3 gk((T + BK - 1) / BK, KV, B);
    attn_dkv_kernel<<<gk, WARPS * 32, dkv_smem(hd), cuda_ctx.stream>>>(
        dk, dv, dout, q, k, v, lse, rowdot, T, H, KV, hd, scale);
    CK_LAUNCH();
}
