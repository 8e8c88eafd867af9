/*
 * bench_train_step.c: forward+backward throughput of the CPU backend.
 *
 * Times model_loss_and_grad (forward, chunked classifier loss, backward into
 * full gradients) on
 *   - stories260K (the real checkpoint, B=8, T=256), and
 *   - a randomly initialised SmolLM2-135M-shaped model (D 576, 30 layers,
 *     9/3 heads, FFN 1536, vocab 49152, tied; B=1, T=256),
 * and reports tokens/s, model FLOPs per token (6N + attention) and the share
 * of wall time spent in matrix products (the backend's matmul is wrapped with
 * a timer). Then the 135M shape for each way of keeping activations
 * between the passes, against keeping them all in fp32 in the same run (the
 * three interleaved five times, each at its median speed): kept in bf16 (bf16_activations, saved_bf16.c) and every block recomputed
 * (activation checkpointing), with their activation memory (the planner's
 * model_activation_bytes, which the tests check against the allocation) and
 * the ratios. Prints tables and writes build/bench/train_step.json.
 * Usage: bench_train_step [--quick]   (--quick: fewer iterations)
 */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "load.h"

static const struct backend *base;
static double gemm_seconds;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void timed_matmul(int ta, int tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb,
                         float beta, float *C, int ldc)
{
    double t0 = now();
    base->matmul(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    gemm_seconds += now() - t0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static float randn(void)
{
    /* sum of 4 uniforms, variance-normalised: cheap and good enough for init */
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        s += (float)(rng_state >> 40) / (float)(1 << 24) - 0.5f;
    }
    return s * 1.7320508f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct result {
    const char *name;
    int B, T;
    double tok_s, gemm_share, flops_tok, gflops;
    float loss;
    double act_bytes;
};

/* iters timed calls of model_loss_and_grad with the lowest `recomputed`
 * blocks checkpointed and, with bf16, the others' internals kept in bf16 */
static struct result run(const char *name, struct model *m, int B, int T, int iters,
                         int recomputed, int bf16)
{
    struct activations a;
    struct model_grads g;
    struct result r = {name, B, T, 0, 0, 0, 0, 0, 0};
    int *tokens = malloc(sizeof(int) * (size_t)B * (T + 1));
    r.act_bytes = (double)model_activation_bytes(&m->cfg, B, T, recomputed, bf16);
    if (!tokens || activations_init_for(&a, m, B, T, recomputed, bf16) != 0 ||
        grads_init_full(&g, m) != 0) {
        fprintf(stderr, "bench: out of memory for %s\n", name);
        exit(1);
    }
    for (int i = 0; i < B * (T + 1); i++)
        tokens[i] = (int)((unsigned)(i * 2654435761u) % (unsigned)m->cfg.vocab_size);
    /* targets are the next tokens of the same stream */
    int *targets = tokens + 1;
    r.loss = model_loss_and_grad(m, &a, &g, tokens, targets, B, T); /* warm-up */
    gemm_seconds = 0;
    double t0 = now();
    for (int i = 0; i < iters; i++)
        r.loss = model_loss_and_grad(m, &a, &g, tokens, targets, B, T);
    double dt = now() - t0;
    const struct model_config *c = &m->cfg;
    double n_params = (double)model_param_floats(c);
    /* 6 FLOPs per parameter per token, plus attention scores and values:
     * forward 2*2*T/2*hd*H per token on average (causal), x3 with backward */
    double attn = 3.0 * 2 * 2 * (T / 2.0) * c->head_dim * c->n_heads * c->n_layers;
    r.flops_tok = 6.0 * n_params + attn;
    r.tok_s = (double)B * T * iters / dt;
    r.gemm_share = gemm_seconds / dt;
    r.gflops = r.flops_tok * r.tok_s / 1e9;
    grads_free(&g, m);
    activations_free(&a, m);
    free(tokens);
    return r;
}

int main(int argc, char **argv)
{
    backend_cpu_select_kernels(argv);
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    static struct backend timed;
    char err[512];
    struct model small, smol;
    struct result res[2], act[3];

    base = backend_cpu();
    timed = *base;
    timed.matmul = timed_matmul;

    const char *shared = getenv("OWLORE_SHARED") ? getenv("OWLORE_SHARED") : "../shared";
    char path[4096];
    snprintf(path, sizeof path, "%s/data/models/stories260K/stories260K.bin", shared);
    if (model_load(path, &timed, &small, err, sizeof err) != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    res[0] = run("stories260K", &small, 8, 256, quick ? 5 : 20, 0, 0);
    model_free(&small);

    struct model_config c = {.dim = 576, .hidden_dim = 1536, .n_layers = 30,
                             .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                             .vocab_size = 49152, .max_seq_len = 2048,
                             .norm_eps = 1e-5f, .rope_theta = 100000.0f,
                             .tied_embeddings = 1, .bos_id = 1, .eos_id = 2};
    if (model_init(&smol, &c, &timed) != 0) {
        fprintf(stderr, "bench: cannot allocate the 135M model\n");
        return 1;
    }
    for (size_t i = 0; i < smol.n_params; i++)
        smol.mem[i] = 0.02f * randn();
    for (int l = 0; l < c.n_layers; l++) {
        struct block_weights b = block_view(&c, smol.w.blocks[l]);
        for (int i = 0; i < c.dim; i++)
            b.attn_norm[i] = b.ffn_norm[i] = 1.0f;
    }
    for (int i = 0; i < c.dim; i++)
        smol.w.final_norm[i] = 1.0f;
    res[1] = run("SmolLM2-135M-shaped", &smol, 1, 256, quick ? 2 : 5, 0, 0);
    /* the three ways interleaved, ROUNDS times, each at its median speed */
    enum { ROUNDS = 5 };
    const char *modes[3] = {"fp32, all kept", "bf16, all kept", "every block recomputed"};
    double speeds[3][ROUNDS];
    for (int round = 0; round < ROUNDS; round++)
        for (int k = 0; k < 3; k++) {
            act[k] = run(modes[k], &smol, 1, 256, quick ? 1 : 2, k == 2 ? c.n_layers : 0, k == 1);
            speeds[k][round] = act[k].tok_s;
        }
    for (int k = 0; k < 3; k++) {
        qsort(speeds[k], ROUNDS, sizeof(double), cmp_double);
        act[k].tok_s = speeds[k][ROUNDS / 2];
    }
    model_free(&smol);

    printf("\nCPU backend, forward+backward (model_loss_and_grad), %d threads\n",
           omp_get_max_threads());
    printf("%-22s %5s %5s %12s %12s %10s %10s\n", "model", "B", "T", "tokens/s",
           "MFLOP/token", "GFLOP/s", "GEMM share");
    for (int i = 0; i < 2; i++)
        printf("%-22s %5d %5d %12.1f %12.1f %10.1f %9.1f%%\n", res[i].name, res[i].B,
               res[i].T, res[i].tok_s, res[i].flops_tok / 1e6, res[i].gflops,
               100 * res[i].gemm_share);

    printf("\nactivations between the passes, SmolLM2-135M-shaped, 1 x 256 (the same run)\n");
    printf("%-24s %12s %14s %14s %14s\n", "kept", "tokens/s", "activations MB",
           "speed vs fp32", "memory vs fp32");
    for (int k = 0; k < 3; k++)
        printf("%-24s %12.1f %14.2f %14.3f %14.3f\n", act[k].name, act[k].tok_s,
               act[k].act_bytes / 1e6, act[k].tok_s / act[0].tok_s,
               act[k].act_bytes / act[0].act_bytes);

    FILE *f = fopen("build/bench/train_step.json", "w");
    if (f) {
        fprintf(f, "{\"threads\": %d, \"results\": [", omp_get_max_threads());
        for (int i = 0; i < 2; i++)
            fprintf(f, "%s{\"model\": \"%s\", \"batch\": %d, \"seq\": %d, "
                    "\"tokens_per_s\": %.2f, \"flops_per_token\": %.0f, "
                    "\"gflops\": %.2f, \"gemm_share\": %.4f}",
                    i ? ", " : "", res[i].name, res[i].B, res[i].T, res[i].tok_s,
                    res[i].flops_tok, res[i].gflops, res[i].gemm_share);
        fprintf(f, "], \"activations\": [");
        for (int k = 0; k < 3; k++)
            fprintf(f, "%s{\"kept\": \"%s\", \"tokens_per_s\": %.2f, "
                    "\"activation_bytes\": %.0f}", k ? ", " : "", act[k].name, act[k].tok_s,
                    act[k].act_bytes);
        fprintf(f, "]}\n");
        fclose(f);
    }
    return 0;
}
