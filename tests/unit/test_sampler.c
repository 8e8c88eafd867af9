/*
 * test_sampler.c: the block sampler against owlore-algorithm.md section 11
 * items 1-3, on the shipped LLaMA-2-7B outlier ratios (tau = 13, section 2):
 *   - probabilities p = D / sum D (sum, argmax, minimum, first entry);
 *   - draws: exactly gamma distinct blocks, inclusion frequencies of
 *     successive weighted sampling (not gamma * p), uniform gamma / L,
 *     zero-probability blocks never drawn, too few non-zero blocks refused;
 *   - schedule: redraws exactly at steps s % K == 0, constant in between;
 *   - decrease and fixed modes, invalid arguments, determinism by seed, and
 *     resuming from a copied RNG state.
 */
#include <stdint.h>

#include "sampler.h"
#include "test.h"

#define L7B 32

/* metric_cache/llama2_7b_ratio_13.txt as shipped (pixeli99/OwLore; percent,
 * layers 0..31; section 2 lists them rounded to 4 decimals) */
static const double D7B[L7B] = {
    2.678090426588305428e-01, 2.952778277619514946e-01, 1.274385600510039018e-01,
    1.144503064723830094e-01, 9.875322252975227144e-02, 8.836756098455715580e-02,
    8.784279304464864824e-02, 8.377114725854112320e-02, 8.014174940672563752e-02,
    7.217634527176773618e-02, 7.065639594675962587e-02, 6.964836713563593573e-02,
    6.295979949476805670e-02, 5.907938270371194955e-02, 5.522169597408314173e-02,
    5.371508820686932834e-02, 4.682738546262750490e-02, 3.923159189174829642e-02,
    3.358514815414508081e-02, 3.397551225257043617e-02, 3.159132646155481117e-02,
    2.787693794527202132e-02, 2.784432524844154822e-02, 2.294006742961665971e-02,
    2.542555023351481328e-02, 2.092351567559909420e-02, 2.421048021069462444e-02,
    1.818059021944826506e-02, 1.837626640043110715e-02, 2.085186656892608695e-02,
    2.406817026088892489e-02, 8.246120393585046338e-02};

/* Inclusion frequency of each block over n draws (one per period). */
static void inclusion(struct sampler *s, int n, double *freq)
{
    for (int l = 0; l < s->n_layers; l++)
        freq[l] = 0.0;
    for (int i = 0; i < n; i++) {
        sampler_update(s, (long)i * s->interval);
        for (int j = 0; j < s->gamma; j++)
            freq[s->active[j]] += 1.0 / n;
    }
}

/* Every active block is in range and appears once. */
static int draw_valid(const struct sampler *s)
{
    for (int j = 0; j < s->gamma; j++) {
        if (s->active[j] < 0 || s->active[j] >= s->n_layers)
            return 0;
        for (int k = 0; k < j; k++)
            if (s->active[k] == s->active[j])
                return 0;
    }
    return 1;
}

static void test_probabilities(void)
{
    double p[L7B], sum_d = 0.0, sum_p = 0.0;
    int argmax = 0, argmin = 0;
    test_begin("probabilities_llama2_7b_tau13");
    CHECK(sampler_probabilities(D7B, L7B, p) == 0);
    for (int l = 0; l < L7B; l++) {
        sum_d += D7B[l];
        sum_p += p[l];
        argmax = p[l] > p[argmax] ? l : argmax;
        argmin = p[l] < p[argmin] ? l : argmin;
    }
    CHECK_MSG(fabs(sum_p - 1.0) <= 1e-12, "sum p = %.17g", sum_p);
    CHECK_MSG(fabs(sum_d - 2.18568) <= 5e-6, "sum D = %.9g, expected 2.18568", sum_d);
    CHECK(argmax == 1 && argmin == 27);
    CHECK_MSG(fabs(p[1] - 0.1351) <= 5e-5, "p1 = %.6f, expected 0.1351", p[1]);
    CHECK_MSG(fabs(p[0] - 0.1225) <= 5e-5, "p0 = %.6f, expected 0.1225", p[0]);
    CHECK_MSG(fabs(p[27] - 0.0083) <= 5e-5, "p27 = %.6f, expected 0.0083", p[27]);
    double sum_gp = 0.0; /* the paper's gamma * p variant sums to gamma */
    for (int l = 0; l < L7B; l++)
        sum_gp += 5.0 * p[l];
    CHECK(fabs(sum_gp - 5.0) <= 1e-12 * 5.0);
    double bad[3] = {1.0, -0.5, 1.0}, zero[3] = {0.0, 0.0, 0.0}, q[3];
    CHECK(sampler_probabilities(bad, 3, q) == -1);
    CHECK(sampler_probabilities(zero, 3, q) == -1);
    test_end();
}

