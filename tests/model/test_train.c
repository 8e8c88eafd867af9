/*
 * test_train.c: the training loop on the real stories260K model.
 *
 * Data: tinystories_val.txt tokenized with tok512.bin into windows; the
 * first windows train, the last ones (a held-out part of the file) validate.
 *   - each of the five methods lowers the validation loss (40 steps);
 *   - exact resume: a run paused at step 5 and resumed from its checkpoint
 *     produces the same per-step losses and final weights, bit for bit, as
 *     an uninterrupted run (GaLore with projector refreshes, outlier-weighted
 *     sampling, gradient accumulation; state policies reset and keep);
 *   - frozen blocks are bit-identical after a step while the sampled
 *     blocks' norms, the embedding and the final norm change (spec 11.4);
 *   - state policy (11.5): with reset only the active blocks hold optimizer
 *     state; with keep every visited block does, with its own step count;
 *   - clipping order (11.12): the reported gradient norm is the norm of the
 *     full-rank gradients of the trainable tensors, before any projection;
 *   - the learning-rate schedule (11.3-style window checks live in the
 *     sampler tests);
 *   - per-block sampling frequencies follow the probabilities (gamma 1);
 *   - a loss-masked dataset (Alpaca records, only the responses trained)
 *     trains: its held-out masked loss drops;
 *   - streamed GaLore gradients (grad_accum 1) match accumulated ones, also
 *     when taken from their factors (few token rows a step);
 *   - update_in_backward (each block tensor stepped in backward) matches
 *     the stored gradients' steps: bit for bit unclipped, with clipping to
 *     the order of a float sum, checkpointed, in bf16, norms from Grams,
 *     and resumes bit for bit;
 *   - bf16_activations: the loss unchanged, gradients within bf16's
 *     rounding, training close to the fp32 run's, memory as planned, also
 *     with two backward passes and partial checkpointing, exact resume;
 *   - staggered refreshes spread GaLore's projector refreshes over steps;
 *   - bf16 storage (bf16_weights): losses within 2% of the fp32 run's, memory
 *     as planned, BF16 tensors in the checkpoint, lora merged into the
 *     blocks, exact resume, also untied (the head and the sparse embedding
 *     gradient's step in bf16);
 *   - the sparse embedding gradient (an untied copy of the model, fewer token
 *     positions a step than vocabulary rows): its step equals the dense
 *     AdamW step on the dense gradient bit for bit, and a paused run resumes
 *     bit for bit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bf16.h"
#include "ckpt.h"
#include "dataset.h"
#include "digest.h"
#include "load.h"
#include "load_hf.h"
#include "plan.h"
#include "test.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

#define SEQ 64
#define N_TRAIN 480
#define N_VAL 32

static struct model base;
static struct text_windows windows;
static struct token_windows train_w, val_w;
static char tmp_root[] = "/tmp/owlore-train-XXXXXX";

/* A fresh copy of the base model to train. */
static int copy_base(struct model *m)
{
    if (model_init(m, &base.cfg, backend_cpu()) != 0)
        return -1;
    memcpy(m->mem, base.mem, base.n_params * sizeof(float));
    return 0;
}

static const double ratios[5] = {0.41, 0.36, 0.19, 0.19, 0.057}; /* D_l of stories260K */

/* Records per-step losses; optionally requests a pause at a step. */
struct recorder {
    float loss[128];
    float val[128];
    float grad_norm[128];
    int active[128][8];
    long n;
    long pause_at;
    atomic_int stop;
};

static void record(void *ctx, const struct train_event *ev)
{
    struct recorder *r = ctx;
    if (ev->step == 0 || ev->step >= 128)
        return;
    r->loss[ev->step] = ev->loss;
    r->val[ev->step] = ev->val_loss;
    r->grad_norm[ev->step] = ev->grad_norm;
    for (int i = 0; i < ev->n_active && i < 8; i++)
        r->active[ev->step][i] = ev->active[i];
    r->n = ev->step;
    if (r->pause_at && ev->step == r->pause_at)
        atomic_store(&r->stop, TRAIN_STOP_PAUSE);
}

/* Train m; tw NULL: the default training windows and validation set. */
/* Steps 1..steps of a run paused after step `paused` (first) and resumed
 * (second) lose nothing: every loss equals the uninterrupted run's bits. */
static void check_resumed_losses(const struct recorder *straight, const struct recorder *first,
                                 const struct recorder *second, int paused, int steps)
{
    for (int s = 1; s <= steps; s++) {
        float got = s <= paused ? first->loss[s] : second->loss[s];
        CHECK_MSG(memcmp(&got, &straight->loss[s], sizeof got) == 0,
                  "step %d loss %.9g after resume, %.9g uninterrupted", s, got,
                  straight->loss[s]);
    }
}

static enum train_result run(struct model *m, const struct recipe *r, const char *out,
                             const char *resume, struct recorder *rec, long *counts,
                             const struct token_windows *tw)
{
    char err[1024];
    struct train_opts o = {.out_dir = out, .resume_dir = resume, .outlier_ratios = ratios,
                           .outlier_tau = 13, .base_model_id = "stories260K",
                           .progress = record, .ctx = rec, .stop = &rec->stop, .quiet = 1};
    enum train_result res = train_run(m, r, tw ? tw : &train_w, tw ? NULL : &val_w, &o,
                                      counts, err, sizeof err);
    if (res == TRAIN_FAILED)
        printf("     train_run: %s\n", err);
    return res;
}

static void recipe_small(struct recipe *r, enum method meth)
{
    recipe_defaults(r, meth);
    r->batch_size = 8;
    r->seq_len = SEQ;
    r->max_steps = 40;
    r->lr = 5e-4f;
    if (meth == METHOD_OWLORE) {
        r->gamma = 2;
        r->galore.rank = 16;
    }
    if (meth == METHOD_GALORE)
        r->galore.rank = 16;
    if (meth == METHOD_LORA)
        r->lora.merge = 1; /* the trained model keeps its adapters merged */
}

static void test_methods_lower_val_loss(void)
{
    for (int meth = 0; meth < METHOD_COUNT; meth++) {
        char name[96], out[4200];
        struct recipe r;
        struct recorder rec = {0};
        struct model m;
        snprintf(name, sizeof name, "%s_lowers_validation_loss", method_name(meth));
        test_begin(name);
        recipe_small(&r, meth);
        r.eval_every = 40;
        snprintf(out, sizeof out, "%s/%s", tmp_root, method_name(meth));
        CHECK(copy_base(&m) == 0);
        struct activations a;
        CHECK(activations_init(&a, &m, N_VAL, SEQ) == 0);
        /* validation loss of the base model, computed independently */
        int *tok = malloc(sizeof(int) * N_VAL * SEQ), *tgt = malloc(sizeof(int) * N_VAL * SEQ);
        for (int i = 0; i < N_VAL; i++) {
            memcpy(tok + i * SEQ, val_w.ids + i * (SEQ + 1), sizeof(int) * SEQ);
            memcpy(tgt + i * SEQ, val_w.ids + i * (SEQ + 1) + 1, sizeof(int) * SEQ);
        }
        float before = model_loss_and_grad(&m, &a, NULL, tok, tgt, N_VAL, SEQ);
        CHECK(run(&m, &r, out, NULL, &rec, NULL, NULL) == TRAIN_DONE);
        float after = model_loss_and_grad(&m, &a, NULL, tok, tgt, N_VAL, SEQ);
        printf("     %-17s validation loss %.4f -> %.4f\n", method_name(meth), before, after);
        CHECK_MSG(after < before - 0.01f, "validation loss %.4f -> %.4f did not drop",
                  before, after);
        CHECK_NEAR(rec.val[40], after, 1e-5);
        free(tok);
        free(tgt);
        activations_free(&a, &m);
        model_free(&m);
        test_end();
    }
}

static int same_params(const struct model *a, const struct model *b)
{
    return memcmp(a->mem, b->mem, a->n_params * sizeof(float)) == 0;
}

/* Recipe r run straight, and paused after step `pause` and resumed from
 * that checkpoint: the same losses and final weights, bit for bit. The
 * straight run's recorder is left in *straight. */
static void pause_and_resume(const char *name, const struct recipe *r, int pause,
                             struct recorder *straight)
{
    struct recorder first = {.pause_at = pause}, second = {0};
    struct model m1, m2, m3;
    char out1[4200], out2[4200], ck[4300];
    memset(straight, 0, sizeof *straight);
    snprintf(out1, sizeof out1, "%s/%s-straight", tmp_root, name);
    snprintf(out2, sizeof out2, "%s/%s-resumed", tmp_root, name);
    CHECK(copy_base(&m1) == 0 && copy_base(&m2) == 0 && copy_base(&m3) == 0);
    CHECK(run(&m1, r, out1, NULL, straight, NULL, NULL) == TRAIN_DONE);
    CHECK(run(&m2, r, out2, NULL, &first, NULL, NULL) == TRAIN_PAUSED);
    CHECK(first.n == pause);
    snprintf(ck, sizeof ck, "%s/checkpoint-%d", out2, pause);
    CHECK(run(&m3, r, out2, ck, &second, NULL, NULL) == TRAIN_DONE);
    check_resumed_losses(straight, &first, &second, pause, r->max_steps);
    CHECK_MSG(same_params(&m1, &m3), "final weights differ after resume");
    CHECK(!same_params(&m1, &base));
    model_free(&m1);
    model_free(&m2);
    model_free(&m3);
}

