/*
 * backend_select.c: pick the backend a job runs on, by name.
 *
 * "cpu" is always there. "cuda" needs a build with the CUDA objects (the
 * Makefile defines OWLORE_CUDA for this file when nvcc is present) and a GPU
 * that opens; otherwise the reason comes back in err. "auto" takes CUDA when
 * a GPU opens and the CPU otherwise, so the server uses the GPU when there is
 * one.
 */
#include <stdio.h>
#include <string.h>

#include "backend.h"

const struct backend *backend_select(const char *name, char *err, size_t errlen)
{
    if (!name || strcmp(name, "cpu") == 0)
        return backend_cpu();
    if (strcmp(name, "cuda") != 0 && strcmp(name, "auto") != 0) {
        snprintf(err, errlen, "unknown backend '%s' (cpu, cuda or auto)", name);
        return NULL;
    }
#ifdef OWLORE_CUDA
    char why[512];
    const struct backend *be = backend_cuda(why, sizeof why);
    if (be)
        return be;
#else
    const char *why = "this build has no CUDA backend (nvcc was not found when it was built)";
#endif
    if (strcmp(name, "auto") == 0)
        return backend_cpu();
    snprintf(err, errlen, "backend cuda: %s", why);
    return NULL;
}
