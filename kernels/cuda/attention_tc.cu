/*
 * attention_tc.cu: causal grouped-query attention, forward and backward, on
 * bf16 tensor cores (PTX mma.sync m16n8k16, bf16 operands, fp32
 * accumulators), FlashAttention-2 style: the attention path of the bf16 math
 * mode (OWLORE_CUDA_MATH=bf16) for the training shape (q_off = 0,
 * Tq = Tk = T) at head widths 64 and 128. attention.cu calls it first in that
 * mode and takes its own paths when it declines (-1): another head width, or
 * an operand not 16-byte aligned (rows are read as float4).
 *
 * Layouts as attention.cu: q, out, dq (B,T,H,hd); k, v, dk, dv (B,T,KV,hd);
 * lse, D (B,H,T); query head h reads kv head g = h / (H/KV); scale
 * 1/sqrt(hd); query i sees keys 0..i. S is the scaled score, P = exp(S - lse),
 * D_i = dO_i . O_i (attention.cu's rowdot), dS = P o (dP - D) * scale.
 *
 * Blocks of 4 warps; a block owns TILE = 64 query rows (forward, dQ) or 64
 * keys (dK/dV), a warp 16 of them (its strip), and walks tiles of 64 keys
 * (queries for dK/dV) up to the causal limit. Tiles of q, k, v, dout are
 * read from fp32 global memory (float4), rounded to bf16 (nearest even) and
 * kept in shared memory as rows of hd + 8 elements: the 16 bytes of padding
 * put the 8 rows an ldmatrix phase reads in distinct banks. Rows past T are
 * zero and never written back.
 *
 * Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point
 * type" and "ldmatrix"): lane = 4 gr + tq. A 16 x 8 fp32 product tile (C)
 * holds in lane (gr, tq) the rows gr and gr + 8, columns 2tq and 2tq + 1; a
 * 16 x 16 bf16 left operand (A) holds rows gr and gr + 8 at columns 2tq, +1
 * and 2tq + 8, +9. So a warp's scores stay in registers: a row lives in the
 * 4 lanes of a quad (max and sum reduce with two xor shuffles), and the C
 * tiles of 16 adjacent columns, rounded and packed in pairs, are the A
 * operand of the next product (P V, dS K, ...). A 64-column strip is 8 C
 * tiles (32 fp32 registers a lane), a 16 x hd accumulator hd/8 tiles.
 * Operands read from the shared tiles come through ldmatrix.x4: a warp's
 * strip as the left operand, a tile as the right operand of the score
 * products (S = Q K^T, dP = dO V^T, S^T = K Q^T, dP^T = V dO^T: the tile's
 * rows are the product's columns), and transposed (.trans) as the right
 * operand of the second products (P V, dS K, P^T dO, dS^T Q: its rows are
 * the reduction index). Masked scores are set to -inf, so P and dS are 0.
 *
 * Grids are (heads, B, tiles of T) with the blocks of most tiles first.
 *   forward, per (b, h, 64 queries): S = Q K^T (scaled, masked above the
 *     diagonal in the last key tile); online softmax per row (running max m,
 *     the lane's partial sum l, in fp32); P rounded to bf16; the register
 *     accumulators O rescaled by exp(m_old - m_new), O += P V; at the end l
 *     is summed over the quad, out = O / l, lse = m + log l.
 *   dQ, per (b, h, 64 queries): S = Q K^T, dP = dO V^T, P = exp(S - lse),
 *     dS rounded to bf16, dQ += dS K in register accumulators.
 *   dK/dV, per (b, kv head g, 64 keys): over the query heads of group g in
 *     head order and the query tiles from the block's first key on, QCH = 32
 *     queries at a time (registers), the transposed products S^T = K Q^T and
 *     dP^T = V dO^T (the warp's rows are keys; lse and D of the columns come
 *     from shared memory), P^T and dS^T rounded to bf16, dV += P^T dO and
 *     dK += dS^T Q in register accumulators.
 * Rounded to bf16: q, k, v, dout as loaded, P and dS before their second
 * products. fp32: every product's sum, the softmax statistics, D, the
 * accumulators and the outputs (out, lse, dq, dk, dv fully overwritten).
 * exp is expf (no fast math).
 *
 * Deterministic: no atomics; each output element is written by one lane,
 * whose sums run in a fixed order (key or query tiles ascending, heads of a
 * group in head order, the 16-wide slices of a tile ascending, the quad's
 * partial sums combined by the same two shuffles), and the tensor cores'
 * products are themselves deterministic.
 *
 * Shared memory per block at hd = 128 (hd = 64): forward 51 KB (27 KB), dQ
 * 68 KB (36 KB), dK/dV 68.5 KB (36.5 KB); cu_attention_tc_init raises the
 * default 48 KB limit and asks for the SM's largest shared carveout.
 * Registers: the forward and dQ are bounded to 168 a thread (three blocks
 * an SM), dK/dV, with two hd-wide accumulators, to 255 (two blocks).
 */