static void resume_case(const char *name, enum state_policy policy, int svd_method)
{
    struct recipe r;
    static struct recorder straight;
    test_begin(name);
    recipe_defaults(&r, METHOD_OWLORE);
    r.gamma = 2;
    r.interval = 3;
    r.galore.rank = 8;
    r.galore.update_proj_gap = 4;
    r.galore.svd_method = svd_method;
    r.state_policy = policy;
    r.batch_size = 4;
    r.grad_accum = 2;
    r.seq_len = SEQ;
    r.max_steps = 12;
    r.lr = 1e-3f;
    r.warmup_steps = 2;
    r.schedule = SCHEDULE_COSINE;
    r.eval_every = 4;
    r.save_every = 0;
    pause_and_resume(name, &r, 5, &straight);
    test_end();
}

/* Frozen blocks stay bit-identical; everything trainable moves. */
static void test_frozen_blocks(void)
{
    struct recipe r;
    struct recorder rec = {0};
    struct model m;
    char out[4200];
    const struct model_config *c = &base.cfg;
    test_begin("frozen_blocks_bit_identical_after_a_step");
    recipe_defaults(&r, METHOD_LISA);
    r.sampling = SAMPLING_FIXED;
    r.gamma = r.n_fixed = 2;
    r.fixed_blocks[0] = 1;
    r.fixed_blocks[1] = 3;
    r.batch_size = 4;
    r.seq_len = SEQ;
    r.max_steps = 1;
    snprintf(out, sizeof out, "%s/frozen", tmp_root);
    CHECK(copy_base(&m) == 0);
    CHECK(run(&m, &r, out, NULL, &rec, NULL, NULL) == TRAIN_DONE);
    size_t bs = model_block_floats(c);
    for (int l = 0; l < c->n_layers; l++) {
        int same = memcmp(m.w.blocks[l], base.w.blocks[l], bs * sizeof(float)) == 0;
        if (l == 1 || l == 3) {
            struct block_weights a = block_view(c, m.w.blocks[l]);
            struct block_weights b = block_view(c, base.w.blocks[l]);
            CHECK_MSG(!same, "sampled block %d did not change", l);
            CHECK_MSG(memcmp(a.attn_norm, b.attn_norm, c->dim * sizeof(float)) != 0 &&
                      memcmp(a.ffn_norm, b.ffn_norm, c->dim * sizeof(float)) != 0,
                      "RMSNorm gains of sampled block %d did not change", l);
        } else {
            CHECK_MSG(same, "frozen block %d changed", l);
        }
    }
    CHECK(memcmp(m.w.embed, base.w.embed, sizeof(float) * c->vocab_size * c->dim) != 0);
    CHECK(memcmp(m.w.final_norm, base.w.final_norm, sizeof(float) * c->dim) != 0);
    model_free(&m);
    test_end();
}

/* Optimizer state held per block, read back from checkpoints. */
static void test_state_policy(void)
{
    for (int policy = 0; policy < 2; policy++) {
        struct recipe r;
        struct recorder rec = {0};
        struct model m;
        long counts[5];
        char out[4200], ck[4300], err[512];
        test_begin(policy == STATE_RESET ? "state_policy_reset_drops_leaving_blocks"
                                         : "state_policy_keep_resumes_block_state");
        recipe_defaults(&r, METHOD_OWLORE);
        r.gamma = 1;
        r.interval = 1;
        r.galore.rank = 8;
        r.state_policy = policy;
        r.batch_size = 2;
        r.seq_len = SEQ;
        r.max_steps = 12;
        r.save_every = 12;
        snprintf(out, sizeof out, "%s/policy%d", tmp_root, policy);
        CHECK(copy_base(&m) == 0);
        CHECK(run(&m, &r, out, NULL, &rec, counts, NULL) == TRAIN_DONE);
        snprintf(ck, sizeof ck, "%s/checkpoint-12", out);
        int n = model_tensor_count(&m.cfg);
        struct trainer_state ts = {0};
        ts.active = calloc(5, sizeof(int));
        ts.block_counts = calloc(5, sizeof(long));
        ts.states = calloc((size_t)n, sizeof(struct optim_state));
        unsigned char d[SHA256_BYTES];
        char hex[SHA256_HEX_LEN];
        sha256_model(&base, d);
        digest_hex(d, SHA256_BYTES, hex);
        int ok = ckpt_read_state(ck, &m, &r, hex, &ts, err, sizeof err) == 0;
        CHECK_MSG(ok, "%s", err);
        int visited = 0;
        for (int l = 0; ok && l < 5; l++) {
            const struct optim_state *s = &ts.states[1 + 9 * l + 1]; /* q_proj */
            int active = ts.active[0] == l;
            visited += counts[l] > 0;
            if (policy == STATE_RESET) {
                CHECK_MSG((s->mem != NULL) == active,
                          "block %d: state %s while %s", l, s->mem ? "held" : "absent",
                          active ? "active" : "inactive");
            } else {
                CHECK_MSG((s->mem != NULL) == (counts[l] > 0),
                          "block %d visited %ld times, state %s", l, counts[l],
                          s->mem ? "held" : "absent");
                if (s->mem)
                    CHECK_MSG(s->step == counts[l], "block %d: state step %ld, trained %ld",
                              l, s->step, counts[l]);
            }
        }
        if (policy == STATE_KEEP)
            CHECK_MSG(visited >= 3, "only %d blocks visited in 12 draws", visited);
        for (int i = 0; i < n; i++)
            optim_state_free(&ts.states[i]);
        free(ts.states);
        free(ts.active);
        free(ts.block_counts);
        model_free(&m);
        test_end();
    }
}

/* The reported norm equals the norm of the full-rank gradients. */
static void test_clip_norm_before_projection(void)
{
    struct recipe r;
    struct recorder rec = {0};
    struct model m;
    char out[4200];
    const int B = 4;
    struct token_windows small = {train_w.ids, B, SEQ, NULL};
    test_begin("clipping_norm_over_full_rank_gradients");
    recipe_defaults(&r, METHOD_OWLORE);
    r.gamma = 2;
    r.galore.rank = 4;
    r.batch_size = B;
    r.seq_len = SEQ;
    r.max_steps = 1;
    r.max_grad_norm = 0.05f;
    snprintf(out, sizeof out, "%s/clip", tmp_root);
    CHECK(copy_base(&m) == 0);
    CHECK(run(&m, &r, out, NULL, &rec, NULL, &small) == TRAIN_DONE);
    model_free(&m);

    /* recompute: gradients of the same batch, same trainable tensors */
    struct model_grads g;
    struct activations a;
    int tok[B * SEQ], tgt[B * SEQ];
    for (int i = 0; i < B; i++) {
        memcpy(tok + i * SEQ, train_w.ids + i * (SEQ + 1), sizeof(int) * SEQ);
        memcpy(tgt + i * SEQ, train_w.ids + i * (SEQ + 1) + 1, sizeof(int) * SEQ);
    }
    CHECK(grads_init_slots(&g, &base, 2, 0, 0) == 0 && activations_init(&a, &base, B, SEQ) == 0);
    g.g.blocks[rec.active[1][0]] = g.slots[0];
    g.g.blocks[rec.active[1][1]] = g.slots[1];
    model_loss_and_grad(&base, &a, &g, tok, tgt, B, SEQ);
    double ss = 0;
    for (size_t i = 0; i < g.n_floats; i++)
        ss += (double)g.mem[i] * g.mem[i];
    printf("     reported %.6f, recomputed %.6f (clipped to %.2f)\n", rec.grad_norm[1],
           sqrt(ss), (double)r.max_grad_norm);
    CHECK_NEAR(rec.grad_norm[1], sqrt(ss), 1e-5);
    CHECK(rec.grad_norm[1] > r.max_grad_norm);
    grads_free(&g, &base);
    activations_free(&a, &base);
    test_end();
}

static void test_schedule(void)
{
    struct recipe r;
    test_begin("learning_rate_schedule");
    recipe_defaults(&r, METHOD_FULL);
    r.lr = 1e-3f;
    r.warmup_steps = 10;
    CHECK_NEAR(train_lr_at(&r, 0, 110), 0.0, 1e-9);
    CHECK_NEAR(train_lr_at(&r, 5, 110), 5e-4, 1e-9);
    CHECK_NEAR(train_lr_at(&r, 10, 110), 1e-3, 1e-9);
    CHECK_NEAR(train_lr_at(&r, 60, 110), 5e-4, 1e-9);
    CHECK_NEAR(train_lr_at(&r, 110, 110), 0.0, 1e-9);
    r.schedule = SCHEDULE_COSINE;
    CHECK_NEAR(train_lr_at(&r, 60, 110), 5e-4, 1e-8);
    CHECK_NEAR(train_lr_at(&r, 35, 110), 1e-3 * 0.5 * (1 + cos(M_PI * 0.25)), 1e-8);
    r.min_lr_ratio = 0.1f;
    CHECK_NEAR(train_lr_at(&r, 110, 110), 1e-4, 1e-8);
    r.schedule = SCHEDULE_CONSTANT;
    CHECK_NEAR(train_lr_at(&r, 80, 110), 1e-3, 1e-9);
    test_end();
}

