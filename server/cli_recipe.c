/*
 * cli_recipe.c: recipe options on the command line (see cli_recipe.h).
 *
 * --method picks the defaults (recipe_defaults), then each other option
 * overrides one field. Every value is parsed strictly: the whole string must
 * be a finite number (or an integer: no fraction, no exponent) in the
 * option's range, or one of the option's listed names. Options that only
 * make sense for block sampling are refused for methods that train every
 * block, and an option given twice is refused. Self-contained (no main.c
 * helpers) so tests can link it on its own.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_recipe.h"

const char *const cli_recipe_opts[] = {
    "--method", "--gamma", "--rank", "--tau", "--lr", "--interval", "--proj-gap",
    "--scale", "--svd", "--oversample", "--power-iters", "--state-policy",
    "--sampling", "--blocks", "--freeze-embeddings", "--batch", "--accum", "--seq",
    "--steps", "--epochs", "--warmup", "--schedule", "--min-lr-ratio",
    "--weight-decay", "--beta1", "--beta2", "--eps", "--clip", "--seed",
    "--eval-every", "--save-every", "--calib-samples", "--lora-rank", "--lora-alpha",
    "--lora-dropout", "--lora-merge", "--checkpoint-activations", "--bf16-activations",
    "--bf16-weights", "--stagger-refreshes", "--update-in-backward", "--recompute-blocks", NULL};

/* What values an option accepts. */
enum kind { POS_INT, NONNEG_INT, POS_NUM, NONNEG_NUM };

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return -1; } while (0)

/* strto* skip leading blanks and take a '+': a strict value starts with a
 * digit, a minus sign or a decimal point. */
static int plain_start(const char *s)
{
    return (*s >= '0' && *s <= '9') || *s == '-' || *s == '.';
}

static int parse_int(const char *name, const char *s, enum kind k, int *out,
                     char *err, size_t errlen)
{
    const char *what = k == POS_INT ? "a positive integer" : "a non-negative integer";
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!plain_start(s) || end == s || *end || errno == ERANGE || v > INT_MAX ||
        v < INT_MIN)
        FAIL("%s expects %s, got '%s'", name, what, s);
    if (v < (k == POS_INT ? 1 : 0))
        FAIL("%s expects %s, got '%s'", name, what, s);
    *out = (int)v;
    return 0;
}

static int parse_num(const char *name, const char *s, enum kind k, float *out,
                     char *err, size_t errlen)
{
    const char *what = k == POS_NUM ? "a positive number" : "a non-negative number";
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!plain_start(s) || end == s || *end || errno == ERANGE || !isfinite(v) ||
        fabs(v) > 3.4e38)
        FAIL("%s expects %s, got '%s'", name, what, s);
    *out = (float)v;
    if ((k == POS_NUM && !(*out > 0)) || (k == NONNEG_NUM && v < 0))
        FAIL("%s expects %s, got '%s'", name, what, s);
    return 0;
}

/* Index of s in the NULL-terminated list names, or -1 with a message. */
static int parse_choice(const char *name, const char *s, const char *const *names,
                        char *err, size_t errlen)
{
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0)
            return i;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i ? ", " : "", names[i]);
    }
    FAIL("%s expects one of %s; got '%s'", name, list, s);
}