#include <cuda_bf16.h>
#include <stdint.h>
#include <string.h>

#include "cuda_ops.h"

typedef __nv_bfloat16 bf16;

#define TC_WARPS 4
#define TC_THREADS (TC_WARPS * 32)
#define TILE 64        /* rows of a block; keys (queries) of a walked tile */
#define STRIP 16       /* rows of a warp */
#define NT (TILE / 8)  /* 16 x 8 product tiles across a TILE-wide strip */
#define QCH 32         /* queries of dK/dV's transposed score strips */
#define FULL_MASK 0xffffffffu

/* ---- shared-memory sizes (bytes) ---- */

/* a TILE x hd bf16 tile, rows of hd + 8 */
static __host__ __device__ constexpr size_t tile_bytes(int hd)
{
    return (size_t)TILE * (hd + 8) * sizeof(bf16);
}
/* forward: Q, K, V tiles */
static constexpr size_t fwd_bytes(int hd)
{
    return 3 * tile_bytes(hd);
}
/* dQ: Q, dO, K, V tiles */
static constexpr size_t dq_bytes(int hd)
{
    return 4 * tile_bytes(hd);
}
/* dK/dV: K, V, Q, dO tiles, then lse and D of the query tile */
static constexpr size_t dkv_bytes(int hd)
{
    return 4 * tile_bytes(hd) + 2 * TILE * sizeof(float);
}
/* tiles carved in order keep ldmatrix's 16-byte row alignment */
static_assert(tile_bytes(64) % 16 == 0 && tile_bytes(128) % 16 == 0, "tile alignment");
/* the blocks an SM holds by their registers (__launch_bounds__: three of the
 * forward and dQ, two of dK/dV) fit the 228 KB of an H100 SM (1 KB of it
 * reserved per block) */
static_assert(3 * (fwd_bytes(128) + 1024) <= 228 * 1024 &&
              3 * (dq_bytes(128) + 1024) <= 228 * 1024 &&
              2 * (dkv_bytes(128) + 1024) <= 228 * 1024, "blocks an SM");

/* ---- tensor-core primitives (fragment layouts: the header) ---- */

/* p's address in the shared window, as ldmatrix takes it */
static __device__ __forceinline__ uint32_t smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* four 8 x 8 bf16 matrices: lanes 8x..8x+7 give the shared addresses of
 * rows 0..7 of matrix x; r[x] of lane l receives row l/4, columns 2(l%4), +1
 * of it */
static __device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row)
                 : "memory");
}

/* the same, transposed: r[x] of lane l receives column l/4, rows 2(l%4), +1 */
static __device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t row)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(row)
                 : "memory");
}

/* c (16 x 8 fp32) += a (16 x 16 bf16) b (16 x 8 bf16: b0 rows 0-7, b1 8-15) */
static __device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                                uint32_t b1)
{
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* lo, hi rounded to bf16 (nearest even), lo in the low half */
static __device__ __forceinline__ uint32_t pack_bf16(float lo, float hi)
{
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, sizeof(u));
    return u;
}

/* ---- fragments of shared bf16 tiles (rows of LD elements, given by the
 * shared address of their row 0) ---- */

/* shared address of element (r, c) of a tile with rows of LD */
template <int LD>
static __device__ __forceinline__ uint32_t smem_at(uint32_t tile, int r, int c)
{
    return tile + (uint32_t)((r * LD + c) * sizeof(bf16));
}