/* gamma 1, K 1: each step trains one block drawn with probability p_l. */
static void test_sampling_follows_probabilities(void)
{
    struct recipe r;
    struct recorder rec = {0};
    struct model m;
    long counts[5];
    char out[4200];
    const int steps = 150;
    test_begin("sampling_counts_follow_probabilities");
    recipe_defaults(&r, METHOD_OWLORE_FULL_RANK);
    r.gamma = 1;
    r.interval = 1;
    r.batch_size = 1;
    r.seq_len = 16;
    r.max_steps = steps;
    r.lr = 1e-5f;
    struct token_windows tiny = {windows.ids, 0, 16, NULL};
    /* windows of 17 tokens carved from the same stream */
    static int ids[200 * 17];
    for (int i = 0; i < 200; i++)
        memcpy(ids + i * 17, windows.ids + i * (SEQ + 1), sizeof(int) * 17);
    tiny.ids = ids;
    tiny.n = 200;
    snprintf(out, sizeof out, "%s/sampling", tmp_root);
    CHECK(copy_base(&m) == 0);
    CHECK(run(&m, &r, out, NULL, &rec, counts, &tiny) == TRAIN_DONE);
    double sum = 0;
    for (int l = 0; l < 5; l++)
        sum += ratios[l];
    for (int l = 0; l < 5; l++) {
        double freq = (double)counts[l] / steps, p = ratios[l] / sum;
        printf("     block %d: trained %3ld of %d steps (%.3f), p %.3f\n", l, counts[l],
               steps, freq, p);
        CHECK_MSG(fabs(freq - p) < 0.12, "block %d frequency %.3f far from p %.3f", l, freq, p);
    }
    model_free(&m);
    test_end();
}

/* Alpaca records through the raw template: windows with explicit targets. */
static void test_dataset_training(struct tokenizer *tok)
{
    struct ds_windows all = {0}, val = {0};
    enum { DSEQ = 256 }; /* the Alpaca prompt alone is ~100 tokens of this vocabulary */
    struct ds_opts o = {.format = DS_FORMAT_AUTO, .tmpl = CHAT_ALPACA, .seq_len = DSEQ,
                        .pack = 1, .pad_id = -1};
    struct recipe r;
    struct recorder rec = {0};
    struct model m;
    char err[512], out[4200];
    test_begin("masked_dataset_lowers_held_out_loss");
    int ok = ds_load(&all, test_shared_path("data/datasets/alpaca/alpaca_en_demo.json"), tok,
                     &o, err, sizeof err) == 0 &&
             ds_windows_split(&all, &val, 0.1) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok) {
        struct token_windows tw = ds_windows_view(&all), vw = ds_windows_view(&val);
        long masked = 0;
        for (size_t i = 0; i < (size_t)tw.n * DSEQ; i++)
            masked += tw.targets[i] < 0;
        CHECK_MSG(masked > 0, "no masked targets: the prompts would be trained on");
        recipe_small(&r, METHOD_LISA);
        r.lr = 1e-3f;
        r.seq_len = DSEQ;
        r.max_steps = 30;
        r.eval_every = 30;
        snprintf(out, sizeof out, "%s/dataset", tmp_root);
        CHECK(copy_base(&m) == 0);
        struct train_opts opts = {.out_dir = out, .progress = record, .ctx = &rec,
                                  .stop = &rec.stop, .quiet = 1};
        struct activations a;
        CHECK(activations_init(&a, &m, 1, DSEQ) == 0);
        double before = 0;
        long count = 0;
        for (int i = 0; i < vw.n; i++) {
            long c;
            model_forward(&m, &a, vw.ids + (size_t)i * (DSEQ + 1), 1, DSEQ);
            before += model_head_loss(&m, &a, NULL, token_windows_targets(&vw, i), 1, DSEQ, 0,
                                      &c);
            count += c;
        }
        before /= count;
        CHECK(train_run(&m, &r, &tw, &vw, &opts, NULL, err, sizeof err) == TRAIN_DONE);
        printf("     alpaca_en_demo (%d windows, %ld masked targets): held-out loss %.4f -> %.4f\n",
               tw.n, masked, before, rec.val[30]);
        CHECK_MSG(rec.val[30] < before - 0.05, "held-out loss %.4f -> %.4f did not drop",
                  before, rec.val[30]);
        activations_free(&a, &m);
        model_free(&m);
    }
    ds_windows_free(&all);
    ds_windows_free(&val);
    test_end();
}

/* Activation checkpointing recomputes each block from its saved input: the
 * same operations on the same inputs, so losses and weights are bit-identical
 * to a run that saves everything (LoRA's dropout masks included), whether
 * every block is recomputed or only the lowest 2 of 5 (recompute_blocks). */
static void test_activation_checkpointing(void)
{
    const enum method meths[] = {METHOD_OWLORE, METHOD_LORA, METHOD_FULL};
    const int recompute[3] = {0, 0, 2}; /* with checkpointing in runs 1 and 2 */
    for (size_t i = 0; i < sizeof meths / sizeof meths[0]; i++) {
        char name[96], out[4200];
        static struct recorder rec[3];
        memset(rec, 0, sizeof rec);
        struct model m[3];
        snprintf(name, sizeof name, "activation_checkpointing_bit_identical_%s",
                 method_name(meths[i]));
        test_begin(name);
        for (int ck = 0; ck < 3; ck++) {
            struct recipe r;
            recipe_small(&r, meths[i]);
            r.max_steps = 6;
            r.checkpoint_activations = ck > 0;
            r.recompute_blocks = recompute[ck];
            CHECK(recipe_recomputed_blocks(&r, base.cfg.n_layers) == (ck == 0 ? 0 : ck == 1 ? 5 : 2));
            snprintf(out, sizeof out, "%s/ckpt-act-%s-%d", tmp_root, method_name(meths[i]), ck);
            CHECK(copy_base(&m[ck]) == 0);
            CHECK(run(&m[ck], &r, out, NULL, &rec[ck], NULL, NULL) == TRAIN_DONE);
        }
        for (int ck = 1; ck < 3; ck++) {
            CHECK(rec[0].n == 6 && rec[ck].n == 6);
            CHECK_MSG(memcmp(rec[0].loss, rec[ck].loss, sizeof rec[0].loss) == 0,
                      "run %d: step 6 loss %.9g vs %.9g", ck, rec[ck].loss[6], rec[0].loss[6]);
            CHECK_MSG(memcmp(rec[0].grad_norm, rec[ck].grad_norm, sizeof rec[0].grad_norm) == 0,
                      "run %d: gradient norms differ", ck);
            CHECK_MSG(same_params(&m[0], &m[ck]), "run %d: weights differ", ck);
        }
        CHECK(!same_params(&m[0], &base));
        for (int ck = 0; ck < 3; ck++)
            model_free(&m[ck]);
        test_end();
    }
}

/* Streamed GaLore gradients (grad_accum 1: each block projected as backward
 * finishes it, one full-size gradient slot) give the run that accumulates
 * two half batches (the whole gradient of every trained block kept until the
 * step), up to the order of float sums, in less gradient memory. */
static void test_streamed_gradients(void)
{
    const enum method meths[] = {METHOD_OWLORE, METHOD_GALORE};
    for (size_t k = 0; k < sizeof meths / sizeof meths[0]; k++) {
        char name[96], out[4200];
        static struct recorder rec[2];
        memset(rec, 0, sizeof rec);
        struct model m[2];
        struct plan p[2];
        snprintf(name, sizeof name, "streamed_gradients_match_accumulated_%s",
                 method_name(meths[k]));
        test_begin(name);
        for (int acc = 0; acc < 2; acc++) {
            struct recipe r;
            recipe_small(&r, meths[k]);
            r.max_steps = 10;
            r.galore.update_proj_gap = 4;
            r.batch_size = acc ? 4 : 8;
            r.grad_accum = acc ? 2 : 1;
            CHECK(recipe_streams_gradients(&r) == !acc);
            plan_compute(&base.cfg, &r, r.batch_size, SEQ, PLAN_FP32, &p[acc]);
            snprintf(out, sizeof out, "%s/stream-%s-%d", tmp_root, method_name(meths[k]), acc);
            CHECK(copy_base(&m[acc]) == 0);
            CHECK(run(&m[acc], &r, out, NULL, &rec[acc], NULL, NULL) == TRAIN_DONE);
        }
        double worst = 0;
        for (int s = 1; s <= 10; s++) {
            double d = fabs(rec[0].loss[s] - rec[1].loss[s]) / rec[1].loss[s];
            worst = d > worst ? d : worst;
        }
        printf("     %s: largest step loss difference %.2e; gradient memory %.2f MB streamed, "
               "%.2f MB accumulated\n", method_name(meths[k]), worst, p[0].gradients / 1e6,
               p[1].gradients / 1e6);
        CHECK_MSG(worst < 1e-4, "losses differ by up to %.2e", worst);
        CHECK(p[0].gradients < p[1].gradients);
        model_free(&m[0]);
        model_free(&m[1]);
        test_end();
    }
}

