/*
 * test_recipe_plan.c: recipe defaults and checks, the memory planner against
 * owlore-algorithm.md section 9 / test vector 11.13 (LLaMA-2-7B, pure bf16,
 * GB = 1e9 bytes), and command-line recipe parsing.
 *
 * The LLaMA-2-7B config is built here (d 4096, f 11008, V 32000, L 32,
 * 32/32 heads, untied); nothing is allocated.
 */
#include "test.h"

#include "cli_recipe.h"
#include "model.h"
#include "plan.h"

static struct model_config llama2_7b(void)
{
    return (struct model_config){.dim = 4096, .hidden_dim = 11008, .n_layers = 32,
                                 .n_heads = 32, .n_kv_heads = 32, .head_dim = 128,
                                 .vocab_size = 32000, .max_seq_len = 4096,
                                 .norm_eps = 1e-5f, .rope_theta = 10000.0f,
                                 .tied_embeddings = 0, .bos_id = 1, .eos_id = 2};
}

/* bf16 plan of LLaMA-2-7B for method m with a few overrides (-1: default). */
static struct plan plan_7b(enum method m, int gamma, int rank, enum state_policy sp)
{
    struct model_config c = llama2_7b();
    struct recipe r;
    struct plan p;
    char err[256];
    recipe_defaults(&r, m);
    if (gamma >= 0)
        r.gamma = gamma;
    if (rank >= 0)
        r.galore.rank = rank;
    r.state_policy = sp;
    if (recipe_check(&r, c.n_layers, err, sizeof err) != 0)
        printf("     unexpected recipe_check failure: %s\n", err);
    plan_compute(&c, &r, 16, 512, PLAN_BF16, &p);
    return p;
}

static void test_defaults(void)
{
    struct recipe r;
    test_begin("defaults per method");
    recipe_defaults(&r, METHOD_OWLORE);
    CHECK(r.sampling == SAMPLING_OWL && r.gamma == 5 && r.interval == 50);
    CHECK(r.galore.rank == 128 && r.galore.update_proj_gap == 200);
    CHECK_NEAR(r.galore.scale, 0.25, 1e-7);
    CHECK(r.galore.svd_method == 0 && r.galore.oversample == 10);
    CHECK(r.galore.power_iters == 2);
    CHECK_NEAR(r.tau, 13.0, 0);
    CHECK_NEAR(r.lr, 3e-4, 1e-7);
    CHECK_NEAR(r.adamw.beta1, 0.9, 1e-7);
    CHECK_NEAR(r.adamw.beta2, 0.999, 1e-7);
    CHECK_NEAR(r.adamw.eps, 1e-6, 1e-12);
    CHECK(r.adamw.weight_decay == 0 && r.warmup_steps == 0 && r.min_lr_ratio == 0);
    CHECK(r.schedule == SCHEDULE_LINEAR && r.max_grad_norm == 1.0f);
    CHECK(r.batch_size == 16 && r.grad_accum == 1 && r.seq_len == 512);
    CHECK(r.epochs == 1 && r.max_steps == 0 && r.seed == 111);
    CHECK(r.eval_every == 0 && r.save_every == 0 && r.calib_samples == 128);
    CHECK(r.state_policy == STATE_RESET && r.freeze_embeddings == 0);
    CHECK(r.checkpoint_activations == 0 && r.bf16_weights == 0);
    recipe_defaults(&r, METHOD_LISA);
    CHECK(r.sampling == SAMPLING_UNIFORM && r.gamma == 2 && r.interval == 20);
    CHECK(r.galore.rank == 0);
    recipe_defaults(&r, METHOD_OWLORE_FULL_RANK);
    CHECK(r.sampling == SAMPLING_OWL && r.gamma == 2 && r.interval == 20);
    CHECK(r.galore.rank == 0);
    recipe_defaults(&r, METHOD_GALORE);
    CHECK(r.sampling == SAMPLING_ALL && r.galore.rank == 8);
    CHECK(r.galore.update_proj_gap == 200 && r.galore.scale == 0.25f);
    CHECK(recipe_active_blocks(&r, 32) == 32);
    recipe_defaults(&r, METHOD_FULL);
    CHECK(r.sampling == SAMPLING_ALL && r.galore.rank == 0);
    CHECK(recipe_active_blocks(&r, 30) == 30);
    for (int m = 0; m < METHOD_COUNT; m++) {
        char err[256] = "";
        enum method back;
        recipe_defaults(&r, (enum method)m);
        CHECK_MSG(recipe_check(&r, 32, err, sizeof err) == 0, "%s: %s",
                  method_name((enum method)m), err);
        CHECK_MSG(r.stagger_refreshes == 1, "%s", method_name((enum method)m));
        CHECK(method_parse(method_name((enum method)m), &back) == 0);
        CHECK(back == (enum method)m);
    }
    enum method back;
    CHECK(method_parse("owlore_full", &back) == -1);
    CHECK(strcmp(sampling_name(SAMPLING_DECREASE), "decrease") == 0);
    test_end();
}