/* A fragment (16 x 16) of rows 0..15, columns k0..k0+15: lanes 0-15 address
 * rows 0-15 at k0 (matrices a[0], a[1]), lanes 16-31 at k0 + 8 (a[2], a[3]) */
template <int LD>
static __device__ __forceinline__ void load_a(uint32_t (&a)[4], uint32_t rows, int k0)
{
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(a, smem_at<LD>(rows, lane & 15, k0 + (lane >> 4) * 8));
}

/* right operands of R^T for the two 16 x 8 tiles of rows 0..7 and 8..15 of R
 * at columns k0..k0+15: b[0], b[1] the first tile's (rows 0..7 at k0, at
 * k0 + 8: lanes 0-7, 8-15), b[2], b[3] the second's (lanes 16-23, 24-31) */
template <int LD>
static __device__ __forceinline__ void load_bt(uint32_t (&b)[4], uint32_t rows, int k0)
{
    const int lane = threadIdx.x & 31;
    ldmatrix_x4(b, smem_at<LD>(rows, (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8));
}

/* right operands of the two 16 x 8 tiles at rows k0..k0+15, columns n0..n0+7
 * and n0+8..n0+15 of a row-major tile: b[0], b[1] the first (rows k0..k0+7,
 * k0+8..k0+15 at column n0: lanes 0-7, 8-15), b[2], b[3] the second (column
 * n0 + 8: lanes 16-23, 24-31) */
template <int LD>
static __device__ __forceinline__ void load_b(uint32_t (&b)[4], uint32_t rows, int k0, int n0)
{
    const int lane = threadIdx.x & 31;
    ldmatrix_x4_trans(b, smem_at<LD>(rows, k0 + (lane & 15), n0 + (lane >> 4) * 8));
}

/* ---- warp products ---- */

/* s (16 x 8 N8 fp32, N8 C tiles) = A R^T over HD: A the warp's 16 rows, R
 * 8 N8 rows of another tile (both bf16, rows of HD + 8) */
template <int HD, int N8>
static __device__ __forceinline__ void product_abt(float (&s)[N8][4], uint32_t a_rows,
                                                   uint32_t r_rows)
{
    constexpr int LD = HD + 8;
#pragma unroll
    for (int n = 0; n < N8; n++)
        s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        uint32_t a[4];
        load_a<LD>(a, a_rows, kk * 16);
#pragma unroll
        for (int np = 0; np < N8 / 2; np++) {
            uint32_t b[4];
            load_bt<LD>(b, smem_at<LD>(r_rows, np * 16, 0), kk * 16);
            mma_bf16(s[2 * np], a, b[0], b[1]);
            mma_bf16(s[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* acc (16 x HD fp32, HD/8 C tiles) += P B: P 16 x 16 KS as A fragments
 * (k-steps of 16), B rows 0..16 KS-1 of a tile (bf16, rows of HD + 8) */
template <int HD, int KS>
static __device__ __forceinline__ void product_acc(float (&acc)[HD / 8][4],
                                                   const uint32_t (&p)[KS][4], uint32_t b_rows)
{
    constexpr int LD = HD + 8;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
#pragma unroll
        for (int np = 0; np < HD / 16; np++) {
            uint32_t b[4];
            load_b<LD>(b, b_rows, kk * 16, np * 16);
            mma_bf16(acc[2 * np], p[kk], b[0], b[1]);
            mma_bf16(acc[2 * np + 1], p[kk], b[2], b[3]);
        }
    }
}

/* p (16 x 8 N8 bf16 as N8/2 A fragments) = c (N8 C tiles) rounded: k-step kk
 * is C tiles 2kk (columns 2tq, +1) and 2kk + 1 (columns 2tq + 8, +9) */
template <int N8>
static __device__ __forceinline__ void to_a_fragments(uint32_t (&p)[N8 / 2][4],
                                                      const float (&c)[N8][4])
{
#pragma unroll
    for (int kk = 0; kk < N8 / 2; kk++) {
        p[kk][0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);         /* row gr */
        p[kk][1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);         /* row gr + 8 */
        p[kk][2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]); /* row gr */
        p[kk][3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]); /* row gr + 8 */
    }
}

/* ---- global memory ---- */

/* dst[t] (TILE x HD bf16, rows of HD + 8) = rows 0..rows-1 of src[t] (fp32,
 * row stride ld floats, 16-byte aligned rows), t < N, rounded to the
 * nearest bf16, ties to even; rows from `rows` on are zero. A thread reads
 * float4 column c of rows r0, r0 + RS, ...; it has 8 loads of every tile in
 * flight before their stores. */
template <int HD, int N>
static __device__ __forceinline__ void load_tiles(bf16 *const (&dst)[N],
                                                  const float *const (&src)[N], size_t ld,
                                                  int rows)
{
    constexpr int VEC = HD / 4;          /* float4 per row */
    constexpr int RS = TC_THREADS / VEC; /* rows between a thread's float4 */
    constexpr int BATCH = 8;
    static_assert(TILE % (RS * BATCH) == 0, "whole batches");
    const int r0 = threadIdx.x / VEC, c = threadIdx.x % VEC, left = rows - r0;
    const size_t step = (size_t)RS * ld;
#pragma unroll
    for (int b0 = 0; b0 < TILE / RS; b0 += BATCH) {
        float4 x[N][BATCH];
#pragma unroll
        for (int t = 0; t < N; t++) {
            const float *p = src[t] + (size_t)(r0 + b0 * RS) * ld + 4 * c;
#pragma unroll
            for (int u = 0; u < BATCH; u++, p += step)
                x[t][u] = (b0 + u) * RS < left ? __ldg(reinterpret_cast<const float4 *>(p))
                                               : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int t = 0; t < N; t++) {
            bf16 *d = dst[t] + (r0 + b0 * RS) * (HD + 8) + 4 * c;
#pragma unroll
            for (int u = 0; u < BATCH; u++)
                *reinterpret_cast<uint2 *>(d + u * RS * (HD + 8)) =
                    make_uint2(pack_bf16(x[t][u].x, x[t][u].y), pack_bf16(x[t][u].z, x[t][u].w));
        }
    }
}

/* Rows 0..rows-1 (rows may be <= 0) of the warp's 16 x HD accumulators to
 * dst (row stride ld floats, 8-byte aligned): lane (gr, tq) writes rows gr
 * and gr + 8, columns 8n + 2tq, +1 */
template <int HD>
static __device__ __forceinline__ void store_rows(float *dst, size_t ld, int rows,
                                                  const float (&acc)[HD / 8][4])
{
    const int lane = threadIdx.x & 31, gr = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int r = gr + 8 * half;
        if (r < rows) {
            float *d = dst + (size_t)r * ld + 2 * tq;
#pragma unroll
            for (int n = 0; n < HD / 8; n++)
                *reinterpret_cast<float2 *>(d + 8 * n) =
                    make_float2(acc[n][2 * half], acc[n][2 * half + 1]);
        }
    }
}

/* ---- score masks (element e of C tile n of the lane: row `row` +
 * 8 (e/2), column 8n + 2tq + e%2 of the strip) ---- */

/* forward, dQ, in the diagonal tile (keys and queries from the same first
 * position): -inf where key column > query row */
static __device__ __forceinline__ void mask_above_diagonal(float (&s)[NT][4], int row)
{
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            if (8 * n + 2 * tq + (e & 1) > row + 8 * (e >> 1))
                s[n][e] = -INFINITY;
}

/* dK/dV, rows keys, columns the queries c0.. of the tile: -inf where the
 * query is past the tile's `valid` queries (T) or, in the diagonal tile
 * (`diagonal`), before the key */
template <int N8>
static __device__ __forceinline__ void mask_transposed(float (&s)[N8][4], int row, int c0,
                                                       bool diagonal, int valid)
{
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < N8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int col = c0 + 8 * n + 2 * tq + (e & 1);
            if (col >= valid || (diagonal && col < row + 8 * (e >> 1)))
                s[n][e] = -INFINITY;
        }
}

