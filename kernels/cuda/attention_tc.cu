/*
 * attention_tc.cu: causal grouped-query attention, forward and backward, on
 * bf16 tensor cores (nvcuda::wmma, m16n16k16, fp32 accumulators): the
 * attention path of the bf16 math mode (OWLORE_CUDA_MATH=bf16) for the
 * training shape (q_off = 0, Tq = Tk = T) at head widths 64 and 128.
 * attention.cu calls it first in that mode and takes its own paths when it
 * declines (-1): another head width, or an operand not 16-byte aligned
 * (rows are read as float4).
 *
 * Layouts as attention.cu: q, out, dq (B,T,H,hd); k, v, dk, dv (B,T,KV,hd);
 * lse, D (B,H,T); query head h reads kv head g = h / (H/KV); scale
 * 1/sqrt(hd); query i sees keys 0..i. S is the scaled score, P = exp(S - lse),
 * D_i = dO_i . O_i (attention.cu's rowdot), dS = P o (dP - D) * scale.
 *
 * Blocks of 4 warps; a block owns TILE = 64 query rows (forward, dQ) or 64
 * keys (dK/dV), a warp 16 of them (its strip), and walks tiles of 64 keys
 * (queries for dK/dV) up to the causal limit. Tiles of q, k, v, dout are
 * read from fp32 global memory, rounded to bf16 (nearest even) and kept in
 * shared memory as rows of hd + 8 elements (16 bytes of padding: fragment
 * loads hit distinct banks); rows past T are zero and never written back.
 * A warp's 16 x 64 score products land in its fp32 strip of shared memory
 * (rows of 64 + 4 floats), where two lanes a row (columns interleaved) mask,
 * exponentiate and reduce them: the row a fragment element belongs to is not
 * known in registers, so every elementwise step goes through shared memory.
 * Grids are (heads, B, tiles of T) with the blocks of most tiles first.
 *   forward, per (b, h, 64 queries): S = Q K^T; online softmax (running max
 *     m, sum l in fp32); P rounded to bf16; the warp's fp32 output strip
 *     (16 x hd in shared memory) rescaled by exp(m_old - m_new), loaded into
 *     fragments, O += P V, stored back; at the end out = O / l, lse = m + log l.
 *   dQ, per (b, h, 64 queries): S = Q K^T, dP = dO V^T, dS rounded to bf16,
 *     dQ += dS K in fragments that stay in registers for the whole walk.
 *   dK/dV, per (b, kv head g, 64 keys): over the query heads of group g in
 *     head order and the query tiles from the block's first key on, the
 *     transposed products S^T = K Q^T and dP^T = V dO^T (the warp's rows are
 *     keys; 32 queries at a time, to save shared memory), P^T and dS^T
 *     rounded to bf16, dV += P^T dO, dK += dS^T Q in register fragments.
 * Rounded to bf16: q, k, v, dout as loaded, P and dS before their second
 * products. fp32: every product's sum, the softmax statistics, D, the
 * accumulators and the outputs (out, lse, dq, dk, dv fully overwritten).
 * exp is expf (no fast math).
 *
 * Deterministic: no atomics; each output element is written by one warp,
 * whose sums run in a fixed order (key or query tiles ascending, heads of a
 * group in head order, the 16-wide slices of a tile ascending), and the
 * tensor cores' products are themselves deterministic.
 *
 * Shared memory per block at hd = 128 (hd = 64): forward 110 KB (70 KB), dQ
 * 111 KB (79 KB), dK/dV 104.5 KB (72.5 KB): two blocks (8 warps) an SM of
 * an H100, past the default 48 KB limit, which cu_attention_tc_init raises.
 */
#include <cuda_bf16.h>
#include <mma.h>
#include <stdint.h>

#include "cuda_ops.h"

namespace wmma = nvcuda::wmma;
typedef __nv_bfloat16 bf16;