/* "0,3,5" -> r->fixed_blocks (range and duplicates: recipe_check). */
static int parse_blocks(const char *s, struct recipe *r, char *err, size_t errlen)
{
    const char *p = s;
    r->n_fixed = 0;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (!plain_start(p) || end == p || (*end && *end != ',') || errno == ERANGE ||
            v < 0 || v > INT_MAX)
            FAIL("--blocks expects a comma-separated list of block indices such as "
                 "0,3,5; got '%s'", s);
        if (r->n_fixed == RECIPE_MAX_FIXED)
            FAIL("--blocks lists more than %d blocks", RECIPE_MAX_FIXED);
        r->fixed_blocks[r->n_fixed++] = (int)v;
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* Value of option name in argv (pairs from argv[2]), NULL when absent;
 * *count, when non-NULL, receives how often it is given. */
static const char *find_opt(int argc, char **argv, const char *name, int *count)
{
    const char *v = NULL;
    int n = 0;
    for (int i = 2; i + 1 < argc; i += 2)
        if (strcmp(argv[i], name) == 0) {
            v = argv[i + 1];
            n++;
        }
    if (count)
        *count = n;
    return v;
}

int cli_recipe_parse(int argc, char **argv, struct recipe *r, char *err, size_t errlen)
{
    static const char *const samplings[] = {"owl", "uniform", "decrease", "fixed", NULL};
    static const enum sampling sampling_of[] = {SAMPLING_OWL, SAMPLING_UNIFORM,
                                                SAMPLING_DECREASE, SAMPLING_FIXED};
    static const char *const svds[] = {"exact", "randomized", NULL};
    static const char *const policies[] = {"reset", "keep", NULL};
    static const char *const schedules[] = {"linear", "cosine", "constant", NULL};
    static const char *const bools[] = {"0", "1", NULL};
    /* integer and number options: name, kind, field */
    const struct { const char *name; enum kind kind; int *field; } ints[] = {
        {"--gamma", POS_INT, &r->gamma},
        {"--rank", NONNEG_INT, &r->galore.rank},
        {"--interval", POS_INT, &r->interval},
        {"--proj-gap", POS_INT, &r->galore.update_proj_gap},
        {"--oversample", NONNEG_INT, &r->galore.oversample},
        {"--power-iters", NONNEG_INT, &r->galore.power_iters},
        {"--batch", POS_INT, &r->batch_size},
        {"--accum", POS_INT, &r->grad_accum},
        {"--seq", POS_INT, &r->seq_len},
        {"--steps", NONNEG_INT, &r->max_steps},
        {"--epochs", NONNEG_INT, &r->epochs},
        {"--warmup", NONNEG_INT, &r->warmup_steps},
        {"--eval-every", NONNEG_INT, &r->eval_every},
        {"--save-every", NONNEG_INT, &r->save_every},
        {"--calib-samples", NONNEG_INT, &r->calib_samples},
        {"--recompute-blocks", NONNEG_INT, &r->recompute_blocks},
        {"--lora-rank", POS_INT, &r->lora.rank},
    };
    const struct { const char *name; enum kind kind; float *field; } nums[] = {
        {"--tau", POS_NUM, &r->tau},
        {"--lr", POS_NUM, &r->lr},
        {"--scale", POS_NUM, &r->galore.scale},
        {"--min-lr-ratio", NONNEG_NUM, &r->min_lr_ratio},
        {"--weight-decay", NONNEG_NUM, &r->adamw.weight_decay},
        {"--beta1", NONNEG_NUM, &r->adamw.beta1},
        {"--beta2", NONNEG_NUM, &r->adamw.beta2},
        {"--eps", POS_NUM, &r->adamw.eps},
        {"--clip", NONNEG_NUM, &r->max_grad_norm},
        {"--lora-alpha", POS_NUM, &r->lora.alpha},
        {"--lora-dropout", NONNEG_NUM, &r->lora.dropout},
    };
    static const char *const sampling_only[] = {"--gamma", "--interval", "--sampling",
                                                "--blocks", NULL};
    static const char *const lora_only[] = {"--lora-rank", "--lora-alpha", "--lora-dropout",
                                            "--lora-merge", NULL};
    int count, i;
    const char *v;

    for (const char *const *o = cli_recipe_opts; *o; o++) {
        find_opt(argc, argv, *o, &count);
        if (count > 1)
            FAIL("%s is given more than once", *o);
    }
    enum method m = METHOD_OWLORE;
    if ((v = find_opt(argc, argv, "--method", NULL)) && method_parse(v, &m) != 0) {
        char list[128] = "";
        for (int k = 0; k < METHOD_COUNT; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                     k ? ", " : "", method_name((enum method)k));
        FAIL("--method expects one of %s; got '%s'", list, v);
    }
    recipe_defaults(r, m);
    if (r->sampling == SAMPLING_ALL)
        for (const char *const *o = sampling_only; *o; o++)
            if (find_opt(argc, argv, *o, NULL))
                FAIL("%s does not apply to --method %s, which does not sample "
                     "blocks", *o, method_name(m));
    if (m != METHOD_LORA)
        for (const char *const *o = lora_only; *o; o++)
            if (find_opt(argc, argv, *o, NULL))
                FAIL("%s applies only to --method lora", *o);

    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        if ((v = find_opt(argc, argv, ints[k].name, NULL)) &&
            parse_int(ints[k].name, v, ints[k].kind, ints[k].field, err, errlen) != 0)
            return -1;
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++)
        if ((v = find_opt(argc, argv, nums[k].name, NULL)) &&
            parse_num(nums[k].name, v, nums[k].kind, nums[k].field, err, errlen) != 0)
            return -1;
    if ((v = find_opt(argc, argv, "--seed", NULL))) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (!plain_start(v) || v[0] == '-' || end == v || *end || errno == ERANGE)
            FAIL("--seed expects a non-negative integer, got '%s'", v);
        r->seed = s;
    }
    if ((v = find_opt(argc, argv, "--svd", NULL))) {
        if ((i = parse_choice("--svd", v, svds, err, errlen)) < 0)
            return -1;
        r->galore.svd_method = i;
    }
    if ((v = find_opt(argc, argv, "--state-policy", NULL))) {
        if ((i = parse_choice("--state-policy", v, policies, err, errlen)) < 0)
            return -1;
        r->state_policy = i == 0 ? STATE_RESET : STATE_KEEP;
    }
    if ((v = find_opt(argc, argv, "--schedule", NULL))) {
        if ((i = parse_choice("--schedule", v, schedules, err, errlen)) < 0)
            return -1;
        r->schedule = (enum lr_schedule)i;
    }
    /* the 0|1 switches */
    const struct { const char *opt; int *field; } switches[] = {
        {"--freeze-embeddings", &r->freeze_embeddings},
        {"--checkpoint-activations", &r->checkpoint_activations},
        {"--bf16-activations", &r->bf16_activations},
        {"--bf16-weights", &r->bf16_weights},
        {"--stagger-refreshes", &r->stagger_refreshes},
        {"--update-in-backward", &r->update_in_backward},
        {"--lora-merge", &r->lora.merge},
    };
    for (size_t k = 0; k < sizeof switches / sizeof switches[0]; k++) {
        if ((v = find_opt(argc, argv, switches[k].opt, NULL))) {
            if ((i = parse_choice(switches[k].opt, v, bools, err, errlen)) < 0)
                return -1;
            *switches[k].field = i;
        }
    }
    if ((v = find_opt(argc, argv, "--sampling", NULL))) {
        if ((i = parse_choice("--sampling", v, samplings, err, errlen)) < 0)
            return -1;
        r->sampling = sampling_of[i];
    }
    if ((v = find_opt(argc, argv, "--blocks", NULL))) {
        if (r->sampling != SAMPLING_FIXED && find_opt(argc, argv, "--sampling", NULL))
            FAIL("--blocks needs --sampling fixed, not '%s'", sampling_name(r->sampling));
        if (parse_blocks(v, r, err, errlen) != 0)
            return -1;
        r->sampling = SAMPLING_FIXED;
        if (find_opt(argc, argv, "--gamma", NULL) && r->gamma != r->n_fixed)
            FAIL("--gamma %d does not match the %d blocks of --blocks", r->gamma,
                 r->n_fixed);
        r->gamma = r->n_fixed;
    } else if (r->sampling == SAMPLING_FIXED) {
        FAIL("--sampling fixed needs --blocks (e.g. --blocks 0,3,5)");
    }
    return 0;
}