/* The largest relative differences of two runs' step losses and gradient
 * norms over steps 1..steps (relative to b's). */
static void largest_differences(const struct recorder *a, const struct recorder *b, int steps,
                                double *loss, double *norm)
{
    *loss = *norm = 0;
    for (int s = 1; s <= steps; s++) {
        double d = fabs(a->loss[s] - b->loss[s]) / b->loss[s];
        double dn = fabs(a->grad_norm[s] - b->grad_norm[s]) / b->grad_norm[s];
        *loss = d > *loss ? d : *loss;
        *norm = dn > *norm ? dn : *norm;
    }
}

/* Windows of TINY_T + 1 tokens carved from the stream (64 of them): few
 * token rows a step. */
#define TINY_T 8
static struct token_windows tiny_windows(void)
{
    static int ids[64 * (TINY_T + 1)];
    for (int i = 0; i < 64; i++)
        memcpy(ids + i * (TINY_T + 1), windows.ids + i * (SEQ + 1), sizeof(int) * (TINY_T + 1));
    return (struct token_windows){ids, 64, TINY_T, NULL};
}

/* Sums of squares from Grams (dot_add), counted: each is one linear layer
 * whose projected gradient came from its factors. */
static int factored_pieces;

static void counting_dot_add(double *acc, const float *x, const float *y, size_t n)
{
    factored_pieces++;
    backend_cpu()->dot_add(acc, x, y, n);
}

/* Streamed GaLore at 16 token rows a step (2 windows of 8), few enough
 * that between refreshes (gap 3) each linear layer's projected gradient and
 * sum of squares come from its factors dY and X: the losses and clipped
 * gradient norms (clipping at 0.05 engages) match those of the run that
 * accumulates two windows a step, which forms every gradient. Rank 4, below
 * the rows a step: at rank 16 a gradient of 16 rows may have a smaller rank
 * than its projector, whose extra directions are then arbitrary and Adam
 * scales their rounding noise up (streaming alone then moves the losses by
 * 3e-4, factors or not). */
static void test_factored_projections(void)
{
    const enum method meths[] = {METHOD_OWLORE, METHOD_GALORE};
    enum { STEPS = 8 };
    struct token_windows tiny = tiny_windows();
    struct backend counting = *backend_cpu();
    counting.dot_add = counting_dot_add;
    for (size_t k = 0; k < sizeof meths / sizeof meths[0]; k++) {
        char name[96], out[4200];
        static struct recorder rec[2];
        int pieces[2];
        memset(rec, 0, sizeof rec);
        snprintf(name, sizeof name, "factored_projections_match_formed_gradients_%s",
                 method_name(meths[k]));
        test_begin(name);
        for (int acc = 0; acc < 2; acc++) {
            struct recipe r;
            struct model m;
            recipe_small(&r, meths[k]);
            r.seq_len = TINY_T;
            r.max_steps = STEPS;
            r.galore.update_proj_gap = 3;
            r.galore.rank = 4;
            r.max_grad_norm = 0.05f;
            r.batch_size = acc ? 1 : 2;
            r.grad_accum = acc ? 2 : 1;
            snprintf(out, sizeof out, "%s/factors-%s-%d", tmp_root, method_name(meths[k]), acc);
            factored_pieces = 0;
            CHECK(copy_base(&m) == 0);
            m.be = &counting;
            CHECK(run(&m, &r, out, NULL, &rec[acc], NULL, &tiny) == TRAIN_DONE);
            pieces[acc] = factored_pieces;
            model_free(&m);
        }
        double worst, worst_norm;
        largest_differences(&rec[0], &rec[1], STEPS, &worst, &worst_norm);
        printf("     %s: %d layers from factors; largest step loss difference %.2e, "
               "gradient norm %.2e (norm at step 2: %.4f)\n", method_name(meths[k]), pieces[0],
               worst, worst_norm, rec[1].grad_norm[2]);
        CHECK(pieces[0] > 0 && pieces[1] == 0);
        CHECK(rec[1].grad_norm[2] > 0.05f);
        CHECK_MSG(worst < 1e-4, "losses differ by up to %.2e", worst);
        CHECK_MSG(worst_norm < 1e-4, "gradient norms differ by up to %.2e", worst_norm);
        test_end();
    }
}

/* Bytes a run allocates on the backend, all allocations added up. */
static size_t allocated;

static void *counting_alloc(size_t bytes)
{
    allocated += bytes;
    return backend_cpu()->alloc(bytes);
}

/* update_in_backward: each block tensor steps in backward, and the run
 * equals the one that keeps every block gradient until the step. Without
 * clipping (one pass) bit for bit; with clipping engaged (0.05; the first
 * pass sums the squares in backward's order, so the factor may differ in
 * its last bit) within a tolerance; also checkpointed, in bf16 storage,
 * and at 16 token rows a step, where the norm pass takes the linear
 * layers' sums of squares from their Grams (counted dot_adds). The streamed
 * run allocates the blocks' gradients less, as the planner says. */
static void test_update_in_backward(void)
{
    enum { STEPS = 8 };
    struct token_windows tiny = tiny_windows();
    struct backend counting = *backend_cpu();
    counting.dot_add = counting_dot_add;
    counting.alloc = counting_alloc;
    const struct {
        const char *name;
        enum method meth;
        float clip;
        int checkpointed, bf16, few_rows; /* checkpointed > 1: the lowest blocks */
        double tol; /* 0: bit for bit */
    } cases[] = {
        {"full_clipped", METHOD_FULL, 0.05f, 0, 0, 0, 1e-6},
        {"lisa_unclipped_checkpointed", METHOD_LISA, 0, 1, 0, 0, 0},
        {"full_bf16_clipped_checkpointed", METHOD_FULL, 0.05f, 1, 1, 0, 1e-5},
        {"lisa_clipped_lowest_3_blocks_checkpointed", METHOD_LISA, 0.05f, 3, 0, 0, 1e-6},
        {"owlore_full_rank_clipped_norms_from_grams", METHOD_OWLORE_FULL_RANK, 0.05f, 0, 0, 1,
         1e-5},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char name[128], out[4200], err[512] = "";
        static struct recorder rec[2];
        struct model m[2];
        struct plan p[2];
        int grams[2];
        size_t bytes[2];
        memset(rec, 0, sizeof rec);
        snprintf(name, sizeof name, "update_in_backward_matches_stored_gradients_%s",
                 cases[k].name);
        test_begin(name);
        for (int fused = 0; fused < 2; fused++) {
            struct recipe r;
            recipe_small(&r, cases[k].meth);
            r.max_steps = STEPS;
            r.max_grad_norm = cases[k].clip;
            r.checkpoint_activations = cases[k].checkpointed > 0;
            r.recompute_blocks = cases[k].checkpointed > 1 ? cases[k].checkpointed : 0;
            r.bf16_weights = cases[k].bf16;
            r.update_in_backward = fused;
            if (cases[k].few_rows) {
                r.seq_len = TINY_T;
                r.batch_size = 2;
            }
            CHECK(recipe_streams_gradients(&r) == fused);
            CHECK(recipe_backward_passes(&r) == (fused && cases[k].clip > 0 ? 2 : 1));
            plan_compute(&base.cfg, &r, r.batch_size, r.seq_len, PLAN_FP32, &p[fused]);
            snprintf(out, sizeof out, "%s/in-backward-%zu-%d", tmp_root, k, fused);
            CHECK(copy_base(&m[fused]) == 0);
            if (cases[k].bf16)
                CHECK_MSG(model_store_bf16(&m[fused], err, sizeof err) == 0, "%s", err);
            m[fused].be = &counting;
            factored_pieces = 0;
            allocated = 0;
            CHECK(run(&m[fused], &r, out, NULL, &rec[fused], NULL,
                      cases[k].few_rows ? &tiny : NULL) == TRAIN_DONE);
            grams[fused] = factored_pieces;
            bytes[fused] = allocated;
        }
        double worst, worst_norm;
        largest_differences(&rec[1], &rec[0], STEPS, &worst, &worst_norm);
        printf("     largest step loss difference %.2e, gradient norm %.2e (norm at step 2: "
               "%.4f); %d sums of squares from Grams; allocated %.3f MB in backward, %.3f MB "
               "stored (planned gradients %.3f and %.3f MB)\n", worst, worst_norm,
               rec[0].grad_norm[2], grams[1], bytes[1] / 1e6, bytes[0] / 1e6,
               p[1].gradients / 1e6, p[0].gradients / 1e6);
        CHECK(rec[0].n == STEPS && rec[1].n == STEPS);
        if (cases[k].tol == 0) {
            CHECK_MSG(memcmp(rec[0].loss, rec[1].loss, sizeof rec[0].loss) == 0,
                      "losses differ by up to %.2e", worst);
            CHECK_MSG(same_params(&m[0], &m[1]), "weights differ");
        } else {
            CHECK_MSG(worst < cases[k].tol, "losses differ by up to %.2e", worst);
            CHECK(rec[0].grad_norm[2] > cases[k].clip); /* clipping engaged */
        }
        CHECK_MSG(worst_norm < 1e-5, "gradient norms differ by up to %.2e", worst_norm);
        CHECK(grams[0] == 0 && (grams[1] > 0) == cases[k].few_rows);
        CHECK(p[1].gradients < p[0].gradients);
        CHECK_MSG(fabs(((double)bytes[0] - bytes[1]) - (p[0].gradients - p[1].gradients) -
                       (p[0].activations - p[1].activations)) < 1e3,
                  "the run allocated %.0f bytes less, the planner says %.0f",
                  (double)bytes[0] - bytes[1],
                  p[0].gradients - p[1].gradients + p[0].activations - p[1].activations);
        model_free(&m[0]);
        model_free(&m[1]);
        test_end();
    }
}