/* ---- forward ---- */

/* One online-softmax step over the lane's two rows (half 0: row gr, half 1:
 * gr + 8) of a 16 x TILE strip of raw scores s (C tiles; -inf where
 * masked): s becomes P = exp(scale s - m_new) in fp32, the running max m
 * (the same in the quad's 4 lanes) and the lane's partial sums l are
 * updated and the accumulators o rescaled by exp(m_old - m_new). Every row
 * sees the tile's first key (j0 <= the block's first query), so m_new is
 * finite. */
template <int HD>
static __device__ __forceinline__ void online_softmax(float (&s)[NT][4], float (&o)[HD / 8][4],
                                                      float (&m)[2], float (&l)[2], float scale)
{
#pragma unroll
    for (int half = 0; half < 2; half++) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 2 * half; e < 2 * half + 2; e++) {
                s[n][e] *= scale;
                mx = fmaxf(mx, s[n][e]);
            }
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(FULL_MASK, mx, 2));
        const float mnew = fmaxf(m[half], mx), corr = expf(m[half] - mnew);
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 2 * half; e < 2 * half + 2; e++) {
                s[n][e] = expf(s[n][e] - mnew);
                sum += s[n][e];
            }
        l[half] = l[half] * corr + sum;
        m[half] = mnew;
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            o[n][2 * half] *= corr;
            o[n][2 * half + 1] *= corr;
        }
    }
}

