/*
 * rope.cu: rotary position embedding (Hugging Face half-split layout), in
 * place on x (B,T,nh,hd).
 *
 * Inside every head the pair (i, i + hd/2), i < hd/2, is rotated by the
 * angle (pos0 + t) * theta^(-2i/hd); backward rotates by the opposite angle.
 * One thread per pair. The cosines and sines come from a table on the
 * device, (positions, hd/2) pairs of floats, each angle and its cosine and
 * sine computed in double and rounded to float, exactly as the CPU backend's
 * table is; it is built once for a (theta, hd) and rebuilt when a call
 * reaches past its positions (double transcendentals in every call cost a
 * 7B step about 3 ms on an H100).
 */
#include "cuda_ops.h"

/* the table: cs[2 (pos * half + i)] = cos, + 1 = sin, for pos < tab_pos */
static float *tab;
static size_t tab_cap;
static int tab_pos, tab_hd;
static float tab_theta;

static __global__ void rope_table_kernel(float *cs, int positions, int hd, float theta)
{
    const int half = hd / 2;
    const size_t n = (size_t)positions * half;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < n;
         p += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(p % half), pos = (int)(p / half);
        const double ang = (double)pos * pow((double)theta, -2.0 * i / hd);
        cs[2 * p] = (float)cos(ang);
        cs[2 * p + 1] = (float)sin(ang);
    }
}

/* the table covering positions [0, positions) for (theta, hd); NULL when
 * out of memory (recorded) */
static const float *rope_table(int positions, int hd, float theta)
{
    const int same = tab && hd == tab_hd && theta == tab_theta;
    if (same && positions <= tab_pos)
        return tab;
    /* longer positions of the same table double it: few rebuilds */
    const int n = same && positions < 2 * tab_pos ? 2 * tab_pos : positions;
    if (!cuda_grow(&tab, &tab_cap, (size_t)n * hd)) /* n (hd/2) pairs */
        return NULL;
    rope_table_kernel<<<cuda_blocks((size_t)n * (hd / 2)), CUDA_THREADS, 0, cuda_ctx.stream>>>(
        tab, n, hd, theta);
    CK_LAUNCH();
    tab_pos = n;
    tab_hd = hd;
    tab_theta = theta;
    return tab;
}

static __global__ void rope_kernel(float *x, const float *cs, int B, int T, int nh, int hd,
                                   int pos0, float sign)
{
    const int half = hd / 2;
    const size_t pairs = (size_t)B * T * nh * half;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < pairs;
         p += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(p % half);
        const size_t head = p / half; /* (b, t, h) flattened */
        const int t = (int)((head / nh) % T);
        const float *e = cs + 2 * ((size_t)(pos0 + t) * half + i);
        const float c = e[0], s = sign * e[1];
        float *v = x + head * hd;
        float x0 = v[i], x1 = v[i + half];
        v[i] = x0 * c - x1 * s;
        v[i + half] = x0 * s + x1 * c;
    }
}

static void rope_apply(float *x, int B, int T, int nh, int hd, int pos0, float theta,
                       float sign)
{
    size_t pairs = (size_t)B * T * nh * (hd / 2);
    if (pairs == 0)
        return;
    const float *cs = rope_table(pos0 + T, hd, theta);
    if (!cs) /* out of memory, recorded */
        return;
    rope_kernel<<<cuda_blocks(pairs), CUDA_THREADS, 0, cuda_ctx.stream>>>(x, cs, B, T, nh, hd,
                                                                          pos0, sign);
    CK_LAUNCH();
}

void cu_rope_fwd(float *x, int B, int T, int nh, int hd, int pos0, float theta)
{
    rope_apply(x, B, T, nh, hd, pos0, theta, 1.0f);
}

void cu_rope_bwd(float *dx, int B, int T, int nh, int hd, int pos0, float theta)
{
    rope_apply(dx, B, T, nh, hd, pos0, theta, -1.0f);
}
