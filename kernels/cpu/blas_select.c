/*
 * blas_select.c: make OpenBLAS use the fast kernels on CPUs it does not know.
 *
 * Debian 12's OpenBLAS (0.3.21) picks its kernels once, when the library
 * loads, from the CPU model number. On CPUs newer than it (Emerald Rapids,
 * for one) detection fails and it falls back to "Prescott", its plain SSE3
 * kernels, which run matrix products several times slower. OpenBLAS reads
 * OPENBLAS_CORETYPE only at load time, so when detection failed, the user
 * has not chosen a core type, and the CPU has AVX-512, the process
 * re-executes itself once with OPENBLAS_CORETYPE=SkylakeX (AVX-512 kernels;
 * their results are checked by the model tests against PyTorch).
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

void backend_cpu_select_kernels(char **argv)
{
    const char *core = openblas_get_corename();
    if (getenv("OPENBLAS_CORETYPE") || !core || strcmp(core, "Prescott") != 0)
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f"))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels, results are the same */
}