/* A run with update_in_backward (lisa, clipping engaged: two passes a
 * step) paused after step 4 resumes bit for bit. */
static void test_update_in_backward_resume(void)
{
    struct recipe r;
    static struct recorder straight;
    test_begin("update_in_backward_resumes_exactly");
    recipe_small(&r, METHOD_LISA);
    r.interval = 3;
    r.max_steps = 8;
    r.max_grad_norm = 0.05f;
    r.update_in_backward = 1;
    pause_and_resume("in-backward", &r, 4, &straight);
    CHECK(straight.grad_norm[1] > r.max_grad_norm);
    test_end();
}

/* bf16_activations, on the model: the forward pass is unchanged (the loss
 * bit for bit) and the gradient reads each kept internal rounded once to
 * bf16, so it moves by about bf16's precision, whether the blocks all keep
 * theirs or the lowest two are recomputed; a second backward over the same
 * activations (the slot tracking) gives the same bits. */
static void test_bf16_activations_gradients(void)
{
    enum { B = 4 };
    static int tok[B * SEQ], tgt[B * SEQ];
    const int recomputed[3] = {0, 0, 2}, kept16[3] = {0, 1, 1};
    struct activations a[3];
    struct model_grads g[3];
    float loss[3];
    test_begin("bf16_activations_gradients_within_bf16_rounding");
    for (int i = 0; i < B; i++)
        for (int t = 0; t < SEQ; t++) {
            tok[i * SEQ + t] = windows.ids[(size_t)i * (SEQ + 1) + t];
            tgt[i * SEQ + t] = windows.ids[(size_t)i * (SEQ + 1) + t + 1];
        }
    for (int k = 0; k < 3; k++) {
        CHECK(activations_init_for(&a[k], &base, B, SEQ, recomputed[k], kept16[k]) == 0);
        CHECK(grads_init_full(&g[k], &base) == 0);
        grads_zero(&g[k]);
        loss[k] = model_loss_and_grad(&base, &a[k], &g[k], tok, tgt, B, SEQ);
    }
    CHECK(a[1].bf16_saved && a[1].saved16 && a[2].saved16 && !a[0].saved16);
    for (int k = 1; k < 3; k++) {
        double d2 = 0, n2 = 0;
        for (size_t i = 0; i < g[0].n_floats; i++) {
            double d = (double)g[k].mem[i] - g[0].mem[i];
            d2 += d * d;
            n2 += (double)g[0].mem[i] * g[0].mem[i];
        }
        printf("     case %d: loss %.7f (fp32 %.7f), gradient relative difference %.2e\n", k,
               loss[k], loss[0], sqrt(d2 / n2));
        CHECK_MSG(memcmp(&loss[k], &loss[0], sizeof loss[0]) == 0, "losses differ");
        CHECK_MSG(d2 > 0 && sqrt(d2 / n2) < 1e-2, "gradient relative difference %.2e",
                  sqrt(d2 / n2));
    }
    float *first = malloc(g[2].n_floats * sizeof(float));
    CHECK(first != NULL);
    if (first) {
        memcpy(first, g[2].mem, g[2].n_floats * sizeof(float));
        grads_zero(&g[2]);
        model_loss_and_grad(&base, &a[2], &g[2], tok, tgt, B, SEQ);
        CHECK_MSG(memcmp(first, g[2].mem, g[2].n_floats * sizeof(float)) == 0,
                  "a second pass differs");
        free(first);
    }
    for (int k = 0; k < 3; k++) {
        activations_free(&a[k], &base);
        grads_free(&g[k], &base);
    }
    test_end();
}

/* bf16_activations in training, against the same run keeping fp32
 * internals: the first step's loss bit for bit, the next ones within bf16's
 * rounding, and the run allocates the planner's difference in activation
 * memory less; for owlore (streamed GaLore), lora (its saved inputs) and
 * full with update_in_backward and clipping (two backward passes, each
 * loading the kept internals) with the lowest 2 blocks recomputed, which
 * also matches its own run with stored gradients. Then an owlore run with
 * bf16 activations pauses and resumes bit for bit. */
