/*
 * rope.c: rotary position embedding (Hugging Face half-split layout).
 *
 * Inside every head of width hd, the pair (i, i + hd/2) for i < hd/2 is
 * rotated by the angle pos * theta^(-2i/hd). Files stored with adjacent
 * pairs (llama2.c, GGUF) are permuted into this layout when loaded. The
 * backward pass is the rotation by the opposite angle. Angles are computed
 * in double once per call.
 */
#include <math.h>
#include <stdlib.h>

#include "ops.h"

static void rope_apply(float *x, int B, int T, int nh, int hd, int pos0,
                       float theta, float sign)
{
    const int half = hd / 2;
    float *cs = malloc(sizeof(float) * 2 * (size_t)T * half);
    if (!cs)
        abort(); /* a few KiB: out of memory here means the process is lost */
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double ang = (double)(pos0 + t) * pow((double)theta, -2.0 * i / hd);
            cs[2 * ((size_t)t * half + i)] = (float)cos(ang);
            cs[2 * ((size_t)t * half + i) + 1] = sign * (float)sin(ang);
        }
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *ct = cs + 2 * (size_t)t * half;
            for (int h = 0; h < nh; h++) {
                float *v = x + (((size_t)b * T + t) * nh + h) * hd;
                for (int i = 0; i < half; i++) {
                    float c = ct[2 * i], s = ct[2 * i + 1];
                    float x0 = v[i], x1 = v[i + half];
                    v[i] = x0 * c - x1 * s;
                    v[i + half] = x0 * s + x1 * c;
                }
            }
        }
    free(cs);
}

void cpu_rope_fwd(float *x, int B, int T, int nh, int hd, int pos0, float theta)
{
    rope_apply(x, B, T, nh, hd, pos0, theta, 1.0f);
}

void cpu_rope_bwd(float *dx, int B, int T, int nh, int hd, int pos0, float theta)
{
    rope_apply(dx, B, T, nh, hd, pos0, theta, -1.0f);
}
