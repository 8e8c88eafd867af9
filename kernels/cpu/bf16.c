/*
 * bf16.c: widening and narrowing of bf16 storage (backend.h:
 * bf16_expand; bf16_round, stochastic, for weights; bf16_narrow, to
 * nearest, for saved activations; bit rules in engine/bf16.h).
 *
 * The rounding noise of element i is the low 16 bits of splitmix64(seed + i),
 * as dropout draws its mask, so a rounding depends only on (seed, i): the
 * same on any number of threads and on the CUDA backend.
 */
#include <stdint.h>

#include "bf16.h"
#include "ops.h"

void cpu_bf16_expand(float *dst, const unsigned short *src, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_to_f32(src[i]);
}

void cpu_bf16_round(unsigned short *dst, const float *src, size_t n, unsigned long long seed)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_f32_stochastic(src[i], (uint32_t)hash64(seed + i));
}

void cpu_bf16_narrow(unsigned short *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        dst[i] = bf16_from_f32(src[i]);
}