static void test_owl_inclusion(void)
{
    const int n = 40000;
    struct sampler s;
    char err[256];
    double freq[L7B];
    const int layer[5] = {0, 1, 2, 31, 27};
    const double want[5] = {0.520, 0.553, 0.293, 0.196, 0.048};
    int valid = 1;
    test_begin("owl_gamma5_inclusion_frequencies");
    CHECK_MSG(sampler_init(&s, SAMPLING_OWL, L7B, 5, 1, D7B, NULL, 0, 111, err,
                           sizeof err) == 0, "%s", err);
    for (int l = 0; l < L7B; l++)
        freq[l] = 0.0;
    for (int i = 0; i < n; i++) {
        CHECK(sampler_update(&s, i) == 1);
        valid &= draw_valid(&s);
        for (int j = 0; j < 5; j++)
            freq[s.active[j]] += 1.0 / n;
    }
    CHECK_MSG(valid, "a draw was not 5 distinct blocks in [0, 32)");
    for (int i = 0; i < 5; i++)
        CHECK_MSG(fabs(freq[layer[i]] - want[i]) <= 0.01,
                  "layer %d included %.4f of draws, expected %.3f +- 0.01", layer[i],
                  freq[layer[i]], want[i]);
    double total = 0.0;
    for (int l = 0; l < L7B; l++)
        total += freq[l];
    CHECK(fabs(total - 5.0) < 1e-6);
    sampler_free(&s);
    test_end();
}

static void test_uniform(void)
{
    struct sampler s;
    char err[256];
    double freq[L7B];
    test_begin("uniform_inclusion_gamma_over_L");
    CHECK_MSG(sampler_init(&s, SAMPLING_UNIFORM, L7B, 5, 3, NULL, NULL, 0, 7, err,
                           sizeof err) == 0, "%s", err);
    inclusion(&s, 40000, freq);
    for (int l = 0; l < L7B; l++)
        CHECK_MSG(fabs(freq[l] - 5.0 / L7B) <= 0.01, "layer %d: %.4f, expected %.4f", l,
                  freq[l], 5.0 / L7B);
    sampler_free(&s);
    test_end();
}

static void test_zero_probability(void)
{
    struct sampler s;
    char err[256];
    const double d[10] = {0.5, 0.0, 0.2, 0.0, 0.0, 0.1, 0.3, 0.0, 0.05, 0.0};
    const double three[6] = {0.1, 0.0, 0.2, 0.0, 0.3, 0.0};
    int seen[10] = {0}, valid = 1;
    test_begin("zero_probability_blocks_never_drawn");
    CHECK_MSG(sampler_init(&s, SAMPLING_OWL, 10, 3, 1, d, NULL, 0, 5, err, sizeof err) == 0,
              "%s", err);
    for (int i = 0; i < 20000; i++) {
        sampler_update(&s, i);
        valid &= draw_valid(&s);
        for (int j = 0; j < 3; j++)
            seen[s.active[j]]++;
    }
    CHECK(valid);
    for (int l = 0; l < 10; l++)
        CHECK_MSG((seen[l] > 0) == (d[l] > 0), "block %d (D = %g) drawn %d times", l,
                  d[l], seen[l]);
    sampler_free(&s);
    /* exactly gamma non-zero: every draw is those blocks */
    CHECK(sampler_init(&s, SAMPLING_OWL, 6, 3, 1, three, NULL, 0, 9, err, sizeof err) == 0);
    for (int i = 0; i < 1000; i++) {
        sampler_update(&s, i);
        int mask = 0;
        for (int j = 0; j < 3; j++)
            mask |= 1 << s.active[j];
        valid &= mask == (1 << 0 | 1 << 2 | 1 << 4);
    }
    CHECK(valid);
    sampler_free(&s);
    /* fewer than gamma non-zero is an error */
    const double d8[8] = {0.1, 0.0, 0.2, 0.0, 0.0, 0.3, 0.0, 0.0};
    CHECK(sampler_init(&s, SAMPLING_OWL, 8, 5, 1, d8, NULL, 0, 1, err, sizeof err) == -1);
    CHECK_MSG(strcmp(err, "only 3 blocks have a non-zero outlier ratio, fewer than "
                     "gamma = 5") == 0, "message: %s", err);
    test_end();
}