/* grid (H, B, ceil(T/TILE)): the blocks of the last query tiles (most key
 * tiles) start first */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 3)
attn_tc_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v,
                   int T, int H, int KV, float scale)
{
    constexpr int LD = HD + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *Ks = Qs + TILE * LD, *Vs = Ks + TILE * LD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.x, b = blockIdx.y, g = h / (H / KV);
    const int i0 = (int)(gridDim.z - 1 - blockIdx.z) * TILE, w0 = i0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD;
    const float *vb = v + (size_t)b * T * ldk + (size_t)g * HD;
    const int row = warp * STRIP + (lane >> 2); /* the lane's first row in the tile */
    const uint32_t q_strip = smem_at<LD>(smem_addr(Qs), warp * STRIP, 0);
    const uint32_t ks = smem_addr(Ks), vs = smem_addr(Vs);

    load_tiles<HD, 1>({Qs}, {q + ((size_t)b * T + i0) * ldq + (size_t)h * HD}, ldq, T - i0);
    float o[HD / 8][4] = {}, m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    for (int j0 = 0; j0 <= i0; j0 += TILE) {
        __syncthreads(); /* the previous K, V tiles are no longer read */
        load_tiles<HD, 2>({Ks, Vs}, {kb + (size_t)j0 * ldk, vb + (size_t)j0 * ldk}, ldk, T - j0);
        __syncthreads();
        float s[NT][4];
        product_abt<HD, NT>(s, q_strip, ks);
        if (j0 == i0)
            mask_above_diagonal(s, row);
        online_softmax<HD>(s, o, m, l, scale);
        uint32_t p[NT / 2][4];
        to_a_fragments<NT>(p, s);
        product_acc<HD, NT / 2>(o, p, vs);
    }
    /* l summed over the quad (the same two shuffles give its 4 lanes the
     * same sum); out = O / l, lse = m + log l */
#pragma unroll
    for (int half = 0; half < 2; half++) {
        l[half] += __shfl_xor_sync(FULL_MASK, l[half], 1);
        l[half] += __shfl_xor_sync(FULL_MASK, l[half], 2);
        const float inv = 1.0f / l[half];
#pragma unroll
        for (int n = 0; n < HD / 8; n++) {
            o[n][2 * half] *= inv;
            o[n][2 * half + 1] *= inv;
        }
        const int i = w0 + (lane >> 2) + 8 * half;
        if ((lane & 3) == 0 && i < T)
            lse[((size_t)b * H + h) * T + i] = m[half] + logf(l[half]);
    }
    store_rows<HD>(out + ((size_t)b * T + w0) * ldq + (size_t)h * HD, ldq, T - w0, o);
}

/* ---- backward ---- */

/* dS = P o (dP - D) scale with P = exp(scale s - lse) over the lane's two
 * rows (lse, D per row half) of a 16 x TILE strip (s -inf where masked),
 * rounded into A fragments */
