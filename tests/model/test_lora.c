/*
 * test_lora.c: LoRA adapters (method lora) on the real stories260K model.
 *
 *   - zero-initialised B: the adapted model's loss equals the base model's;
 *   - gradient check: the analytic gradients of A and B (blocks 0 and last,
 *     every linear layer) match central finite differences of the loss, with
 *     dropout off and with dropout on (its mask is a function of the seed, so
 *     the loss stays a deterministic function of the adapters);
 *   - training: base weights stay bit-identical, validation loss drops, the
 *     checkpoint holds the PEFT files (no model.safetensors), and merging
 *     those files into the base gives the adapted model's validation loss;
 *   - merge 1: the final checkpoint is the merged model (model.safetensors,
 *     no adapter files), equal to base + the adapter of an identical
 *     adapter-only run;
 *   - exact resume: a run (dropout on) paused at step 4 and resumed from
 *     its checkpoint ends with the same adapter, moments and losses as an
 *     uninterrupted run, bit for bit;
 *   - PEFT compatibility: an adapter saved by Hugging Face peft
 *     (tests/ref/make_lora_fixtures.py, on the tiny gqa_untied fixture)
 *     merged with lora_ckpt_merge gives peft's logits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load.h"
#include "load_hf.h"
#include "lora.h"
#include "lora_ckpt.h"
#include "safetensors.h"
#include "test.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

#define SEQ 32
#define B_GC 2
#define N_TRAIN 256
#define N_VAL 16

static struct model base;
static struct text_windows windows;
static struct token_windows train_w, val_w;
static char tmp_root[] = "/tmp/owlore-lora-XXXXXX";

static int copy_base(struct model *m)
{
    if (model_init(m, &base.cfg, backend_cpu()) != 0)
        return -1;
    memcpy(m->mem, base.mem, base.n_params * sizeof(float));
    return 0;
}

/* tokens/targets (n, SEQ) of windows w starting at first */
static void split(const struct token_windows *w, int first, int n, int *tok, int *tgt)
{
    for (int i = 0; i < n; i++) {
        memcpy(tok + i * SEQ, w->ids + (size_t)(first + i) * (SEQ + 1), sizeof(int) * SEQ);
        memcpy(tgt + i * SEQ, w->ids + (size_t)(first + i) * (SEQ + 1) + 1, sizeof(int) * SEQ);
    }
}

/* Mean loss of the model (with m->lora as set) on the validation windows. */
static float val_loss(const struct model *m)
{
    struct activations a;
    int tok[N_VAL * SEQ], tgt[N_VAL * SEQ];
    split(&val_w, 0, N_VAL, tok, tgt);
    if (activations_init(&a, m, N_VAL, SEQ) != 0)
        return NAN;
    float l = model_loss_and_grad(m, &a, NULL, tok, tgt, N_VAL, SEQ);
    activations_free(&a, m);
    return l;
}

static void test_zero_init_keeps_base_loss(void)
{
    struct model m;
    struct lora lo;
    struct lora_hparams h = {.rank = 4, .alpha = 8, .dropout = 0};
    test_begin("lora_zero_init_keeps_base_loss");
    CHECK(copy_base(&m) == 0 && lora_init(&lo, &m, &h, 1, N_VAL * SEQ) == 0);
    float before = val_loss(&m);
    m.lora = &lo;
    float with = val_loss(&m);
    CHECK_NEAR(with, before, 1e-6);
    m.lora = NULL;
    lora_free(&lo);
    model_free(&m);
    test_end();
}

