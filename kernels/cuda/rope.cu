/*
 * rope.cu: rotary position embedding (Hugging Face half-split layout), in
 * place on x (B,T,nh,hd).
 *
 * Inside every head the pair (i, i + hd/2), i < hd/2, is rotated by the
 * angle (pos0 + t) * theta^(-2i/hd); backward rotates by the opposite angle.
 * One thread per pair; the angle, its cosine and sine are computed in double
 * and rounded to float, exactly as the CPU backend's table is.
 */
#include "cuda_ops.h"

static __global__ void rope_kernel(float *x, int B, int T, int nh, int hd, int pos0,
                                   float theta, float sign)
{
    const int half = hd / 2;
    const size_t pairs = (size_t)B * T * nh * half;
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < pairs;
         p += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(p % half);
        const size_t head = p / half; /* (b, t, h) flattened */
        const int t = (int)((head / nh) % T);
        double ang = (double)(pos0 + t) * pow((double)theta, -2.0 * i / hd);
        float c = (float)cos(ang), s = sign * (float)sin(ang);
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
    rope_kernel<<<cuda_blocks(pairs), CUDA_THREADS, 0, cuda_ctx.stream>>>(x, B, T, nh, hd,
                                                                          pos0, theta, sign);
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