static __device__ __forceinline__ void grad_scores(uint32_t (&ds)[NT / 2][4], float (&s)[NT][4],
                                                   const float (&dp)[NT][4], const float (&lr)[2],
                                                   const float (&dr)[2], float scale)
{
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float p = expf(s[n][e] * scale - lr[e >> 1]);
            s[n][e] = p * (dp[n][e] - dr[e >> 1]) * scale;
        }
    to_a_fragments<NT>(ds, s);
}

/* dQ: grid (H, B, ceil(T/TILE)), the last query tiles first */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 3)
attn_tc_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v,
                  const float *lse, const float *Dd, int T, int H, int KV, float scale)
{
    constexpr int LD = HD + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(smem), *dOs = Qs + TILE * LD;
    bf16 *Ks = dOs + TILE * LD, *Vs = Ks + TILE * LD;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int h = blockIdx.x, b = blockIdx.y, g = h / (H / KV);
    const int i0 = (int)(gridDim.z - 1 - blockIdx.z) * TILE, w0 = i0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * HD;
    const float *kb = k + (size_t)b * T * ldk + (size_t)g * HD;
    const float *vb = v + (size_t)b * T * ldk + (size_t)g * HD;
    const int row = warp * STRIP + (lane >> 2); /* the lane's first row in the tile */
    const uint32_t q_strip = smem_at<LD>(smem_addr(Qs), warp * STRIP, 0);
    const uint32_t do_strip = smem_at<LD>(smem_addr(dOs), warp * STRIP, 0);
    const uint32_t ks = smem_addr(Ks), vs = smem_addr(Vs);
    float li[2], Di[2]; /* lse, D of the lane's two rows */
#pragma unroll
    for (int half = 0; half < 2; half++) {
        const int i = i0 + row + 8 * half;
        const size_t so = ((size_t)b * H + h) * T + i;
        li[half] = i < T ? lse[so] : 0.0f;
        Di[half] = i < T ? Dd[so] : 0.0f;
    }

    load_tiles<HD, 2>({Qs, dOs}, {q + qo, dout + qo}, ldq, T - i0);
    float acc[HD / 8][4] = {};
    for (int j0 = 0; j0 <= i0; j0 += TILE) {
        __syncthreads(); /* the previous K, V tiles are no longer read */
        load_tiles<HD, 2>({Ks, Vs}, {kb + (size_t)j0 * ldk, vb + (size_t)j0 * ldk}, ldk, T - j0);
        __syncthreads();
        float s[NT][4], dp[NT][4];
        product_abt<HD, NT>(s, q_strip, ks);
        if (j0 == i0)
            mask_above_diagonal(s, row);
        product_abt<HD, NT>(dp, do_strip, vs);
        uint32_t ds[NT / 2][4];
        grad_scores(ds, s, dp, li, Di, scale);
        product_acc<HD, NT / 2>(acc, ds, ks);
    }
    store_rows<HD>(dq + ((size_t)b * T + w0) * ldq + (size_t)h * HD, ldq, T - w0, acc);
}

/* P^T = exp(scale s - lse) and dS^T = P^T o (dP^T - D) scale over a strip
 * whose rows are keys and whose 8 N8 columns are queries (lse, D of the
 * columns from shared memory, 8-byte aligned at column 0; s -inf where
 * masked), both rounded into A fragments */
template <int N8>
static __device__ __forceinline__ void grad_scores_transposed(uint32_t (&pt)[N8 / 2][4],
                                                              uint32_t (&dst)[N8 / 2][4],
                                                              float (&s)[N8][4],
                                                              float (&dp)[N8][4],
                                                              const float *ls, const float *Ds,
                                                              float scale)
{
    const int tq = threadIdx.x & 3;
#pragma unroll
    for (int n = 0; n < N8; n++) {
        const float2 lc = *reinterpret_cast<const float2 *>(ls + 8 * n + 2 * tq);
        const float2 dc = *reinterpret_cast<const float2 *>(Ds + 8 * n + 2 * tq);
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float p = expf(s[n][e] * scale - ((e & 1) ? lc.y : lc.x));
            s[n][e] = p;
            dp[n][e] = p * (dp[n][e] - ((e & 1) ? dc.y : dc.x)) * scale;
        }
    }
    to_a_fragments<N8>(pt, s);
    to_a_fragments<N8>(dst, dp);
}

