/*
 * cmd_train.c: `owlore train`: fine-tune a model on a text file.
 *
 *   owlore train --model PATH --data FILE --method M [hyperparameters]
 *                [--val-data FILE | --val-fraction F] [--out DIR]
 *                [--resume CHECKPOINT_DIR] [--tokenizer PATH]
 *
 * The text is tokenized with the model's llama2.c tokenizer, each document
 * as BOS + tokens, packed into windows of --seq + 1 tokens. Validation uses
 * --val-data, else the last --val-fraction of the windows (default 0.05).
 * Outlier-weighted methods calibrate on the first --calib-samples training
 * windows (cached). A progress line per step goes to stdout and
 * metrics.jsonl; checkpoints go to --out (default ./owlore-out).
 * Ctrl-C pauses: a checkpoint is written and --resume continues exactly.
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ckpt.h"
#include "cli_recipe.h"
#include "digest.h"
#include "load.h"
#include "outliers.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

static volatile int stop_flag;

static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = TRAIN_STOP_PAUSE;
}

/* D_l by calibration over the first windows of the training data; the
 * model digest it computes is kept for the trainer. */
static int calibrate(const struct model *m, const struct recipe *r,
                     const struct token_windows *w, double *ratios,
                     char digest[SHA256_HEX_LEN])
{
    int n = w->n < r->calib_samples ? w->n : r->calib_samples;
    int *tokens = malloc(sizeof(int) * (size_t)n * w->seq_len);
    struct outliers_options oo = {.tau = r->tau, .tokens = tokens, .n_seqs = n,
                                  .seq_len = w->seq_len,
                                  .model_digest = digest[0] ? digest : NULL};
    struct outliers_info info;
    char err[512];
    if (!tokens) {
        fprintf(stderr, "owlore train: out of memory for calibration\n");
        return -1;
    }
    for (int i = 0; i < n; i++)
        memcpy(tokens + (size_t)i * w->seq_len, w->ids + (size_t)i * (w->seq_len + 1),
               sizeof(int) * (size_t)w->seq_len);
    int rc = outliers_compute(m, &oo, ratios, &info, err, sizeof err);
    free(tokens);
    if (rc != 0) {
        fprintf(stderr, "owlore train: outlier calibration: %s\n", err);
        return -1;
    }
    if (info.warning[0])
        fprintf(stderr, "owlore train: %s\n", info.warning);
    memcpy(digest, info.model_digest, SHA256_HEX_LEN);
    double sum = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        sum += ratios[l];
    printf("outlier ratios (tau %g, %d calibration windows%s):\n", (double)r->tau, n,
           info.cache_hit ? ", cached" : "");
    for (int l = 0; l < m->cfg.n_layers; l++)
        printf("  block %2d  D %.4f%%  p %.4f\n", l, ratios[l], sum > 0 ? ratios[l] / sum : 0);
    return 0;
}

/* How often each block trained, its share of all block-steps, and its
 * sampling probability (owl methods): the shares follow the probabilities. */
static void print_block_counts(const long *counts, const double *ratios, int L)
{
    double sum = 0, total = 0;
    for (int l = 0; l < L; l++) {
        sum += ratios ? ratios[l] : 0;
        total += (double)counts[l];
    }
    printf("per-block sampling counts (steps trained, share%s):\n", ratios ? ", p" : "");
    for (int l = 0; l < L; l++) {
        printf("  block %2d  %6ld  %.3f", l, counts[l], total > 0 ? counts[l] / total : 0);
        if (ratios && sum > 0)
            printf("  %.3f", ratios[l] / sum);
        printf("\n");
    }
}