#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * 32)
#define TILE 64           /* rows of a block; keys (queries) of a walked tile */
#define STRIP 16          /* rows of a warp */
#define HALF (TILE / 2)   /* queries of dK/dV's score strips */
#define LDS (TILE + 4)    /* floats per row of a warp's fp32 strip */
#define LDP (TILE + 8)    /* bf16 per row of a warp's bf16 strip */
#define FULL_MASK 0xffffffffu

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> frag_a;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> frag_b;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> frag_bt;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> frag_c;

/* ---- shared-memory sizes (bytes; each a multiple of 32, so every array
 * carved from them in order stays 32-byte aligned for the fragments) ---- */

/* a TILE x hd bf16 tile, rows of hd + 8 */
static __host__ __device__ constexpr size_t tile_bytes(int hd)
{
    return (size_t)TILE * (hd + 8) * sizeof(bf16);
}
/* a warp's 16-row fp32 strip of `cols` columns, rows of cols + 4 */
static __host__ __device__ constexpr size_t strip_f32_bytes(int cols)
{
    return (size_t)STRIP * (cols + 4) * sizeof(float);
}
/* a warp's 16 x TILE bf16 strip */
static __host__ __device__ constexpr size_t strip_bf16_bytes(void)
{
    return (size_t)STRIP * LDP * sizeof(bf16);
}
/* forward: Q, K, V tiles; per warp S (fp32), O (fp32, hd wide), P (bf16) */
static __host__ __device__ constexpr size_t fwd_warp_bytes(int hd)
{
    return strip_f32_bytes(TILE) + strip_f32_bytes(hd) + strip_bf16_bytes();
}
static __host__ __device__ constexpr size_t fwd_bytes(int hd)
{
    return 3 * tile_bytes(hd) + TC_WARPS * fwd_warp_bytes(hd);
}
/* dQ: Q, dO, K, V tiles; per warp S, dP (fp32), dS (bf16) */
static __host__ __device__ constexpr size_t dq_warp_bytes(void)
{
    return 2 * strip_f32_bytes(TILE) + strip_bf16_bytes();
}
static __host__ __device__ constexpr size_t dq_bytes(int hd)
{
    return 4 * tile_bytes(hd) + TC_WARPS * dq_warp_bytes();
}
/* dK/dV: K, V, Q, dO tiles; per warp S^T, dP^T (fp32, HALF queries wide),
 * P^T, dS^T (bf16, TILE queries); then lse and D of the query tile */
static __host__ __device__ constexpr size_t dkv_warp_bytes(void)
{
    return 2 * strip_f32_bytes(HALF) + 2 * strip_bf16_bytes();
}
static __host__ __device__ constexpr size_t dkv_bytes(int hd)
{
    return 4 * tile_bytes(hd) + TC_WARPS * dkv_warp_bytes() + 2 * TILE * sizeof(float);
}
static_assert(tile_bytes(64) % 32 == 0 && tile_bytes(128) % 32 == 0, "tile alignment");
static_assert(strip_f32_bytes(64) % 32 == 0 && strip_f32_bytes(128) % 32 == 0, "strip alignment");
static_assert(strip_bf16_bytes() % 32 == 0, "strip alignment");
static_assert(strip_f32_bytes(HALF) % 32 == 0, "strip alignment");
/* two blocks of each kernel fit the 228 KB of an H100 SM (1 KB of it
 * reserved per block) */
static_assert(2 * (fwd_bytes(128) + 1024) <= 228 * 1024 &&
              2 * (dq_bytes(128) + 1024) <= 228 * 1024 &&
              2 * (dkv_bytes(128) + 1024) <= 228 * 1024, "two blocks an SM");
/* store_rows's 16 x TILE fp32 strip, in dK/dV the two fp32 strips of HALF */
static_assert(2 * strip_f32_bytes(HALF) >= strip_f32_bytes(TILE), "dK/dV output strip");

/* ---- device helpers ---- */

/* dst (TILE x HD bf16, rows of HD + 8) = rows 0..rows-1 of src (fp32, row
 * stride ld floats, 16-byte aligned rows) rounded to the nearest bf16, ties
 * to even; rows from `rows` on are zero. Batches of 8 float4 loads per
 * thread are in flight before their stores. */
