/*
 * dropout.c: inverted dropout with a stateless mask (backend.h: dropout).
 *
 * Element i is kept unless the top 24 bits of splitmix64(seed + i) fall
 * below p * 2^24; a kept element is scaled by 1 / (1 - p). The mask depends
 * only on (seed, i), so the LoRA backward pass redraws exactly the mask its
 * forward pass used, on any number of threads.
 */
#include <stdint.h>

#include "ops.h"

void cpu_dropout(float *y, const float *x, size_t n, float p, unsigned long long seed)
{
    const uint64_t cut = (uint64_t)((double)p * (double)(1u << 24));
    const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] = (hash64(seed + i) >> 40) < cut ? 0.0f : x[i] * keep_scale;
}
