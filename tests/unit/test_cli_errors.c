/*
 * test_cli_errors.c: bad input to `owlore train`, `owlore plan` and
 * `owlore outliers` gives a clear error before any work starts; and what
 * `owlore plan --fit` suggests, which is the same advice as the errors of a
 * run that does not fit.
 *
 * Requirement: gamma larger than the number of blocks, rank <= 0, tau <= 0,
 * a learning rate that is not a positive number, a resume directory from
 * another model: a clear error before any work starts.
 *
 * The commands run in this process (cmd_train / cmd_plan from
 * libowlore-cli.a) with stdout and stderr captured into temporary files.
 * Each case checks the exit status (2 for usage and hyperparameter errors,
 * 1 for runtime errors), that stderr names the problem, and that no work
 * started: nothing on stdout (the trainer prints a line once the data is
 * tokenized) and no --out folder, or for a refused resume no checkpoint or
 * metrics.jsonl in it and the resumed checkpoint untouched.
 *
 * Model: stories260K (5 blocks) from the shared data. Hyperparameter cases
 * name tinystories_val.txt (never read: they fail first); the runs that do
 * read their data use the 4 KB tinystories_sample.txt, so that the test
 * stays quick under valgrind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "test.h"

#include "backend.h"
#include "cli.h"
#include "cli_recipe.h"

#define MAX_ARGS 40
#define CAPTURE 16384

static char model_path[4096], tok_path[4096], val_path[4096], sample_path[4096];
static char root[] = "/tmp/owlore-clierr-XXXXXX";

/* What one command printed and returned. */
struct result {
    int rc;
    char out[CAPTURE], err[CAPTURE];
};

/* Read what fd holds (from the start) into buf, NUL-terminated. */
static void slurp(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t k;
    lseek(fd, 0, SEEK_SET);
    while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = 0;
}

/* Run `owlore <cmd_name> args...` through cmd with stdout and stderr captured. */
static void run_cli(int (*cmd)(int, char **), const char *cmd_name,
                    const char *const *args, struct result *res)
{
    char *argv[MAX_ARGS + 3];
    char out_tmp[] = "/tmp/owlore-clierr-out-XXXXXX", err_tmp[] = "/tmp/owlore-clierr-err-XXXXXX";
    int argc = 0;
    argv[argc++] = "owlore";
    argv[argc++] = (char *)cmd_name;
    for (int i = 0; args[i] && argc < MAX_ARGS + 2; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    int fo = mkstemp(out_tmp), fe = mkstemp(err_tmp);
    if (fo < 0 || fe < 0) {
        res->rc = -1;
        snprintf(res->err, sizeof res->err, "mkstemp: %s", strerror(errno));
        res->out[0] = 0;
        return;
    }
    unlink(out_tmp);
    unlink(err_tmp);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(fo, 1);
    dup2(fe, 2);
    res->rc = cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(fo, res->out, sizeof res->out);
    slurp(fe, res->err, sizeof res->err);
    close(fo);
    close(fe);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* 1 when folder dir holds a checkpoint-* entry or metrics.jsonl. */
static int holds_run_output(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)))
        found |= strncmp(e->d_name, "checkpoint-", 11) == 0 ||
                 strcmp(e->d_name, "metrics.jsonl") == 0;
    closedir(d);
    return found;
}

