/*
 * bf16.h: bfloat16 bit patterns on the host.
 *
 * A bf16 value is the high 16 bits of an fp32 one (sign, 8-bit exponent,
 * 7-bit mantissa), so widening is a shift and narrowing drops the low 16
 * bits after rounding them. Two roundings:
 *   bf16_from_f32             to nearest, ties to even (loading a model)
 *   bf16_from_f32_stochastic  up with probability (low bits) / 2^16, so the
 *                             result is unbiased (weight updates; backend.h
 *                             bf16_round draws `noise` from a hash)
 * NaN stays a (quiet) NaN and infinities stay infinite in both.
 */
#ifndef OWLORE_BF16_H
#define OWLORE_BF16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* The bf16 of a NaN or an infinity (exponent all ones), mantissa kept
 * non-zero for a NaN. */
static inline uint16_t bf16_special(uint32_t bits)
{
    uint16_t h = (uint16_t)(bits >> 16);
    return (bits & 0x007FFFFFu) ? (uint16_t)(h | 0x0040u) : h;
}

static inline uint16_t bf16_from_f32(float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u)
        return bf16_special(bits);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

/* noise: 16 uniformly random bits */
static inline uint16_t bf16_from_f32_stochastic(float x, uint32_t noise)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7F800000u) == 0x7F800000u)
        return bf16_special(bits);
    bits += noise & 0xFFFFu;
    return (uint16_t)(bits >> 16);
}

#endif
