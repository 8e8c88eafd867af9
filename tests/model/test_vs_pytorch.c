/*
 * test_vs_pytorch.c: the CPU engine against PyTorch / Hugging Face.
 *
 * tests/ref/make_llama_fixtures.py built small random LlamaForCausalLM
 * models (one with GQA and an untied head, one tied; plus a sharded copy
 * and bf16/f16 copies of the weights) and dumped, for a fixed batch with a
 * per-token loss mask: logits, loss and the gradient of every parameter
 * (tests/model/fixtures/<name>/expected.safetensors). Here the engine loads
 * the same files and must match:
 *   logits and loss within 1e-4 relative (max-abs error / max-abs reference),
 *   every gradient within 1e-3 relative (max-abs error / max-abs reference).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"
#include "load_hf.h"
#include "safetensors.h"
#include "fixture.h"
#include "test.h"

#define FIXTURES "tests/model/fixtures"

struct batch {
    int B, T;
    int32_t *tokens, *targets;
};

static int read_batch(struct st_file *f, struct batch *b)
{
    char err[512];
    const struct st_tensor *ti = st_find(f, "input_ids"), *tt = st_find(f, "targets");
    if (!ti || !tt || ti->ndim != 2)
        return -1;
    b->B = (int)ti->shape[0];
    b->T = (int)ti->shape[1];
    b->tokens = malloc(sizeof(int32_t) * ti->numel);
    b->targets = malloc(sizeof(int32_t) * tt->numel);
    if (st_read_i32(f, ti, b->tokens, ti->numel, err, sizeof err) != 0 ||
        st_read_i32(f, tt, b->targets, tt->numel, err, sizeof err) != 0)
        return -1;
    return 0;
}

/* Load dir, run the fixture batch, compare logits (against `logits_name`)
 * and, when with_grads, the loss and every gradient. */
static void check_model(const char *case_name, const char *dir,
                        const char *expected_path, const char *logits_name,
                        int with_grads)
{
    char err[512];
    struct model m;
    struct st_file *f = st_open(expected_path, err, sizeof err);
    struct batch b = {0};

    test_begin(case_name);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) {
        test_end();
        return;
    }
    int loaded = load_hf_dir(dir, backend_cpu(), &m, err, sizeof err) == 0;
    CHECK_MSG(loaded, "%s", err);
    CHECK(read_batch(f, &b) == 0);
    if (loaded && b.tokens) {
        struct activations a;
        struct model_grads g;
        const int N = b.B * b.T, V = m.cfg.vocab_size;
        CHECK(activations_init(&a, &m, b.B, b.T) == 0 && grads_init_full(&g, &m) == 0);
        float loss = model_loss_and_grad(&m, &a, with_grads ? &g : NULL, b.tokens,
                                         b.targets, b.B, b.T);
        float *logits = malloc(sizeof(float) * (size_t)N * V);
        model_logits(&m, &a, logits, b.B, b.T);
        size_t n = 0;
        float *ref = fixture_read_f32(f, logits_name, &n);
        CHECK(ref && n == (size_t)N * V);
        if (ref && n == (size_t)N * V) {
            double e = fixture_rel_err(logits, ref, n);
            CHECK_MSG(e <= 1e-4, "logits relative error %.3g", e);
        }
        free(ref);
        if (with_grads) {
            float *ref_loss = fixture_read_f32(f, "loss", &n);
            CHECK(ref_loss && n == 1);
            if (ref_loss)
                CHECK_MSG(fabs(loss - ref_loss[0]) <= 1e-4 * fabs(ref_loss[0]),
                          "loss %.7f, reference %.7f", loss, ref_loss[0]);
            free(ref_loss);
            double worst = 0;
            for (int i = 0; i < model_tensor_count(&m.cfg); i++) {
                struct named_tensor nt;
                char name[128];
                model_tensor_at(&m.cfg, &g.g, i, &nt);
                snprintf(name, sizeof name, "grad.%s", nt.name);
                float *rg = fixture_read_f32(f, name, &n);
                size_t want = (size_t)nt.rows * (nt.cols ? nt.cols : 1);
                CHECK_MSG(rg && n == want, "%s missing or wrong size", name);
                if (rg && n == want) {
                    double e = fixture_rel_err(nt.data, rg, n);
                    worst = e > worst ? e : worst;
                    CHECK_MSG(e <= 1e-3, "%s relative error %.3g", name, e);
                }
                free(rg);
            }
            printf("     %s: loss %.7f, worst gradient relative error %.2g\n",
                   case_name, loss, worst);
        }
        free(logits);
        grads_free(&g, &m);
        activations_free(&a, &m);
        model_free(&m);
    }
    free(b.tokens);
    free(b.targets);
    st_close(f);
    test_end();
}

/* A directory holding config.json and the given weights file as
 * model.safetensors (symlinks), for loading the bf16/f16 copies. */
static int link_variant(char *tmp, const char *name, const char *weights)
{
    char cwd[PATH_MAX], src[PATH_MAX + 256], dst[PATH_MAX + 64];
    if (!getcwd(cwd, sizeof cwd) || !mkdtemp(tmp))
        return -1;
    snprintf(src, sizeof src, "%s/" FIXTURES "/%s/config.json", cwd, name);
    snprintf(dst, sizeof dst, "%s/config.json", tmp);
    if (symlink(src, dst) != 0)
        return -1;
    snprintf(src, sizeof src, "%s/" FIXTURES "/%s/%s", cwd, name, weights);
    snprintf(dst, sizeof dst, "%s/model.safetensors", tmp);
    return symlink(src, dst);
}

static void unlink_variant(const char *tmp)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/config.json", tmp);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", tmp);
    unlink(p);
    rmdir(tmp);
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    static const char *models[2] = {"gqa_untied", "tied"};
    for (int i = 0; i < 2; i++) {
        char dir[256], exp[256], name[128];
        snprintf(dir, sizeof dir, FIXTURES "/%s", models[i]);
        snprintf(exp, sizeof exp, FIXTURES "/%s/expected.safetensors", models[i]);
        snprintf(name, sizeof name, "%s_logits_loss_grads", models[i]);
        check_model(name, dir, exp, "logits", 1);
        static const char *variants[2][2] = {{"model_bf16.safetensors", "logits_bf16_weights"},
                                             {"model_f16.safetensors", "logits_f16_weights"}};
        for (int v = 0; v < 2; v++) {
            char tmp[] = "/tmp/owlore-variant-XXXXXX";
            snprintf(name, sizeof name, "%s_%s", models[i], variants[v][1]);
            if (link_variant(tmp, models[i], variants[v][0]) != 0) {
                test_begin(name);
                CHECK_MSG(0, "cannot prepare %s", tmp);
                test_end();
                continue;
            }
            check_model(name, tmp, exp, variants[v][1], 0);
            unlink_variant(tmp);
        }
    }
    check_model("sharded_checkpoint_loads_and_matches", FIXTURES "/gqa_untied_sharded",
                FIXTURES "/gqa_untied/expected.safetensors", "logits", 1);
    return test_finish();
}
