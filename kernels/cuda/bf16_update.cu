/*
 * bf16_update.cu: optimizer updates of weights stored in bf16 on the GPU
 * (backend.h: adamw_bf16, bf16_add_round), each one pass over the weights,
 * as kernels/cpu/bf16_update.c: an element is widened, updated in fp32
 * (adam_element, the apply_update arithmetic) and narrowed back by
 * stochastic rounding with bf16_round's noise, hash64(seed + i). Per
 * element of a 7B model's AdamW step that is 24 bytes of memory traffic
 * instead of 48 through the fp32 copy; for GaLore's update, 12 instead of
 * 20 (its product's output included). Grid-stride loops over size_t indices,
 * four elements at a time where the arrays allow (vec4_launch).
 */
#include <stdint.h>

#include "cuda_ops.h"

/* w (n, bf16) stepped by AdamW on its moments m, v (n) and gradient g (n) */
struct adamw_op {
    uint16_t *w;
    float *m, *v;
    const float *g;
    float beta1, beta2, c1, c2, eps, step, keep;
    unsigned long long seed;
    /* element i's weight after the step, its moments updated in place */
    __device__ uint16_t weight(uint16_t wi, float &mi, float &vi, float gi, size_t i) const
    {
        float dir = adam_element(&mi, &vi, gi, beta1, beta2, c1, c2, eps);
        float x = apply_element(__uint_as_float((uint32_t)wi << 16), dir, step, keep);
        return bf16_stochastic(__float_as_uint(x), (uint32_t)hash64(seed + i));
    }
    __device__ void one(size_t i) const
    {
        w[i] = weight(w[i], m[i], v[i], g[i], i);
    }
    __device__ void four(size_t q) const
    {
        float4 mq = reinterpret_cast<float4 *>(m)[q], vq = reinterpret_cast<float4 *>(v)[q];
        const float4 gq = reinterpret_cast<const float4 *>(g)[q];
        ushort4 wq = reinterpret_cast<ushort4 *>(w)[q];
        wq.x = weight(wq.x, mq.x, vq.x, gq.x, 4 * q);
        wq.y = weight(wq.y, mq.y, vq.y, gq.y, 4 * q + 1);
        wq.z = weight(wq.z, mq.z, vq.z, gq.z, 4 * q + 2);
        wq.w = weight(wq.w, mq.w, vq.w, gq.w, 4 * q + 3);
        reinterpret_cast<float4 *>(m)[q] = mq;
        reinterpret_cast<float4 *>(v)[q] = vq;
        reinterpret_cast<ushort4 *>(w)[q] = wq;
    }
};

void cu_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n, float beta1,
                   float beta2, float eps, float step, float decay, unsigned long long seed)
{
    const adamw_op op = {reinterpret_cast<uint16_t *>(w), m, v, g, beta1, beta2,
                         1.0f - beta1, 1.0f - beta2, eps, step, 1.0f - decay, seed};
    vec4_launch(op, n, aligned_to(w, 8) && aligned_to(m, 16) && aligned_to(v, 16) &&
                           aligned_to(g, 16));
}

/* w (n, bf16) += d (n), decayed, narrowed by stochastic rounding */
struct add_round_op {
    uint16_t *w;
    const float *d;
    float keep;
    unsigned long long seed;
    __device__ uint16_t weight(uint16_t wi, float di, size_t i) const
    {
        float x = (__uint_as_float((uint32_t)wi << 16) + di) * keep;
        return bf16_stochastic(__float_as_uint(x), (uint32_t)hash64(seed + i));
    }
    __device__ void one(size_t i) const
    {
        w[i] = weight(w[i], d[i], i);
    }
    __device__ void four(size_t q) const
    {
        const float4 dq = reinterpret_cast<const float4 *>(d)[q];
        ushort4 wq = reinterpret_cast<ushort4 *>(w)[q];
        wq.x = weight(wq.x, dq.x, 4 * q);
        wq.y = weight(wq.y, dq.y, 4 * q + 1);
        wq.z = weight(wq.z, dq.z, 4 * q + 2);
        wq.w = weight(wq.w, dq.w, 4 * q + 3);
        reinterpret_cast<ushort4 *>(w)[q] = wq;
    }
};

void cu_bf16_add_round(unsigned short *w, const float *d, size_t n, float decay,
                       unsigned long long seed)
{
    const add_round_op op = {reinterpret_cast<uint16_t *>(w), d, 1.0f - decay, seed};
    vec4_launch(op, n, aligned_to(w, 8) && aligned_to(d, 16));
}
