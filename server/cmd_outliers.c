/*
 * cmd_outliers.c: `owlore outliers`: the layer outlier ratios D_l of a model
 * and the sampling probabilities p_l = D_l / sum D they give (OWS).
 *
 *   owlore outliers --model PATH [--data FILE] [--tau T] [--samples N]
 *                   [--seq S] [--json] [--tokenizer PATH]
 *                   [--backend cpu|cuda|auto]
 *
 * With --data, calibration runs the model over the first S tokens of the
 * first N windows of S + 1 tokens of the text file, as `owlore train`
 * calibrates (textdata.h; defaults N = 128, S = min(256, max_seq_len)), and
 * the result is cached (outliers.h). Without it the ratios
 * are weight-only (all ||X_j|| = 1). The calibration's forward passes run
 * on --backend (default cpu; on a GPU a copy of the weights is made there).
 * Notes go to stderr, the table or the JSON object to stdout.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "load.h"
#include "outliers.h"
#include "sampler.h"
#include "textdata.h"
#include "tokenizer.h"

#define DEFAULT_TAU 13.0
#define DEFAULT_SAMPLES 128
#define DEFAULT_SEQ 256

/* A number option that must be a whole number in [lo, hi]; -1 (message)
 * when it is not. */
static int int_opt(int argc, char **argv, const char *name, int def, int lo, int hi,
                   int *out)
{
    double v;
    if (cli_opt_double(argc, argv, name, def, &v) != 0)
        return -1;
    if (!(v >= lo && v <= hi) || v != floor(v)) {
        fprintf(stderr, "owlore outliers: %s must be a whole number from %d to %d, "
                "got '%s'\n", name, lo, hi, cli_opt(argc, argv, name));
        return -1;
    }
    *out = (int)v;
    return 0;
}

static void print_table(const char *path, double tau, const double *D,
                        const double *p, int L)
{
    double sum = 0.0;
    printf("outlier ratios of %s at tau = %g\n", path, tau);
    printf("%5s  %12s  %8s\n", "block", "D_l (%)", "p_l");
    for (int l = 0; l < L; l++) {
        sum += D[l];
        if (p)
            printf("%5d  %12.6f  %8.4f\n", l, D[l], p[l]);
        else
            printf("%5d  %12.6f  %8s\n", l, D[l], "-");
    }
    printf("%5s  %12.6f  %8s\n", "sum", sum, p ? "1.0000" : "-");
}

