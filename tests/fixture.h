/*
 * fixture.h: reading reference tensors and comparing against them, for the
 * tests that check the engine against fixtures made by tests/ref/ scripts.
 */
#ifndef OWLORE_TEST_FIXTURE_H
#define OWLORE_TEST_FIXTURE_H

#include <math.h>
#include <stdlib.h>

#include "safetensors.h"

/* max|a-b| / max|ref| over n values: the relative error the tests bound */
static inline double fixture_rel_err(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        num = d > num ? d : num;
        den = fabs(ref[i]) > den ? fabs(ref[i]) : den;
    }
    return den > 0 ? num / den : num;
}

/* Tensor `name` of f as fp32 (malloc'ed, *n elements), or NULL. */
static inline float *fixture_read_f32(struct st_file *f, const char *name, size_t *n)
{
    char err[512];
    const struct st_tensor *t = st_find(f, name);
    if (!t)
        return NULL;
    float *buf = malloc(sizeof(float) * (t->numel ? t->numel : 1));
    if (!buf || st_read_f32(f, t, buf, t->numel, err, sizeof err) != 0) {
        free(buf);
        return NULL;
    }
    *n = t->numel;
    return buf;
}

#endif
