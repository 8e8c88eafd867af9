/*
 * test_dropout.c: the CPU backend's dropout operation (backend.h).
 *
 *   - kept elements are x / (1 - p), dropped ones 0, and the kept share is
 *     1 - p within 4 standard deviations (n = 200,000);
 *   - the mask is a function of (seed, index) only: the same seed gives the
 *     same mask (in place too: y may alias x), another seed another mask,
 *     whatever the thread count;
 *   - p = 0 keeps everything unchanged.
 */
#include <omp.h>

#include "backend.h"
#include "test.h"

#define N 200000

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    const struct backend *be = backend_cpu();
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    float *z = malloc(sizeof(float) * N), *w = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = 1.0f + (float)(i % 97) / 97.0f;

    test_begin("dropout_scale_and_keep_rate");
    const float p = 0.3f;
    be->dropout(y, x, N, p, 42);
    long kept = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        if (y[i] != 0.0f) {
            kept++;
            bad += y[i] != x[i] * (1.0f / (1.0f - p));
        }
    }
    double share = (double)kept / N, sd = sqrt(p * (1 - p) / N);
    printf("     kept %.4f (expected %.4f +- %.4f)\n", share, 1 - p, 4 * sd);
    CHECK(fabs(share - (1 - p)) < 4 * sd);
    CHECK(bad == 0);
    test_end();

    test_begin("dropout_mask_depends_on_seed_and_index_only");
    memcpy(z, x, sizeof(float) * N);
    omp_set_num_threads(1);
    be->dropout(z, z, N, p, 42); /* in place, one thread */
    omp_set_num_threads(omp_get_num_procs());
    CHECK(memcmp(y, z, sizeof(float) * N) == 0);
    be->dropout(w, x, N, p, 43);
    CHECK(memcmp(y, w, sizeof(float) * N) != 0);
    be->dropout(w, x, N, 0.0f, 42);
    CHECK(memcmp(w, x, sizeof(float) * N) == 0);
    test_end();
    free(x);
    free(y);
    free(z);
    free(w);
    return test_finish();
}
