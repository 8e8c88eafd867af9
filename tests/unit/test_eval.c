/*
 * test_eval.c: `owlore eval` on stories260K (raw template, its own
 * tokenizer), run in this process with stdout and stderr captured.
 *
 *   - multiple choice: for each of three ARC-style records (LLM-Adapters
 *     form: "Answer format: answer1/answer2/answer3", output "the correct
 *     answer is answerK", answer "answerK") the accuracy eval reports equals
 *     the one obtained by scoring every option as a record of its own (its
 *     summed loss), and the record's loss equals the loss of the same record
 *     without its answer label (scored by a plain forward pass): the shared
 *     prefix + cached decode path is exact;
 *   - exact match: a GSM8K-style record ("#### N") is counted;
 *   - bad input: a missing --data, a file that is not a dataset.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "backend.h"

int cmd_eval(int argc, char **argv);

#define CAPTURE 16384

static char model_path[4096];
static char root[] = "/tmp/owlore-eval-XXXXXX";

struct result {
    int rc;
    char out[CAPTURE], err[CAPTURE];
};

static void slurp(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t k;
    lseek(fd, 0, SEEK_SET);
    while (n + 1 < cap && (k = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)k;
    buf[n] = 0;
}

/* `owlore eval --model stories260K --json --data data [extra]` captured. */
static void run_eval(const char *data, const char *extra, struct result *res)
{
    char *argv[12];
    int argc = 0;
    argv[argc++] = "owlore";
    argv[argc++] = "eval";
    argv[argc++] = "--model";
    argv[argc++] = model_path;
    argv[argc++] = "--json";
    if (data) {
        argv[argc++] = "--data";
        argv[argc++] = (char *)data;
    }
    if (extra) {
        argv[argc++] = (char *)extra;
        argv[argc++] = "4";
    }
    argv[argc] = NULL;
    char out_tmp[] = "/tmp/owlore-eval-out-XXXXXX", err_tmp[] = "/tmp/owlore-eval-err-XXXXXX";
    int fo = mkstemp(out_tmp), fe = mkstemp(err_tmp);
    unlink(out_tmp);
    unlink(err_tmp);
    fflush(stdout);
    fflush(stderr);
    int so = dup(1), se = dup(2);
    dup2(fo, 1);
    dup2(fe, 2);
    res->rc = cmd_eval(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(fo, res->out, sizeof res->out);
    slurp(fe, res->err, sizeof res->err);
    close(fo);
    close(fe);
}

static const char *const questions[3][2] = {
    {"Which one is a pet? Answer1: a cat Answer2: a rock Answer3: the sky", "answer1"},
    {"What does Lily like to do? Answer1: sleep Answer2: play outside Answer3: cry",
     "answer2"},
    {"Where is the sun? Answer1: in a box Answer2: under the bed Answer3: in the sky",
     "answer3"},
};

/* One record: instruction i, output with `label`, with or without answer. */
static json_t *record(int i, const char *label, int with_answer)
{
    char instr[512], out[128];
    snprintf(instr, sizeof instr, "Please choose the correct answer to the question: %s\n\n"
             "Answer format: answer1/answer2/answer3", questions[i][0]);
    snprintf(out, sizeof out, "the correct answer is %s", label);
    json_t *r = json_pack("{s:s, s:s, s:s}", "instruction", instr, "input", "", "output", out);
    if (with_answer)
        json_object_set_new(r, "answer", json_string(label));
    return r;
}

static void write_json(const char *path, json_t *j)
{
    json_dump_file(j, path, 0);
    json_decref(j);
}

static double num(const char *json, const char *a, const char *b)
{
    json_t *j = json_loads(json, 0, NULL);
    json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    double x = json_is_number(v) ? json_number_value(v) : NAN;
    json_decref(j);
    return x;
}

static void test_multiple_choice(void)
{
    char path[4200];
    struct result *res = malloc(sizeof *res);
    test_begin("eval_multiple_choice_matches_per_option_scores");
    int want_correct = 0;
    for (int i = 0; i < 3; i++) {
        /* each option alone: summed loss = loss * tokens; lowest wins */
        double best = INFINITY;
        int best_k = -1;
        for (int k = 0; k < 3; k++) {
            char label[24];
            snprintf(label, sizeof label, "answer%d", k + 1);
            snprintf(path, sizeof path, "%s/opt.json", root);
            write_json(path, json_pack("[o]", record(i, label, 0)));
            run_eval(path, NULL, res);
            CHECK_MSG(res->rc == 0, "%s", res->err);
            double nll = num(res->out, "loss", NULL) * num(res->out, "loss_tokens", NULL);
            if (nll < best) {
                best = nll;
                best_k = k;
            }
        }
        char want[24];
        snprintf(want, sizeof want, "answer%d", best_k + 1);
        want_correct += strcmp(want, questions[i][1]) == 0;
    }
    json_t *all = json_array(), *plain = json_array();
    for (int i = 0; i < 3; i++) {
        json_array_append_new(all, record(i, questions[i][1], 1));
        json_array_append_new(plain, record(i, questions[i][1], 0));
    }
    snprintf(path, sizeof path, "%s/mc.json", root);
    write_json(path, all);
    run_eval(path, NULL, res);
    CHECK_MSG(res->rc == 0, "%s", res->err);
    double mc_loss = num(res->out, "loss", NULL);
    CHECK(num(res->out, "records", NULL) == 3);
    CHECK(num(res->out, "multiple_choice", "n") == 3);
    double got = num(res->out, "multiple_choice", "correct");
    printf("     %g of 3 correct (per-option scoring: %d), loss %.6f\n", got, want_correct,
           mc_loss);
    CHECK(got == want_correct);
    snprintf(path, sizeof path, "%s/plain.json", root);
    write_json(path, plain);
    run_eval(path, NULL, res);
    CHECK_MSG(res->rc == 0, "%s", res->err);
    CHECK(isnan(num(res->out, "multiple_choice", "n"))); /* no labels: no scoring */
    CHECK_NEAR(mc_loss, num(res->out, "loss", NULL), 1e-5);
    /* --limit */
    snprintf(path, sizeof path, "%s/mc.json", root);
    run_eval(path, "--limit", res);
    CHECK(res->rc == 0 && num(res->out, "records", NULL) == 3);
    free(res);
    test_end();
}

static void test_exact_match_and_errors(void)
{
    char path[4200];
    struct result *res = malloc(sizeof *res);
    test_begin("eval_exact_match_and_bad_input");
    snprintf(path, sizeof path, "%s/gsm.jsonl", root);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"question\": \"Tom has 2 cats and gets 3 more. How many cats?\", "
               "\"answer\": \"2 + 3 = 5 cats.\\n#### 5\"}\n");
    fclose(f);
    run_eval(path, NULL, res);
    CHECK_MSG(res->rc == 0, "%s", res->err);
    CHECK(num(res->out, "exact_match", "n") == 1);
    double acc = num(res->out, "exact_match", "accuracy");
    CHECK(acc == 0 || acc == 1);
    run_eval(NULL, NULL, res);
    CHECK(res->rc == 2 && strstr(res->err, "--data FILE"));
    snprintf(path, sizeof path, "%s/bad.jsonl", root);
    f = fopen(path, "w");
    fprintf(f, "{\"nothing\": 1}\n");
    fclose(f);
    run_eval(path, NULL, res);
    CHECK(res->rc == 1 && strstr(res->err, "unknown_format"));
    free(res);
    test_end();
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    snprintf(model_path, sizeof model_path, "%s",
             test_shared_path("data/models/stories260K/stories260K.bin"));
    if (!mkdtemp(root))
        return 1;
    test_multiple_choice();
    test_exact_match_and_errors();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        return 1;
    return test_finish();
}