template <int HD>
static __device__ __forceinline__ void load_tile(bf16 *dst, const float *src, size_t ld,
                                                 int rows)
{
    constexpr int VEC = HD / 4;                       /* float4 per row */
    constexpr int PER_THREAD = TILE * VEC / TC_THREADS;
    constexpr int BATCH = 8;
    static_assert(PER_THREAD % BATCH == 0, "whole batches");
#pragma unroll
    for (int b0 = 0; b0 < PER_THREAD; b0 += BATCH) {
        float4 x[BATCH];
#pragma unroll
        for (int u = 0; u < BATCH; u++) {
            const int e = threadIdx.x + (b0 + u) * TC_THREADS, r = e / VEC, c = e % VEC;
            x[u] = r < rows ? __ldg(reinterpret_cast<const float4 *>(src + (size_t)r * ld) + c)
                            : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int u = 0; u < BATCH; u++) {
            const int e = threadIdx.x + (b0 + u) * TC_THREADS, r = e / VEC, c = e % VEC;
            __nv_bfloat162 *d = reinterpret_cast<__nv_bfloat162 *>(dst + r * (HD + 8) + 4 * c);
            d[0] = __floats2bfloat162_rn(x[u].x, x[u].y);
            d[1] = __floats2bfloat162_rn(x[u].z, x[u].w);
        }
    }
}

/* dst (16 x NC fp32, rows of NC + 4) = A B^T: A the warp's 16 rows of hd
 * (bf16, rows of HD + 8), B NC rows of hd (same rows); B^T is read as a
 * column-major matrix_b straight from B's rows. */
template <int HD, int NC>
static __device__ __forceinline__ void product_abt(float *dst, const bf16 *a, const bf16 *b)
{
    constexpr int LD = HD + 8;
    frag_c acc[NC / 16];
#pragma unroll
    for (int n = 0; n < NC / 16; n++)
        wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        frag_a fa;
        wmma::load_matrix_sync(fa, a + kk * 16, LD);
#pragma unroll
        for (int n = 0; n < NC / 16; n++) {
            frag_bt fb;
            wmma::load_matrix_sync(fb, b + n * 16 * LD + kk * 16, LD);
            wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
#pragma unroll
    for (int n = 0; n < NC / 16; n++)
        wmma::store_matrix_sync(dst + n * 16, acc[n], NC + 4, wmma::mem_row_major);
}

/* acc (16 x HD, HD/16 fragments) += P B: P a warp's 16 x TILE bf16 strip
 * (rows of LDP), B a TILE x HD tile (rows of HD + 8) */
template <int HD>
static __device__ __forceinline__ void product_acc(frag_c *acc, const bf16 *p, const bf16 *b)
{
    constexpr int LD = HD + 8;
#pragma unroll
    for (int kk = 0; kk < TILE / 16; kk++) {
        frag_a fa;
        wmma::load_matrix_sync(fa, p + kk * 16, LDP);
#pragma unroll
        for (int n = 0; n < HD / 16; n++) {
            frag_b fb;
            wmma::load_matrix_sync(fb, b + kk * 16 * LD + n * 16, LD);
            wmma::mma_sync(acc[n], fa, fb, acc[n]);
        }
    }
}

/* Rows 0..rows-1 (warp-uniform, may be <= 0) of the warp's 16 x HD
 * accumulators to dst (row stride ld floats, 8-byte aligned), TILE columns
 * at a time through the warp's fp32 strip. */
template <int HD>
static __device__ __forceinline__ void store_rows(float *dst, size_t ld, int rows,
                                                  const frag_c *acc, float *strip)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int c0 = 0; c0 < HD; c0 += TILE) {
#pragma unroll
        for (int n = 0; n < TILE / 16; n++)
            wmma::store_matrix_sync(strip + n * 16, acc[c0 / 16 + n], LDS, wmma::mem_row_major);
        __syncwarp();
        for (int r = 0; r < rows && r < STRIP; r++)
            *reinterpret_cast<float2 *>(dst + (size_t)r * ld + c0 + 2 * lane) =
                *reinterpret_cast<const float2 *>(strip + r * LDS + 2 * lane);
        __syncwarp();
    }
}