static void test_bf16_activations_training(void)
{
    enum { STEPS = 8 };
    struct backend counting = *backend_cpu();
    counting.alloc = counting_alloc;
    const struct {
        const char *name;
        enum method meth;
        int in_backward, recompute;
    } cases[] = {
        {"owlore", METHOD_OWLORE, 0, 0},
        {"lora", METHOD_LORA, 0, 0},
        {"full_in_backward_clipped_lowest_2_recomputed", METHOD_FULL, 1, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char name[128], out[4200];
        static struct recorder rec[3];
        struct model m[3];
        struct plan p[3];
        size_t bytes[3];
        const int runs = cases[k].in_backward ? 3 : 2;
        memset(rec, 0, sizeof rec);
        snprintf(name, sizeof name, "bf16_activations_training_%s", cases[k].name);
        test_begin(name);
        for (int i = 0; i < runs; i++) { /* fp32, bf16, bf16 with stored gradients */
            struct recipe r;
            recipe_small(&r, cases[k].meth);
            r.max_steps = STEPS;
            r.checkpoint_activations = cases[k].recompute > 0;
            r.recompute_blocks = cases[k].recompute;
            r.bf16_activations = i > 0;
            if (cases[k].in_backward) {
                r.max_grad_norm = 0.05f;
                r.update_in_backward = i < 2;
            }
            char err[256];
            CHECK_MSG(recipe_check(&r, base.cfg.n_layers, err, sizeof err) == 0, "%s", err);
            plan_compute(&base.cfg, &r, r.batch_size, r.seq_len, PLAN_FP32, &p[i]);
            snprintf(out, sizeof out, "%s/bf16-act-%zu-%d", tmp_root, k, i);
            CHECK(copy_base(&m[i]) == 0);
            m[i].be = &counting;
            allocated = 0;
            CHECK(run(&m[i], &r, out, NULL, &rec[i], NULL, NULL) == TRAIN_DONE);
            bytes[i] = allocated;
            m[i].be = backend_cpu();
        }
        double worst, worst_norm;
        largest_differences(&rec[1], &rec[0], STEPS, &worst, &worst_norm);
        printf("     largest step loss difference %.2e, gradient norm %.2e; activations "
               "%.3f MB in bf16, %.3f MB in fp32 (allocated %.3f MB less)\n", worst,
               worst_norm, p[1].activations / 1e6, p[0].activations / 1e6,
               ((double)bytes[0] - bytes[1]) / 1e6);
        CHECK(rec[0].n == STEPS && rec[1].n == STEPS);
        CHECK_MSG(memcmp(&rec[0].loss[1], &rec[1].loss[1], sizeof(float)) == 0,
                  "step 1 loss %.9g vs %.9g", rec[1].loss[1], rec[0].loss[1]);
        CHECK_MSG(worst > 0 && worst < 1e-3, "losses differ by up to %.2e", worst);
        CHECK_MSG(worst_norm < 2e-3, "gradient norms differ by up to %.2e", worst_norm);
        CHECK(p[1].activations < 0.9 * p[0].activations);
        CHECK_MSG(fabs(((double)bytes[0] - bytes[1]) - (p[0].activations - p[1].activations)) <
                      1e3,
                  "the run allocated %.0f bytes less, the planner says %.0f",
                  (double)bytes[0] - bytes[1], p[0].activations - p[1].activations);
        if (runs == 3) {
            double in_bwd, in_bwd_norm;
            largest_differences(&rec[1], &rec[2], STEPS, &in_bwd, &in_bwd_norm);
            printf("     in backward vs stored gradients, both bf16: %.2e, norm %.2e\n", in_bwd,
                   in_bwd_norm);
            CHECK(rec[2].n == STEPS && rec[0].grad_norm[2] > 0.05f);
            CHECK_MSG(in_bwd < 1e-6 && in_bwd_norm < 1e-5, "%.2e, norm %.2e", in_bwd,
                      in_bwd_norm);
        }
        for (int i = 0; i < runs; i++)
            model_free(&m[i]);
        test_end();
    }

    struct recipe r;
    static struct recorder straight;
    test_begin("bf16_activations_resume_exactly");
    recipe_small(&r, METHOD_OWLORE);
    r.interval = 3;
    r.max_steps = 8;
    r.bf16_activations = 1;
    pause_and_resume("bf16-act", &r, 4, &straight);
    char info[4300]; /* the checkpoint records the setting (its numbers depend on it) */
    snprintf(info, sizeof info, "%s/bf16-act-resumed/checkpoint-4/owlore.json", tmp_root);
    json_t *j = json_load_file(info, 0, NULL);
    CHECK_MSG(json_is_true(json_object_get(json_object_get(j, "recipe"), "bf16_activations")),
              "%s: recipe.bf16_activations is not true", info);
    json_decref(j);
    test_end();
}

/* Projector refreshes per optimizer step, counted by a CPU backend whose
 * lowrank_basis notes the step the recorder is in. */
static struct recorder *counting_rec;
static int refreshes_at[16];

static int counting_lowrank(float *P, const float *G, int m, int n, int r, int side,
                            int method, int over, int iters, unsigned long long *rng)
{
    long step = counting_rec->n + 1; /* the step being taken */
    if (step < 16)
        refreshes_at[step]++;
    return backend_cpu()->lowrank_basis(P, G, m, n, r, side, method, over, iters, rng);
}

/* stagger_refreshes: with every block on GaLore (gap T = 4, 35 matrices),
 * after the first step about 35 / 4 matrices refresh a step instead of all
 * 35 every 4th step, and each still refreshes once per T steps. */
static void test_staggered_refreshes(void)
{
    test_begin("staggered_refreshes_spread_over_steps");
    struct backend counting = *backend_cpu();
    counting.lowrank_basis = counting_lowrank;
    int most[2] = {0, 0}, total[2] = {0, 0};
    for (int stagger = 0; stagger < 2; stagger++) {
        static struct recorder rec;
        memset(&rec, 0, sizeof rec);
        memset(refreshes_at, 0, sizeof refreshes_at);
        counting_rec = &rec;
        struct recipe r;
        struct model m;
        char out[4200];
        recipe_small(&r, METHOD_GALORE);
        r.max_steps = 9;
        r.galore.update_proj_gap = 4;
        r.stagger_refreshes = stagger;
        snprintf(out, sizeof out, "%s/stagger-%d", tmp_root, stagger);
        CHECK(copy_base(&m) == 0);
        m.be = &counting;
        CHECK(run(&m, &r, out, NULL, &rec, NULL, NULL) == TRAIN_DONE);
        CHECK(refreshes_at[1] == 35);
        for (int s = 2; s <= 9; s++) {
            most[stagger] = refreshes_at[s] > most[stagger] ? refreshes_at[s] : most[stagger];
            total[stagger] += refreshes_at[s];
        }
        CHECK(isfinite(rec.val[9]) && rec.loss[9] < rec.loss[1]);
        model_free(&m);
    }
    printf("     steps 2-9: at most %d refreshes a step staggered (%d in all), %d not "
           "(%d in all)\n", most[1], total[1], most[0], total[0]);
    CHECK(most[0] == 35 && most[1] <= 10);
    CHECK(total[0] == 70 && total[1] == 70);
    test_end();
}

/* Elements stored in bf16: embedding, blocks and (untied) head. */
static size_t bf16_elements(const struct model_config *c)
{
    return (size_t)c->vocab_size * c->dim * (c->tied_embeddings ? 1 : 2) +
           (size_t)c->n_layers * model_block_floats(c);
}

/* The same bf16-stored parameters: the final norm (fp32) and the bf16
 * embedding, blocks and head. */
static int same_bf16_params(const struct model *a, const struct model *b)
{
    const struct model_config *c = &a->cfg;
    return memcmp(a->w.final_norm, b->w.final_norm, c->dim * sizeof(float)) == 0 &&
           memcmp(a->embed16, b->embed16, bf16_elements(c) * sizeof(uint16_t)) == 0;
}

/* bf16 storage through optim_step_bf16, the steps that do not stream:
 * OwLore with two micro-batches a step (GaLore projects the accumulated
 * gradient, and its update is added and rounded in one pass) and LISA
 * (AdamW on whole blocks in one pass, adamw_bf16) track their fp32 runs,
 * and block weights move. */
static void test_bf16_unstreamed_steps(void)
{
    const enum method meths[2] = {METHOD_OWLORE, METHOD_LISA};
    for (int k = 0; k < 2; k++) {
        static struct recorder f32, b16;
        struct model m32, m16;
        struct recipe r;
        char name[96], out[4200], err[512] = "";
        memset(&f32, 0, sizeof f32);
        memset(&b16, 0, sizeof b16);
        snprintf(name, sizeof name, "bf16_weights_%s_%s_tracks_fp32", method_name(meths[k]),
                 k == 0 ? "two_micro_batches" : "full_rank_blocks");
        test_begin(name);
        recipe_small(&r, meths[k]);
        r.max_steps = 12;
        if (meths[k] == METHOD_OWLORE) {
            r.grad_accum = 2;
            r.batch_size = 4;
        }
        CHECK(!recipe_streams_gradients(&r));
        snprintf(out, sizeof out, "%s/bf16u-ref-%d", tmp_root, k);
        CHECK(copy_base(&m32) == 0);
        CHECK(run(&m32, &r, out, NULL, &f32, NULL, NULL) == TRAIN_DONE);
        r.bf16_weights = 1;
        CHECK(copy_base(&m16) == 0);
        CHECK_MSG(model_store_bf16(&m16, err, sizeof err) == 0, "%s", err);
        snprintf(out, sizeof out, "%s/bf16u-%d", tmp_root, k);
        CHECK(run(&m16, &r, out, NULL, &b16, NULL, NULL) == TRAIN_DONE);
        double worst = 0;
        for (int s = 1; s <= 12; s++) {
            double d = fabs(b16.loss[s] - f32.loss[s]) / f32.loss[s];
            worst = d > worst ? d : worst;
        }
        const size_t nb = (size_t)base.cfg.n_layers * model_block_floats(&base.cfg);
        long moved = 0;
        for (size_t i = 0; i < nb; i++)
            moved += bf16_from_f32(base.w.blocks[0][i]) != m16.blocks16[i];
        printf("     largest step loss difference %.2f%% over 12 steps; %ld of %zu block "
               "weights changed their bf16 value\n", 100 * worst, moved, nb);
        CHECK_MSG(worst < 0.02, "bf16 losses differ from fp32 by up to %.2f%%", 100 * worst);
        CHECK(moved > 0);
        model_free(&m32);
        model_free(&m16);
        test_end();
    }
}

/* bf16 storage (bf16_weights): training tracks the fp32 run, every block
 * and embedding weight stays a bf16 value, the memory is what the planner says, and a
 * paused run resumes bit for bit (the rounding noise is a function of seed,
 * step and block). */
static void test_bf16_weights(void)
{
    static struct recorder f32, b16, first, second;
    struct model m32, m16, m1, m2;
    struct recipe r;
    char out[4200], err[512] = "";
    memset(&f32, 0, sizeof f32);
    memset(&b16, 0, sizeof b16);
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);

    test_begin("bf16_weights_track_fp32_training");
    recipe_small(&r, METHOD_OWLORE);
    r.eval_every = 40;
    snprintf(out, sizeof out, "%s/bf16-ref", tmp_root);
    CHECK(copy_base(&m32) == 0);
    CHECK(run(&m32, &r, out, NULL, &f32, NULL, NULL) == TRAIN_DONE);
    r.bf16_weights = 1;
    CHECK(copy_base(&m16) == 0);
    CHECK(run(&m16, &r, out, NULL, &b16, NULL, NULL) == TRAIN_FAILED); /* fp32 model */
    CHECK_MSG(model_store_bf16(&m16, err, sizeof err) == 0, "%s", err);
    CHECK(m16.blocks16 && m16.mem_bytes == model_bf16_bytes(&m16.cfg));
    struct plan p;
    plan_compute(&m16.cfg, &r, r.batch_size, SEQ, PLAN_FP32, &p);
    CHECK(p.weights == (double)m16.mem_bytes);
    snprintf(out, sizeof out, "%s/bf16", tmp_root);
    CHECK(run(&m16, &r, out, NULL, &b16, NULL, NULL) == TRAIN_DONE);
    double worst = 0;
    for (int s = 1; s <= 40; s++) {
        double d = fabs(b16.loss[s] - f32.loss[s]) / f32.loss[s];
        worst = d > worst ? d : worst;
    }
    printf("     validation loss after 40 steps: fp32 %.4f, bf16 %.4f; "
           "largest step loss difference %.2f%%\n", f32.val[40], b16.val[40], 100 * worst);
    CHECK_MSG(worst < 0.02, "bf16 losses differ from fp32 by up to %.2f%%", 100 * worst);
    CHECK(fabs(b16.val[40] - f32.val[40]) < 0.01 * f32.val[40]);
    const size_t nb = (size_t)base.cfg.n_layers * model_block_floats(&base.cfg);
    const size_t VD = (size_t)base.cfg.vocab_size * base.cfg.dim;
    const float *w0 = base.w.blocks[0];
    long moved = 0, moved_embed = 0;
    for (size_t i = 0; i < nb; i++)
        moved += bf16_from_f32(w0[i]) != m16.blocks16[i];
    for (size_t i = 0; i < VD; i++)
        moved_embed += bf16_from_f32(base.w.embed[i]) != m16.embed16[i];
    printf("     %ld of %zu block weights changed their bf16 value, %ld of %zu of the (tied) "
           "embedding\n", moved, nb, moved_embed, VD);
    CHECK(moved > 0 && moved_embed > 0);
    CHECK(base.cfg.tied_embeddings && m16.head16 == m16.embed16);
    CHECK(m16.w.embed == NULL && m16.w.lm_head == NULL);
    /* the checkpoint holds the bf16 tensors as they are, BF16 */
    char ckpt_file[4400];
    struct model back;
    snprintf(ckpt_file, sizeof ckpt_file, "%s/checkpoint-40", out);
    CHECK_MSG(load_hf_dir(ckpt_file, backend_cpu(), &back, err, sizeof err) == 0, "%s", err);
    long differ = 0;
    for (size_t i = 0; i < nb; i++) {
        float want = bf16_to_f32(m16.blocks16[i]);
        differ += memcmp(&back.w.blocks[0][i], &want, sizeof want) != 0;
    }
    for (size_t i = 0; i < VD; i++) {
        float e = bf16_to_f32(m16.embed16[i]);
        differ += memcmp(&back.w.embed[i], &e, sizeof e) != 0;
    }
    CHECK(differ == 0);
    model_free(&back);
    model_free(&m32);
    model_free(&m16);
    test_end();

    test_begin("bf16_weights_lora_merges_into_bf16_blocks");
    static struct recorder l32, l16;
    memset(&l32, 0, sizeof l32);
    memset(&l16, 0, sizeof l16);
    recipe_small(&r, METHOD_LORA);
    r.max_steps = 10;
    snprintf(out, sizeof out, "%s/bf16-lora-ref", tmp_root);
    CHECK(copy_base(&m32) == 0);
    CHECK(run(&m32, &r, out, NULL, &l32, NULL, NULL) == TRAIN_DONE);
    r.bf16_weights = 1;
    snprintf(out, sizeof out, "%s/bf16-lora", tmp_root);
    CHECK(copy_base(&m16) == 0 && model_store_bf16(&m16, err, sizeof err) == 0);
    CHECK(run(&m16, &r, out, NULL, &l16, NULL, NULL) == TRAIN_DONE);
    worst = 0;
    for (int s = 1; s <= 10; s++) {
        double d = fabs(l16.loss[s] - l32.loss[s]) / l32.loss[s];
        worst = d > worst ? d : worst;
    }
    /* the merged model: bf16 blocks within two bf16 steps of the fp32 merge
     * (rounding of the base, of the merge, and the adapters' own drift; a
     * few tiny weights drift further) */
    long merged = 0, far = 0;
    const float *w32 = m32.w.blocks[0];
    for (size_t i = 0; i < nb; i++) {
        float got = bf16_to_f32(m16.blocks16[i]);
        merged += m16.blocks16[i] != bf16_from_f32(w0[i]);
        far += fabsf(got - w32[i]) > 0x1p-6f * fabsf(w32[i]) + 1e-6f;
    }
    printf("     lora on bf16 blocks: losses within %.2f%% of fp32; merge moved %ld weights, "
           "%ld more than two bf16 steps from the fp32 merge\n", 100 * worst, merged, far);
    CHECK(worst < 0.02);
    CHECK(merged > 0 && far < (long)(nb / 100));
    model_free(&m32);
    model_free(&m16);
    test_end();

    test_begin("bf16_weights_resume_bit_identical");
    recipe_small(&r, METHOD_OWLORE);
    r.bf16_weights = 1;
    r.max_steps = 10;
    r.interval = 3;
    r.galore.update_proj_gap = 4;
    r.save_every = 0;
    char out2[4200], ck[4300];
    snprintf(out, sizeof out, "%s/bf16-straight", tmp_root);
    snprintf(out2, sizeof out2, "%s/bf16-paused", tmp_root);
    first.pause_at = 4;
    struct recorder straight = {0};
    CHECK(copy_base(&m1) == 0 && model_store_bf16(&m1, err, sizeof err) == 0);
    CHECK(run(&m1, &r, out, NULL, &straight, NULL, NULL) == TRAIN_DONE);
    /* the paused and resumed runs take the device path: their backend says
     * its memory is not the host's, so checkpoints, the digest and resuming
     * copy through host buffers as on a GPU */
    struct backend device = *backend_cpu();
    device.host_memory = 0;
    CHECK(copy_base(&m2) == 0 && model_store_bf16(&m2, err, sizeof err) == 0);
    m2.be = &device;
    CHECK(run(&m2, &r, out2, NULL, &first, NULL, NULL) == TRAIN_PAUSED);
    model_free(&m2);
    CHECK(copy_base(&m2) == 0 && model_store_bf16(&m2, err, sizeof err) == 0);
    m2.be = &device;
    snprintf(ck, sizeof ck, "%s/checkpoint-4", out2);
    CHECK(run(&m2, &r, out2, ck, &second, NULL, NULL) == TRAIN_DONE);
    check_resumed_losses(&straight, &first, &second, 4, 10);
    CHECK_MSG(same_bf16_params(&m1, &m2), "final weights differ after resume");
    model_free(&m1);
    model_free(&m2);
    test_end();
}

