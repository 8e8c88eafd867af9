/*
 * cmd_plan.c: `owlore plan --model PATH [--method M] [recipe options]
 *             [--dtype fp32|bf16] [--fit GB] [--json]`
 *
 * Predicts the memory (weights, gradients, optimizer state, activations,
 * workspace) and throughput of a fine-tuning run from the model's shape
 * alone: nothing is allocated and no weights are read. PATH is a Hugging
 * Face config.json, a Hugging Face model directory (its config.json) or a
 * llama2.c .bin checkpoint (its 28-byte header, checked against the file
 * size). The micro-batch is --batch x --seq (recipe defaults 16 x 512).
 * dtype fp32 is this engine (with --bf16-weights 1 its weights in bf16);
 * bf16 the released OwLore code's pure-bf16 GPU run (plan.h).
 * --fit GB names the memory-saving settings, cheapest first, that bring the
 * run within GB (plan_savings), as a job that does not fit is told.
 * --json prints one object with integer byte counts (and "fit").
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_recipe.h"
#include "load.h"
#include "plan.h"

/* How this engine keeps the activations between the passes. */
static void print_activations(const struct model_config *c, const struct recipe *r)
{
    const int L = c->n_layers, k = recipe_recomputed_blocks(r, L);
    const char *kept = r->bf16_activations ? "bf16 (q, k in fp32)" : "fp32";
    if (k == L)
        printf("activations  every block recomputed in backward from its input\n");
    else if (k == 0)
        printf("activations  every block's internals kept in %s\n", kept);
    else
        printf("activations  the lowest %d blocks recomputed in backward, the other %d kept "
               "in %s\n", k, L - k, kept);
}

static void print_table(const char *path, const struct model_config *c,
                        const struct recipe *r, const char *dtype, const struct plan *p)
{
    const struct { const char *name; double bytes; } rows[] = {
        {"weights", p->weights}, {"gradients", p->gradients},
        {"optimizer state", p->optimizer_state}, {"static total", p->total_static},
        {"activations", p->activations}, {"workspace", p->workspace},
        {"peak total", p->total_peak}};
    double n_params = (double)model_param_floats(c);
    const int engine = strcmp(dtype, "fp32") == 0; /* else the released code's bf16 */
    printf("model        %s: D %d, F %d, L %d, H %d/%d, V %d%s, %.2f %s parameters\n",
           path, c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
           c->vocab_size, c->tied_embeddings ? " tied" : "",
           n_params >= 1e9 ? n_params / 1e9 : n_params / 1e6, n_params >= 1e9 ? "B" : "M");
    if (r->method == METHOD_LORA)
        printf("method       lora: rank-%d adapters (alpha %g, dropout %g) on the 7 linear "
               "layers of all %d blocks, base weights frozen", r->lora.rank,
               (double)r->lora.alpha, (double)r->lora.dropout, c->n_layers);
    else
        printf("method       %s: %d of %d blocks train", method_name(r->method),
               recipe_active_blocks(r, c->n_layers), c->n_layers);
    if (r->sampling == SAMPLING_ALL)
        printf(" (every step");
    else
        printf(" (%s sampling every %d steps, state %s", sampling_name(r->sampling),
               r->interval, r->state_policy == STATE_KEEP ? "keep" : "reset");
    if (r->galore.rank > 0)
        printf(", GaLore rank %d", r->galore.rank);
    printf(")%s\n", r->freeze_embeddings ? ", embeddings frozen" : "");
    printf("micro-batch  %d x %d tokens, %s%s%s\n", r->batch_size, r->seq_len, dtype,
           r->bf16_weights && engine ? " with bf16 weights" : "",
           !engine || !recipe_streams_gradients(r)
               ? ""
               : !r->update_in_backward ? ", GaLore gradients projected tensor by tensor"
               : recipe_backward_passes(r) == 2
                   ? ", blocks stepped in backward (a norm pass first, for clipping)"
                   : ", blocks stepped in backward");
    if (engine)
        print_activations(c, r);
    printf("\n");
    printf("%-16s %16s %10s\n", "memory", "bytes", "GB");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("%-16s %16.0f %10.2f\n", rows[i].name, rows[i].bytes, rows[i].bytes / 1e9);
    printf("\nflops/token  %.4g\ntokens/s     %.4g (%s)\n", p->flops_per_token,
           p->tokens_per_s, !engine
                                ? "H100 bf16 at 40% MFU"
                                : "CPU fp32 at 150 GFLOP/s");
}

/* What --fit found: the memory-saving settings that bring the run within
 * limit bytes (plan_savings), none when it is within already. */
struct fit {
    double limit;        /* bytes; 0: no --fit */
    char settings[192];  /* "" when none is needed or left */
    double total_peak;   /* the peak with them */
    int fits;
};