/* Whole file into a malloc'd buffer (*n bytes), or NULL. */
static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1)) &&
        fread(buf, 1, (size_t)size, f) == (size_t)size) {
        *n = (size_t)size;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

static int write_file(const char *path, const char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = 0;
    return ok ? 0 : -1;
}

/* Check rc and that stderr says every one of the NULL-terminated `says`. */
static void check_error(const struct result *res, int rc, const char *const *says)
{
    CHECK_MSG(res->rc == rc, "exit status %d, expected %d (stderr: %s)", res->rc, rc,
              res->err);
    for (int i = 0; says[i]; i++)
        CHECK_MSG(strstr(res->err, says[i]) != NULL, "stderr does not say '%s': %s",
                  says[i], res->err);
}

/* ---- hyperparameter and usage errors: refused before anything is read ---- */

struct bad_input {
    const char *name;
    const char *opts[8];       /* appended to the common options */
    int rc;
    const char *says[5];       /* NULL-terminated */
};

static const struct bad_input train_cases[] = {
    {"train: gamma larger than the number of blocks", {"--method", "owlore", "--gamma", "6"},
     2, {"owlore train", "gamma 6", "5 blocks"}},
    {"train: owlore rank 0", {"--method", "owlore", "--rank", "0"}, 2,
     {"owlore train", "rank", "positive", "got 0"}},
    {"train: galore rank -3", {"--method", "galore", "--rank", "-3"}, 2,
     {"owlore train", "--rank", "'-3'"}},
    {"train: tau 0", {"--tau", "0"}, 2, {"owlore train", "--tau", "positive", "'0'"}},
    {"train: tau -1", {"--tau", "-1"}, 2, {"owlore train", "--tau", "positive", "'-1'"}},
    {"train: lr abc", {"--lr", "abc"}, 2, {"owlore train", "--lr", "positive", "'abc'"}},
    {"train: lr -1e-4", {"--lr", "-1e-4"}, 2, {"owlore train", "--lr", "positive", "'-1e-4'"}},
    {"train: lr 0", {"--lr", "0"}, 2, {"owlore train", "--lr", "positive", "'0'"}},
    {"train: lr nan", {"--lr", "nan"}, 2, {"owlore train", "--lr", "positive", "'nan'"}},
    {"train: gamma 2.5", {"--gamma", "2.5"}, 2, {"owlore train", "--gamma", "integer", "'2.5'"}},
    {"train: unknown option", {"--bogus", "1"}, 2, {"owlore train", "unknown option", "--bogus"}},
};

static void test_train_bad_input(void)
{
    char out[4200];
    snprintf(out, sizeof out, "%s/bad-input", root);
    for (size_t k = 0; k < sizeof train_cases / sizeof train_cases[0]; k++) {
        const struct bad_input *c = &train_cases[k];
        const char *args[MAX_ARGS] = {"--model", model_path, "--data", val_path,
                                      "--steps", "1", "--batch", "2", "--seq", "32",
                                      "--out", out};
        int n = 12;
        struct result res;
        for (int i = 0; c->opts[i]; i++)
            args[n++] = c->opts[i];
        test_begin(c->name);
        run_cli(cmd_train, "train", args, &res);
        check_error(&res, c->rc, c->says);
        CHECK_MSG(res.out[0] == 0, "work started: stdout says %s", res.out);
        CHECK_MSG(!exists(out), "the --out folder %s was created", out);
        test_end();
    }
}

static void test_train_missing_data(void)
{
    char out[4200], missing[4200];
    struct result res;
    snprintf(out, sizeof out, "%s/no-data", root);
    snprintf(missing, sizeof missing, "%s/no-such-file.txt", root);

    test_begin("train: --data missing");
    const char *no_data[] = {"--model", model_path, "--steps", "1", "--out", out, NULL};
    run_cli(cmd_train, "train", no_data, &res);
    check_error(&res, 2, (const char *const[]){"owlore train", "--data", NULL});
    CHECK_MSG(res.out[0] == 0, "work started: stdout says %s", res.out);
    CHECK(!exists(out));
    test_end();

    test_begin("train: --data file that does not exist");
    const char *bad_data[] = {"--model", model_path, "--data", missing, "--steps", "1",
                              "--out", out, NULL};
    run_cli(cmd_train, "train", bad_data, &res);
    check_error(&res, 1, (const char *const[]){"owlore train", missing, NULL});
    CHECK_MSG(res.out[0] == 0, "work started: stdout says %s", res.out);
    CHECK(!exists(out));
    test_end();
}

static const struct bad_input plan_cases[] = {
    {"plan: gamma 9 on 5 blocks", {"--method", "owlore", "--gamma", "9"}, 2,
     {"owlore plan", "gamma 9", "5 blocks"}},
    {"plan: owlore rank 0", {"--method", "owlore", "--rank", "0"}, 2,
     {"owlore plan", "rank", "got 0"}},
    {"plan: tau 0", {"--tau", "0"}, 2, {"owlore plan", "--tau", "'0'"}},
    {"plan: lr abc", {"--lr", "abc"}, 2, {"owlore plan", "--lr", "'abc'"}},
    {"plan: fit 0 GB", {"--fit", "0"}, 2, {"owlore plan", "--fit", "'0'"}},
    {"plan: fit with dtype bf16", {"--fit", "80", "--dtype", "bf16"}, 2,
     {"owlore plan", "--fit", "--dtype fp32"}},
    {"plan: bf16 activations with every block recomputed",
     {"--checkpoint-activations", "1", "--bf16-activations", "1"}, 2,
     {"owlore plan", "bf16_activations", "recomputes all 5"}},
};

static void test_plan_bad_input(void)
{
    for (size_t k = 0; k < sizeof plan_cases / sizeof plan_cases[0]; k++) {
        const struct bad_input *c = &plan_cases[k];
        const char *args[MAX_ARGS] = {"--model", model_path};
        int n = 2;
        struct result res;
        for (int i = 0; c->opts[i]; i++)
            args[n++] = c->opts[i];
        test_begin(c->name);
        run_cli(cmd_plan, "plan", args, &res);
        check_error(&res, c->rc, c->says);
        CHECK_MSG(res.out[0] == 0, "a plan was printed: %s", res.out);
        test_end();
    }
}

/* `owlore plan --fit GB`: within a byte less than the run's own peak, bf16
 * weights alone are named (as a 422 would); within the peak, nothing; far
 * below anything, every saving, out of reach. */
static void test_plan_fit(void)
{
    const char *args[MAX_ARGS] = {"--model", model_path, "--method", "lisa", "--batch", "2",
                                  "--seq", "64", "--json"};
    struct result res;
    char gb[64];
    test_begin("plan_fit_names_the_cheapest_settings_that_fit");
    run_cli(cmd_plan, "plan", args, &res);
    json_t *j = json_loads(res.out, 0, NULL);
    const double peak = json_number_value(json_object_get(j, "total_peak"));
    json_decref(j);
    CHECK_MSG(res.rc == 0 && peak > 0, "rc %d: %s %s", res.rc, res.out, res.err);
    const double limits[3] = {peak - 1, peak, 1e3};
    const char *settings[3] = {"bf16_weights: 1", "",
                               "bf16_weights: 1, update_in_backward: 1 and "
                               "activation_checkpointing: 1"};
    for (int i = 0; i < 3; i++) {
        snprintf(gb, sizeof gb, "%.9f", limits[i] / 1e9);
        args[9] = "--fit";
        args[10] = gb;
        run_cli(cmd_plan, "plan", args, &res);
        j = json_loads(res.out, 0, NULL);
        json_t *fit = json_object_get(j, "fit");
        CHECK_MSG(res.rc == 0 && !strcmp(json_string_value(json_object_get(fit, "settings")),
                                         settings[i]) &&
                      json_is_true(json_object_get(fit, "fits")) == (i < 2),
                  "--fit %s: %s %s", gb, res.out, res.err);
        json_decref(j);
    }
    args[8] = "--fit"; /* the table names them too */
    args[9] = gb;
    args[10] = NULL;
    snprintf(gb, sizeof gb, "%.9f", (peak - 1) / 1e9);
    run_cli(cmd_plan, "plan", args, &res);
    CHECK_MSG(res.rc == 0 && strstr(res.out, "GB: with bf16_weights: 1 ("), "%s", res.out);
    test_end();
}

/* ---- resume refusals ---- */

/* A byte copy of stories260K.bin with one weight changed, tok512.bin beside
 * it, in root/other; its path into path. */
static int make_other_model(char *path, size_t len)
{
    char dir[4200], tok[4300];
    size_t n = 0, nt = 0;
    char *bin = read_file(model_path, &n), *tk = read_file(tok_path, &nt);
    int rc = -1;
    snprintf(dir, sizeof dir, "%s/other", root);
    snprintf(path, len, "%s/stories260K.bin", dir);
    snprintf(tok, sizeof tok, "%s/tok512.bin", dir);
    /* the 28-byte llama2.c header, then the embedding: change its 10th float */
    if (bin && tk && n > 28 + 40 && mkdir(dir, 0755) == 0) {
        float w;
        memcpy(&w, bin + 28 + 36, 4);
        w += 0.5f;
        memcpy(bin + 28 + 36, &w, 4);
        rc = write_file(path, bin, n) == 0 && write_file(tok, tk, nt) == 0 ? 0 : -1;
    }
    free(bin);
    free(tk);
    return rc;
}

/* A refused resume into out: status 1, the message, nothing written. */
static void check_refused(const struct result *res, const char *out, const char *const *says)
{
    check_error(res, 1, says);
    CHECK_MSG(!holds_run_output(out), "%s holds a checkpoint or metrics.jsonl", out);
}

static void test_resume(void)
{
    char run1[4200], ck[4300], info[4400], metrics[4300], other[4400], out[4300];
    char *info_before = NULL, *metrics_before = NULL;
    size_t n_info = 0, n_metrics = 0;
    struct result res;
    /* stdout of each refusal, for the "nothing started" case at the end */
    static char refusal_out[3][CAPTURE];
    const char *refusal_name[3] = {"another base model", "method full", "method owlore"};

    snprintf(run1, sizeof run1, "%s/run1", root);
    snprintf(ck, sizeof ck, "%s/checkpoint-1", run1);
    snprintf(info, sizeof info, "%s/owlore.json", ck);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", run1);

    test_begin("resume: a first real run writes checkpoint-1");
    const char *first[] = {"--model", model_path, "--data", sample_path, "--method", "lisa",
                           "--steps", "1", "--batch", "2", "--seq", "32", "--out", run1,
                           NULL};
    run_cli(cmd_train, "train", first, &res);
    CHECK_MSG(res.rc == 0, "exit status %d: %s", res.rc, res.err);
    CHECK_MSG(exists(info), "%s missing", info);
    info_before = read_file(info, &n_info);
    metrics_before = read_file(metrics, &n_metrics);
    CHECK(info_before && metrics_before);
    test_end();
    if (!info_before || !metrics_before) {
        free(info_before);
        free(metrics_before);
        return;
    }

    test_begin("resume: checkpoint of another base model is refused");
    CHECK_MSG(make_other_model(other, sizeof other) == 0, "cannot write the changed model copy");
    snprintf(out, sizeof out, "%s/run-other", root);
    const char *from_other[] = {"--model", other, "--data", sample_path, "--method", "lisa",
                                "--steps", "2", "--batch", "2", "--seq", "32",
                                "--resume", ck, "--out", out, NULL};
    run_cli(cmd_train, "train", from_other, &res);
    check_refused(&res, out, (const char *const[]){"owlore train", ck, "another base model",
                                                   NULL});
    snprintf(refusal_out[0], CAPTURE, "%s", res.out);
    test_end();

    test_begin("resume: checkpoint of another method (full) is refused");
    snprintf(out, sizeof out, "%s/run-full", root);
    const char *as_full[] = {"--model", model_path, "--data", sample_path, "--method", "full",
                             "--steps", "2", "--batch", "2", "--seq", "32",
                             "--resume", ck, "--out", out, NULL};
    run_cli(cmd_train, "train", as_full, &res);
    check_refused(&res, out, (const char *const[]){"owlore train", ck, "method lisa",
                                                   "not full", NULL});
    snprintf(refusal_out[1], CAPTURE, "%s", res.out);
    test_end();

    test_begin("resume: checkpoint of another method (owlore) is refused");
    snprintf(out, sizeof out, "%s/run-owlore", root);
    const char *as_owlore[] = {"--model", model_path, "--data", sample_path, "--method",
                               "owlore", "--steps", "2", "--batch", "2",
                               "--seq", "32", "--resume", ck, "--out", out, NULL};
    run_cli(cmd_train, "train", as_owlore, &res);
    check_refused(&res, out, (const char *const[]){"owlore train", ck, "method lisa",
                                                   "not owlore", NULL});
    snprintf(refusal_out[2], CAPTURE, "%s", res.out);
    test_end();

    test_begin("resume: a folder that is not a checkpoint is refused");
    snprintf(out, sizeof out, "%s/run-notck", root);
    const char *not_ck[] = {"--model", model_path, "--data", sample_path, "--method", "lisa",
                            "--steps", "2", "--batch", "2", "--seq", "32",
                            "--resume", root, "--out", out, NULL};
    run_cli(cmd_train, "train", not_ck, &res);
    check_refused(&res, out, (const char *const[]){"owlore train", root, NULL});
    test_end();

    test_begin("resume: refusals leave the first run untouched");
    size_t n_info2 = 0, n_metrics2 = 0;
    char *info_after = read_file(info, &n_info2), *metrics_after = read_file(metrics, &n_metrics2);
    CHECK_MSG(info_after && n_info2 == n_info && memcmp(info_after, info_before, n_info) == 0,
              "%s changed", info);
    CHECK_MSG(metrics_after && n_metrics2 == n_metrics &&
              memcmp(metrics_after, metrics_before, n_metrics) == 0, "%s changed", metrics);
    char next[4300];
    snprintf(next, sizeof next, "%s/checkpoint-2", run1);
    CHECK_MSG(!exists(next), "%s was written", next);
    free(info_after);
    free(metrics_after);
    test_end();

    /* The refusal has to come before any work: the trainer prints "training
     * windows ..." once the data is tokenized, and the outlier ratios once
     * calibration ran. */
    test_begin("resume: refused before the data is tokenized or outliers calibrated");
    for (int i = 0; i < 3; i++)
        CHECK_MSG(refusal_out[i][0] == 0, "resume of %s: work started before the refusal: "
                  "stdout says %.*s", refusal_name[i], (int)strcspn(refusal_out[i], "\n"),
                  refusal_out[i]);
    test_end();

    free(info_before);
    free(metrics_before);
}

/* `owlore outliers --backend`: only with --data (it places the calibration's
 * forward passes), a name it knows, and then it says where they ran. */
static void test_outliers_backend(void)
{
    struct result res;
    test_begin("outliers: --backend needs --data and a known name, and says where it ran");
    const char *no_data[] = {"--model", model_path, "--backend", "cpu", NULL};
    run_cli(cmd_outliers, "outliers", no_data, &res);
    CHECK_MSG(res.rc == 2 && strstr(res.err, "need --data") && !res.out[0], "rc %d: %s",
              res.rc, res.err);
    const char *unknown[] = {"--model", model_path, "--data", sample_path, "--backend", "tpu",
                             NULL};
    run_cli(cmd_outliers, "outliers", unknown, &res);
    CHECK_MSG(res.rc == 2 && strstr(res.err, "unknown backend 'tpu'") && !res.out[0],
              "rc %d: %s", res.rc, res.err);
    const char *cpu[] = {"--model", model_path, "--data", sample_path, "--samples", "2",
                         "--seq", "32", "--backend", "cpu", "--json", NULL};
    run_cli(cmd_outliers, "outliers", cpu, &res);
    CHECK_MSG(res.rc == 0 && strstr(res.err, "forward passes on the cpu backend") &&
                  res.out[0] == '{',
              "rc %d: %s", res.rc, res.err);
    test_end();
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    snprintf(model_path, sizeof model_path, "%s",
             test_shared_path("data/models/stories260K/stories260K.bin"));
    snprintf(tok_path, sizeof tok_path, "%s",
             test_shared_path("data/models/stories260K/tok512.bin"));
    snprintf(val_path, sizeof val_path, "%s",
             test_shared_path("data/datasets/tinystories/tinystories_val.txt"));
    snprintf(sample_path, sizeof sample_path, "%s",
             test_shared_path("data/datasets/tinystories/tinystories_sample.txt"));
    if (!exists(model_path) || !mkdtemp(root)) {
        printf("FAIL setup: %s missing or no temporary folder\n", model_path);
        return 1;
    }
    char cache[4200];
    snprintf(cache, sizeof cache, "%s/cache", root);
    setenv("OWLORE_CACHE_DIR", cache, 1);

    test_train_bad_input();
    test_train_missing_data();
    test_plan_bad_input();
    test_plan_fit();
    test_resume();
    test_outliers_backend();

    test_remove_tree(root);
    return test_finish();
}
