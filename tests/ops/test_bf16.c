/*
 * test_bf16.c: bf16 storage arithmetic (engine/bf16.h and the CPU
 * backend's bf16_expand, bf16_round and bf16_narrow, backend.h).
 *
 *   - rounding to nearest: exact values stay, halfway cases go to the even
 *     neighbour, NaN stays NaN, infinities stay infinite;
 *   - widening is exact: bf16 -> fp32 -> bf16 gives the same bits back for
 *     every finite pattern, also through bf16_narrow, which rounds ties to
 *     even;
 *   - stochastic rounding lands on one of the two neighbours, and its mean
 *     equals the input within 4 standard deviations (n = 400,000), where
 *     rounding to nearest would be off by up to half a step every time;
 *   - its noise is a function of (seed, index) only, whatever the thread
 *     count, and another seed draws other roundings;
 *   - matmul_bf16 gives bit for bit what matmul gives on the widened
 *     weights, for W used transposed (forward products) and as it is (input
 *     gradients), with alpha, beta and leading dimensions wider than the
 *     rows;
 *   - the fused optimizer updates (adamw_bf16, bf16_add_round) give bit for
 *     bit what their unfused sequences give, moments included.
 */
#include <omp.h>

#include "backend.h"
#include "bf16.h"
#include "test.h"

#define N 400000