static void find_fit(const struct model_config *c, const struct recipe *r,
                     const struct plan *p, struct fit *f)
{
    struct recipe lean;
    struct plan lp;
    f->settings[0] = 0;
    f->total_peak = p->total_peak;
    f->fits = p->total_peak <= f->limit;
    if (!f->fits && plan_savings(c, r, r->batch_size, r->seq_len, f->limit, &lean, &lp,
                                 &f->fits, f->settings, sizeof f->settings) > 0)
        f->total_peak = lp.total_peak;
}

static void print_fit(const struct fit *f)
{
    printf("fit          %.2f GB: ", f->limit / 1e9);
    if (f->fits && !f->settings[0])
        printf("as it is\n");
    else if (f->fits)
        printf("with %s (%.2f GB)\n", f->settings, f->total_peak / 1e9);
    else if (f->settings[0])
        printf("out of reach; with %s it still needs %.2f GB\n", f->settings,
               f->total_peak / 1e9);
    else
        printf("out of reach; no memory-saving setting is left\n");
}

static void print_json(const struct recipe *r, const char *dtype, const struct plan *p,
                       const struct fit *f)
{
    printf("{\"method\": \"%s\", \"dtype\": \"%s\", \"weights\": %.0f, "
           "\"gradients\": %.0f, \"optimizer_state\": %.0f, \"activations\": %.0f, "
           "\"workspace\": %.0f, \"total_static\": %.0f, \"total_peak\": %.0f, "
           "\"flops_per_token\": %.0f, \"tokens_per_s\": %.6g",
           method_name(r->method), dtype, p->weights, p->gradients, p->optimizer_state,
           p->activations, p->workspace, p->total_static, p->total_peak,
           p->flops_per_token, p->tokens_per_s);
    if (f->limit > 0) /* settings holds only names, digits and ", :" */
        printf(", \"fit\": {\"limit\": %.0f, \"settings\": \"%s\", \"total_peak\": %.0f, "
               "\"fits\": %s}", f->limit, f->settings, f->total_peak,
               f->fits ? "true" : "false");
    printf("}\n");
}

int cmd_plan(int argc, char **argv)
{
    static const char *const own[] = {"--model", "--dtype", "--json", "--fit"};
    const size_t n_own = sizeof own / sizeof own[0];
    const char *known[64];
    char err[512];
    struct model_config c;
    struct recipe r;
    struct plan p;
    size_t k = 0;
    for (; k < n_own; k++)
        known[k] = own[k];
    for (const char *const *o = cli_recipe_opts;
         *o && k + 1 < sizeof known / sizeof *known; o++)
        known[k++] = *o;
    known[k] = NULL;
    if (cli_check_opts(argc, argv, "plan", known) != 0)
        return 2;
    const int json = cli_flag(argc, argv, "--json");

    const char *path = cli_opt(argc, argv, "--model");
    const char *dtype = cli_opt(argc, argv, "--dtype");
    if (!path) {
        fprintf(stderr, "owlore plan: --model PATH is required\n");
        return 2;
    }
    if (!dtype)
        dtype = "fp32";
    if (strcmp(dtype, "fp32") != 0 && strcmp(dtype, "bf16") != 0) {
        fprintf(stderr, "owlore plan: --dtype expects fp32 or bf16, got '%s'\n", dtype);
        return 2;
    }
    struct fit fit = {0};
    const char *fit_gb = cli_opt(argc, argv, "--fit");
    if (fit_gb) {
        char *end;
        double gb = strtod(fit_gb, &end);
        if (end == fit_gb || *end || !isfinite(gb) || gb <= 0 || gb > 1e9 ||
            strcmp(dtype, "fp32") != 0) {
            fprintf(stderr, "owlore plan: --fit expects a memory size in GB above 0, with "
                            "--dtype fp32 (the engine), got '%s'\n", fit_gb);
            return 2;
        }
        fit.limit = gb * 1e9;
    }
    if (cli_recipe_parse(argc, argv, &r, err, sizeof err) != 0) {
        fprintf(stderr, "owlore plan: %s\n", err);
        return 2;
    }
    if (model_read_config(path, &c, err, sizeof err) != 0) {
        fprintf(stderr, "owlore plan: %s\n", err);
        return 1;
    }
    if (recipe_check(&r, c.n_layers, err, sizeof err) != 0) {
        fprintf(stderr, "owlore plan: %s\n", err);
        return 2;
    }
    if (r.seq_len > c.max_seq_len) {
        fprintf(stderr, "owlore plan: --seq %d is longer than the model's context (%d)\n",
                r.seq_len, c.max_seq_len);
        return 2;
    }
    plan_compute(&c, &r, r.batch_size, r.seq_len,
                 strcmp(dtype, "bf16") == 0 ? PLAN_BF16 : PLAN_FP32, &p);
    if (fit.limit > 0)
        find_fit(&c, &r, &p, &fit);
    if (json) {
        print_json(&r, dtype, &p, &fit);
    } else {
        print_table(path, &c, &r, dtype, &p);
        if (fit.limit > 0)
            print_fit(&fit);
    }
    return 0;
}
