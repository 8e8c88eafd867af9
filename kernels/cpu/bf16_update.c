/*
 * bf16_update.c: optimizer updates of weights stored in bf16 on the CPU
 * (backend.h: adamw_bf16, bf16_add_round), each one pass over the weights:
 * an element is widened, updated in fp32 and narrowed back by stochastic
 * rounding with bf16_round's noise (hash64(seed + i)). The arithmetic is
 * that of bf16_expand, adam_direction (adam_element), apply_update and
 * bf16_round in sequence, so a fused step equals the unfused one bit for
 * bit, without the fp32 copy of the weights and its traffic.
 */
#include <stdint.h>

#include "bf16.h"
#include "ops.h"

void cpu_adamw_bf16(unsigned short *w, float *m, float *v, const float *g, size_t n, float beta1,
                    float beta2, float eps, float step, float decay, unsigned long long seed)
{
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2, keep = 1.0f - decay;

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float dir = adam_element(&m[i], &v[i], g[i], beta1, beta2, c1, c2, eps);
        float x = (bf16_to_f32(w[i]) - step * dir) * keep;
        w[i] = bf16_from_f32_stochastic(x, (uint32_t)hash64(seed + i));
    }
}

void cpu_bf16_add_round(unsigned short *w, const float *d, size_t n, float decay,
                        unsigned long long seed)
{
    const float keep = 1.0f - decay;

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float x = (bf16_to_f32(w[i]) + d[i]) * keep;
        w[i] = bf16_from_f32_stochastic(x, (uint32_t)hash64(seed + i));
    }
}