/* Gradient check of the adapters with the given dropout. */
static void gradient_check(const char *name, float dropout)
{
    struct model m;
    struct lora lo;
    struct model_grads g;
    struct activations a;
    struct lora_hparams h = {.rank = 4, .alpha = 8, .dropout = dropout};
    int tok[B_GC * SEQ], tgt[B_GC * SEQ];
    test_begin(name);
    split(&train_w, 0, B_GC, tok, tgt);
    CHECK(copy_base(&m) == 0 && lora_init(&lo, &m, &h, 7, B_GC * SEQ) == 0 &&
          grads_init_slots(&g, &m, 0, 1, 0) == 0 && activations_init(&a, &m, B_GC, SEQ) == 0);
    /* B random so that A has gradients too */
    uint64_t s = 99;
    for (int i = 0; i < lo.n; i++) {
        int rows, cols;
        lora_tensor_name(&lo, i, 1, (char[160]){0}, 160, &rows, &cols);
        for (int k = 0; k < rows * cols; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            lo.B[i][k] = 0.05f * ((float)(s >> 40) / (float)(1 << 24) - 0.5f);
        }
    }
    m.lora = &lo;
    lo.training = 1;
    lo.mask_seed = 12345;
    lora_zero_grads(&lo);
    model_loss_and_grad(&m, &a, &g, tok, tgt, B_GC, SEQ);
    const int L = m.cfg.n_layers;
    int checked = 0, bad = 0;
    double worst = 0;
    for (int l = 0; l < L; l += L - 1)
        for (int id = 0; id < LIN_COUNT; id++)
            for (int which = 0; which < 2; which++) {
                int ad = LIN_COUNT * l + id, rows, cols;
                char nm[160];
                lora_tensor_name(&lo, ad, which, nm, sizeof nm, &rows, &cols);
                float *w = which ? lo.B[ad] : lo.A[ad];
                const float *gr = which ? lo.dB[ad] : lo.dA[ad];
                /* the entry with the largest gradient and one in the middle */
                int best = 0;
                for (int k = 1; k < rows * cols; k++)
                    if (fabsf(gr[k]) > fabsf(gr[best]))
                        best = k;
                int picks[2] = {best, (rows * cols) / 2};
                for (int p = 0; p < 2; p++) {
                    int k = picks[p];
                    const float eps = 1e-2f, keep = w[k];
                    w[k] = keep + eps;
                    double up = model_loss_and_grad(&m, &a, NULL, tok, tgt, B_GC, SEQ);
                    w[k] = keep - eps;
                    double dn = model_loss_and_grad(&m, &a, NULL, tok, tgt, B_GC, SEQ);
                    w[k] = keep;
                    double fd = (up - dn) / (2 * eps), err = fabs(fd - gr[k]);
                    if (err > 5e-3 * fabs(fd) + 1e-4) {
                        if (!bad)
                            printf("     %s[%d]: analytic %.6g, finite difference %.6g\n",
                                   nm, k, gr[k], fd);
                        bad++;
                    }
                    worst = fmax(worst, err / fmax(fabs(fd), 1e-3));
                    checked++;
                }
            }
    printf("     %d entries checked, worst relative error %.2e\n", checked, worst);
    CHECK_MSG(bad == 0, "%d of %d gradient entries disagree", bad, checked);
    /* no gradient storage exists for any block: the base stays frozen */
    for (int l = 0; l < L; l++)
        CHECK(g.g.blocks[l] == NULL);
    m.lora = NULL;
    activations_free(&a, &m);
    grads_free(&g, &m);
    lora_free(&lo);
    model_free(&m);
    test_end();
}

/* Per-step losses; a pause requested at step pause_at (0: never). */
struct recorder {
    float loss[64];
    long pause_at;
    atomic_int stop;
};

static void record(void *ctx, const struct train_event *ev)
{
    struct recorder *rec = ctx;
    if (ev->step > 0 && ev->step < 64)
        rec->loss[ev->step] = ev->loss;
    if (rec->pause_at && ev->step == rec->pause_at)
        atomic_store(&rec->stop, TRAIN_STOP_PAUSE);
}

static enum train_result train_rec(struct model *m, const struct recipe *r, const char *out,
                                   const char *resume, struct recorder *rec, char *err,
                                   size_t errlen)
{
    struct train_opts o = {.out_dir = out, .resume_dir = resume,
                           .base_model_id = "stories260K", .quiet = 1,
                           .progress = record, .ctx = rec, .stop = &rec->stop};
    return train_run(m, r, &train_w, &val_w, &o, NULL, err, errlen);
}

static enum train_result train(struct model *m, const struct recipe *r, const char *out,
                               const char *resume, char *err, size_t errlen)
{
    struct recorder rec = {0};
    return train_rec(m, r, out, resume, &rec, err, errlen);
}

/* Bytes of file a and file b are equal (both readable). */
static int same_file(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa && fb, ca, cb;
    while (same && ((ca = fgetc(fa)) != EOF) | ((cb = fgetc(fb)) != EOF))
        same = ca == cb;
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return same;
}