/* dK, dV: grid (KV, B, ceil(T/TILE)): the first key tiles (most query
 * tiles) start first. The transposed scores of a query tile are made QCH
 * queries at a time, so that both accumulators fit the registers. */
template <int HD>
static __global__ void __launch_bounds__(TC_THREADS, 2)
attn_tc_dkv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k,
                   const float *v, const float *lse, const float *Dd, int T, int H, int KV,
                   float scale)
{
    constexpr int LD = HD + 8;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(smem), *Vs = Ks + TILE * LD;
    bf16 *Qs = Vs + TILE * LD, *dOs = Qs + TILE * LD;
    float *ls = reinterpret_cast<float *>(dOs + TILE * LD), *Ds = ls + TILE; /* of the query tile */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = blockIdx.x, b = blockIdx.y, group = H / KV;
    const int j0 = blockIdx.z * TILE, w0 = j0 + warp * STRIP;
    const size_t ldq = (size_t)H * HD, ldk = (size_t)KV * HD;
    const size_t ko = ((size_t)b * T + j0) * ldk + (size_t)g * HD;
    const int row = warp * STRIP + (lane >> 2); /* the lane's first key in the tile */
    const uint32_t k_strip = smem_at<LD>(smem_addr(Ks), warp * STRIP, 0);
    const uint32_t v_strip = smem_at<LD>(smem_addr(Vs), warp * STRIP, 0);
    const uint32_t qs = smem_addr(Qs), dos = smem_addr(dOs);

    load_tiles<HD, 2>({Ks, Vs}, {k + ko, v + ko}, ldk, T - j0);
    float ak[HD / 8][4] = {}, av[HD / 8][4] = {};
    for (int hh = 0; hh < group; hh++) {
        const int h = g * group + hh;
        for (int i0 = j0; i0 < T; i0 += TILE) {
            const size_t qo = ((size_t)b * T + i0) * ldq + (size_t)h * HD;
            const size_t so = ((size_t)b * H + h) * T + i0;
            __syncthreads(); /* the previous query tile is no longer read */
            load_tiles<HD, 2>({Qs, dOs}, {q + qo, dout + qo}, ldq, T - i0);
            if (threadIdx.x < TILE) {
                const int t = threadIdx.x;
                ls[t] = i0 + t < T ? lse[so + t] : 0.0f;
                Ds[t] = i0 + t < T ? Dd[so + t] : 0.0f;
            }
            __syncthreads();
            const bool diagonal = i0 == j0, edge = diagonal || i0 + TILE > T;
#pragma unroll
            for (int c0 = 0; c0 < TILE; c0 += QCH) {
                float s[QCH / 8][4], dp[QCH / 8][4];
                product_abt<HD, QCH / 8>(s, k_strip, smem_at<LD>(qs, c0, 0)); /* S^T / scale */
                if (edge)
                    mask_transposed<QCH / 8>(s, row, c0, diagonal, T - i0);
                product_abt<HD, QCH / 8>(dp, v_strip, smem_at<LD>(dos, c0, 0)); /* dP^T */
                uint32_t pt[QCH / 16][4], dst[QCH / 16][4];
                grad_scores_transposed<QCH / 8>(pt, dst, s, dp, ls + c0, Ds + c0, scale);
                product_acc<HD, QCH / 16>(av, pt, smem_at<LD>(dos, c0, 0));
                product_acc<HD, QCH / 16>(ak, dst, smem_at<LD>(qs, c0, 0));
            }
        }
    }
    store_rows<HD>(dk + ko + (size_t)warp * STRIP * ldk, ldk, T - w0, ak);
    store_rows<HD>(dv + ko + (size_t)warp * STRIP * ldk, ldk, T - w0, av);
}

/* ---- entry points ---- */

/* kernel's dynamic shared memory limit raised to `bytes`, with the SM's
 * carveout at its most shared memory */
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