int cmd_train(int argc, char **argv)
{
    static const char *const own[] = {"--model", "--data", "--val-data", "--val-fraction",
                                      "--out", "--resume", "--tokenizer"};
    const char *known[128];
    int nk = 0;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        known[nk++] = own[i];
    for (int i = 0; cli_recipe_opts[i] && nk < 127; i++)
        known[nk++] = cli_recipe_opts[i];
    known[nk] = NULL;

    struct recipe r;
    char err[1024];
    double val_fraction;
    const char *model_path = cli_opt(argc, argv, "--model");
    const char *data_path = cli_opt(argc, argv, "--data");
    const char *val_path = cli_opt(argc, argv, "--val-data");
    const char *out_dir = cli_opt(argc, argv, "--out");
    if (cli_check_opts(argc, argv, "train", known) != 0 ||
        cli_opt_double(argc, argv, "--val-fraction", 0.05, &val_fraction) != 0)
        return 2;
    if (cli_recipe_parse(argc, argv, &r, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        return 2;
    }
    if (!model_path || !data_path) {
        fprintf(stderr, "owlore train: --model PATH and --data FILE are required\n");
        return 2;
    }
    if (!(val_fraction >= 0 && val_fraction < 1)) {
        fprintf(stderr, "owlore train: --val-fraction must be in [0, 1)\n");
        return 2;
    }

    struct model m;
    struct tokenizer tok;
    if (model_load(model_path, backend_cpu(), &m, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        return 1;
    }
    /* hyperparameters are checked against the model before any work starts */
    if (recipe_check(&r, m.cfg.n_layers, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        model_free(&m);
        return 2;
    }
    /* a checkpoint to resume is checked before the data is read */
    char digest[SHA256_HEX_LEN] = "";
    const char *resume_dir = cli_opt(argc, argv, "--resume");
    unsigned char d[SHA256_BYTES];
    if (resume_dir) {
        if (sha256_model(&m, d) != 0) {
            fprintf(stderr, "owlore train: cannot compute the model digest\n");
            model_free(&m);
            return 1;
        }
        digest_hex(d, SHA256_BYTES, digest);
        if (ckpt_check_resume(resume_dir, &m.cfg, &r, digest, err, sizeof err) != 0) {
            fprintf(stderr, "owlore train: --resume %s\n", err);
            model_free(&m);
            return 1;
        }
    }
    char tok_path[4200];
    if (tokenizer_find_for_model(model_path, cli_opt(argc, argv, "--tokenizer"),
                                 m.cfg.vocab_size, tok_path, sizeof tok_path, err,
                                 sizeof err) != 0 ||
        tokenizer_load(&tok, tok_path, m.cfg.vocab_size, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        model_free(&m);
        return 1;
    }

    struct text_windows train = {0}, val = {0};
    int rc = 1;
    double *ratios = NULL;
    long *counts = calloc((size_t)m.cfg.n_layers, sizeof(long));
    if (text_windows_load(&train, data_path, &tok, r.seq_len, err, sizeof err) != 0 ||
        (val_path && text_windows_load(&val, val_path, &tok, r.seq_len, err, sizeof err) != 0)) {
        fprintf(stderr, "owlore train: %s\n", err);
        goto out;
    }
    if (!val_path && val_fraction > 0)
        text_windows_split(&train, &val, val_fraction);
    struct token_windows tw = {train.ids, train.n, r.seq_len, NULL};
    struct token_windows vw = {val.ids, val.n, r.seq_len, NULL};
    printf("training windows %d, validation windows %d, %d tokens each\n", tw.n, vw.n, r.seq_len);

    if (r.sampling == SAMPLING_OWL) {
        ratios = calloc((size_t)m.cfg.n_layers, sizeof(double));
        if (!ratios || calibrate(&m, &r, &tw, ratios, digest) != 0)
            goto out;
    }
    struct train_opts o = {
        .out_dir = out_dir ? out_dir : "owlore-out",
        .resume_dir = resume_dir,
        /* checkpoints carry a copy only of a llama2.c tokenizer (tokenizer.bin) */
        .tokenizer_path = tok.kind == TOKENIZER_LLAMA2C ? tok_path : NULL,
        .outlier_ratios = ratios, .outlier_tau = r.tau, .base_model_id = model_path,
        .base_model_digest = digest[0] ? digest : NULL,
        .stop = &stop_flag,
    };
    signal(SIGINT, on_sigint);
    enum train_result res = train_run(&m, &r, &tw, &vw, &o, counts, err, sizeof err);
    signal(SIGINT, SIG_DFL);
    if (res == TRAIN_FAILED) {
        fprintf(stderr, "owlore train: %s\n", err);
        goto out;
    }
    print_block_counts(counts, ratios, m.cfg.n_layers);
    printf("%s; checkpoints in %s\n", res == TRAIN_PAUSED ? "paused" : "done", o.out_dir);
    rc = 0;
out:
    free(ratios);
    free(counts);
    text_windows_free(&train);
    text_windows_free(&val);
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}