/* ---- forward ---- */

/* One step of the online softmax for the lane's row of the strip: two
 * lanes a row (lane 2r + side owns columns 2c + side), the row's query at
 * absolute position i, the tile's first key j0. Scores s (fp32, unscaled)
 * become P = exp(scale s - m_new) in bf16 (0 where masked: key > i or key
 * >= T); m, l are updated and the lane's half of the output row o is
 * rescaled by exp(m_old - m_new). Every row sees key j0 (j0 <= the block's
 * first query), so m_new is finite. */
template <int HD>
static __device__ __forceinline__ void softmax_step(const float *s, bf16 *p, float *o, int side,
                                                    int i, int j0, int T, float scale,
                                                    float *m, float *l)
{
    float x[TILE / 2], mx = -INFINITY;
#pragma unroll
    for (int c = 0; c < TILE / 2; c++) {
        const int col = 2 * c + side, j = j0 + col;
        x[c] = j <= i && j < T ? s[col] * scale : -INFINITY;
        mx = fmaxf(mx, x[c]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1));
    const float mnew = fmaxf(*m, mx), corr = expf(*m - mnew);
    float sum = 0.0f;
#pragma unroll
    for (int c = 0; c < TILE / 2; c++) {
        const float e = expf(x[c] - mnew);
        sum += e;
        p[2 * c + side] = __float2bfloat16_rn(e);
    }
    sum += __shfl_xor_sync(FULL_MASK, sum, 1);
    *l = *l * corr + sum;
    *m = mnew;
#pragma unroll
    for (int d = 0; d < HD / 2; d++)
        o[2 * d + side] *= corr;
}

/* grid (H, B, ceil(T/TILE)): the blocks of the last query tiles (most key
 * tiles) start first */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 2)
attn_tc_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                   int T, int H, int KV, float scale)
{
    constexpr int LD = HD + 8, LDO = HD + 4;
    extern __shared__ __align__(128) unsigned char smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *Ks = Qs + TILE * LD, *Vs = Ks + TILE * LD;
    unsigned char *mine = smem + 3 * tile_bytes(HD) + warp * fwd_warp_bytes(HD);
    float *Ss = reinterpret_cast<float *>(mine);       /* 16 x TILE, rows of LDS */
    float *Os = Ss + STRIP * LDS;                        /* 16 x HD, rows of LDO */
    bf16 *Ps = reinterpret_cast<bf16 *>(Os + STRIP * LDO); /* 16 x TILE, rows of LDP */

    const int h = blockIdx.x, b = blockIdx.y, g = h / (H / KV);
    const int i0 = (int)(gridDim.z - 1 - blockIdx.z) * TILE, w0 = i0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD;
    const float *vb = v + (size_t)b * T * ldk + (size_t)g * HD;
    const int r = lane >> 1, side = lane & 1, i = w0 + r; /* the lane's row, its query */

    load_tile<HD>(Qs, q + ((size_t)b * T + i0) * ldq + (size_t)h * HD, ldq, T - i0);
    for (int d = 0; d < HD / 2; d++)
        Os[r * LDO + 2 * d + side] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 <= i0; j0 += TILE) {
        __syncthreads(); /* the previous K, V tiles are no longer read */
        load_tile<HD>(Ks, kb + (size_t)j0 * ldk, ldk, T - j0);
        load_tile<HD>(Vs, vb + (size_t)j0 * ldk, ldk, T - j0);
        __syncthreads();
        product_abt<HD, TILE>(Ss, Qs + warp * STRIP * LD, Ks);
        __syncwarp();
        softmax_step<HD>(Ss + r * LDS, Ps + r * LDP, Os + r * LDO, side, i, j0, T, scale, &m,
                         &l);
        __syncwarp();
        frag_c o[HD / 16];
#pragma unroll
        for (int n = 0; n < HD / 16; n++)
            wmma::load_matrix_sync(o[n], Os + n * 16, LDO, wmma::mem_row_major);
        product_acc<HD>(o, Ps, Vs);
#pragma unroll
        for (int n = 0; n < HD / 16; n++)
            wmma::store_matrix_sync(Os + n * 16, o[n], LDO, wmma::mem_row_major);
    }
    __syncwarp();
    /* out = O / l, a row at a time across the lanes; l of row rr is lane 2rr's */
    const int rows = T - w0;
    for (int rr = 0; rr < rows && rr < STRIP; rr++) {
        const float inv = 1.0f / __shfl_sync(FULL_MASK, l, 2 * rr);
        float *dst = out + ((size_t)b * T + w0 + rr) * ldq + (size_t)h * HD;
        for (int d = 4 * lane; d < HD; d += 128) {
            float4 x = *reinterpret_cast<const float4 *>(Os + rr * LDO + d);
            x.x *= inv;
            x.y *= inv;
            x.z *= inv;
            x.w *= inv;
            *reinterpret_cast<float4 *>(dst + d) = x;
        }
    }
    if (side == 0 && i < T)
        lse[((size_t)b * H + h) * T + i] = m + logf(l);
}