/* recipe_check(r, L) fails with a message containing want. */
static void expect_refusal(const struct recipe *r, int L, const char *want)
{
    char err[256] = "";
    int rc = recipe_check(r, L, err, sizeof err);
    CHECK_MSG(rc == -1 && strstr(err, want), "want refusal containing '%s', got rc %d '%s'",
              want, rc, err);
}

static void test_check(void)
{
    struct recipe r;
    test_begin("recipe_check refusals");
    recipe_defaults(&r, METHOD_OWLORE);
    r.gamma = 40;
    expect_refusal(&r, 30, "gamma 40 is larger than the model's 30 blocks");
    r.gamma = 0;
    expect_refusal(&r, 30, "gamma");
    recipe_defaults(&r, METHOD_OWLORE);
    r.galore.rank = 0;
    expect_refusal(&r, 32, "rank must be a positive integer");
    recipe_defaults(&r, METHOD_GALORE);
    r.galore.rank = -3;
    expect_refusal(&r, 32, "rank must be a positive integer");
    recipe_defaults(&r, METHOD_LISA);
    r.galore.rank = 8;
    expect_refusal(&r, 32, "rank must be 0 for method lisa");
    recipe_defaults(&r, METHOD_OWLORE);
    r.tau = 0;
    expect_refusal(&r, 32, "tau");
    r.tau = NAN;
    expect_refusal(&r, 32, "tau");
    recipe_defaults(&r, METHOD_OWLORE);
    r.lr = 0;
    expect_refusal(&r, 32, "lr (learning rate) must be a positive number");
    r.lr = NAN;
    expect_refusal(&r, 32, "lr (learning rate)");
    r.lr = -1e-4f;
    expect_refusal(&r, 32, "lr (learning rate)");
    recipe_defaults(&r, METHOD_OWLORE);
    r.interval = 0;
    expect_refusal(&r, 32, "interval");
    recipe_defaults(&r, METHOD_OWLORE);
    r.galore.update_proj_gap = 0;
    expect_refusal(&r, 32, "proj_gap");
    recipe_defaults(&r, METHOD_OWLORE);
    r.batch_size = 0;
    expect_refusal(&r, 32, "batch size");
    recipe_defaults(&r, METHOD_OWLORE);
    r.seq_len = 0;
    expect_refusal(&r, 32, "sequence length");
    recipe_defaults(&r, METHOD_OWLORE);
    r.grad_accum = 0;
    expect_refusal(&r, 32, "accumulation");
    recipe_defaults(&r, METHOD_OWLORE);
    r.warmup_steps = -1;
    expect_refusal(&r, 32, "warmup");
    recipe_defaults(&r, METHOD_OWLORE);
    r.bf16_weights = 2;
    expect_refusal(&r, 32, "bf16_weights must be 0 or 1, got 2");
    recipe_defaults(&r, METHOD_GALORE);
    r.stagger_refreshes = 2;
    expect_refusal(&r, 32, "stagger_refreshes must be 0 or 1, got 2");
    recipe_defaults(&r, METHOD_FULL);
    r.checkpoint_activations = 1;
    r.recompute_blocks = 33;
    expect_refusal(&r, 32, "recompute_blocks must lie in [0, 32] (the model's blocks; 0: all), "
                   "got 33");
    r.checkpoint_activations = 0;
    r.recompute_blocks = 4;
    expect_refusal(&r, 32, "recompute_blocks 4 applies with activation_checkpointing 1");
    recipe_defaults(&r, METHOD_OWLORE);
    r.bf16_activations = 2;
    expect_refusal(&r, 32, "bf16_activations must be 0 or 1, got 2");
    r.bf16_activations = 1;
    r.checkpoint_activations = 1; /* every block recomputed: none to keep */
    expect_refusal(&r, 32, "bf16_activations keeps the activations of the blocks that are not "
                   "recomputed, and activation_checkpointing recomputes all 32; set "
                   "recompute_blocks below 32, or activation_checkpointing 0");
    r.recompute_blocks = 32;
    expect_refusal(&r, 32, "recomputes all 32");
    r.recompute_blocks = 8;
    char err[256];
    CHECK(recipe_check(&r, 32, err, sizeof err) == 0);
    recipe_defaults(&r, METHOD_FULL);
    r.update_in_backward = 2;
    expect_refusal(&r, 32, "update_in_backward must be 0 or 1, got 2");
    recipe_defaults(&r, METHOD_OWLORE);
    r.update_in_backward = 1;
    expect_refusal(&r, 32, "update_in_backward is for the full-rank methods (full, lisa, "
                   "owlore_full_rank); method owlore already streams its GaLore gradients");
    recipe_defaults(&r, METHOD_LORA);
    r.update_in_backward = 1;
    expect_refusal(&r, 32, "method lora trains adapters only");
    recipe_defaults(&r, METHOD_LISA);
    r.update_in_backward = 1;
    r.grad_accum = 2;
    expect_refusal(&r, 32, "grad_accum must be 1, got 2");
    recipe_defaults(&r, METHOD_FULL);
    r.max_grad_norm = -0.5f;
    expect_refusal(&r, 32, "max_grad_norm (clip) must be a number >= 0 (0: no clipping), "
                   "got -0.5");
    recipe_defaults(&r, METHOD_FULL);
    r.sampling = SAMPLING_UNIFORM;
    expect_refusal(&r, 32, "sampling must be 'all'");
    recipe_defaults(&r, METHOD_LISA);
    r.sampling = SAMPLING_ALL;
    expect_refusal(&r, 32, "samples blocks");
    /* fixed lists */
    recipe_defaults(&r, METHOD_OWLORE);
    r.sampling = SAMPLING_FIXED;
    r.n_fixed = 3;
    r.gamma = 3;
    r.fixed_blocks[0] = 0, r.fixed_blocks[1] = 3, r.fixed_blocks[2] = 5;
    CHECK(recipe_check(&r, 32, err, sizeof err) == 0);
    CHECK(recipe_active_blocks(&r, 32) == 3);
    r.fixed_blocks[2] = 3;
    expect_refusal(&r, 32, "fixed block 3 is listed twice");
    r.fixed_blocks[2] = 32;
    expect_refusal(&r, 32, "fixed block 32 is out of range");
    r.fixed_blocks[2] = -1;
    expect_refusal(&r, 32, "fixed block -1 is out of range");
    r.fixed_blocks[2] = 5;
    r.gamma = 2;
    expect_refusal(&r, 32, "gamma 2 does not match the 3 fixed blocks");
    r.n_fixed = 0;
    r.gamma = 1;
    expect_refusal(&r, 32, "fixed sampling needs a list");
    test_end();
}