/* An untied copy of the model: its own head, a copy of the embedding. */
static int copy_base_untied(struct model *m)
{
    struct model_config c = base.cfg;
    const size_t embed = (size_t)c.vocab_size * c.dim;
    c.tied_embeddings = 0;
    if (model_init(m, &c, backend_cpu()) != 0)
        return -1;
    memcpy(m->w.embed, base.w.embed, embed * sizeof(float));
    memcpy(m->w.blocks[0], base.w.blocks[0],
           (size_t)c.n_layers * model_block_floats(&c) * sizeof(float));
    memcpy(m->w.final_norm, base.w.final_norm, (size_t)c.dim * sizeof(float));
    memcpy(m->w.lm_head, base.w.embed, embed * sizeof(float));
    return 0;
}

/* The embedding's gradient kept as the rows of a step's token positions
 * (recipe_sparse_embedding_rows) steps exactly as the dense one does. */
static void test_sparse_embedding(void)
{
    test_begin("sparse_embedding_step_equals_dense_step");
    struct recipe r;
    struct model u, ref;
    char out[4200], err[512] = "";
    recipe_small(&r, METHOD_FULL);
    r.batch_size = 1; /* one window: the trainer's batch is known */
    r.max_steps = 1;
    r.max_grad_norm = 0;
    r.adamw.weight_decay = 0.1f;
    CHECK(copy_base_untied(&u) == 0 && copy_base_untied(&ref) == 0);
    CHECK(recipe_sparse_embedding_rows(&r, &u.cfg, 1, SEQ) == SEQ);
    CHECK(recipe_sparse_embedding_rows(&r, &base.cfg, 1, SEQ) == 0); /* tied */
    struct token_windows one = {train_w.ids, 1, SEQ, NULL};
    struct recorder rec = {0};
    snprintf(out, sizeof out, "%s/sparse-embed", tmp_root);
    CHECK(run(&u, &r, out, NULL, &rec, NULL, &one) == TRAIN_DONE);
    /* the dense step: the whole (V,D) gradient, then optim_step */
    struct model_grads g;
    struct activations a;
    struct optim_state s;
    const int V = base.cfg.vocab_size, D = base.cfg.dim;
    float *scratch = malloc(optim_scratch_floats(V, D, 0) * sizeof(float));
    CHECK(scratch && grads_init_full(&g, &ref) == 0 && activations_init(&a, &ref, 1, SEQ) == 0 &&
          optim_state_init(&s, ref.be, V, D, 0) == 0);
    model_loss_and_grad(&ref, &a, &g, one.ids, one.ids + 1, 1, SEQ);
    CHECK_MSG(optim_step(&s, ref.w.embed, g.g.embed, scratch, &r.adamw, &r.galore,
                         train_lr_at(&r, 0, r.max_steps), NULL, err, sizeof err) == 0, "%s", err);
    long same = 0, touched = 0;
    for (int v = 0; v < V; v++) {
        const size_t o = (size_t)v * D;
        same += memcmp(u.w.embed + o, ref.w.embed + o, D * sizeof(float)) == 0;
        touched += memcmp(u.w.embed + o, base.w.embed + o, D * sizeof(float)) != 0;
    }
    printf("     %ld of %d embedding rows equal the dense step's bit for bit; %ld moved\n", same,
           V, touched);
    CHECK(same == V && touched == V); /* weight decay moves the untouched rows too */
    optim_state_free(&s);
    activations_free(&a, &ref);
    grads_free(&g, &ref);
    free(scratch);
    model_free(&ref);
    model_free(&u);
    test_end();

    test_begin("sparse_embedding_resume_bit_identical");
    static struct recorder straight, first, second;
    memset(&straight, 0, sizeof straight);
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    recipe_small(&r, METHOD_OWLORE);
    r.batch_size = 2;
    r.max_steps = 8;
    r.save_every = 0;
    char out2[4200], ck[4300];
    snprintf(out, sizeof out, "%s/sparse-straight", tmp_root);
    snprintf(out2, sizeof out2, "%s/sparse-paused", tmp_root);
    CHECK(copy_base_untied(&u) == 0);
    CHECK(run(&u, &r, out, NULL, &straight, NULL, NULL) == TRAIN_DONE);
    struct model p;
    first.pause_at = 4;
    CHECK(copy_base_untied(&p) == 0);
    CHECK(run(&p, &r, out2, NULL, &first, NULL, NULL) == TRAIN_PAUSED);
    model_free(&p);
    CHECK(copy_base_untied(&p) == 0);
    snprintf(ck, sizeof ck, "%s/checkpoint-4", out2);
    CHECK(run(&p, &r, out2, ck, &second, NULL, NULL) == TRAIN_DONE);
    check_resumed_losses(&straight, &first, &second, 4, 8);
    CHECK(memcmp(u.mem, p.mem, u.n_params * sizeof(float)) == 0);
    printf("     losses %.4f -> %.4f over 8 steps of 2 x %d tokens\n", straight.loss[1],
           straight.loss[8], SEQ);
    model_free(&u);
    model_free(&p);
    test_end();
}