/* ---- backward ---- */

/* dQ: grid (H, B, ceil(T/TILE)), the last query tiles first */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 2)
attn_tc_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                  const float *lse, const float *Dd, int T, int H, int KV, float scale)
{
    constexpr int LD = HD + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *dOs = Qs + TILE * LD;
    bf16 *Ks = dOs + TILE * LD, *Vs = Ks + TILE * LD;
    unsigned char *mine = smem + 4 * tile_bytes(HD) + warp * dq_warp_bytes();
    float *Ss = reinterpret_cast<float *>(mine), *dPs = Ss + STRIP * LDS; /* 16 x TILE */
    bf16 *dSs = reinterpret_cast<bf16 *>(dPs + STRIP * LDS);              /* 16 x TILE */

    const int h = blockIdx.x, b = blockIdx.y, g = h / (H / KV);
    const int i0 = (int)(gridDim.z - 1 - blockIdx.z) * TILE, w0 = i0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * HD;
    const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD;
    const float *vb = v + (size_t)b * T * ldk + (size_t)g * HD;
    const int r = lane >> 1, side = lane & 1, i = w0 + r; /* the lane's row, its query */
    const size_t so = ((size_t)b * H + h) * T + i;
    const float li = i < T ? lse[so] : 0.0f, Di = i < T ? Dd[so] : 0.0f;

    load_tile<HD>(Qs, q + qo, ldq, T - i0);
    load_tile<HD>(dOs, dout + qo, ldq, T - i0);
    frag_c acc[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; n++)
        wmma::fill_fragment(acc[n], 0.0f);
    for (int j0 = 0; j0 <= i0; j0 += TILE) {
        __syncthreads(); /* the previous K, V tiles are no longer read */
        load_tile<HD>(Ks, kb + (size_t)j0 * ldk, ldk, T - j0);
        load_tile<HD>(Vs, vb + (size_t)j0 * ldk, ldk, T - j0);
        __syncthreads();
        product_abt<HD, TILE>(Ss, Qs + warp * STRIP * LD, Ks);
        product_abt<HD, TILE>(dPs, dOs + warp * STRIP * LD, Vs);
        __syncwarp();
        /* dS of the lane's row: key j = j0 + col, seen when j <= i (< T) */
#pragma unroll
        for (int c = 0; c < TILE / 2; c++) {
            const int col = 2 * c + side, j = j0 + col;
            float ds = 0.0f;
            if (j <= i && i < T) {
                const float p = expf(Ss[r * LDS + col] * scale - li);
                ds = p * (dPs[r * LDS + col] - Di) * scale;
            }
            dSs[r * LDP + col] = __float2bfloat16_rn(ds);
        }
        __syncwarp();
        product_acc<HD>(acc, dSs, Ks);
    }
    store_rows<HD>(dq + ((size_t)b * T + w0) * ldq + (size_t)h * HD, ldq, T - w0, acc, Ss);
}

/* dK, dV: grid (KV, B, ceil(T/TILE)): the first key tiles (most query
 * tiles) start first. The transposed scores of a query tile are made HALF
 * queries at a time, so that two blocks fit an SM's shared memory. */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 2)