static void test_exact_resume(void)
{
    struct recipe r;
    struct model m;
    struct recorder full = {0}, part = {.pause_at = 4};
    char a[4200], b[4200], ck[4400], fa[4500], fb[4500], err[1024] = "";
    test_begin("lora_exact_resume");
    recipe_defaults(&r, METHOD_LORA);
    r.batch_size = 4;
    r.seq_len = SEQ;
    r.max_steps = 8;
    r.lr = 3e-3f;
    r.lora.dropout = 0.1f;
    snprintf(a, sizeof a, "%s/resume-full", tmp_root);
    snprintf(b, sizeof b, "%s/resume-part", tmp_root);
    CHECK(copy_base(&m) == 0);
    CHECK_MSG(train_rec(&m, &r, a, NULL, &full, err, sizeof err) == TRAIN_DONE, "%s", err);
    CHECK_MSG(train_rec(&m, &r, b, NULL, &part, err, sizeof err) == TRAIN_PAUSED, "%s", err);
    snprintf(ck, sizeof ck, "%s/checkpoint-4", b);
    part.pause_at = 0;
    part.stop = TRAIN_RUN;
    CHECK_MSG(train_rec(&m, &r, b, ck, &part, err, sizeof err) == TRAIN_DONE, "%s", err);
    for (int s = 1; s <= 8; s++)
        CHECK_MSG(full.loss[s] == part.loss[s], "step %d: loss %.9g vs %.9g", s,
                  full.loss[s], part.loss[s]);
    static const char *const files[] = {"adapter_model.safetensors",
                                        "adapter_optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(fa, sizeof fa, "%s/checkpoint-8/%s", a, files[i]);
        snprintf(fb, sizeof fb, "%s/checkpoint-8/%s", b, files[i]);
        CHECK_MSG(same_file(fa, fb), "%s differs after resume", files[i]);
    }
    CHECK(memcmp(m.mem, base.mem, base.n_params * sizeof(float)) == 0);
    model_free(&m);
    test_end();
}

static void lora_recipe(struct recipe *r)
{
    recipe_defaults(r, METHOD_LORA);
    r->batch_size = 8;
    r->seq_len = SEQ;
    r->max_steps = 30;
    r->lr = 3e-3f;
    r->eval_every = 30;
}

static void test_training_and_adapter_files(void)
{
    struct recipe r;
    struct model m, merged;
    char out[4200], ck[4400], p[4500], err[1024] = "";
    test_begin("lora_trains_adapter_only_base_frozen");
    lora_recipe(&r);
    snprintf(out, sizeof out, "%s/adapter", tmp_root);
    CHECK(copy_base(&m) == 0);
    float before = val_loss(&m);
    enum train_result res = train(&m, &r, out, NULL, err, sizeof err);
    CHECK_MSG(res == TRAIN_DONE, "train_run: %s", err);
    CHECK_MSG(memcmp(m.mem, base.mem, base.n_params * sizeof(float)) == 0,
              "base weights changed");
    CHECK(m.lora == NULL);
    snprintf(ck, sizeof ck, "%s/checkpoint-30", out);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", ck);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/adapter_config.json", ck);
    CHECK(access(p, R_OK) == 0);
    snprintf(p, sizeof p, "%s/model.safetensors", ck);
    CHECK(access(p, F_OK) != 0);
    /* base + merged adapter file: the trained model */
    CHECK(copy_base(&merged) == 0);
    CHECK_MSG(lora_ckpt_merge(ck, &merged, err, sizeof err) == 0, "%s", err);
    float after = val_loss(&merged);
    printf("     validation loss %.4f -> %.4f (adapter merged from the PEFT files)\n",
           before, after);
    CHECK_MSG(after < before - 0.01f, "validation loss %.4f -> %.4f did not drop",
              before, after);
    /* the trainer's own final validation loss (metrics.jsonl) agrees */
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    FILE *f = fopen(p, "r");
    char line[4096];
    float last = NAN;
    while (f && fgets(line, sizeof line, f)) {
        char *v = strstr(line, "\"val_loss\": ");
        if (v)
            last = strtof(v + 12, NULL);
    }
    if (f)
        fclose(f);
    CHECK_NEAR(last, after, 1e-4);
    model_free(&merged);
    model_free(&m);
    test_end();
}

static void test_merged_checkpoint(void)
{
    struct recipe r;
    struct model m, loaded;
    char out[4200], ck[4400], p[4500], err[1024] = "";
    test_begin("lora_merge_writes_merged_weights");
    lora_recipe(&r);
    r.max_steps = 5;
    r.lora.merge = 1;
    snprintf(out, sizeof out, "%s/merged", tmp_root);
    CHECK(copy_base(&m) == 0);
    CHECK_MSG(train(&m, &r, out, NULL, err, sizeof err) == TRAIN_DONE, "%s", err);
    CHECK(memcmp(m.mem, base.mem, base.n_params * sizeof(float)) != 0);
    snprintf(ck, sizeof ck, "%s/checkpoint-5", out);
    CHECK_MSG(load_hf_dir(ck, backend_cpu(), &loaded, err, sizeof err) == 0, "%s", err);
    CHECK(loaded.n_params == m.n_params &&
          memcmp(loaded.mem, m.mem, m.n_params * sizeof(float)) == 0);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", ck);
    CHECK(access(p, F_OK) != 0);
    /* the same run without merging: its adapter merges into the same weights */
    struct model again;
    r.lora.merge = 0;
    snprintf(out, sizeof out, "%s/unmerged", tmp_root);
    snprintf(ck, sizeof ck, "%s/checkpoint-5", out);
    CHECK(copy_base(&again) == 0);
    CHECK_MSG(train(&again, &r, out, NULL, err, sizeof err) == TRAIN_DONE, "%s", err);
    CHECK(lora_ckpt_merge(ck, &again, err, sizeof err) == 0);
    double maxd = 0;
    for (size_t i = 0; i < m.n_params; i++)
        maxd = fmax(maxd, fabs((double)again.mem[i] - m.mem[i]));
    CHECK_MSG(maxd < 1e-6, "merged weights differ by %g", maxd);
    model_free(&again);
    model_free(&loaded);
    model_free(&m);
    test_end();
}