/* An untied model in bf16: the head steps range by range through the stage
 * and the sparse embedding gradient steps into the bf16 embedding; training
 * tracks fp32, and a paused run resumes bit for bit. */
static void test_bf16_untied_tables(void)
{
    test_begin("bf16_untied_embedding_and_head_track_fp32_and_resume");
    static struct recorder f32, straight, first, second;
    memset(&f32, 0, sizeof f32);
    memset(&straight, 0, sizeof straight);
    memset(&first, 0, sizeof first);
    memset(&second, 0, sizeof second);
    struct recipe r;
    struct model m32, m1, m2;
    char out[4200], out2[4200], ck[4300], err[512] = "";
    recipe_small(&r, METHOD_OWLORE);
    r.batch_size = 2;
    r.max_steps = 8;
    r.save_every = 0;
    snprintf(out, sizeof out, "%s/bf16-untied-ref", tmp_root);
    CHECK(copy_base_untied(&m32) == 0);
    CHECK(run(&m32, &r, out, NULL, &f32, NULL, NULL) == TRAIN_DONE);
    r.bf16_weights = 1;
    CHECK(recipe_sparse_embedding_rows(&r, &m32.cfg, 2, SEQ) > 0);
    snprintf(out, sizeof out, "%s/bf16-untied", tmp_root);
    CHECK(copy_base_untied(&m1) == 0 && model_store_bf16(&m1, err, sizeof err) == 0);
    CHECK(m1.head16 != m1.embed16 && m1.mem_bytes == model_bf16_bytes(&m1.cfg));
    CHECK(run(&m1, &r, out, NULL, &straight, NULL, NULL) == TRAIN_DONE);
    double worst = 0;
    for (int s = 1; s <= 8; s++) {
        double d = fabs(straight.loss[s] - f32.loss[s]) / f32.loss[s];
        worst = d > worst ? d : worst;
    }
    const size_t VD = (size_t)m1.cfg.vocab_size * m1.cfg.dim;
    long moved_embed = 0, moved_head = 0;
    for (size_t i = 0; i < VD; i++) {
        moved_embed += m1.embed16[i] != bf16_from_f32(base.w.embed[i]);
        moved_head += m1.head16[i] != bf16_from_f32(base.w.embed[i]);
    }
    printf("     largest step loss difference %.2f%%; bf16 values changed: embedding %ld, "
           "head %ld of %zu\n", 100 * worst, moved_embed, moved_head, VD);
    CHECK(worst < 0.02 && moved_embed > 0 && moved_head > 0);
    snprintf(out2, sizeof out2, "%s/bf16-untied-paused", tmp_root);
    first.pause_at = 4;
    CHECK(copy_base_untied(&m2) == 0 && model_store_bf16(&m2, err, sizeof err) == 0);
    CHECK(run(&m2, &r, out2, NULL, &first, NULL, NULL) == TRAIN_PAUSED);
    model_free(&m2);
    CHECK(copy_base_untied(&m2) == 0 && model_store_bf16(&m2, err, sizeof err) == 0);
    snprintf(ck, sizeof ck, "%s/checkpoint-4", out2);
    CHECK(run(&m2, &r, out2, ck, &second, NULL, NULL) == TRAIN_DONE);
    check_resumed_losses(&straight, &first, &second, 4, 8);
    CHECK_MSG(same_bf16_params(&m1, &m2), "final weights differ after resume");
    model_free(&m32);
    model_free(&m1);
    model_free(&m2);
    test_end();
}

/* the CPU backend with a byte budget that allocations draw down */
static struct backend limited;
static size_t budget;

static void *limited_alloc(size_t bytes)
{
    if (bytes > budget)
        return NULL;
    budget -= bytes;
    return backend_cpu()->alloc(bytes);
}

/* Out of memory fails the run with the planner's prediction in the message,
 * and its prediction with the memory-saving switches the run leaves off
 * (for full: all three). */
static void test_out_of_memory_message(void)
{
    test_begin("out_of_memory_names_the_planners_prediction");
    limited = *backend_cpu();
    limited.alloc = limited_alloc;
    budget = base.n_params * sizeof(float) + 4096;
    struct model m;
    struct recipe r;
    recipe_small(&r, METHOD_FULL);
    CHECK(model_init(&m, &base.cfg, &limited) == 0);
    memcpy(m.mem, base.mem, base.n_params * sizeof(float));
    char out[4200], err[1024] = "";
    snprintf(out, sizeof out, "%s/oom", tmp_root);
    struct recorder rec = {0};
    struct train_opts o = {.out_dir = out, .outlier_ratios = ratios, .outlier_tau = 13,
                           .base_model_id = "stories260K", .progress = record, .ctx = &rec,
                           .stop = &rec.stop, .quiet = 1};
    CHECK(train_run(&m, &r, &train_w, &val_w, &o, NULL, err, sizeof err) == TRAIN_FAILED);
    struct plan p, lean;
    plan_compute(&base.cfg, &r, r.batch_size, SEQ, PLAN_FP32, &p);
    r.checkpoint_activations = r.bf16_weights = r.update_in_backward = 1;
    plan_compute(&base.cfg, &r, r.batch_size, SEQ, PLAN_FP32, &lean);
    char want[64], hint[160];
    snprintf(want, sizeof want, "predicts %.2f GB at peak", p.total_peak / 1e9);
    snprintf(hint, sizeof hint, "; with bf16_weights: 1, update_in_backward: 1 and "
             "activation_checkpointing: 1 it predicts %.2f GB", lean.total_peak / 1e9);
    CHECK_MSG(strstr(err, "out of cpu memory for training buffers (batch 8 x 64)") &&
              strstr(err, want) && strstr(err, hint), "%s (want \"%s\" and \"%s\")", err,
              want, hint);
    CHECK(lean.total_peak < p.total_peak);
    CHECK(rec.n == 0);
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
    test_begin("load_model_and_data");
    int ok = mkdtemp(tmp_root) != NULL && model_load(path, backend_cpu(), &base, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok)
        ok = tokenizer_load_for_model(&tok, path, NULL, base.cfg.vocab_size, err, sizeof err) == 0 &&
             text_windows_load(&windows, test_shared_path("data/datasets/tinystories/tinystories_val.txt"),
                               &tok, SEQ, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    CHECK(!ok || windows.n >= N_TRAIN + N_VAL);
    test_end();
    if (!ok || windows.n < N_TRAIN + N_VAL)
        return test_finish();
    train_w = (struct token_windows){windows.ids, N_TRAIN, SEQ, NULL};
    val_w = (struct token_windows){windows.ids + (size_t)(windows.n - N_VAL) * (SEQ + 1), N_VAL, SEQ, NULL};
    setenv("OWLORE_CACHE_DIR", tmp_root, 1);

    test_methods_lower_val_loss();
    resume_case("exact_resume_reset_exact_svd", STATE_RESET, 0);
    resume_case("exact_resume_keep_randomized_svd", STATE_KEEP, 1);
    test_frozen_blocks();
    test_state_policy();
    test_clip_norm_before_projection();
    test_schedule();
    test_sampling_follows_probabilities();
    test_dataset_training(&tok);
    test_out_of_memory_message();
    test_activation_checkpointing();
    test_streamed_gradients();
    test_factored_projections();
    test_update_in_backward();
    test_update_in_backward_resume();
    test_bf16_activations_gradients();
    test_bf16_activations_training();
    test_staggered_refreshes();
    test_bf16_weights();
    test_bf16_unstreamed_steps();
    test_sparse_embedding();
    test_bf16_untied_tables();

    text_windows_free(&windows);
    tokenizer_free(&tok);
    model_free(&base);
    test_remove_tree(tmp_root);
    return test_finish();
}
