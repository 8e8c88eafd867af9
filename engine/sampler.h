/*
 * sampler.h: which transformer blocks train in each sampling period.
 *
 * Every K optimizer steps (step 0 included) the sampler draws exactly gamma
 * distinct blocks by successive weighted sampling without replacement
 * (numpy's choice(L, gamma, replace=False, p=p): draw one block from p
 * renormalised over the blocks not yet chosen, gamma times). Modes:
 *   owl       p proportional to the outlier ratios D_l
 *   uniform   p = 1/L (LISA)
 *   decrease  p proportional to L - l (LISA-D, 0-based l)
 *   fixed     a given list, every period
 * The RNG is the sampler's own (splitmix64 seeded from the run's seed) and
 * its state is part of a checkpoint, so a resumed run draws the same blocks.
 */
#ifndef OWLORE_SAMPLER_H
#define OWLORE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "recipe.h"

struct sampler {
    enum sampling mode;
    int n_layers, gamma, interval;
    double *p;          /* (L) normalised probabilities (owl/uniform/decrease) */
    int *fixed;         /* (gamma) blocks for SAMPLING_FIXED */
    uint64_t rng;       /* state */
    int *active;        /* (gamma) current blocks, in draw order; -1 until
                           the first sampler_update (fixed: the list) */
};

/* ratios (L) are the outlier ratios D_l for owl mode (ignored otherwise).
 * Fails (message) when fewer than gamma blocks have non-zero probability,
 * when gamma < 1 or gamma > L, K < 1, a fixed list is invalid (wrong count,
 * duplicate, out of range), or mode is SAMPLING_ALL (no sampler needed). */
int sampler_init(struct sampler *s, enum sampling mode, int n_layers, int gamma,
                 int interval, const double *ratios, const int *fixed, int n_fixed,
                 uint64_t seed, char *err, size_t errlen);
void sampler_free(struct sampler *s);

/* At optimizer step `step`: returns 1 and redraws s->active when step % K == 0,
 * else 0 (active unchanged). A checkpoint keeps s->rng and s->active; copying
 * both back resumes the same draws. */
int sampler_update(struct sampler *s, long step);

/* Probabilities p_l = D_l / sum D (sum 1); -1 if sum D <= 0 or any D < 0. */
int sampler_probabilities(const double *ratios, int n, double *p);

#endif