/* Spec section 9 and test vector 11.13, LLaMA-2-7B pure bf16, 16 x 512. */
static void test_plan_llama2_7b(void)
{
    const double GB = 1e9;
    test_begin("plan LLaMA-2-7B bf16 (spec section 9)");
    struct model_config c = llama2_7b();
    CHECK(model_param_floats(&c) == 6738415616u);
    CHECK(model_block_floats(&c) == 202383360u);

    struct plan p = plan_7b(METHOD_OWLORE, -1, -1, STATE_RESET);
    CHECK_NEAR(p.weights / GB, 13.48, 0.005 / 13.48);
    CHECK_NEAR(p.gradients / 2, 1274.1e6, 0.05e6 / 1274.1e6);
    CHECK_NEAR(p.optimizer_state / 2, 606.0e6, 0.05e6 / 606.0e6);
    CHECK_NEAR(p.total_static / GB, 17.2, 0.1 / 17.2);
    CHECK_NEAR(p.total_static, p.weights + p.gradients + p.optimizer_state, 1e-12);
    CHECK_NEAR(p.total_peak, p.total_static + p.activations + p.workspace, 1e-12);
    /* per active block at r = 128: moments 2*49,408*r, P 28,672*r (11.13) */
    struct plan p0 = plan_7b(METHOD_OWLORE, 1, 128, STATE_RESET);
    struct plan p1 = plan_7b(METHOD_OWLORE, 2, 128, STATE_RESET);
    CHECK_NEAR((p1.optimizer_state - p0.optimizer_state) / 2,
               2.0 * 49408 * 128 + 28672 * 128 + 2 * 2 * 4096, 0);

    p = plan_7b(METHOD_LISA, -1, -1, STATE_RESET);
    CHECK_NEAR(p.gradients / 2, 666.9e6, 0.05e6 / 666.9e6);
    CHECK_NEAR(p.total_static / GB, 17.5, 0.1 / 17.5);
    p = plan_7b(METHOD_LISA, -1, -1, STATE_KEEP); /* LMFlow code, all visited */
    CHECK_NEAR(p.total_static / GB, 41.8, 0.1 / 41.8);
    p = plan_7b(METHOD_FULL, -1, -1, STATE_RESET);
    CHECK_NEAR(p.total_static / GB, 53.9, 0.1 / 53.9);
    CHECK_NEAR(p.optimizer_state / GB, 26.95, 0.01 / 26.95);
    p = plan_7b(METHOD_GALORE, -1, 8, STATE_RESET);
    CHECK_NEAR(p.optimizer_state / 2, 557.5e6, 0.05e6 / 557.5e6);
    CHECK_NEAR(p.total_static / GB, 28.1, 0.1 / 28.1);
    p = plan_7b(METHOD_GALORE, -1, 128, STATE_RESET);
    CHECK_NEAR(p.optimizer_state / 2, 1.047e9, 0.0005e9 / 1.047e9);
    CHECK_NEAR(p.total_static / GB, 29.1, 0.1 / 29.1);
    p = plan_7b(METHOD_OWLORE, -1, 256, STATE_KEEP); /* OwLore code */
    CHECK_NEAR(p.optimizer_state / 2, 1.569e9, 0.0005e9 / 1.569e9);
    CHECK_NEAR(p.total_static / GB, 19.2, 0.1 / 19.2);

    /* activations: 16 x 512 tokens x (L*D*2 + 2*(10D + 4F)) + 3 fp32 logit
     * chunks of 64 MiB / (V * 4) = 524 rows; the same for every method */
    p = plan_7b(METHOD_OWLORE, -1, -1, STATE_RESET);
    double act = 16.0 * 512 * (32 * 4096 * 2 + 2 * (10 * 4096 + 4 * 11008)) +
                 524.0 * 32000 * 12;
    CHECK_NEAR(p.activations, act, 1e-12);
    CHECK_NEAR(plan_7b(METHOD_FULL, -1, -1, STATE_RESET).activations, act, 1e-12);
    /* GPU workspace: 1 GiB + fp32 SVD of 11008 x 4096 (x2) for GaLore */
    CHECK_NEAR(p.workspace, 1073741824.0 + 11008.0 * 4096 * 8, 1e-12);
    CHECK_NEAR(plan_7b(METHOD_LISA, -1, -1, STATE_RESET).workspace, 1073741824.0, 1e-12);
    /* FLOPs: full = PaLM 6N + 12 L H hd T; OwLore skips frozen weight grads */
    double N = 6738415616.0, attn = 12.0 * 32 * 32 * 128 * 512;
    CHECK_NEAR(plan_7b(METHOD_FULL, -1, -1, STATE_RESET).flops_per_token, 6 * N + attn,
               1e-12);
    CHECK_NEAR(p.flops_per_token, 4 * N + 2 * 1274064896.0 + attn, 1e-12);
    CHECK_NEAR(p.tokens_per_s, 989e12 * 0.4 / p.flops_per_token, 1e-12);
    test_end();
}

