/*
 * gpu_train.c: train a model for a few steps through the shared trainer
 * (engine/train.c) on a chosen backend, and print one JSON line of results.
 *
 *   gpu_train BACKEND SHAPE METHOD STEPS [B T [CKPT [BF16 [INBWD [CLIP [ACT16]]]]]]
 *     BACKEND  cpu | cuda
 *     SHAPE    stories260k | 135m | 7b   (LLaMA shapes, random weights)
 *     METHOD   full | lisa | galore | owlore_full_rank | owlore
 *     CKPT     1: activation checkpointing (default 0); bK: of the lowest K
 *              blocks only (recompute_blocks K)
 *     BF16     1: weights stored in bf16 (recipe bf16_weights; default 0).
 *              The model is then built in host memory, rounded to nearest
 *              there (model_store_bf16) and only then moved to the backend,
 *              so a GPU never holds the fp32 weights.
 *     INBWD    1: update_in_backward (full-rank methods; default 0)
 *     CLIP     max_grad_norm (default the recipe's, 1; 0: none)
 *     ACT16    1: the internals of the blocks not recomputed kept in bf16
 *              (recipe bf16_activations; default 0)
 *
 * Weights and token windows come from fixed seeds, so two runs on the two
 * backends see the same model and data and their per-step losses can be
 * compared (tools/gpu_check.sh). The run is cancelled after STEPS steps, so
 * no checkpoint is written. OwLore methods get uniform outlier ratios. The
 * 7b shape refreshes GaLore projectors with the randomized range finder (an
 * exact SVD of each 4096 x 11008 gradient takes seconds).
 * Output: {"backend", "shape", "method", "checkpointed", "recomputed_blocks",
 * "bf16_weights", "bf16_activations",
 * "update_in_backward", "max_grad_norm",
 * "steps", "losses": [...], "tokens_per_s" (median step), "params",
 * "flops_per_token" (the planner's count of the FLOPs executed: 2N forward,
 * 2N input gradients, 2 per trained weight, 12 L H hd T attention),
 * "peak_bytes" (device memory beyond the opened backend; 0 on the CPU),
 * "plan_peak_bytes" (the planner's fp32 prediction, bf16 storage counted
 * with BF16), "build_s" (model allocated, filled, stored in bf16 and moved),
 * "refresh_s" and "train_s" (time in projector refreshes and in all steps),
 * "refresh_warm_s" (the refreshes had each found the process warm: per
 * matrix shape, its calls times the median of its calls after the first,
 * since a shape's first refresh also pays for first uses that a long run
 * pays once),
 * "refresh_calls", "refresh_period" (steps between refreshes of a matrix in
 * a long run: the update gap, or the sampling period when that is shorter,
 * since newly sampled blocks start with fresh projectors), "batch_tokens",
 * with GPU_TRAIN_PROFILE=1 also "profile" {op: [calls, seconds]} and
 * "matmul_tflops" (op_profile.h) of the steps after the first, "failed": message or null}. A run shorter
 * than the period refreshes each trained matrix once, so the steady share of
 * refreshes in a long run is refresh_warm_s / (refresh_warm_s +
 * refresh_period * step time).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "op_profile.h"
#include "plan.h"
#include "model.h"
#include "recipe.h"
#include "train.h"

struct log {
    int steps;
    int profile; /* GPU_TRAIN_PROFILE: counts restart after step 1 */
    atomic_int stop;
    float losses[1024];
    double tps[1024];
    int n;
};

static void on_step(void *ctx, const struct train_event *ev)
{
    struct log *lg = ctx;
    if (ev->step < 1 || lg->n >= 1024)
        return;
    if (ev->step == 1 && lg->profile)
        op_profile_reset();
    lg->losses[lg->n] = ev->loss;
    lg->tps[lg->n++] = ev->tokens_per_s;
    if (ev->step >= lg->steps)
        atomic_store(&lg->stop, TRAIN_STOP_CANCEL);
}