static uint32_t bits_of(float x)
{
    uint32_t b;
    memcpy(&b, &x, sizeof b);
    return b;
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    const struct backend *be = backend_cpu();

    test_begin("bf16_round_to_nearest_even");
    CHECK(bf16_from_f32(1.0f) == 0x3F80);
    CHECK(bf16_from_f32(-2.0f) == 0xC000);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even (1) wins */
    CHECK(bf16_from_f32(1.0f + 0x1p-8f) == 0x3F80);
    /* 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even wins */
    CHECK(bf16_from_f32(1.0f + 3 * 0x1p-8f) == 0x3F82);
    CHECK(bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81); /* above half */
    CHECK(bf16_from_f32(-1.0f - 0x1p-9f) == 0xBF80);             /* below half */
    CHECK(bf16_to_f32(0xC040) == -3.0f);
    CHECK(bf16_from_f32(INFINITY) == 0x7F80 && bf16_from_f32(-INFINITY) == 0xFF80);
    CHECK(isnan(bf16_to_f32(bf16_from_f32(NAN))));
    /* a NaN whose payload sits in the dropped bits stays a NaN */
    uint32_t quiet_low = 0x7F800001u;
    float nan_low;
    memcpy(&nan_low, &quiet_low, sizeof nan_low);
    CHECK(isnan(bf16_to_f32(bf16_from_f32(nan_low))));
    CHECK(isnan(bf16_to_f32(bf16_from_f32_stochastic(nan_low, 0xFFFF))));
    CHECK(bf16_from_f32_stochastic(INFINITY, 0xFFFF) == 0x7F80);
    /* the largest finite fp32 rounds to infinity, as it must */
    CHECK(bf16_from_f32(3.4028235e38f) == 0x7F80);
    test_end();

    test_begin("bf16_widening_is_exact");
    long bad = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7F80u) == 0x7F80u)
            continue; /* NaN and infinities */
        float x = bf16_to_f32((uint16_t)h);
        bad += bits_of(x) != h << 16 || bf16_from_f32(x) != h;
    }
    unsigned short *pat = malloc(sizeof *pat * 0x10000);
    float *wide = malloc(sizeof(float) * 0x10000);
    for (uint32_t h = 0; h < 0x10000u; h++)
        pat[h] = (unsigned short)h;
    be->bf16_expand(wide, pat, 0x10000);
    for (uint32_t h = 0; h < 0x10000u; h++)
        bad += bits_of(wide[h]) != h << 16;
    CHECK(bad == 0);
    /* bf16_narrow (saved activations) rounds to nearest: the widened
     * patterns come back, a tie goes to the even neighbour */
    unsigned short *back = malloc(sizeof *back * 0x10000);
    be->bf16_narrow(back, wide, 0x10000);
    for (uint32_t h = 0; h < 0x10000u; h++)
        bad += (h & 0x7F80u) != 0x7F80u && back[h] != h;
    const float ties[3] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -1.0f - 0x1p-9f};
    be->bf16_narrow(back, ties, 3);
    CHECK(back[0] == 0x3F80 && back[1] == 0x3F82 && back[2] == 0xBF80);
    CHECK(bad == 0);
    free(back);
    free(pat);
    free(wide);
    test_end();

    test_begin("bf16_stochastic_rounding_is_unbiased");
    float *x = malloc(sizeof(float) * N);
    unsigned short *a = malloc(sizeof *a * N), *b = malloc(sizeof *b * N);
    /* x = -(1.5 + 0.3 step): neighbours -1.5 and -(1.5 + step), step 2^-7 */
    const float step = 0x1p-7f, v = -(1.5f + 0.3f * step);
    for (int i = 0; i < N; i++)
        x[i] = v;
    be->bf16_round(a, x, N, 7);
    double sum = 0;
    long off = 0, up = 0;
    for (int i = 0; i < N; i++) {
        float r = bf16_to_f32(a[i]);
        off += r != -1.5f && r != -(1.5f + step);
        up += r == -(1.5f + step);
        sum += r;
    }
    double mean = sum / N, sd = step * sqrt(0.3 * 0.7 / N);
    printf("     mean %.8f for %.8f (4 sd %.2g; nearest %.8f), %.3f rounded away\n", mean,
           (double)v, 4 * sd, (double)bf16_to_f32(bf16_from_f32(v)), (double)up / N);
    CHECK(off == 0);
    CHECK(fabs(mean - v) < 4 * sd);
    test_end();

    test_begin("bf16_rounding_noise_depends_on_seed_and_index_only");
    for (int i = 0; i < N; i++)
        x[i] = (float)(i % 1013) * 0.0137f - 7.0f;
    omp_set_num_threads(1);
    be->bf16_round(b, x, N, 7);
    omp_set_num_threads(omp_get_num_procs());
    be->bf16_round(a, x, N, 7);
    CHECK(memcmp(a, b, sizeof *a * N) == 0);
    be->bf16_round(b, x, N, 8);
    CHECK(memcmp(a, b, sizeof *a * N) != 0);
    test_end();

    test_begin("bf16_matmul_equals_matmul_on_widened_weights");
    enum { M = 7, NN = 13, K = 11, LDA = K + 2, LDW = 17, LDC = NN + 3 };
    float A[M * LDA], W32[NN * LDW], C0[M * LDC], C1[M * LDC];
    unsigned short W16[NN * LDW];
    for (int i = 0; i < M * LDA; i++)
        A[i] = (float)((i * 37) % 101) * 0.013f - 0.6f;
    for (int i = 0; i < NN * LDW; i++) {
        W16[i] = bf16_from_f32((float)((i * 53) % 97) * 0.021f - 1.0f);
        W32[i] = bf16_to_f32(W16[i]);
    }
    for (int tw = 0; tw <= 1; tw++) {
        /* op(W) (K,NN): W is (NN,K) when transposed, else (K,NN); LDW >= both */
        for (int i = 0; i < M * LDC; i++)
            C0[i] = C1[i] = (float)(i % 5) - 2.0f;
        be->matmul(0, tw, M, NN, K, 0.5f, A, LDA, W32, LDW, 0.25f, C0, LDC);
        be->matmul_bf16(tw, M, NN, K, 0.5f, A, LDA, W16, LDW, 0.25f, C1, LDC);
        CHECK(memcmp(C0, C1, sizeof C0) == 0);
    }
    test_end();

    test_begin("bf16_embedding_rows_equal_embedding_of_widened_table");
    enum { V = 9, D = 5, NT = 6 };
    const int tok[NT] = {3, 0, 8, 3, 5, 1};
    float T32[V * D], E0[NT * D], E1[NT * D];
    unsigned short T16[V * D];
    for (int i = 0; i < V * D; i++) {
        T16[i] = bf16_from_f32((float)((i * 29) % 83) * 0.037f - 1.5f);
        T32[i] = bf16_to_f32(T16[i]);
    }
    be->embedding_fwd(E0, tok, T32, NT, D);
    be->embedding_fwd_bf16(E1, tok, T16, NT, D);
    CHECK(memcmp(E0, E1, sizeof E0) == 0);
    test_end();

    test_begin("bf16_fused_updates_equal_their_unfused_sequences");
    /* adamw_bf16 against bf16_expand, adam_direction, apply_update,
     * bf16_round; bf16_add_round against bf16_expand, add_inplace, scale,
     * bf16_round: on the same bits, weight decay on, an odd length, the
     * weights' values spanning 2^-20..2^20 with a NaN and an infinity */
    enum { U = 100003 };
    unsigned short *w0 = malloc(sizeof *w0 * U), *w1 = malloc(sizeof *w1 * U);
    float *g = malloc(sizeof *g * U), *m0 = malloc(sizeof *m0 * U), *m1 = malloc(sizeof *m1 * U);
    float *v0 = malloc(sizeof *v0 * U), *v1 = malloc(sizeof *v1 * U), *w32 = malloc(sizeof *w32 * U);
    for (int i = 0; i < U; i++) {
        w0[i] = w1[i] = bf16_from_f32(ldexpf((float)((i * 71) % 199) / 199.0f - 0.5f, i % 41 - 20));
        g[i] = (float)((i * 37) % 113) * 0.0091f - 0.5f;
        m0[i] = m1[i] = (float)((i * 13) % 29) * 0.001f - 0.014f;
        v0[i] = v1[i] = (float)((i * 17) % 31) * 1e-4f;
    }
    w0[5] = w1[5] = 0x7FC0; /* NaN */
    w0[6] = w1[6] = 0xFF80; /* -infinity */
    be->bf16_expand(w32, w0, U);
    be->adam_direction(x, m0, v0, g, U, 0.9f, 0.999f, 1e-8f);
    be->apply_update(w32, x, U, 1e-3f, 1e-4f);
    be->bf16_round(w0, w32, U, 1234);
    be->adamw_bf16(w1, m1, v1, g, U, 0.9f, 0.999f, 1e-8f, 1e-3f, 1e-4f, 1234);
    CHECK(memcmp(w0, w1, sizeof *w0 * U) == 0);
    CHECK(memcmp(m0, m1, sizeof *m0 * U) == 0 && memcmp(v0, v1, sizeof *v0 * U) == 0);
    int moved = 0; /* the step is not vacuous: many weights changed */
    for (int i = 0; i < U; i++)
        moved += w0[i] != bf16_from_f32(ldexpf((float)((i * 71) % 199) / 199.0f - 0.5f,
                                               i % 41 - 20));
    printf("     adamw_bf16 changed %d of %d weights\n", moved, U);
    be->bf16_expand(w32, w0, U);
    be->add_inplace(w32, g, U);
    be->scale(w32, U, 1.0f - 1e-4f);
    be->bf16_round(w0, w32, U, 99);
    be->bf16_add_round(w1, g, U, 1e-4f, 99);
    CHECK(memcmp(w0, w1, sizeof *w0 * U) == 0);
    CHECK(isnan(bf16_to_f32(w1[5])) && w1[6] == 0xFF80);
    CHECK(moved > U / 10);
    free(w0);
    free(w1);
    free(g);
    free(m0);
    free(m1);
    free(v0);
    free(v1);
    free(w32);
    test_end();
    free(x);
    free(a);
    free(b);
    return test_finish();
}