static void test_plan_fp32_and_frozen(void)
{
    test_begin("plan fp32 (CPU buffers), frozen embeddings, tied head");
    struct model_config c = {.dim = 576, .hidden_dim = 1536, .n_layers = 30,
                             .n_heads = 9, .n_kv_heads = 3, .head_dim = 64,
                             .vocab_size = 49152, .max_seq_len = 2048,
                             .norm_eps = 1e-5f, .rope_theta = 100000.0f,
                             .tied_embeddings = 1, .bos_id = 1, .eos_id = 2};
    struct recipe r;
    struct plan p;
    recipe_defaults(&r, METHOD_FULL);
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    double n = (double)model_param_floats(&c);
    CHECK_NEAR(p.weights, 4 * n, 0);
    CHECK_NEAR(p.gradients, 4 * n, 0);
    CHECK_NEAR(p.optimizer_state, 8 * n, 0); /* tied: one embedding state */
    CHECK_NEAR(p.activations, (double)model_activation_bytes(&c, 2, 64, 0, 0), 0);
    CHECK(p.workspace >= 80.0 * 1024 * 1024);
    CHECK(p.tokens_per_s > 0 && isfinite(p.tokens_per_s));
    /* checkpointing: every block input, one block's internals */
    double full_act = p.activations;
    r.checkpoint_activations = 1;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    CHECK_NEAR(p.activations, (double)model_activation_bytes(&c, 2, 64, 30, 0), 0);
    CHECK_MSG(p.activations < 0.5 * full_act, "%.0f vs %.0f", p.activations, full_act);
    /* the lowest 10 blocks recomputed: one shared slot and 20 of their own */
    double all_act = p.activations;
    r.recompute_blocks = 10;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    CHECK_NEAR(p.activations, (double)model_activation_bytes(&c, 2, 64, 10, 0), 0);
    CHECK(p.activations > all_act && p.activations < full_act);
    CHECK(model_activation_slots(30, 10, 0) == 21 && model_activation_slots(30, 30, 0) == 1 &&
          model_activation_slots(30, 0, 0) == 30 && model_activation_slots(30, 10, 1) == 1);
    CHECK(recipe_recomputed_blocks(&r, 30) == 10);
    /* bf16_activations: the 20 blocks above keep, per token, D + QD + KVD +
     * 2 F = 4416 bf16 values and q, k and 9 lse (777) in fp32, beside the
     * one fp32 slot of full checkpointing */
    const double kept = 128.0 * (4416 * 2 + 777 * 4);
    CHECK(saved_bf16_width16(&c) == 4416 && saved_bf16_width32(&c) == 777);
    r.bf16_activations = 1;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    CHECK_NEAR(p.activations, all_act + 20 * kept, 0);
    r.checkpoint_activations = 0;
    r.recompute_blocks = 0;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    CHECK_NEAR(p.activations, all_act + 30 * kept, 0);
    /* the internals shrink; the block inputs and the classifier's chunk stay */
    CHECK_MSG(p.activations < 0.6 * full_act, "%.0f vs %.0f", p.activations, full_act);
    r.bf16_activations = 0;
    CHECK(recipe_recomputed_blocks(&r, 30) == 0);

    recipe_defaults(&r, METHOD_LISA);
    r.freeze_embeddings = 1;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &p);
    CHECK_NEAR(p.gradients, 4.0 * 2 * model_block_floats(&c), 0);
    CHECK_NEAR(p.optimizer_state, 8.0 * 2 * model_block_floats(&c), 0);

    /* update_in_backward: one tensor's gradient slot for the blocks; with
     * clipping the saved (N, D) gradient of the final norm's output, and at
     * few rows the Grams of the norm pass in the scratch; FLOPs unchanged */
    struct plan stored, one, two;
    recipe_defaults(&r, METHOD_FULL);
    r.max_grad_norm = 0;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &stored);
    r.update_in_backward = 1;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &one);
    CHECK_NEAR(stored.gradients - one.gradients,
               4.0 * (30.0 * model_block_floats(&c) - model_largest_linear(&c)), 0);
    CHECK_NEAR(one.activations, stored.activations, 0);
    CHECK_NEAR(one.flops_per_token, stored.flops_per_token, 0);
    r.max_grad_norm = 1;
    plan_compute(&c, &r, 2, 64, PLAN_FP32, &two);
    CHECK_NEAR(two.activations - one.activations, 4.0 * 128 * 576, 0);
    CHECK_NEAR(two.gradients, one.gradients, 0);
    /* the 7B shape: at 2048 rows the MLP matrices' Grams (2048 (4096 +
     * 11008) < 4096 11008) outgrow the AdamW chunk; at 4096 rows G's
     * product is cheaper */
    struct model_config b7 = llama2_7b();
    const size_t chunk = plan_scratch_floats(&b7, &r, 512);
    CHECK(plan_scratch_floats(&b7, &r, 2048) == 2 * 2048 * 2048 && 2 * 2048 * 2048 > chunk);
    CHECK(plan_scratch_floats(&b7, &r, 4096) == chunk);
    r.update_in_backward = 0;
    CHECK(plan_scratch_floats(&b7, &r, 2048) == chunk);

    /* the memory-saving switches a recipe leaves off, as messages suggest:
     * with no limit all of them, else in order of cost until one fits */
    struct recipe lean;
    struct plan lp;
    char names[192], want[192], err[256];
    int fits = -1;
    recipe_defaults(&r, METHOD_FULL);
    CHECK(plan_savings(&b7, &r, 1, 512, 0, &lean, &lp, &fits, names, sizeof names) == 3);
    CHECK_MSG(!strcmp(names, "bf16_weights: 1, update_in_backward: 1 and "
                      "activation_checkpointing: 1"), "%s", names);
    CHECK(lean.checkpoint_activations && lean.bf16_weights && lean.update_in_backward &&
          !lean.bf16_activations && fits == 0);
    plan_compute(&b7, &r, 1, 512, PLAN_FP32, &stored);
    plan_compute(&b7, &lean, 1, 512, PLAN_FP32, &one);
    CHECK_MSG(stored.total_peak > 110e9 && one.total_peak < 70e9 &&
              lp.total_peak == one.total_peak, "%.3g and %.3g bytes", stored.total_peak,
              one.total_peak); /* an H100 holds the lean one */
    /* within 100 GB at 1 x 512, bf16 weights alone do */
    CHECK(plan_savings(&b7, &r, 1, 512, 100e9, &lean, &lp, &fits, names, sizeof names) == 1);
    CHECK_MSG(!strcmp(names, "bf16_weights: 1") && fits == 1 && lp.total_peak <= 100e9 &&
              lp.total_peak > 95e9, "%s: %.4g", names, lp.total_peak);
    /* within 80 GB at 8 x 512: everything else too, and the fewest recomputed
     * blocks that fit, the others kept in bf16 */
    CHECK(plan_savings(&b7, &r, 8, 512, 80e9, &lean, &lp, &fits, names, sizeof names) == 5);
    const int k = lean.recompute_blocks;
    snprintf(want, sizeof want, "bf16_weights: 1, update_in_backward: 1, bf16_activations: 1, "
             "activation_checkpointing: 1 and recompute_blocks: %d", k);
    CHECK_MSG(!strcmp(names, want) && fits == 1 && lp.total_peak <= 80e9 && k > 0 && k < 32,
              "%s: %.4g", names, lp.total_peak);
    lean.recompute_blocks = k - 1;
    plan_compute(&b7, &lean, 8, 512, PLAN_FP32, &one);
    CHECK_MSG(one.total_peak > 80e9, "%d blocks recomputed: %.4g", k - 1, one.total_peak);
    CHECK(recipe_check(&lean, 32, err, sizeof err) == 0);
    /* a run that fails within the limit (memory was short of something else):
     * every saving */
    CHECK(plan_savings(&b7, &r, 1, 512, 1e15, &lean, &lp, &fits, names, sizeof names) == 3 &&
          fits == 0 && lean.checkpoint_activations && lean.recompute_blocks == 0);
    recipe_defaults(&r, METHOD_OWLORE); /* GaLore: update_in_backward does not apply */
    r.checkpoint_activations = 1;
    CHECK(plan_savings(&b7, &r, 1, 512, 0, &lean, &lp, &fits, names, sizeof names) == 1);
    CHECK(!strcmp(names, "bf16_weights: 1") && !lean.update_in_backward);
    r.bf16_weights = 1;
    CHECK(plan_savings(&b7, &r, 1, 512, 0, &lean, &lp, &fits, names, sizeof names) == 0);
    r.recompute_blocks = 8; /* only some blocks recomputed: all of them would save more */
    CHECK(plan_savings(&b7, &r, 1, 512, 0, &lean, &lp, &fits, names, sizeof names) == 1);
    CHECK(!strcmp(names, "recompute_blocks: 0") && lean.recompute_blocks == 0 &&
          lean.checkpoint_activations == 1);
    r.bf16_activations = 1; /* with every block recomputed, none is left to keep */
    CHECK(plan_savings(&b7, &r, 1, 512, 0, &lean, &lp, &fits, names, sizeof names) == 2);
    CHECK_MSG(!strcmp(names, "bf16_activations: 0 and recompute_blocks: 0"), "%s", names);
    CHECK(recipe_check(&lean, 32, err, sizeof err) == 0 && !lean.bf16_activations);
    /* a byte under what 8 recomputed blocks (the rest in bf16) need: 9 */
    plan_compute(&b7, &r, 1, 512, PLAN_FP32, &one);
    CHECK(plan_savings(&b7, &r, 1, 512, one.total_peak - 1, &lean, &lp, &fits, names,
                       sizeof names) == 1);
    CHECK_MSG(!strcmp(names, "recompute_blocks: 9") && fits && lean.bf16_activations, "%s",
              names);
    test_end();
}

