/*
 * vexp.h: a vectorisable single-precision exp for the CPU kernels.
 *
 * glibc's expf and exp are scalar calls that stop a loop from vectorising;
 * exp_v is inline and declared `omp declare simd`, so the softmax,
 * cross-entropy and SiLU loops run it 16 lanes at a time.
 */
#ifndef OWLORE_VEXP_H
#define OWLORE_VEXP_H

#include <math.h>
#include <stdint.h>

/* The bits of a float; named at file scope because clang 14 refuses an
 * anonymous union inside a `declare simd` function. */
typedef union { int32_t i; float f; } vexp_bits;

/* exp(x) for x <= 88, vectorisable: x = n ln2 + r with |r| <= ln2/2,
 * exp(r) by the Cephes polynomial (about 1 ulp), times 2^n built in the
 * exponent bits. Inputs above 88 give exp(88); inputs below -87.3 give
 * 2^-126 * exp(r) instead of ~0, a value far below fp32 resolution of any
 * sum it is added to. */
#pragma omp declare simd notinbranch
static inline float exp_v(float x)
{
    x = x < -87.33654f ? -87.33654f : x > 88.0f ? 88.0f : x;
    const float n = rintf(x * 1.44269504088896341f);
    const float r = fmaf(n, 2.12194440e-4f, fmaf(n, -0.693359375f, x));
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p * r, r, r) + 1.0f;
    vexp_bits two_n = {.i = ((int32_t)n + 127) << 23};
    return p * two_n.f;
}

#endif