/* samples and seq are 0 (printed null) for weight-only ratios */
static int print_json(double tau, const double *D, const double *p, int L,
                      const struct outliers_info *info, int samples, int seq)
{
    json_t *root = json_object(), *d = json_array(), *pa = p ? json_array() : json_null();
    char *text = NULL;
    if (root && d && pa) {
        for (int l = 0; l < L; l++) {
            json_array_append_new(d, json_real(D[l]));
            if (p)
                json_array_append_new(pa, json_real(p[l]));
        }
        json_object_set_new(root, "tau", json_real(tau));
        json_object_set(root, "outlier_ratio", d);
        json_object_set(root, "probability", pa);
        json_object_set_new(root, "model_digest", json_string(info->model_digest));
        json_object_set_new(root, "calibration_digest",
                            info->calib_digest[0] ? json_string(info->calib_digest)
                                                  : json_null());
        json_object_set_new(root, "samples", samples ? json_integer(samples) : json_null());
        json_object_set_new(root, "seq_len", seq ? json_integer(seq) : json_null());
        text = json_dumps(root, JSON_REAL_PRECISION(17));
    }
    json_decref(d);
    json_decref(pa);
    json_decref(root);
    if (!text) {
        fprintf(stderr, "owlore outliers: out of memory\n");
        return -1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_outliers(int argc, char **argv)
{
    static const char *const known[] = {"--model", "--data", "--tau", "--samples",
                                        "--seq", "--tokenizer", "--backend", NULL};
    char **args = malloc(sizeof(char *) * (size_t)(argc + 1));
    int n_args = 0, json = 0, samples = DEFAULT_SAMPLES, seq = 0, rc = 2;
    double tau;
    struct model m;
    struct tokenizer tok;
    struct text_windows win;
    struct outliers_info info;
    struct outliers_options o;
    double *D = NULL, *p = NULL;
    int *calib = NULL;
    char err[1024];

    if (!args) {
        fprintf(stderr, "owlore outliers: out of memory\n");
        return 1;
    }
    /* --json is the one flag without a value: take it out before the
     * value-taking options are checked */
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        args[n_args++] = argv[i];
        if (i >= 2 && i + 1 < argc)
            args[n_args++] = argv[++i];
    }
    args[n_args] = NULL;
    const char *path = cli_opt(n_args, args, "--model");
    const char *data_path = cli_opt(n_args, args, "--data");
    if (cli_check_opts(n_args, args, "outliers", known) != 0 ||
        cli_opt_double(n_args, args, "--tau", DEFAULT_TAU, &tau) != 0)
        goto done;
    if (!path) {
        fprintf(stderr, "owlore outliers: --model PATH is required\n");
        goto done;
    }
    if (!(tau > 0.0) || !isfinite(tau)) {
        fprintf(stderr, "owlore outliers: --tau must be a positive number, got %g\n", tau);
        goto done;
    }
    if (!data_path && (cli_opt(n_args, args, "--samples") || cli_opt(n_args, args, "--seq") ||
                       cli_opt(n_args, args, "--tokenizer") ||
                       cli_opt(n_args, args, "--backend"))) {
        fprintf(stderr, "owlore outliers: --samples, --seq, --tokenizer and --backend need "
                "--data FILE\n");
        goto done;
    }
    const struct backend *be = backend_select(cli_opt(n_args, args, "--backend"), err,
                                              sizeof err);
    if (!be) {
        fprintf(stderr, "owlore outliers: %s\n", err);
        goto done;
    }
    if (int_opt(n_args, args, "--samples", DEFAULT_SAMPLES, 1, 1 << 20, &samples) != 0)
        goto done;

    rc = 1;
    if (model_load(path, backend_cpu(), &m, err, sizeof err) != 0) {
        fprintf(stderr, "owlore outliers: %s\n", err);
        goto done;
    }
    const int L = m.cfg.n_layers;
    int seq_def = m.cfg.max_seq_len < DEFAULT_SEQ ? m.cfg.max_seq_len : DEFAULT_SEQ;
    if (int_opt(n_args, args, "--seq", seq_def, 1, m.cfg.max_seq_len, &seq) != 0) {
        rc = 2;
        goto free_model;
    }
    D = malloc(sizeof(double) * (size_t)L);
    p = malloc(sizeof(double) * (size_t)L);
    if (!D || !p) {
        fprintf(stderr, "owlore outliers: out of memory\n");
        goto free_model;
    }
    memset(&o, 0, sizeof o);
    o.tau = tau;
    o.device = be;
    if (data_path) {
        if (tokenizer_load_for_model(&tok, path, cli_opt(n_args, args, "--tokenizer"),
                                     m.cfg.vocab_size, err, sizeof err) != 0) {
            fprintf(stderr, "owlore outliers: %s\n", err);
            goto free_model;
        }
        int loaded = text_windows_load(&win, data_path, &tok, seq, err, sizeof err) == 0;
        tokenizer_free(&tok);
        if (!loaded) {
            fprintf(stderr, "owlore outliers: %s\n", err);
            goto free_model;
        }
        if (win.n < samples) {
            fprintf(stderr, "owlore outliers: %s has %d windows of %d tokens, fewer than "
                    "--samples %d: calibrating on %d\n", data_path, win.n, seq + 1,
                    samples, win.n);
            samples = win.n;
        }
        fprintf(stderr, "owlore outliers: calibrating on %d windows of %d tokens from %s "
                "(%ld documents, %ld tokens)\n", samples, seq, data_path, win.n_docs,
                win.n_tokens);
        /* the first seq tokens of each training-sized window, as owlore train
         * calibrates: the same data and sizes share one cache entry */
        calib = malloc(sizeof(int) * (size_t)samples * seq);
        if (!calib) {
            fprintf(stderr, "owlore outliers: out of memory\n");
            text_windows_free(&win);
            goto free_model;
        }
        for (int i = 0; i < samples; i++)
            memcpy(calib + (size_t)i * seq, win.ids + (size_t)i * (seq + 1),
                   sizeof(int) * (size_t)seq);
        text_windows_free(&win);
        o.tokens = calib;
        o.n_seqs = samples;
        o.seq_len = seq;
    } else {
        fprintf(stderr, "owlore outliers: no --data: weight-only ratios (every "
                "||X_j|| = 1)\n");
    }
    int ok = outliers_compute(&m, &o, D, &info, err, sizeof err) == 0;
    if (!ok) {
        fprintf(stderr, "owlore outliers: %s\n", err);
        goto free_model;
    }
    if (info.warning[0])
        fprintf(stderr, "owlore outliers: %s\n", info.warning);
    if (info.device_note[0])
        fprintf(stderr, "owlore outliers: calibrating on the host: %s\n", info.device_note);
    if (info.calibrated_on)
        fprintf(stderr, "owlore outliers: forward passes on the %s backend\n",
                info.calibrated_on);
    if (info.cache_hit)
        fprintf(stderr, "owlore outliers: cached result %s\n", info.cache_file);
    else if (info.cache_file[0] && !info.warning[0])
        fprintf(stderr, "owlore outliers: cached to %s\n", info.cache_file);
    int have_p = sampler_probabilities(D, L, p) == 0;
    if (!have_p)
        fprintf(stderr, "owlore outliers: every D_l is 0 at tau = %g: no sampling "
                "probabilities (lower --tau)\n", tau);
    if (json)
        rc = print_json(tau, D, have_p ? p : NULL, L, &info, data_path ? samples : 0,
                        data_path ? seq : 0) == 0 ? 0 : 1;
    else {
        print_table(path, tau, D, have_p ? p : NULL, L);
        rc = 0;
    }
free_model:
    model_free(&m);
done:
    free(calib);
    free(D);
    free(p);
    free(args);
    return rc;
}