/* argv for "owlore plan <args...>" from a space-separated string. */
static int make_argv(char *buf, char **argv, int cap)
{
    int n = 0;
    argv[n++] = "owlore";
    argv[n++] = "plan";
    for (char *t = strtok(buf, " "); t && n < cap - 1; t = strtok(NULL, " "))
        argv[n++] = t;
    argv[n] = NULL;
    return n;
}

/* Parse args; returns cli_recipe_parse's rc, message in err. */
static int parse(const char *args, struct recipe *r, char *err, size_t errlen)
{
    char buf[512], *argv[64];
    snprintf(buf, sizeof buf, "%s", args);
    int argc = make_argv(buf, argv, 64);
    err[0] = 0;
    return cli_recipe_parse(argc, argv, r, err, errlen);
}

static void expect_parse_error(const char *args, const char *want)
{
    struct recipe r;
    char err[256];
    int rc = parse(args, &r, err, sizeof err);
    CHECK_MSG(rc == -1 && strstr(err, want), "'%s': want error containing \"%s\", got "
              "rc %d \"%s\"", args, want, rc, err);
}

static void test_cli(void)
{
    struct recipe r;
    char err[256];
    test_begin("cli_recipe_parse");
    CHECK(parse("--model x.bin", &r, err, sizeof err) == 0);
    CHECK(r.method == METHOD_OWLORE && r.gamma == 5 && r.galore.rank == 128);
    CHECK_MSG(parse("--method lisa --gamma 4 --interval 3 --lr 1e-5 --batch 2 --seq 128 "
                    "--accum 4 --steps 100 --warmup 10 --schedule cosine --clip 0 "
                    "--seed 18446744073709551615 --state-policy keep --sampling decrease "
                    "--freeze-embeddings 1 --weight-decay 0.01 --tau 9 --eval-every 5 "
                    "--save-every 50 --calib-samples 0 --epochs 2 --checkpoint-activations 1 "
                    "--bf16-weights 1 --stagger-refreshes 0", &r, err, sizeof err) == 0,
              "%s", err);
    CHECK(r.method == METHOD_LISA && r.gamma == 4 && r.interval == 3);
    CHECK_NEAR(r.lr, 1e-5, 1e-12);
    CHECK(r.batch_size == 2 && r.seq_len == 128 && r.grad_accum == 4);
    CHECK(r.max_steps == 100 && r.warmup_steps == 10 && r.schedule == SCHEDULE_COSINE);
    CHECK(r.max_grad_norm == 0 && r.seed == 18446744073709551615ULL);
    CHECK(r.state_policy == STATE_KEEP && r.sampling == SAMPLING_DECREASE);
    CHECK(r.freeze_embeddings == 1 && r.tau == 9.0f && r.calib_samples == 0);
    CHECK(r.eval_every == 5 && r.save_every == 50 && r.epochs == 2);
    CHECK(r.checkpoint_activations == 1 && r.bf16_weights == 1 && r.stagger_refreshes == 0);
    CHECK_NEAR(r.adamw.weight_decay, 0.01, 1e-7);
    CHECK(recipe_check(&r, 32, err, sizeof err) == 0);
    CHECK_MSG(parse("--method owlore --rank 64 --proj-gap 100 --scale 1 --svd randomized "
                    "--blocks 0,3,5", &r, err, sizeof err) == 0, "%s", err);
    CHECK(r.galore.rank == 64 && r.galore.update_proj_gap == 100 && r.galore.scale == 1.0f);
    CHECK(r.galore.svd_method == 1 && r.sampling == SAMPLING_FIXED);
    CHECK(r.n_fixed == 3 && r.gamma == 3 && r.fixed_blocks[1] == 3);
    CHECK(recipe_check(&r, 32, err, sizeof err) == 0);
    CHECK(parse("--method galore --rank 128", &r, err, sizeof err) == 0);
    CHECK(r.method == METHOD_GALORE && r.galore.rank == 128);

    expect_parse_error("--lr abc", "--lr expects a positive number, got 'abc'");
    expect_parse_error("--lr -3e-4", "--lr expects a positive number, got '-3e-4'");
    expect_parse_error("--lr nan", "--lr expects a positive number");
    expect_parse_error("--lr inf", "--lr expects a positive number");
    expect_parse_error("--lr 3e-4x", "--lr expects a positive number");
    expect_parse_error("--gamma 2.5", "--gamma expects a positive integer, got '2.5'");
    expect_parse_error("--gamma 0", "--gamma expects a positive integer");
    expect_parse_error("--batch 1e3", "--batch expects a positive integer");
    expect_parse_error("--seq 99999999999", "--seq expects a positive integer");
    expect_parse_error("--rank -1", "--rank expects a non-negative integer");
    expect_parse_error("--seed -5", "--seed expects a non-negative integer");
    expect_parse_error("--method adam", "--method expects one of full, lisa, galore, "
                       "owlore_full_rank, owlore, lora; got 'adam'");
    expect_parse_error("--method owlore --lora-rank 4",
                       "--lora-rank applies only to --method lora");
    expect_parse_error("--method lora --gamma 2", "--gamma does not apply to --method lora");
    expect_parse_error("--method lora --lora-merge 2", "--lora-merge expects one of 0, 1");
    expect_parse_error("--svd fast", "--svd expects one of exact, randomized; got 'fast'");
    expect_parse_error("--state-policy drop", "--state-policy expects one of reset, keep");
    expect_parse_error("--sampling random", "--sampling expects one of owl, uniform");
    expect_parse_error("--schedule step", "--schedule expects one of linear, cosine");
    expect_parse_error("--checkpoint-activations 2",
                       "--checkpoint-activations expects one of 0, 1");
    expect_parse_error("--bf16-weights 2", "--bf16-weights expects one of 0, 1");
    expect_parse_error("--stagger-refreshes 2", "--stagger-refreshes expects one of 0, 1");
    expect_parse_error("--update-in-backward 2", "--update-in-backward expects one of 0, 1");
    expect_parse_error("--clip -1", "--clip expects a non-negative number, got '-1'");
    expect_parse_error("--freeze-embeddings yes",
                       "--freeze-embeddings expects one of 0, 1");
    expect_parse_error("--blocks 0,,3", "--blocks expects a comma-separated list");
    expect_parse_error("--blocks 1,x", "--blocks expects a comma-separated list");
    expect_parse_error("--blocks 0,3 --gamma 3", "--gamma 3 does not match the 2 blocks");
    expect_parse_error("--sampling fixed", "--sampling fixed needs --blocks");
    expect_parse_error("--sampling owl --blocks 1", "--blocks needs --sampling fixed");
    expect_parse_error("--method full --gamma 2",
                       "--gamma does not apply to --method full");
    expect_parse_error("--lr 1e-4 --lr 2e-4", "--lr is given more than once");

    /* lora: its own options, defaults, and the checks of its values */
    CHECK(parse("--method lora", &r, err, sizeof err) == 0);
    CHECK(r.method == METHOD_LORA && r.lora.rank == 8 && r.lora.alpha == 16.0f &&
          r.lora.dropout == 0.05f && r.lora.merge == 0 && r.freeze_embeddings == 1 &&
          r.galore.rank == 0 && recipe_active_blocks(&r, 30) == 0);
    CHECK(parse("--method lora --lora-rank 4 --lora-alpha 8 --lora-dropout 0 --lora-merge 1",
                &r, err, sizeof err) == 0);
    CHECK(r.lora.rank == 4 && r.lora.alpha == 8.0f && r.lora.dropout == 0.0f &&
          r.lora.merge == 1 && recipe_check(&r, 30, err, sizeof err) == 0);
    CHECK(parse("--method lora --lora-dropout 1", &r, err, sizeof err) == 0);
    CHECK(recipe_check(&r, 30, err, sizeof err) == -1 &&
          strstr(err, "lora_dropout must lie in [0, 1)"));
    CHECK(parse("--checkpoint-activations 1 --recompute-blocks 8", &r, err, sizeof err) == 0);
    CHECK(r.recompute_blocks == 8 && recipe_recomputed_blocks(&r, 32) == 8);
    CHECK(parse("--bf16-activations 1", &r, err, sizeof err) == 0 && r.bf16_activations == 1);
    expect_parse_error("--bf16-activations 2", "--bf16-activations");
    expect_parse_error("--recompute-blocks -1", "--recompute-blocks expects a non-negative "
                       "integer");
    CHECK(parse("--method full --update-in-backward 1 --clip 0", &r, err, sizeof err) == 0);
    CHECK(r.update_in_backward == 1 && recipe_backward_passes(&r) == 1 &&
          recipe_streams_gradients(&r) && recipe_check(&r, 30, err, sizeof err) == 0);
    CHECK(parse("--method lora --bf16-weights 1", &r, err, sizeof err) == 0);
    CHECK(r.bf16_weights == 1 && recipe_check(&r, 30, err, sizeof err) == 0);

    /* values that parse but that the recipe refuses */
    CHECK(parse("--method owlore --rank 0", &r, err, sizeof err) == 0);
    CHECK(recipe_check(&r, 32, err, sizeof err) == -1 &&
          strstr(err, "rank must be a positive integer"));
    CHECK(parse("--gamma 40", &r, err, sizeof err) == 0);
    CHECK(recipe_check(&r, 30, err, sizeof err) == -1 &&
          strstr(err, "gamma 40 is larger than the model's 30 blocks"));
    CHECK(parse("--blocks 1,1", &r, err, sizeof err) == 0);
    CHECK(recipe_check(&r, 32, err, sizeof err) == -1 && strstr(err, "listed twice"));
    int seen_lr = 0, seen_method = 0, n = 0;
    for (const char *const *o = cli_recipe_opts; *o; o++, n++) {
        seen_lr |= strcmp(*o, "--lr") == 0;
        seen_method |= strcmp(*o, "--method") == 0;
    }
    CHECK(seen_lr && seen_method && n >= 30);
    test_end();
}

int main(void)
{
    test_defaults();
    test_check();
    test_plan_llama2_7b();
    test_plan_fp32_and_frozen();
    test_cli();
    return test_finish();
}
