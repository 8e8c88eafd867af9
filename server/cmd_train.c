/*
 * cmd_train.c: `owlore train`: fine-tune a model on a dataset or a text file.
 *
 *   owlore train --model PATH --data FILE --method M [hyperparameters]
 *                [--val-data FILE | --val-fraction F] [--out DIR]
 *                [--resume CHECKPOINT_DIR] [--tokenizer PATH]
 *                [--backend cpu|cuda|auto]
 *
 * A .jsonl / .json dataset (chat messages, prompt/completion, Alpaca or text
 * records) is rendered with the chat template (--template, else the model's
 * own, else raw), with the loss on assistant tokens only unless
 * --train-on-inputs 1, and packed into windows of --seq + 1 tokens (--pack 0:
 * one example per window, padded). Any other file is plain text, each
 * document BOS + tokens, packed. Validation uses --val-data, else the last
 * --val-fraction of the windows (default 0.05).
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
#include "dataset.h"
#include "digest.h"
#include "load.h"
#include "outliers.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

static atomic_int stop_flag; /* lock-free: safe to store from a signal handler */

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, TRAIN_STOP_PAUSE);
}

/* D_l by calibration over the first windows of the training data, its
 * forward passes on the training backend be; the model digest it computes
 * is kept for the trainer. */