static void test_schedule(void)
{
    const int K = 50, steps = 1000;
    struct sampler s;
    char err[256];
    int prev[5], changes = 0, ok = 1;
    test_begin("schedule_redraws_only_at_multiples_of_K");
    CHECK_MSG(sampler_init(&s, SAMPLING_OWL, L7B, 5, K, D7B, NULL, 0, 111, err,
                           sizeof err) == 0, "%s", err);
    for (long step = 0; step < steps; step++) {
        int redrawn = sampler_update(&s, step);
        ok &= redrawn == (step % K == 0);
        if (step > 0) {
            int same = memcmp(prev, s.active, sizeof prev) == 0;
            if (step % K != 0)
                ok &= same;
            else
                changes += !same;
        }
        ok &= draw_valid(&s);
        memcpy(prev, s.active, sizeof prev);
    }
    CHECK_MSG(ok, "the active set changed inside a window, or redraws were not at s %% K == 0");
    CHECK_MSG(changes >= steps / K - 3, "only %d of %d redraws changed the set", changes,
              steps / K - 1);
    sampler_free(&s);
    test_end();
}

static void test_decrease(void)
{
    struct sampler s;
    char err[256];
    double freq[8];
    test_begin("decrease_mode_frequencies_ordered");
    CHECK_MSG(sampler_init(&s, SAMPLING_DECREASE, 8, 2, 1, NULL, NULL, 0, 3, err,
                           sizeof err) == 0, "%s", err);
    CHECK_NEAR(s.p[0], 8.0 / 36.0, 1e-15);
    CHECK_NEAR(s.p[7], 1.0 / 36.0, 1e-15);
    inclusion(&s, 40000, freq);
    for (int l = 0; l + 1 < 8; l++)
        CHECK_MSG(freq[l] > freq[l + 1], "block %d: %.4f, block %d: %.4f", l, freq[l],
                  l + 1, freq[l + 1]);
    sampler_free(&s);
    test_end();
}

static void test_fixed(void)
{
    struct sampler s;
    char err[256];
    const int list[3] = {4, 0, 2};
    int ok = 1;
    test_begin("fixed_mode_and_invalid_arguments");
    CHECK_MSG(sampler_init(&s, SAMPLING_FIXED, 6, 3, 10, NULL, list, 3, 1, err,
                           sizeof err) == 0, "%s", err);
    for (long step = 0; step < 100; step++) {
        ok &= sampler_update(&s, step) == (step % 10 == 0);
        ok &= memcmp(s.active, list, sizeof list) == 0;
    }
    CHECK(ok);
    sampler_free(&s);
    CHECK(sampler_init(&s, SAMPLING_FIXED, 6, 3, 10, NULL, (const int[]){4, 0, 4}, 3, 1,
                       err, sizeof err) == -1 && strstr(err, "twice"));
    CHECK(sampler_init(&s, SAMPLING_FIXED, 6, 3, 10, NULL, (const int[]){4, 0, 6}, 3, 1,
                       err, sizeof err) == -1 && strstr(err, "out of range"));
    CHECK(sampler_init(&s, SAMPLING_FIXED, 6, 3, 10, NULL, (const int[]){4, -1, 2}, 3, 1,
                       err, sizeof err) == -1 && strstr(err, "out of range"));
    CHECK(sampler_init(&s, SAMPLING_FIXED, 6, 3, 10, NULL, list, 2, 1, err,
                       sizeof err) == -1 && strstr(err, "gamma = 3"));
    CHECK(sampler_init(&s, SAMPLING_UNIFORM, 6, 7, 10, NULL, NULL, 0, 1, err,
                       sizeof err) == -1 && strstr(err, "gamma = 7"));
    CHECK(sampler_init(&s, SAMPLING_UNIFORM, 6, 0, 10, NULL, NULL, 0, 1, err,
                       sizeof err) == -1 && strstr(err, "gamma = 0"));
    CHECK(sampler_init(&s, SAMPLING_UNIFORM, 6, 2, 0, NULL, NULL, 0, 1, err,
                       sizeof err) == -1 && strstr(err, "K = 0"));
    CHECK(sampler_init(&s, SAMPLING_OWL, 6, 2, 1, NULL, NULL, 0, 1, err,
                       sizeof err) == -1);
    CHECK(sampler_init(&s, SAMPLING_OWL, 3, 2, 1, (const double[]){0.1, -0.1, 0.3}, NULL,
                       0, 1, err, sizeof err) == -1 && strstr(err, "non-negative"));
    CHECK(sampler_init(&s, SAMPLING_ALL, 6, 6, 1, NULL, NULL, 0, 1, err, sizeof err) == -1);
    test_end();
}