attn_tc_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                   const float *v, const float *lse, const float *Dd, int T, int H, int KV,
                   float scale)
{
    constexpr int LD = HD + 8, LDH = HALF + 4;
    extern __shared__ __align__(128) unsigned char smem[];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bf16 *Ks = reinterpret_cast<bf16 *>(smem), *Vs = Ks + TILE * LD;
    bf16 *Qs = Vs + TILE * LD, *dOs = Qs + TILE * LD;
    unsigned char *mine = smem + 4 * tile_bytes(HD) + warp * dkv_warp_bytes();
    float *Ss = reinterpret_cast<float *>(mine), *dPs = Ss + STRIP * LDH; /* 16 x HALF */
    bf16 *Ps = reinterpret_cast<bf16 *>(dPs + STRIP * LDH), *dSs = Ps + STRIP * LDP;
    float *ls = reinterpret_cast<float *>(smem + 4 * tile_bytes(HD) + TC_WARPS * dkv_warp_bytes());
    float *Ds = ls + TILE; /* lse and D of the query tile */

    const int g = blockIdx.x, b = blockIdx.y, group = H / KV;
    const int j0 = blockIdx.z * TILE, w0 = j0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const size_t ko = ((size_t)b * T + j0) * ldk + (size_t)g * HD;
    const int r = lane >> 1, side = lane & 1, j = w0 + r; /* the lane's row, its key */

    load_tile<HD>(Ks, k + ko, ldk, T - j0);
    load_tile<HD>(Vs, v + ko, ldk, T - j0);
    frag_c ak[HD / 16], av[HD / 16];
#pragma unroll
    for (int n = 0; n < HD / 16; n++) {
        wmma::fill_fragment(ak[n], 0.0f);
        wmma::fill_fragment(av[n], 0.0f);
    }
    for (int hh = 0; hh < group; hh++) {
        const int h = g * group + hh;
        for (int i0 = j0; i0 < T; i0 += TILE) {
            const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * HD;
            const size_t so = ((size_t)b * H + h) * T + i0;
            __syncthreads(); /* the previous query tile is no longer read */
            load_tile<HD>(Qs, q + qo, ldq, T - i0);
            load_tile<HD>(dOs, dout + qo, ldq, T - i0);
            if (threadIdx.x < TILE) {
                const int t = threadIdx.x;
                ls[t] = i0 + t < T ? lse[so + t] : 0.0f;
                Ds[t] = i0 + t < T ? Dd[so + t] : 0.0f;
            }
            __syncthreads();
            for (int c0 = 0; c0 < TILE; c0 += HALF) {
                product_abt<HD, HALF>(Ss, Ks + warp * STRIP * LD, Qs + c0 * LD); /* S^T/scale */
                product_abt<HD, HALF>(dPs, Vs + warp * STRIP * LD, dOs + c0 * LD); /* dP^T */
                __syncwarp();
                /* P^T, dS^T of the lane's key row: query i = i0 + c0 + col sees
                 * key j when i >= j and i < T */
#pragma unroll
                for (int c = 0; c < HALF / 2; c++) {
                    const int col = 2 * c + side, i = i0 + c0 + col;
                    float p = 0.0f, ds = 0.0f;
                    if (i >= j && i < T) {
                        p = expf(Ss[r * LDH + col] * scale - ls[c0 + col]);
                        ds = p * (dPs[r * LDH + col] - Ds[c0 + col]) * scale;
                    }
                    Ps[r * LDP + c0 + col] = __float2bfloat16_rn(p);
                    dSs[r * LDP + c0 + col] = __float2bfloat16_rn(ds);
                }
                __syncwarp();
            }
            product_acc<HD>(av, Ps, dOs);
            product_acc<HD>(ak, dSs, Qs);
        }
    }
    /* Ss and dPs together hold the 16 x TILE fp32 strip store_rows needs */
    store_rows<HD>(dk + ko + (size_t)warp * STRIP * ldk, ldk, T - w0, ak, Ss);
    store_rows<HD>(dv + ko + (size_t)warp * STRIP * ldk, ldk, T - w0, av, Ss);
}