static int calibrate(const struct model *m, const struct recipe *r,
                     const struct token_windows *w, const struct backend *be,
                     double *ratios, char digest[SHA256_HEX_LEN])
{
    int n = w->n < r->calib_samples ? w->n : r->calib_samples;
    int *tokens = malloc(sizeof(int) * (size_t)n * w->seq_len);
    struct outliers_options oo = {.tau = r->tau, .tokens = tokens, .n_seqs = n,
                                  .seq_len = w->seq_len,
                                  .model_digest = digest[0] ? digest : NULL, .device = be};
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
    if (info.device_note[0])
        fprintf(stderr, "owlore train: calibrating on the host: %s\n", info.device_note);
    memcpy(digest, info.model_digest, SHA256_HEX_LEN);
    double sum = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        sum += ratios[l];
    printf("outlier ratios (tau %g, %d calibration windows, %s%s):\n", (double)r->tau, n,
           info.cache_hit ? "cached" : "computed on ",
           info.cache_hit || !info.calibrated_on ? "" : info.calibrated_on);
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

/* Training or validation data: a JSON / JSONL dataset (chat messages,
 * prompt/completion, Alpaca, text records) rendered with a chat template and
 * loss-masked, or else a plain text file. */
struct train_data {
    int is_dataset;
    struct ds_windows ds;
    struct text_windows text;
};

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int load_data(struct train_data *d, const char *path, const struct tokenizer *tok,
                     const struct ds_opts *o, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    d->is_dataset = has_suffix(path, ".jsonl") || has_suffix(path, ".json");
    if (d->is_dataset)
        return ds_load(&d->ds, path, tok, o, err, errlen);
    return text_windows_load(&d->text, path, tok, o->seq_len, err, errlen);
}

/* Hold out the last `fraction` of train's windows as val. */
static int split_data(struct train_data *train, struct train_data *val, double fraction)
{
    memset(val, 0, sizeof *val);
    val->is_dataset = train->is_dataset;
    return train->is_dataset ? ds_windows_split(&train->ds, &val->ds, fraction)
                             : text_windows_split(&train->text, &val->text, fraction);
}

static struct token_windows data_view(const struct train_data *d, int seq_len)
{
    if (d->is_dataset)
        return ds_windows_view(&d->ds);
    return (struct token_windows){d->text.ids, d->text.n, seq_len, NULL};
}

static void free_data(struct train_data *d)
{
    if (d->is_dataset)
        ds_windows_free(&d->ds);
    else
        text_windows_free(&d->text);
}

/* The chat template: --template, else the model's own when recognised,
 * else raw. */
static int pick_template(const char *name, const struct tokenizer *tok,
                         enum chat_template *t)
{
    if (name) {
        if (chat_template_parse(name, t) == 0)
            return 0;
        fprintf(stderr, "owlore train: unknown --template '%s'\n", name);
        return -1;
    }
    if (tok->chat_template && chat_template_detect(tok->chat_template, t) == 0)
        return 0;
    *t = CHAT_RAW;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    static const char *const own[] = {"--model", "--data", "--val-data", "--val-fraction",
                                      "--out", "--resume", "--tokenizer", "--template",
                                      "--train-on-inputs", "--pack", "--backend"};
    const char *known[128];
    int nk = 0;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        known[nk++] = own[i];
    for (int i = 0; cli_recipe_opts[i] && nk < 127; i++)
        known[nk++] = cli_recipe_opts[i];
    known[nk] = NULL;

    struct recipe r;
    char err[1024];
    double val_fraction, train_on_inputs, pack;
    const char *model_path = cli_opt(argc, argv, "--model");
    const char *data_path = cli_opt(argc, argv, "--data");
    const char *val_path = cli_opt(argc, argv, "--val-data");
    const char *out_dir = cli_opt(argc, argv, "--out");
    if (cli_check_opts(argc, argv, "train", known) != 0 ||
        cli_opt_double(argc, argv, "--val-fraction", 0.05, &val_fraction) != 0 ||
        cli_opt_double(argc, argv, "--train-on-inputs", 0, &train_on_inputs) != 0 ||
        cli_opt_double(argc, argv, "--pack", 1, &pack) != 0)
        return 2;
    if (cli_recipe_parse(argc, argv, &r, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        return 2;
    }
    if (!model_path || !data_path) {
        fprintf(stderr, "owlore train: --model PATH and --data FILE are required\n");
        return 2;
    }
    /* --backend cpu (default) | cuda | auto: checked before any loading */
    const struct backend *be = backend_select(cli_opt(argc, argv, "--backend"), err,
                                              sizeof err);
    if (!be) {
        fprintf(stderr, "owlore train: %s\n", err);
        return 2;
    }
    if (!(val_fraction >= 0 && val_fraction < 1)) {
        fprintf(stderr, "owlore train: --val-fraction must be in [0, 1)\n");
        return 2;
    }
    if ((train_on_inputs != 0 && train_on_inputs != 1) || (pack != 0 && pack != 1)) {
        fprintf(stderr, "owlore train: --train-on-inputs and --pack take 0 or 1\n");
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

    struct train_data train = {0}, val = {0};
    struct ds_opts dso = {.format = DS_FORMAT_AUTO, .train_on_inputs = (int)train_on_inputs,
                          .seq_len = r.seq_len, .pack = (int)pack, .pad_id = -1};
    int rc = 1;
    double *ratios = NULL;
    long *counts = calloc((size_t)m.cfg.n_layers, sizeof(long));
    if (pick_template(cli_opt(argc, argv, "--template"), &tok, &dso.tmpl) != 0)
        goto out;
    if (load_data(&train, data_path, &tok, &dso, err, sizeof err) != 0 ||
        (val_path && load_data(&val, val_path, &tok, &dso, err, sizeof err) != 0)) {
        fprintf(stderr, "owlore train: %s\n", err);
        goto out;
    }
    if (!val_path && val_fraction > 0)
        split_data(&train, &val, val_fraction);
    struct token_windows tw = data_view(&train, r.seq_len);
    struct token_windows vw = data_view(&val, r.seq_len);
    printf("training windows %d, validation windows %d, %d tokens each", tw.n, vw.n, r.seq_len);
    if (train.is_dataset)
        printf(" (%s template, loss on %s)", chat_template_name(dso.tmpl),
               train_on_inputs ? "every token" : "assistant tokens");
    printf("\n");

    if (r.sampling == SAMPLING_OWL) {
        ratios = calloc((size_t)m.cfg.n_layers, sizeof(double));
        if (!ratios || calibrate(&m, &r, &tw, be, ratios, digest) != 0)
            goto out;
    }
    struct train_opts o = {
        .out_dir = out_dir ? out_dir : "owlore-out",
        .resume_dir = resume_dir,
        /* a GGUF's embedded tokenizer is found through owlore.json instead */
        .tokenizer_path = tok.kind == TOKENIZER_GGUF ? NULL : tok_path,
        .outlier_ratios = ratios, .outlier_tau = r.tau, .base_model_id = model_path,
        .base_model_digest = digest[0] ? digest : NULL,
        .stop = &stop_flag,
    };
    /* loading, the outlier ratios (the calibration's forward passes on be)
     * and the digest read the host weights, and bf16 weights are stored
     * there; train on be */
    if (r.bf16_weights && model_store_bf16_digested(&m, digest, err, sizeof err) == 0)
        o.base_model_digest = digest;
    if ((r.bf16_weights && !m.blocks16) || model_move(&m, be, err, sizeof err) != 0) {
        fprintf(stderr, "owlore train: %s\n", err);
        goto out;
    }
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
    free_data(&train);
    free_data(&val);
    tokenizer_free(&tok);
    model_free(&m);
    return rc;
}