static int shape(const char *name, struct model_config *c)
{
    /* dim, hidden, layers, heads, kv heads, head dim, vocab, context */
    static const struct { const char *n; int v[8]; } s[] = {
        {"stories260k", {64, 172, 5, 8, 4, 8, 512, 512}},
        {"135m", {576, 1536, 30, 9, 3, 64, 49152, 2048}},
        {"7b", {4096, 11008, 32, 32, 32, 128, 32000, 4096}},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (strcmp(name, s[i].n) == 0) {
            *c = (struct model_config){s[i].v[0], s[i].v[1], s[i].v[2], s[i].v[3], s[i].v[4],
                                       s[i].v[5], s[i].v[6], s[i].v[7], 1e-5f, 10000.0f,
                                       0, 1, 2};
            return 0;
        }
    return -1;
}

/* the backend under test with lowrank_basis timed (host waits on both
 * sides), each call's seconds and shape kept */
#define CALLS_MAX 4096
static const struct backend *timed_be;
static float *sync_word;
static double refresh_s;
static int refresh_calls;
static double call_s[CALLS_MAX];
static long long call_shape[CALLS_MAX]; /* m, n and side in one key */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int timed_lowrank_basis(float *P, const float *G, int m, int n, int r, int side,
                               int method, int oversample, int power_iters,
                               unsigned long long *rng)
{
    float w;
    timed_be->download(&w, sync_word, sizeof w); /* the queued work first */
    double t0 = now_s();
    int rc = timed_be->lowrank_basis(P, G, m, n, r, side, method, oversample, power_iters, rng);
    timed_be->download(&w, sync_word, sizeof w);
    double t = now_s() - t0;
    refresh_s += t;
    if (refresh_calls < CALLS_MAX) {
        call_s[refresh_calls] = t;
        call_shape[refresh_calls] = ((long long)m << 32) | ((long long)n << 1) | (side & 1);
    }
    refresh_calls++;
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The refreshes' seconds had each call found the process warm: per shape,
 * its calls times the median of its calls after the first (a shape's first
 * call also pays for cuSOLVER's and the scratch pool's first use, which a
 * long run pays once; a shape called once keeps its time). */
static double warm_refresh_s(void)
{
    const int n = refresh_calls < CALLS_MAX ? refresh_calls : CALLS_MAX;
    static double later[CALLS_MAX];
    double total = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0, k = 0;
        for (int j = 0; j < i; j++)
            seen |= call_shape[j] == call_shape[i];
        if (seen) /* each shape once, at its first call */
            continue;
        for (int j = i + 1; j < n; j++)
            if (call_shape[j] == call_shape[i])
                later[k++] = call_s[j];
        qsort(later, (size_t)k, sizeof(double), cmp_double);
        total += k ? (k + 1) * later[k / 2] : call_s[i];
    }
    return total;
}

static unsigned long long rng_state = 42;
static float urand(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) * 0x1.0p-24) * 2.0f - 1.0f;
}

/* parameters: small uniform weights, gains 1; one random chunk of 16M
 * floats, uploaded again and again to a device, or copied by every core into
 * host memory (a 7B model fills in seconds; the same values either way) */
static void fill(struct model *m)
{
    const size_t chunk = (size_t)1 << 24;
    float *h = malloc(chunk * sizeof(float));
    for (size_t i = 0; i < chunk; i++)
        h[i] = 0.02f * urand();
    if (m->be->host_memory) {
        const size_t chunks = (m->n_params + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1)
        for (size_t k = 0; k < chunks; k++) {
            size_t off = k * chunk, n = m->n_params - off < chunk ? m->n_params - off : chunk;
            memcpy(m->mem + off, h, n * sizeof(float));
        }
    } else {
        for (size_t off = 0; off < m->n_params; off += chunk) {
            size_t n = m->n_params - off < chunk ? m->n_params - off : chunk;
            m->be->upload(m->mem + off, h, n * sizeof(float));
        }
    }
    for (int i = 0; i < model_tensor_count(&m->cfg); i++) {
        struct named_tensor t;
        model_tensor_at(&m->cfg, &m->w, i, &t);
        if (t.cols == 0) { /* RMSNorm gains */
            for (int j = 0; j < t.rows; j++)
                h[j] = 1.0f;
            m->be->upload(t.data, h, (size_t)t.rows * sizeof(float));
        }
    }
    free(h);
}

/* The model with its random weights on backend be. With bf16 storage it is
 * built in host memory (the CPU backend, unless be is host memory already),
 * rounded to bf16 there and the result moved to be, so the device never
 * holds the fp32 weights. 0, or -1 with err. */
