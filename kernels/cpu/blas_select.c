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
 *
 * The same re-execution sets OMP_WAIT_POLICY=passive when the user has not
 * chosen a policy: with libgomp's default, idle OpenMP threads spin, and on
 * a machine whose cores are shared (the server's HTTP threads, a second job,
 * a busy CI host) spinning threads starve the working ones: a small SVD was
 * seen taking 50 s instead of 0.2 s. Passive waiting costs little here.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"

void backend_cpu_select_kernels(char **argv)
{
    const char *core = openblas_get_corename();
    int again = 0;
    __builtin_cpu_init();
    if (!getenv("OPENBLAS_CORETYPE") && core && strcmp(core, "Prescott") == 0 &&
        __builtin_cpu_supports("avx512f")) {
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
        again = 1;
    }
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        again = 1;
    }
    if (again)
        execv("/proc/self/exe", argv);
    /* exec failed: carry on as loaded, results are the same */
}