/* the active sets of n successive periods, flattened (n, gamma) */
static void record(struct sampler *s, long first_step, int n, int *out)
{
    for (int i = 0; i < n; i++) {
        sampler_update(s, first_step + (long)i * s->interval);
        memcpy(out + i * s->gamma, s->active, sizeof(int) * (size_t)s->gamma);
    }
}

static void test_determinism(void)
{
    struct sampler a, b;
    char err[256];
    int ra[100 * 5], rb[100 * 5];
    test_begin("same_seed_same_draws_different_seed_different");
    CHECK(sampler_init(&a, SAMPLING_OWL, L7B, 5, 50, D7B, NULL, 0, 111, err, sizeof err) == 0);
    CHECK(sampler_init(&b, SAMPLING_OWL, L7B, 5, 50, D7B, NULL, 0, 111, err, sizeof err) == 0);
    record(&a, 0, 100, ra);
    record(&b, 0, 100, rb);
    CHECK(memcmp(ra, rb, sizeof ra) == 0);
    sampler_free(&b);
    CHECK(sampler_init(&b, SAMPLING_OWL, L7B, 5, 50, D7B, NULL, 0, 112, err, sizeof err) == 0);
    record(&b, 0, 100, rb);
    CHECK(memcmp(ra, rb, sizeof ra) != 0);
    sampler_free(&a);
    sampler_free(&b);
    test_end();
}

static void test_resume(void)
{
    struct sampler a, b;
    char err[256];
    int future[30 * 5], again[30 * 5], saved_active[5];
    test_begin("rng_state_copy_restores_future_draws");
    CHECK(sampler_init(&a, SAMPLING_OWL, L7B, 5, 50, D7B, NULL, 0, 111, err, sizeof err) == 0);
    record(&a, 0, 10, future); /* ten periods in: steps 0..450 */
    uint64_t saved = a.rng;    /* what a checkpoint at step 460 keeps */
    memcpy(saved_active, a.active, sizeof saved_active);
    record(&a, 500, 30, future);
    /* a fresh sampler with another seed, restored from the checkpoint */
    CHECK(sampler_init(&b, SAMPLING_OWL, L7B, 5, 50, D7B, NULL, 0, 999, err, sizeof err) == 0);
    b.rng = saved;
    memcpy(b.active, saved_active, sizeof saved_active);
    CHECK(sampler_update(&b, 460) == 0 && memcmp(b.active, saved_active, sizeof saved_active) == 0);
    record(&b, 500, 30, again);
    CHECK(memcmp(future, again, sizeof future) == 0);
    sampler_free(&a);
    sampler_free(&b);
    test_end();
}

int main(void)
{
    test_probabilities();
    test_owl_inclusion();
    test_uniform();
    test_zero_probability();
    test_schedule();
    test_decrease();
    test_fixed();
    test_determinism();
    test_resume();
    return test_finish();
}