static int build(struct model *m, const struct model_config *c, const struct backend *be,
                 int bf16, char *err, size_t errlen)
{
    const struct backend *home = bf16 && !be->host_memory ? backend_cpu() : be;
    if (model_init(m, c, home) != 0) {
        snprintf(err, errlen, "out of %s memory for the parameters", home->name);
        return -1;
    }
    fill(m);
    if (bf16 && (model_store_bf16(m, err, errlen) != 0 || model_move(m, be, err, errlen) != 0)) {
        model_free(m);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[1024] = "";
    struct model_config c;
    enum method meth;
    if (argc < 5 || shape(argv[2], &c) != 0 || method_parse(argv[3], &meth) != 0) {
        fprintf(stderr,
                "usage: gpu_train cpu|cuda stories260k|135m|7b METHOD STEPS "
                "[B T [CKPT [BF16 [INBWD [CLIP [ACT16]]]]]]\n");
        return 2;
    }
    timed_be = backend_select(argv[1], err, sizeof err);
    if (!timed_be || !(sync_word = timed_be->alloc(sizeof(float)))) {
        fprintf(stderr, "gpu_train: %s\n", err);
        return 2;
    }
    const int profile = getenv("GPU_TRAIN_PROFILE") && atoi(getenv("GPU_TRAIN_PROFILE")) == 1;
    struct backend wrapped = profile ? op_profile_wrap(timed_be, sync_word) : *timed_be;
    wrapped.lowrank_basis = timed_lowrank_basis;
    const struct backend *be = &wrapped;
    struct log lg = {.steps = atoi(argv[4]), .profile = profile};
    struct recipe r;
    recipe_defaults(&r, meth);
    r.batch_size = argc > 5 ? atoi(argv[5]) : 4;
    r.seq_len = argc > 6 ? atoi(argv[6]) : 256;
    r.checkpoint_activations = argc > 7 && (atoi(argv[7]) == 1 || argv[7][0] == 'b');
    r.recompute_blocks = argc > 7 && argv[7][0] == 'b' ? atoi(argv[7] + 1) : 0;
    r.bf16_weights = argc > 8 && atoi(argv[8]) == 1;
    r.update_in_backward = argc > 9 && atoi(argv[9]) == 1;
    if (argc > 10)
        r.max_grad_norm = (float)atof(argv[10]);
    r.bf16_activations = argc > 11 && atoi(argv[11]) == 1;
    r.grad_accum = 1;
    r.max_steps = lg.steps + 1; /* cancelled after lg.steps: no checkpoint */
    r.eval_every = 0;
    r.warmup_steps = 0;
    if (r.gamma > c.n_layers)
        r.gamma = c.n_layers;
    if (strcmp(argv[2], "7b") == 0)
        r.galore.svd_method = 1;
    int n = r.batch_size * (lg.steps + 2), T = r.seq_len;
    int *ids = malloc(sizeof(int) * (size_t)n * (T + 1));
    double *ratios = malloc(sizeof(double) * (size_t)c.n_layers);
    for (size_t i = 0; i < (size_t)n * (T + 1); i++)
        ids[i] = (int)((urand() + 1.0f) * 0.5f * c.vocab_size) % c.vocab_size;
    for (int l = 0; l < c.n_layers; l++)
        ratios[l] = 1.0;
    struct model m;
    enum train_result res = TRAIN_FAILED;
    double train_s = 0, t_build = now_s();
    int built = build(&m, &c, be, r.bf16_weights, err, sizeof err);
    double build_s = now_s() - t_build;
    if (built == 0) {
        struct token_windows tw = {ids, n, T, NULL}, vw = {NULL, 0, T, NULL};
        char dir[] = "/tmp/gpu_train_XXXXXX";
        struct train_opts o = {.out_dir = mkdtemp(dir), .outlier_ratios = ratios,
                               .outlier_tau = r.tau, .base_model_id = argv[2],
                               .base_model_digest = "random", .progress = on_step,
                               .ctx = &lg, .stop = &lg.stop, .quiet = 1};
        double t0 = now_s();
        res = train_run(&m, &r, &tw, &vw, &o, NULL, err, sizeof err);
        train_s = now_s() - t0;
        model_free(&m);
    }
    double tps = 0;
    if (lg.n > 0) {
        qsort(lg.tps, (size_t)lg.n, sizeof(double), cmp_double);
        tps = lg.tps[lg.n / 2];
    }
    struct plan plan;
    plan_compute(&c, &r, r.batch_size, T, PLAN_FP32, &plan);
    double N = (double)model_config_total_params(&c);
    size_t peak = be->peak_bytes ? be->peak_bytes() : 0;
    int period = r.galore.update_proj_gap;
    if (r.sampling != SAMPLING_ALL && r.interval < period)
        period = r.interval;
    printf("{\"backend\": \"%s\", \"shape\": \"%s\", \"method\": \"%s\", "
           "\"checkpointed\": %d, \"recomputed_blocks\": %d, \"bf16_weights\": %d, "
           "\"bf16_activations\": %d, \"update_in_backward\": %d, \"max_grad_norm\": %g, "
           "\"steps\": %d, \"losses\": [",
           be->name, argv[2], argv[3], r.checkpoint_activations,
           recipe_recomputed_blocks(&r, c.n_layers), r.bf16_weights, r.bf16_activations,
           r.update_in_backward, (double)r.max_grad_norm, lg.n);
    for (int i = 0; i < lg.n; i++)
        printf("%s%.6f", i ? ", " : "", lg.losses[i]);
    printf("], \"tokens_per_s\": %.1f, \"params\": %.0f, \"flops_per_token\": %.4g, "
           "\"peak_bytes\": %zu, \"plan_peak_bytes\": %.0f, \"build_s\": %.3f, "
           "\"refresh_s\": %.3f, \"refresh_warm_s\": %.3f, \"train_s\": %.3f, "
           "\"refresh_calls\": %d, "
           "\"refresh_period\": %d, \"batch_tokens\": %d, ", tps, N,
           plan.flops_per_token, peak, plan.total_peak, build_s, refresh_s, warm_refresh_s(),
           train_s, refresh_calls, period, r.batch_size * T);
    if (profile)
        op_profile_json(stdout);
    printf("\"failed\": ");
    for (char *q = err; *q; q++) /* the message goes inside a JSON string */
        if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
            *q = '\'';
    if (res == TRAIN_FAILED)
        printf("\"%s\"}\n", err);
    else
        printf("null}\n");
    free(ids);
    free(ratios);
    return res == TRAIN_FAILED;
}