static void test_peft_fixture(void)
{
    const char *dir = "tests/model/fixtures/lora_peft";
    char err[1024] = "";
    struct model m;
    struct activations a;
    test_begin("lora_peft_adapter_merges_to_peft_logits");
    int ok = load_hf_dir("tests/model/fixtures/gqa_untied", backend_cpu(), &m, err,
                         sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (!ok) {
        test_end();
        return;
    }
    CHECK_MSG(lora_ckpt_merge(dir, &m, err, sizeof err) == 0, "%s", err);
    struct st_file *f = st_open("tests/model/fixtures/lora_peft/expected.safetensors", err,
                                sizeof err);
    const struct st_tensor *ti = f ? st_find(f, "input_ids") : NULL;
    const struct st_tensor *tl = f ? st_find(f, "logits") : NULL;
    CHECK_MSG(ti && tl && ti->ndim == 2, "expected.safetensors: %s", err);
    if (ti && tl && ti->ndim == 2) {
        const int B = (int)ti->shape[0], T = (int)ti->shape[1], V = m.cfg.vocab_size;
        int32_t *ids = malloc(sizeof(int32_t) * ti->numel);
        float *want = malloc(sizeof(float) * tl->numel);
        float *got = malloc(sizeof(float) * (size_t)B * T * V);
        CHECK(st_read_i32(f, ti, ids, ti->numel, err, sizeof err) == 0 &&
              st_read_f32(f, tl, want, tl->numel, err, sizeof err) == 0 &&
              tl->numel == (size_t)B * T * V && activations_init(&a, &m, B, T) == 0);
        model_forward(&m, &a, (const int *)ids, B, T);
        model_logits(&m, &a, got, B, T);
        double maxd = 0;
        for (size_t i = 0; i < tl->numel; i++)
            maxd = fmax(maxd, fabs((double)got[i] - want[i]));
        printf("     max |logit - peft| = %.2e\n", maxd);
        CHECK_MSG(maxd < 1e-4, "logits differ from peft's by %g", maxd);
        activations_free(&a, &m);
        free(ids);
        free(want);
        free(got);
    }
    st_close(f);
    model_free(&m);
    test_end();
}

int main(int argc, char **argv)
{
    char err[512];
    struct tokenizer tok;
    (void)argc;
    backend_cpu_select_kernels(argv);
    const char *path = test_shared_path("data/models/stories260K/stories260K.bin");
    test_begin("lora_load_model_and_data");
    int ok = mkdtemp(tmp_root) != NULL &&
             model_load(path, backend_cpu(), &base, err, sizeof err) == 0;
    if (ok)
        ok = tokenizer_load_for_model(&tok, path, NULL, base.cfg.vocab_size, err,
                                      sizeof err) == 0 &&
             text_windows_load(&windows,
                               test_shared_path("data/datasets/tinystories/tinystories_val.txt"),
                               &tok, SEQ, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    CHECK(!ok || windows.n >= N_TRAIN + N_VAL);
    test_end();
    if (!ok || windows.n < N_TRAIN + N_VAL)
        return test_finish();
    train_w = (struct token_windows){windows.ids, N_TRAIN, SEQ, NULL};
    val_w = (struct token_windows){windows.ids + (size_t)(windows.n - N_VAL) * (SEQ + 1),
                                   N_VAL, SEQ, NULL};

    test_zero_init_keeps_base_loss();
    gradient_check("lora_gradient_check_no_dropout", 0.0f);
    gradient_check("lora_gradient_check_with_dropout", 0.1f);
    test_training_and_adapter_files();
    test_merged_checkpoint();
    test_exact_resume();
    test_peft_fixture();

    text_windows_free(&windows);
    tokenizer_free(&tok);
    model_free(&base);
    test_remove_tree(tmp_root);
    return test_finish();
}
