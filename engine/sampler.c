/*
 * sampler.c: the block sampler of LISA/OwLore (sampler.h).
 *
 * A draw picks gamma distinct blocks one at a time: u ~ U[0,1) times the
 * total probability of the blocks not chosen yet, then the first remaining
 * block whose running sum exceeds u (numpy's searchsorted(side='right') on
 * the renormalised cdf). This is numpy's choice(L, gamma, replace=False, p)
 * in distribution, not in its random stream. Uniform doubles take the top
 * 53 bits of splitmix64, whose whole state is the one uint64 s->rng.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static double uniform01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1.0p-53;
}

int sampler_probabilities(const double *ratios, int n, double *p)
{
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        if (!(ratios[i] >= 0.0) || !isfinite(ratios[i]))
            return -1;
        sum += ratios[i];
    }
    if (!(sum > 0.0) || !isfinite(sum))
        return -1;
    for (int i = 0; i < n; i++)
        p[i] = ratios[i] / sum;
    return 0;
}

/* Probabilities of mode (not fixed) into p (L); -1 with a message. */
static int mode_probabilities(enum sampling mode, int L, const double *ratios,
                              double *p, char *err, size_t errlen)
{
    switch (mode) {
    case SAMPLING_OWL:
        if (!ratios) {
            snprintf(err, errlen, "owl sampling needs the outlier ratios D_l");
            return -1;
        }
        if (sampler_probabilities(ratios, L, p) != 0) {
            snprintf(err, errlen, "owl sampling: the outlier ratios must be finite, "
                     "non-negative and not all zero");
            return -1;
        }
        return 0;
    case SAMPLING_UNIFORM:
        for (int l = 0; l < L; l++)
            p[l] = 1.0 / L;
        return 0;
    case SAMPLING_DECREASE:
        for (int l = 0; l < L; l++)
            p[l] = (double)(L - l) / ((double)L * (L + 1) / 2.0);
        return 0;
    default:
        snprintf(err, errlen, "sampling mode %d has no block sampler (sampling "
                 "'all' trains every block)", (int)mode);
        return -1;
    }
}

int sampler_init(struct sampler *s, enum sampling mode, int n_layers, int gamma,
                 int interval, const double *ratios, const int *fixed, int n_fixed,
                 uint64_t seed, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (n_layers < 1) {
        snprintf(err, errlen, "sampler: the model has %d blocks", n_layers);
        return -1;
    }
    if (gamma < 1 || gamma > n_layers) {
        snprintf(err, errlen, "gamma = %d must be between 1 and the number of "
                 "blocks (%d)", gamma, n_layers);
        return -1;
    }
    if (interval < 1) {
        snprintf(err, errlen, "sampling interval K = %d must be at least 1", interval);
        return -1;
    }
    s->mode = mode;
    s->n_layers = n_layers;
    s->gamma = gamma;
    s->interval = interval;
    s->rng = seed;
    s->active = malloc(sizeof(int) * (size_t)gamma);
    if (!s->active)
        goto oom;
    if (mode == SAMPLING_FIXED) {
        if (!fixed || n_fixed != gamma) {
            snprintf(err, errlen, "fixed sampling lists %d blocks, but gamma = %d",
                     fixed ? n_fixed : 0, gamma);
            goto fail;
        }
        for (int i = 0; i < n_fixed; i++) {
            if (fixed[i] < 0 || fixed[i] >= n_layers) {
                snprintf(err, errlen, "fixed block %d is out of range [0, %d)",
                         fixed[i], n_layers);
                goto fail;
            }
            for (int j = 0; j < i; j++) {
                if (fixed[j] == fixed[i]) {
                    snprintf(err, errlen, "fixed block %d is listed twice", fixed[i]);
                    goto fail;
                }
            }
        }
        s->fixed = malloc(sizeof(int) * (size_t)gamma);
        if (!s->fixed)
            goto oom;
        memcpy(s->fixed, fixed, sizeof(int) * (size_t)gamma);
        memcpy(s->active, fixed, sizeof(int) * (size_t)gamma);
        return 0;
    }
    s->p = malloc(sizeof(double) * (size_t)n_layers);
    if (!s->p)
        goto oom;
    if (mode_probabilities(mode, n_layers, ratios, s->p, err, errlen) != 0)
        goto fail;
    int nonzero = 0;
    for (int l = 0; l < n_layers; l++)
        nonzero += s->p[l] > 0.0;
    if (nonzero < gamma) {
        snprintf(err, errlen, "only %d blocks have a non-zero outlier ratio, fewer "
                 "than gamma = %d", nonzero, gamma);
        goto fail;
    }
    for (int i = 0; i < gamma; i++)
        s->active[i] = -1;
    return 0;
oom:
    snprintf(err, errlen, "sampler: out of memory");
fail:
    sampler_free(s);
    return -1;
}

void sampler_free(struct sampler *s)
{
    free(s->p);
    free(s->fixed);
    free(s->active);
    memset(s, 0, sizeof *s);
}

/* gamma successive weighted draws without replacement into s->active */
static void draw(struct sampler *s)
{
    const int L = s->n_layers;
    for (int i = 0; i < s->gamma; i++) {
        double total = 0.0, cum = 0.0;
        int pick = -1;
        for (int l = 0; l < L; l++) {
            int taken = 0;
            for (int j = 0; j < i; j++)
                taken |= s->active[j] == l;
            if (!taken)
                total += s->p[l];
        }
        double u = uniform01(&s->rng) * total;
        for (int l = 0; l < L; l++) {
            int taken = 0;
            for (int j = 0; j < i; j++)
                taken |= s->active[j] == l;
            if (taken || s->p[l] <= 0.0)
                continue;
            pick = l; /* the last eligible block absorbs rounding at u ~ total */
            cum += s->p[l];
            if (cum > u)
                break;
        }
        s->active[i] = pick;
    }
}

int sampler_update(struct sampler *s, long step)
{
    if (step % s->interval != 0)
        return 0;
    if (s->mode != SAMPLING_FIXED)
        draw(s);
    return 1;
}