/* ---- entry points ---- */

/* kernel's dynamic shared memory limit raised to `bytes`, with the SM's
 * carveout at its most shared memory (room for two blocks) */
static void raise_smem_limit(const void *kernel, size_t bytes)
{
    CK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    CK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                 cudaSharedmemCarveoutMaxShared));
}

template <int HD> static void raise_smem_limits(void)
{
    raise_smem_limit((const void *)attn_tc_fwd_kernel<HD>, fwd_bytes(HD));
    raise_smem_limit((const void *)attn_tc_dq_kernel<HD>, dq_bytes(HD));
    raise_smem_limit((const void *)attn_tc_dkv_kernel<HD>, dkv_bytes(HD));
}

void cu_attention_tc_init(void)
{
    raise_smem_limits<64>();
    raise_smem_limits<128>();
}

/* 1 when p is 16-byte aligned (rows are read as float4) */
static int aligned16(const void *p)
{
    return ((uintptr_t)p & 15) == 0;
}

/* the shapes the kernels take: hd 64 or 128, GQA groups, grid limits (B
 * and the tiles of T on y and z) */
static int tc_shape(int B, int T, int H, int KV, int hd)
{
    return (hd == 64 || hd == 128) && B >= 1 && B <= 65535 && T >= 1 &&
           (T + TILE - 1) / TILE <= 65535 && KV >= 1 && H >= KV && H % KV == 0;
}

template <int HD>
static void tc_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                   int B, int T, int H, int KV)
{
    dim3 grid(H, B, (T + TILE - 1) / TILE);
    attn_tc_fwd_kernel<HD><<<grid, TC_THREADS, fwd_bytes(HD), cuda_ctx.stream>>>(
        out, lse, q, k, v, T, H, KV, 1.0f / sqrtf((float)HD));
    CK_LAUNCH();
}

int cu_attention_tc_fwd(float *out, float *lse, const float *q, const float *k, const float *v,
                        int B, int T, int H, int KV, int hd)
{
    if (!tc_shape(B, T, H, KV, hd) || !aligned16(out) || !aligned16(q) || !aligned16(k) ||
        !aligned16(v))
        return -1;
    if (hd == 64)
        tc_fwd<64>(out, lse, q, k, v, B, T, H, KV);
    else
        tc_fwd<128>(out, lse, q, k, v, B, T, H, KV);
    return 0;
}

template <int HD>
static void tc_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                   const float *k, const float *v, const float *Dd, const float *lse, int B,
                   int T, int H, int KV)
{
    const float scale = 1.0f / sqrtf((float)HD);
    dim3 gq(H, B, (T + TILE - 1) / TILE);
    attn_tc_dq_kernel<HD><<<gq, TC_THREADS, dq_bytes(HD), cuda_ctx.stream>>>(
        dq, dout, q, k, v, lse, Dd, T, H, KV, scale);
    CK_LAUNCH();
    dim3 gk(KV, B, (T + TILE - 1) / TILE);
    attn_tc_dkv_kernel<HD><<<gk, TC_THREADS, dkv_bytes(HD), cuda_ctx.stream>>>(
        dk, dv, dout, q, k, v, lse, Dd, T, H, KV, scale);
    CK_LAUNCH();
}

int cu_attention_tc_bwd(float *dq, float *dk, float *dv, const float *dout, const float *q,
                        const float *k, const float *v, const float *Dd, const float *lse,
                        int B, int T, int H, int KV, int hd)
{
    if (!tc_shape(B, T, H, KV, hd) || !aligned16(dq) || !aligned16(dk) || !aligned16(dv) ||
        !aligned16(dout) || !aligned16(q) || !aligned16(k) || !aligned16(v))
        return -1;
    if (hd == 64)
        tc_bwd<64>(dq, dk, dv, dout, q, k, v, Dd, lse, B, T, H, KV);
    else
        tc_bwd<128>(dq, dk, dv, dout, q, k, v, Dd, lse, B, T, H, KV);
    return 0;
}
