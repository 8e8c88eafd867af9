/*
 * cmd_validate.c: `owlore validate`: check a dataset file before training.
 *
 *   owlore validate --data FILE [--model PATH [--tokenizer PATH]]
 *                   [--template NAME] [--seq N] [--format F]
 *                   [--train-on-inputs 0|1] [--min-examples N]
 *                   [--max-line BYTES] [--max-errors N] [--json]
 *
 * The file is read in 1 MiB chunks through the streaming validator
 * (validate.h): structure always; with --model, also token statistics with
 * the model's tokenizer and chat template (--template NAME, else the one
 * the tokenizer's config names when recognisable, else raw) against --seq
 * (default: the training default, 512). Prints a table, or
 * with --json the report validate.h documents. Exit status 0 when the file
 * is valid, 1 when it has errors or cannot be read, 2 for usage errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "load.h"
#include "recipe.h"
#include "tokenizer.h"
#include "validate.h"

/* A whole number option in [lo, hi]; -1 with a message otherwise. */
static int opt_long(int argc, char **argv, const char *name, long lo, long hi, long *out)
{
    double d;
    if (cli_opt_double(argc, argv, name, (double)*out, &d) != 0)
        return -1;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(long)d) {
        fprintf(stderr, "owlore validate: %s must be a whole number in [%ld, %ld]\n", name,
                lo, hi);
        return -1;
    }
    *out = (long)d;
    return 0;
}

static void print_report(const struct validate_report *r, const char *path, FILE *f)
{
    fprintf(f, "data          %s\n", path);
    fprintf(f, "container     %s, %llu bytes, %ld lines (%ld empty)\n",
            ds_container_name(r->container), r->bytes, r->lines, r->empty_lines);
    if (r->format == DS_FORMAT_AUTO)
        fprintf(f, "format        none (no valid record)\n");
    else if (r->format_line > 0)
        fprintf(f, "format        %s (detected on line %ld)\n", ds_format_name(r->format),
                r->format_line);
    else
        fprintf(f, "format        %s (given)\n", ds_format_name(r->format));
    fprintf(f, "examples      %ld valid (minimum %ld)\n", r->examples, r->min_examples);
    if (r->tokenized) {
        fprintf(f, "tokens        %lld, %lld trained; longest example %ld (template %s%s)\n",
                r->tokens, r->trained_tokens, r->max_tokens, chat_template_name(r->tmpl),
                r->train_on_inputs ? ", training on inputs" : "");
        fprintf(f, "truncated     %ld example%s over %d tokens (--seq %d + 1); %ld left with "
                "nothing to train on\n", r->truncated, r->truncated == 1 ? "" : "s",
                r->seq_len + 1, r->seq_len, r->dropped);
        int top = -1;
        for (int k = 0; k < VALIDATE_HIST_BUCKETS; k++)
            if (r->histogram[k])
                top = k;
        if (top >= 0)
            fprintf(f, "lengths       %-21s %s\n", "tokens", "examples");
        for (int k = 0; k <= top; k++) {
            char range[48];
            snprintf(range, sizeof range, "%lld-%lld", k == 0 ? 0LL : 1LL << k,
                     (1LL << (k + 1)) - 1);
            fprintf(f, "              %-21s %ld\n", range, r->histogram[k]);
        }
    } else {
        fprintf(f, "tokens        not counted (no --model)\n");
    }
    fprintf(f, "errors        %ld\n", r->error_count);
    for (int i = 0; i < r->n_errors; i++) {
        const struct validate_error *e = &r->errors[i];
        char line[32] = "file";
        if (e->line > 0)
            snprintf(line, sizeof line, "line %ld", e->line);
        fprintf(f, "  %-11s %-34s %s\n", line, ds_code_name(e->code), e->message);
    }
    if (r->error_count > r->n_errors)
        fprintf(f, "  (%ld more not shown)\n", r->error_count - r->n_errors);
    for (int c = 0; c < DS_CODE_COUNT && r->error_count > 1; c++)
        if (r->error_counts[c])
            fprintf(f, "  %-11s %-34s %ld\n", "count", ds_code_name((enum ds_code)c),
                    r->error_counts[c]);
    fprintf(f, "result        %s\n", r->valid ? "valid" : "INVALID");
}

int cmd_validate(int argc, char **argv)
{
    static const char *const known[] = {"--data", "--model", "--tokenizer", "--template",
                                        "--seq", "--format", "--train-on-inputs",
                                        "--min-examples", "--max-line", "--max-errors",
                                        "--json", NULL};
    struct validate_opts o;
    struct recipe defaults;
    char err[1024];
    const char *data = cli_opt(argc, argv, "--data");
    const char *model = cli_opt(argc, argv, "--model");
    const char *tmpl = cli_opt(argc, argv, "--template");
    const char *format = cli_opt(argc, argv, "--format");
    validate_opts_default(&o);
    recipe_defaults(&defaults, METHOD_OWLORE);
    long seq = defaults.seq_len, toi = 0, min_ex = o.min_examples;
    long max_line = (long)o.max_record, max_err = o.max_errors;
    if (cli_check_opts(argc, argv, "validate", known) != 0 ||
        opt_long(argc, argv, "--seq", 1, 1L << 30, &seq) != 0 ||
        opt_long(argc, argv, "--train-on-inputs", 0, 1, &toi) != 0 ||
        opt_long(argc, argv, "--min-examples", 0, 1L << 40, &min_ex) != 0 ||
        opt_long(argc, argv, "--max-line", 1, 1L << 40, &max_line) != 0 ||
        opt_long(argc, argv, "--max-errors", 0, 1000000, &max_err) != 0)
        return 2;
    if (!data) {
        fprintf(stderr, "owlore validate: --data FILE is required\n");
        return 2;
    }
    if (format && ds_format_parse(format, &o.format) != 0) {
        fprintf(stderr, "owlore validate: unknown --format '%s' (auto, messages, "
                "prompt_completion, question_answer, alpaca, text)\n", format);
        return 2;
    }
    if (tmpl && chat_template_parse(tmpl, &o.tmpl) != 0) {
        fprintf(stderr, "owlore validate: unknown --template '%s'\n", tmpl);
        return 2;
    }
    if (cli_opt(argc, argv, "--tokenizer") && !model) {
        fprintf(stderr, "owlore validate: --tokenizer needs --model\n");
        return 2;
    }
    o.seq_len = (int)seq;
    o.train_on_inputs = (int)toi;
    o.min_examples = min_ex;
    o.max_record = (size_t)max_line;
    o.max_errors = (int)max_err;

    struct tokenizer tok;
    if (model) {
        struct model_config cfg;
        if (model_read_config(model, &cfg, err, sizeof err) != 0 ||
            tokenizer_load_for_model(&tok, model, cli_opt(argc, argv, "--tokenizer"),
                                     cfg.vocab_size, err, sizeof err) != 0) {
            fprintf(stderr, "owlore validate: %s\n", err);
            return 1;
        }
        o.tok = &tok;
        if (!tmpl && tok.chat_template && chat_template_detect(tok.chat_template, &o.tmpl) != 0) {
            o.tmpl = CHAT_RAW;
            fprintf(stderr, "owlore validate: the model's chat template is not one this "
                    "engine knows; counting tokens with the raw template (--template "
                    "NAME to choose)\n");
        }
    }
    struct validate_report r;
    int rc = 1;
    if (validate_file(data, &o, 0, &r, err, sizeof err) != 0) {
        fprintf(stderr, "owlore validate: %s\n", err);
        goto out;
    }
    if (cli_flag(argc, argv, "--json")) {
        json_t *j = validate_report_json(&r);
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        if (!s) {
            fprintf(stderr, "owlore validate: out of memory writing the report\n");
            validate_report_free(&r);
            goto out;
        }
        printf("%s\n", s);
        free(s);
    } else {
        print_report(&r, data, stdout);
    }
    rc = r.valid ? 0 : 1;
    validate_report_free(&r);
out:
    if (model)
        tokenizer_free(&tok);
    return rc;
}
