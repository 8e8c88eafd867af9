/*
 * test_gguf.c: the GGUF reader and loader.
 *
 * Against the fixtures of tests/ref/make_gguf_fixtures.py (written with the
 * gguf Python package, tests/model/fixtures/gguf/):
 *   - the F32 GGUF and the Hugging Face safetensors copy of the same model
 *     load to bit-identical parameters (q/k un-permuted) and the same logits;
 *   - metadata of every value type reads back through the typed getters;
 *   - F16, BF16, Q8_0, Q4_0, Q4_1 and Q6_K tensors dequantize exactly like
 *     gguf.quants.dequantize, and each model's logits match a Hugging Face
 *     forward of the dequantized weights within 1e-4 relative;
 *   - a tied model whose vocabulary comes from tokenizer.ggml.tokens.
 * Then a battery of malformed files, built here byte by byte (a small
 * builder writes GGUF from a list of key-values and tensor infos): each must
 * be refused with a message naming the file and the key or tensor at fault;
 * every truncation of a valid file is refused; random byte changes in the
 * header are refused or loaded cleanly (run under valgrind for the proof).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "load.h"
#include "load_hf.h"
#include "safetensors.h"
#include "fixture.h"
#include "test.h"

#define FIX "tests/model/fixtures/gguf"

/* tokens (1, T) of the fixture */
static int32_t *read_tokens(struct st_file *f, int *T)
{
    char err[512];
    const struct st_tensor *t = st_find(f, "tokens");
    if (!t || t->ndim != 2 || t->shape[0] != 1)
        return NULL;
    int32_t *tok = malloc(sizeof(int32_t) * t->numel);
    if (st_read_i32(f, t, tok, t->numel, err, sizeof err) != 0) {
        free(tok);
        return NULL;
    }
    *T = (int)t->shape[1];
    return tok;
}

/* logits (T, V) of m on tokens; caller frees */
static float *forward_logits(const struct model *m, const int32_t *tok, int T)
{
    struct activations a;
    if (activations_init(&a, m, 1, T) != 0)
        return NULL;
    float *logits = malloc(sizeof(float) * (size_t)T * m->cfg.vocab_size);
    model_forward(m, &a, tok, 1, T);
    model_logits(m, &a, logits, 1, T);
    activations_free(&a, m);
    return logits;
}

/* ---- against the Python fixtures ---- */

static void test_f32_matches_safetensors(struct st_file *exp, const int32_t *tok, int T)
{
    char err[512];
    struct model g, h;
    test_begin("f32_gguf_equals_safetensors");
    int ok_g = model_load(FIX "/llama_f32.gguf", backend_cpu(), &g, err, sizeof err) == 0;
    CHECK_MSG(ok_g, "%s", err);
    int ok_h = model_load(FIX "/hf", backend_cpu(), &h, err, sizeof err) == 0;
    CHECK_MSG(ok_h, "%s", err);
    if (ok_g && ok_h) {
        const struct model_config *a = &g.cfg, *b = &h.cfg;
        CHECK(a->dim == 32 && a->hidden_dim == 64 && a->n_layers == 2 &&
              a->n_heads == 2 && a->n_kv_heads == 1 && a->head_dim == 32 &&
              a->vocab_size == 32 && a->max_seq_len == 64 && !a->tied_embeddings &&
              a->bos_id == 1 && a->eos_id == 2);
        CHECK(a->dim == b->dim && a->hidden_dim == b->hidden_dim &&
              a->n_layers == b->n_layers && a->n_heads == b->n_heads &&
              a->n_kv_heads == b->n_kv_heads && a->head_dim == b->head_dim &&
              a->vocab_size == b->vocab_size && a->max_seq_len == b->max_seq_len &&
              a->norm_eps == b->norm_eps && a->rope_theta == b->rope_theta &&
              a->tied_embeddings == b->tied_embeddings && a->bos_id == b->bos_id &&
              a->eos_id == b->eos_id);
        CHECK_MSG(g.n_params == h.n_params &&
                  memcmp(g.mem, h.mem, sizeof(float) * g.n_params) == 0,
                  "parameters differ (q/k permutation?)");
        float *lg = forward_logits(&g, tok, T), *lh = forward_logits(&h, tok, T);
        size_t n = 0;
        float *ref = fixture_read_f32(exp, "logits.hf", &n);
        CHECK(lg && lh && ref && n == (size_t)T * 32);
        if (lg && lh && ref && n == (size_t)T * 32) {
            double e = fixture_rel_err(lg, lh, n), r = fixture_rel_err(lg, ref, n);
            CHECK_MSG(e <= 1e-5, "GGUF vs safetensors logits relative error %.3g", e);
            CHECK_MSG(r <= 1e-4, "logits vs Hugging Face relative error %.3g", r);
        }
        free(lg);
        free(lh);
        free(ref);
    }
    if (ok_g)
        model_free(&g);
    if (ok_h)
        model_free(&h);
    test_end();
}

static void test_metadata(void)
{
    char err[512];
    test_begin("metadata_every_value_type");
    struct gguf_file *f = gguf_open(FIX "/llama_f32.gguf", err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) {
        test_end();
        return;
    }
    static const struct { const char *key; int64_t v; } ints[] = {
        {"test.u8", 200}, {"test.i8", -100}, {"test.u16", 60000},
        {"test.i16", -30000}, {"test.u32", 4000000000LL}, {"test.i32", -2000000000LL},
        {"test.i64", -(1LL << 40)}, {"llama.block_count", 2},
        {"tokenizer.ggml.bos_token_id", 1},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        int rc = gguf_get_int(f, ints[i].key, &v, err, sizeof err);
        CHECK_MSG(rc == 0 && v == ints[i].v, "%s: rc %d, %lld (%s)", ints[i].key, rc,
                  (long long)v, rc ? err : "");
    }
    int64_t iv;
    double d;
    int b;
    const char *s;
    size_t len;
    CHECK(gguf_get_int(f, "test.u64", &iv, err, sizeof err) < 0 &&
          strstr(err, "'test.u64'") && strstr(err, "out of range"));
    CHECK(gguf_get_float(f, "test.u64", &d, err, sizeof err) == 0 &&
          d == 9223372036854775813.0);
    CHECK(gguf_get_float(f, "test.f32", &d, err, sizeof err) == 0 && d == 0.25);
    CHECK(gguf_get_float(f, "test.f64", &d, err, sizeof err) == 0 && d == -1.0 / 3.0);
    CHECK(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &d, err,
                         sizeof err) == 0 && (float)d == 1e-5f);
    CHECK(gguf_get_bool(f, "test.bool", &b, err, sizeof err) == 0 && b == 1);
    CHECK(gguf_get_str(f, "test.str", &s, &len, err, sizeof err) == 0 &&
          len == 6 && strcmp(s, "h\xc3\xa9llo") == 0);
    CHECK(gguf_get_str(f, "general.architecture", &s, NULL, err, sizeof err) == 0 &&
          strcmp(s, "llama") == 0);
    /* wrong type and missing key name the file and key */
    CHECK(gguf_get_str(f, "test.u8", &s, NULL, err, sizeof err) < 0 &&
          strstr(err, FIX "/llama_f32.gguf") && strstr(err, "'test.u8' holds a uint8"));
    CHECK(gguf_get_int(f, "test.str", &iv, err, sizeof err) < 0 &&
          strstr(err, "'test.str' holds a string value, not an integer"));
    CHECK(gguf_get_int(f, "no.such.key", &iv, err, sizeof err) < 0 &&
          strstr(err, "'no.such.key' is missing"));
    CHECK(!gguf_has(f, "no.such.key") && gguf_has(f, "test.nested"));

    struct gguf_arr a, inner;
    CHECK(gguf_get_arr(f, "test.arr_u64", &a, err, sizeof err) == 0 &&
          a.type == GGUF_TYPE_UINT64 && a.count == 3);
    CHECK(gguf_arr_int(&a, 1, &iv) == 0 && iv == (1LL << 40));
    CHECK(gguf_arr_int(&a, 3, &iv) < 0 && gguf_arr_str(&a, 0, NULL) == NULL);
    CHECK(gguf_get_arr(f, "test.arr_bool", &a, err, sizeof err) == 0 && a.count == 2 &&
          gguf_arr_bool(&a, 0, &b) == 0 && b == 1 && gguf_arr_bool(&a, 1, &b) == 0 &&
          b == 0);
    CHECK(gguf_get_arr(f, "test.arr_f64", &a, err, sizeof err) == 0 &&
          gguf_arr_float(&a, 1, &d) == 0 && d == -2.0);
    CHECK(gguf_get_arr(f, "test.nested", &a, err, sizeof err) == 0 &&
          a.type == GGUF_TYPE_ARRAY && a.count == 3);
    CHECK(gguf_arr_arr(&a, 0, &inner) == 0 && inner.type == GGUF_TYPE_INT32 &&
          inner.count == 2 && gguf_arr_int(&inner, 1, &iv) == 0 && iv == 2);
    CHECK(gguf_arr_arr(&a, 2, &inner) == 0 && inner.type == GGUF_TYPE_STRING &&
          (s = gguf_arr_str(&inner, 0, &len)) && len == 1 && strcmp(s, "x") == 0);
    CHECK(gguf_get_arr(f, "test.str", &a, err, sizeof err) < 0 &&
          strstr(err, "not an array"));
    CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &a, err, sizeof err) == 0 &&
          a.type == GGUF_TYPE_STRING && a.count == 32 &&
          (s = gguf_arr_str(&a, 31, &len)) && strcmp(s, "<t31>") == 0 && len == 5);
    CHECK(gguf_version(f) == 3 && gguf_alignment(f) == 32 && gguf_tensor_count(f) == 21);
    int found = 0;
    for (int i = 0; i < gguf_kv_count(f); i++)
        if (strcmp(gguf_kv_key(f, i), "test.nested") == 0)
            found = gguf_kv_type(f, i) == GGUF_TYPE_ARRAY;
    CHECK(found);
    const struct gguf_tensor *t = gguf_find_tensor(f, "blk.1.attn_q.weight");
    CHECK(t && t->n_dims == 2 && t->dims[0] == 32 && t->dims[1] == 64 &&
          t->type == GGML_TYPE_F32 && strcmp(t->type_name, "F32") == 0 &&
          t->n_bytes == 64 * 32 * 4 && t->offset % 32 == 0);
    CHECK(gguf_find_tensor(f, "blk.2.attn_q.weight") == NULL);
    gguf_close(f);

    f = gguf_open(FIX "/llama_q4_0.gguf", err, sizeof err);
    CHECK_MSG(f && gguf_alignment(f) == 64, "custom alignment: %s", f ? "" : err);
    gguf_close(f);
    test_end();
}

/* Dequantization bit for bit, then the model's logits. */
static void test_variant(struct st_file *exp, const int32_t *tok, int T,
                         const char *stem, const char *const *deq,
                         const char *const *types, int n_deq)
{
    char err[512], path[256], name[256];
    struct model m;
    snprintf(path, sizeof path, FIX "/%s.gguf", stem);
    snprintf(name, sizeof name, "%s_dequantizes_exactly_and_logits_match", stem);
    test_begin(name);
    struct gguf_file *f = gguf_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    for (int i = 0; f && i < n_deq; i++) {
        const struct gguf_tensor *t = gguf_find_tensor(f, deq[i]);
        size_t n = 0;
        char key[300];
        snprintf(key, sizeof key, "deq.%s.%s", stem, deq[i]);
        float *ref = fixture_read_f32(exp, key, &n);
        CHECK_MSG(t && ref && t->n_elems == n, "%s missing", key);
        if (!t || !ref || t->n_elems != n) {
            free(ref);
            continue;
        }
        CHECK_MSG(strcmp(t->type_name, types[i]) == 0, "%s is %s, not %s", deq[i],
                  t->type_name, types[i]);
        float *out = malloc(sizeof(float) * n);
        int rc = gguf_tensor_read_f32(f, t, out, n, err, sizeof err);
        CHECK_MSG(rc == 0, "%s", err);
        size_t bad = 0;
        for (size_t j = 0; rc == 0 && j < n; j++)
            bad += memcmp(&out[j], &ref[j], sizeof(float)) != 0;
        CHECK_MSG(bad == 0, "%s: %zu of %zu values differ from gguf.quants.dequantize "
                  "(max rel %.3g)", deq[i], bad, n, fixture_rel_err(out, ref, n));
        free(out);
        free(ref);
    }
    gguf_close(f);
    int ok = model_load(path, backend_cpu(), &m, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok) {
        char key[300];
        size_t n = 0;
        snprintf(key, sizeof key, "logits.%s", stem);
        float *ref = fixture_read_f32(exp, key, &n);
        float *lg = forward_logits(&m, tok, T);
        CHECK(ref && lg && n == (size_t)T * m.cfg.vocab_size);
        if (ref && lg && n == (size_t)T * m.cfg.vocab_size) {
            double e = fixture_rel_err(lg, ref, n);
            CHECK_MSG(e <= 1e-4, "logits relative error %.3g", e);
        }
        free(ref);
        free(lg);
        model_free(&m);
    }
    test_end();
}

static void test_tied_q6k_config(void)
{
    char err[512];
    struct model_config c;
    test_begin("tied_model_config_defaults");
    int ok = model_read_config(FIX "/tied_q6_k.gguf", &c, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok)
        CHECK(c.tied_embeddings && c.vocab_size == 32 && c.rope_theta == 10000.0f &&
              c.norm_eps == 1e-6f && c.hidden_dim == 256 && c.n_layers == 1 &&
              c.head_dim == 32);
    test_end();
}

/* ---- a GGUF builder for malformed files ---- */

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }

static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

#define MAX_KV 40
#define MAX_T 24

struct tinfo {
    char name[320];
    uint32_t n_dims, type;
    uint64_t dims[5];
    int64_t offset;       /* -1: the next aligned offset */
};

struct spec {
    uint32_t magic, version;
    int64_t n_tensors, n_kv;  /* -1: the real counts */
    char keys[MAX_KV][64];
    struct buf vals[MAX_KV];  /* u32 type + value, as in the file */
    int dropped[MAX_KV];      /* 1: not written */
    int nkv;
    struct tinfo t[MAX_T];
    int nt;
    uint32_t align;
    int64_t cut;              /* >= 0: keep only this many bytes */
};

static void spec_init(struct spec *s)
{
    memset(s, 0, sizeof *s);
    s->magic = 0x46554747u;
    s->version = 3;
    s->n_tensors = s->n_kv = s->cut = -1;
    s->align = 32;
}

static void spec_free(struct spec *s)
{
    for (int i = 0; i < MAX_KV; i++)
        free(s->vals[i].p);
}

static struct buf *spec_kv(struct spec *s, const char *key, uint32_t type)
{
    snprintf(s->keys[s->nkv], sizeof s->keys[0], "%s", key);
    s->dropped[s->nkv] = 0;
    struct buf *v = &s->vals[s->nkv++];
    v->n = 0;
    put_u32(v, type);
    return v;
}

static void kv_u32(struct spec *s, const char *key, uint32_t v)
{
    put_u32(spec_kv(s, key, GGUF_TYPE_UINT32), v);
}

static void kv_f32(struct spec *s, const char *key, float v)
{
    put(spec_kv(s, key, GGUF_TYPE_FLOAT32), &v, 4);
}

static void kv_str(struct spec *s, const char *key, const char *v)
{
    put_str(spec_kv(s, key, GGUF_TYPE_STRING), v);
}

static void spec_drop_kv(struct spec *s, const char *key)
{
    for (int i = 0; i < s->nkv; i++)
        if (strcmp(s->keys[i], key) == 0)
            s->dropped[i] = 1;
}

static struct tinfo *spec_tensor(struct spec *s, const char *name, uint32_t type,
                                 uint32_t n_dims, uint64_t d0, uint64_t d1)
{
    struct tinfo *t = &s->t[s->nt++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = t->dims[3] = t->dims[4] = 1;
    t->offset = -1;
    return t;
}

static struct tinfo *spec_find(struct spec *s, const char *name)
{
    for (int i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].name, name) == 0)
            return &s->t[i];
    return NULL;
}

static void spec_drop_tensor(struct spec *s, const char *name)
{
    struct tinfo *t = spec_find(s, name);
    if (t) {
        memmove(t, t + 1, (size_t)(s->t + s->nt - (t + 1)) * sizeof *t);
        s->nt--;
    }
}

/* bytes of a tensor in the types the builder uses */
static uint64_t tensor_bytes(const struct tinfo *t)
{
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < 5; d++)
        n *= t->dims[d];
    switch (t->type) {
    case GGML_TYPE_Q8_0: return n / 32 * 34;
    case 12 /* Q4_K */: return n / 256 * 144;
    case GGML_TYPE_F16: return n * 2;
    default: return n * 4;
    }
}

/* Write the file into out; returns the header length (where the data
 * section starts). The data section holds the tensors laid out in order
 * (explicit offsets do not extend it) unless that would exceed 16 MiB. */
static size_t emit(const struct spec *s, struct buf *out)
{
    int nkv = 0;
    for (int i = 0; i < s->nkv; i++)
        nkv += !s->dropped[i];
    out->n = 0;
    put_u32(out, s->magic);
    put_u32(out, s->version);
    put_u64(out, s->n_tensors >= 0 ? (uint64_t)s->n_tensors : (uint64_t)s->nt);
    put_u64(out, s->n_kv >= 0 ? (uint64_t)s->n_kv : (uint64_t)nkv);
    for (int i = 0; i < s->nkv; i++)
        if (!s->dropped[i]) {
            put_str(out, s->keys[i]);
            put(out, s->vals[i].p, s->vals[i].n);
        }
    uint64_t off = 0, end = 0;
    for (int i = 0; i < s->nt; i++) {
        const struct tinfo *t = &s->t[i];
        uint64_t o = t->offset >= 0 ? (uint64_t)t->offset : off;
        put_str(out, t->name);
        put_u32(out, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims && d < 5; d++)
            put_u64(out, t->dims[d]);
        put_u32(out, t->type);
        put_u64(out, o);
        if (t->offset < 0) {
            end = o + tensor_bytes(t);
            off = (end + s->align - 1) / s->align * s->align;
        }
    }
    static const unsigned char zeros[4096];
    while (out->n % s->align)
        put(out, zeros, 1);
    size_t header = out->n;
    if (end > (1u << 24))
        end = 0;
    for (uint64_t i = 0; i < end; i += sizeof zeros)
        put(out, zeros, end - i < sizeof zeros ? end - i : sizeof zeros);
    if (s->cut >= 0 && (size_t)s->cut < out->n)
        out->n = (size_t)s->cut;
    return header;
}

/* A valid tiny llama: D 32, 2 heads of 16, 1 KV head, F 256, V 16, 1 layer,
 * untied, all F32 (zeros). */
static void llama_spec(struct spec *s)
{
    spec_init(s);
    kv_str(s, "general.architecture", "llama");
    kv_u32(s, "llama.block_count", 1);
    kv_u32(s, "llama.embedding_length", 32);
    kv_u32(s, "llama.feed_forward_length", 256);
    kv_u32(s, "llama.attention.head_count", 2);
    kv_u32(s, "llama.attention.head_count_kv", 1);
    kv_f32(s, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    kv_u32(s, "llama.vocab_size", 16);
    spec_tensor(s, "token_embd.weight", 0, 2, 32, 16);
    spec_tensor(s, "blk.0.attn_norm.weight", 0, 1, 32, 1);
    spec_tensor(s, "blk.0.attn_q.weight", 0, 2, 32, 32);
    spec_tensor(s, "blk.0.attn_k.weight", 0, 2, 32, 16);
    spec_tensor(s, "blk.0.attn_v.weight", 0, 2, 32, 16);
    spec_tensor(s, "blk.0.attn_output.weight", 0, 2, 32, 32);
    spec_tensor(s, "blk.0.ffn_norm.weight", 0, 1, 32, 1);
    spec_tensor(s, "blk.0.ffn_gate.weight", 0, 2, 32, 256);
    spec_tensor(s, "blk.0.ffn_up.weight", 0, 2, 32, 256);
    spec_tensor(s, "blk.0.ffn_down.weight", 0, 2, 256, 32);
    spec_tensor(s, "output_norm.weight", 0, 1, 32, 1);
    spec_tensor(s, "output.weight", 0, 2, 32, 16);
}

/* A minimal valid file: one key, one tensor 'a' (F32 {8, 2}). */
static void small_spec(struct spec *s)
{
    spec_init(s);
    kv_str(s, "general.name", "x");
    spec_tensor(s, "a", 0, 2, 8, 2);
}

static char tmp_path[64];

static int write_file(const struct buf *b)
{
    FILE *f = fopen(tmp_path, "wb");
    if (!f)
        return -1;
    size_t w = b->n ? fwrite(b->p, 1, b->n, f) : 0;
    return fclose(f) == 0 && w == b->n ? 0 : -1;
}

/* 0 when the file opens (load: and loads), else -1 with err. */
static int try_file(const struct buf *b, int load, char *err, size_t errlen)
{
    if (write_file(b) < 0) {
        snprintf(err, errlen, "cannot write %s", tmp_path);
        return -1;
    }
    if (load) {
        struct model m;
        int rc = model_load(tmp_path, backend_cpu(), &m, err, errlen);
        if (rc == 0)
            model_free(&m);
        return rc;
    }
    struct gguf_file *f = gguf_open(tmp_path, err, errlen);
    gguf_close(f);
    return f ? 0 : -1;
}

/* The spec must be refused, with a message naming the file and holding
 * both needles (needle2 may be NULL). Frees the spec. */
static void refused(const char *name, struct spec *s, int load, const char *needle1,
                    const char *needle2)
{
    char err[1024] = "";
    struct buf b = {0};
    test_begin(name);
    emit(s, &b);
    int rc = try_file(&b, load, err, sizeof err);
    CHECK_MSG(rc < 0, "accepted");
    if (rc < 0)
        CHECK_MSG(strncmp(err, tmp_path, strlen(tmp_path)) == 0 && strstr(err, needle1) &&
                  (!needle2 || strstr(err, needle2)), "message: %s", err);
    free(b.p);
    spec_free(s);
    test_end();
}

static void test_builder_valid(void)
{
    struct spec s;
    struct buf b = {0};
    char err[512];
    test_begin("builder_files_are_valid");
    small_spec(&s);
    emit(&s, &b);
    CHECK_MSG(try_file(&b, 0, err, sizeof err) == 0, "%s", err);
    spec_free(&s);
    llama_spec(&s);
    emit(&s, &b);
    CHECK_MSG(try_file(&b, 1, err, sizeof err) == 0, "%s", err);
    spec_free(&s);
    free(b.p);
    test_end();
}

static void test_header_errors(void)
{
    struct spec s;
    uint64_t big = 1ull << 62;

    small_spec(&s); s.magic = 0x46554746u;
    refused("refuses_bad_magic", &s, 0, "not a GGUF file", NULL);
    small_spec(&s); s.version = 1;
    refused("refuses_version_1", &s, 0, "GGUF version 1 is not supported", NULL);
    small_spec(&s); s.version = 4;
    refused("refuses_version_4", &s, 0, "GGUF version 4 is not supported", NULL);
    small_spec(&s); s.version = 0x03000000u;
    refused("refuses_big_endian", &s, 0, "big-endian", NULL);
    small_spec(&s); s.n_tensors = (int64_t)big;
    refused("refuses_huge_tensor_count", &s, 0, "tensors", "more than");
    small_spec(&s); s.n_kv = (int64_t)big;
    refused("refuses_huge_kv_count", &s, 0, "metadata keys", "more than");

    /* a key whose length runs past the end */
    spec_init(&s); /* cut inside a 47-byte key, with enough bytes left for the counts */
    kv_str(&s, "general.a_long_key_that_the_file_cuts_in_half", "v");
    spec_tensor(&s, "a", 0, 1, 8, 1);
    s.cut = 24 + 8 + 30;
    refused("refuses_truncated_key", &s, 0, "metadata entry 0", "truncated");
    small_spec(&s);
    spec_kv(&s, "k", GGUF_TYPE_STRING);
    put_u64(&s.vals[1], 1000000);
    put(&s.vals[1], "abc", 3);
    refused("refuses_string_past_eof", &s, 0, "metadata key 'k'", "truncated");
    small_spec(&s);
    spec_kv(&s, "k", GGUF_TYPE_STRING);
    put_u64(&s.vals[1], UINT64_MAX);
    refused("refuses_string_length_2^64", &s, 0, "metadata key 'k'", "truncated");
    small_spec(&s);
    {
        struct buf *v = spec_kv(&s, "arr", GGUF_TYPE_ARRAY);
        put_u32(v, GGUF_TYPE_UINT32);
        put_u64(v, big);
    }
    refused("refuses_huge_array", &s, 0, "metadata key 'arr'", "does not fit");
    small_spec(&s);
    {
        struct buf *v = spec_kv(&s, "arr", GGUF_TYPE_ARRAY);
        put_u32(v, GGUF_TYPE_STRING);
        put_u64(v, big);
    }
    refused("refuses_huge_string_array", &s, 0, "metadata key 'arr'", "does not fit");
    small_spec(&s);
    put_u32(spec_kv(&s, "weird", 13), 0);
    refused("refuses_unknown_value_type", &s, 0, "metadata key 'weird'",
            "unknown value type 13");
    small_spec(&s);
    {
        struct buf *v = spec_kv(&s, "arr", GGUF_TYPE_ARRAY);
        put_u32(v, 77);
        put_u64(v, 1);
    }
    refused("refuses_unknown_array_type", &s, 0, "metadata key 'arr'",
            "unknown value type 77");
    small_spec(&s);
    {
        struct buf *v = spec_kv(&s, "deep", GGUF_TYPE_ARRAY);
        for (int i = 0; i < 12; i++) {
            put_u32(v, GGUF_TYPE_ARRAY);
            put_u64(v, 1);
        }
        put_u32(v, GGUF_TYPE_UINT8);
        put_u64(v, 0);
    }
    refused("refuses_deep_nesting", &s, 0, "metadata key 'deep'", "nested more than");
    small_spec(&s);
    put(spec_kv(&s, "b", GGUF_TYPE_BOOL), "\x02", 1);
    refused("refuses_bool_2", &s, 0, "metadata key 'b'", "bool byte 2");
    small_spec(&s);
    kv_str(&s, "general.name", "again");
    refused("refuses_duplicate_key", &s, 0, "metadata key 'general.name' appears more "
            "than once", NULL);
    small_spec(&s);
    kv_u32(&s, "", 1);
    refused("refuses_empty_key", &s, 0, "metadata entry 1 is empty", NULL);
    small_spec(&s);
    kv_u32(&s, "general.alignment", 48);
    refused("refuses_bad_alignment", &s, 0, "'general.alignment'", "power of two");
    small_spec(&s);
    kv_str(&s, "general.alignment", "32");
    refused("refuses_string_alignment", &s, 0, "'general.alignment' holds a string", NULL);
}

static void test_tensor_info_errors(void)
{
    struct spec s;
    char longname[300];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';

    small_spec(&s); s.t[0].n_dims = 5;
    refused("refuses_5_dims", &s, 0, "tensor 'a'", "5 dimensions");
    small_spec(&s); s.t[0].n_dims = 0;
    refused("refuses_0_dims", &s, 0, "tensor 'a'", "0 dimensions");
    small_spec(&s); s.t[0].dims[1] = 0;
    refused("refuses_zero_dim", &s, 0, "tensor 'a'", "at least 1");
    small_spec(&s); s.t[0].dims[0] = 1ull << 32; s.t[0].dims[1] = 1ull << 32;
    refused("refuses_dims_overflow", &s, 0, "tensor 'a'", "overflows");
    small_spec(&s); s.t[0].dims[0] = 1ull << 40; s.t[0].dims[1] = 1ull << 20;
    refused("refuses_byte_size_past_eof", &s, 0, "tensor 'a'", "past the end");
    small_spec(&s); s.t[0].type = 99;
    refused("refuses_unknown_tensor_type", &s, 0, "tensor 'a'",
            "unknown ggml tensor type 99");
    small_spec(&s); s.t[0].type = 4;
    refused("refuses_retired_tensor_type", &s, 0, "tensor 'a'",
            "unknown ggml tensor type 4");
    small_spec(&s); s.t[0].type = GGML_TYPE_Q8_0;
    refused("refuses_partial_block", &s, 0, "tensor 'a'", "not a multiple of the Q8_0");
    small_spec(&s); s.t[0].offset = 4096;
    refused("refuses_offset_past_eof", &s, 0, "tensor 'a'", "past the end");
    small_spec(&s); s.t[0].offset = INT64_MAX;
    refused("refuses_offset_2^63", &s, 0, "tensor 'a'", NULL);
    small_spec(&s); s.t[0].offset = 8;
    refused("refuses_misaligned_offset", &s, 0, "tensor 'a'",
            "not a multiple of the alignment 32");
    small_spec(&s);
    spec_tensor(&s, "a", 0, 1, 4, 1);
    refused("refuses_duplicate_tensor", &s, 0, "tensor 'a' appears more than once", NULL);
    small_spec(&s);
    spec_tensor(&s, "b", 0, 1, 8, 1)->offset = 32;
    refused("refuses_overlapping_tensors", &s, 0, "'a' and 'b' overlap", NULL);
    small_spec(&s);
    spec_tensor(&s, longname, 0, 1, 8, 1);
    refused("refuses_long_tensor_name", &s, 0, "tensor info 1", "exceeds the limit");
    small_spec(&s); s.n_tensors = 2;
    refused("refuses_missing_tensor_info", &s, 0, "tensor info 1", NULL);
    small_spec(&s); s.cut = 0;
    refused("refuses_empty_file", &s, 0, "too short", NULL);
    {
        struct buf b = {0};
        small_spec(&s);
        emit(&s, &b);
        s.cut = (int64_t)b.n - 1;
        free(b.p);
    }
    refused("refuses_data_short_by_one_byte", &s, 0, "tensor 'a'", "past the end");
}

static void test_model_errors(void)
{
    struct spec s;
    llama_spec(&s); spec_drop_tensor(&s, "blk.0.ffn_up.weight");
    refused("refuses_missing_tensor", &s, 1, "tensor 'blk.0.ffn_up.weight' is missing",
            NULL);
    llama_spec(&s); spec_tensor(&s, "blk.1.ffn_up.weight", 0, 2, 32, 256);
    refused("refuses_extra_tensor", &s, 1, "tensor 'blk.1.ffn_up.weight' is not a "
            "parameter", NULL);
    llama_spec(&s); spec_find(&s, "blk.0.attn_k.weight")->dims[1] = 32;
    refused("refuses_wrong_shape", &s, 1, "tensor 'blk.0.attn_k.weight': GGUF dims "
            "[32, 32]", "[32, 16]");
    llama_spec(&s); spec_find(&s, "blk.0.attn_norm.weight")->n_dims = 2;
    refused("refuses_vector_as_matrix", &s, 1, "tensor 'blk.0.attn_norm.weight'", "[32]");
    llama_spec(&s); spec_find(&s, "blk.0.ffn_down.weight")->type = 12;
    refused("refuses_q4_k_by_name", &s, 1, "tensor 'blk.0.ffn_down.weight' has type Q4_K",
            NULL);
    llama_spec(&s); spec_drop_kv(&s, "general.architecture");
    kv_str(&s, "general.architecture", "qwen2");
    refused("refuses_other_architecture", &s, 1, "\"qwen2\"", NULL);
    llama_spec(&s); spec_drop_kv(&s, "llama.embedding_length");
    refused("refuses_missing_config_key", &s, 1, "'llama.embedding_length' is missing",
            NULL);
    llama_spec(&s); spec_drop_kv(&s, "llama.block_count");
    kv_str(&s, "llama.block_count", "1");
    refused("refuses_string_block_count", &s, 1, "'llama.block_count' holds a string",
            NULL);
    llama_spec(&s); kv_u32(&s, "llama.expert_count", 8);
    refused("refuses_mixture_of_experts", &s, 1, "mixture-of-experts", NULL);
    llama_spec(&s); kv_str(&s, "llama.rope.scaling.type", "yarn");
    refused("refuses_rope_scaling", &s, 1, "\"yarn\"", NULL);
    llama_spec(&s); kv_u32(&s, "llama.rope.dimension_count", 8);
    refused("refuses_partial_rope", &s, 1, "llama.rope.dimension_count 8", NULL);
    llama_spec(&s); spec_tensor(&s, "rope_freqs.weight", 0, 1, 8, 1);
    refused("refuses_rope_freqs", &s, 1, "'rope_freqs.weight'", NULL);
    llama_spec(&s); spec_drop_kv(&s, "llama.attention.head_count_kv");
    kv_u32(&s, "llama.attention.head_count_kv", 3);
    refused("refuses_bad_kv_heads", &s, 1, "n_kv_heads 3", NULL);
    llama_spec(&s); spec_drop_kv(&s, "llama.vocab_size");
    kv_u32(&s, "llama.vocab_size", 17);
    refused("refuses_vocab_mismatch", &s, 1, "GGUF dims [32, 16]", "[32, 17]");
}

/* Every prefix of a valid file is refused; the message names the file. */
static void test_truncations(void)
{
    struct spec s;
    struct buf b = {0};
    char err[1024];
    int accepted = 0, unnamed = 0, tried = 0;
    test_begin("refuses_every_truncation");
    llama_spec(&s);
    size_t header = emit(&s, &b), full = b.n;
    /* every cut in the header and the first bytes of data, then every 997th */
    for (size_t cut = 0; cut < full; cut += cut < header + 64 ? 1 : 997) {
        b.n = cut;
        tried++;
        if (try_file(&b, 0, err, sizeof err) == 0)
            accepted++;
        else if (strncmp(err, tmp_path, strlen(tmp_path)) != 0)
            unnamed++;
    }
    CHECK_MSG(accepted == 0, "%d of %d truncated files accepted", accepted, tried);
    CHECK_MSG(unnamed == 0, "%d messages do not name the file", unnamed);
    free(b.p);
    spec_free(&s);
    test_end();
}

/* Random byte changes in the header and tensor infos: each file is refused
 * with a message naming it, or opens and loads (or is refused) cleanly. */
static void test_mutations(void)
{
    struct spec s;
    struct buf b = {0};
    char err[1024];
    int opened = 0, unnamed = 0, n = 400;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    test_begin("survives_random_header_mutations");
    llama_spec(&s);
    const size_t header = emit(&s, &b); /* the key-values and tensor infos */
    unsigned char *orig = malloc(b.n);
    memcpy(orig, b.p, b.n);
    for (int i = 0; i < n; i++) {
        memcpy(b.p, orig, b.n);
        for (int k = 0; k < 1 + i % 3; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            b.p[(rng >> 8) % header] = (unsigned char)rng;
        }
        if (try_file(&b, 1, err, sizeof err) == 0)
            opened++;
        else if (strncmp(err, tmp_path, strlen(tmp_path)) != 0)
            unnamed++;
    }
    CHECK_MSG(unnamed == 0, "%d messages do not name the file", unnamed);
    printf("     %d of %d mutated files still loaded\n", opened, n);
    free(orig);
    free(b.p);
    spec_free(&s);
    test_end();
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    char err[512];
    struct st_file *exp = st_open(FIX "/expected.safetensors", err, sizeof err);
    int T = 0;
    int32_t *tok = exp ? read_tokens(exp, &T) : NULL;
    if (!exp || !tok) {
        test_begin("fixtures_present");
        CHECK_MSG(0, "%s", exp ? "tokens missing from expected.safetensors" : err);
        test_end();
        st_close(exp);
        return test_finish();
    }
    test_f32_matches_safetensors(exp, tok, T);
    test_metadata();
    static const char *const a_deq[] = {"blk.1.attn_k.weight", "output.weight"};
    static const char *const b_deq[] = {"blk.0.ffn_down.weight", "token_embd.weight"};
    static const char *const stems[] = {"llama_f16", "llama_bf16", "llama_q8_0",
                                        "llama_q4_0", "llama_q4_1"};
    static const char *const types[][2] = {{"F16", "F16"}, {"BF16", "BF16"},
                                           {"Q8_0", "Q8_0"}, {"Q4_0", "Q4_0"},
                                           {"Q4_1", "Q4_1"}};
    static const char *const b_types[] = {"Q6_K", "Q8_0"};
    test_variant(exp, tok, T, "llama_f32", NULL, NULL, 0);
    for (int i = 0; i < 5; i++)
        test_variant(exp, tok, T, stems[i], a_deq, types[i], 2);
    test_variant(exp, tok, T, "tied_q6_k", b_deq, b_types, 2);
    test_tied_q6k_config();
    free(tok);
    st_close(exp);

    int fd;
    snprintf(tmp_path, sizeof tmp_path, "/tmp/owlore-gguf-XXXXXX.gguf");
    if ((fd = mkstemps(tmp_path, 5)) < 0) {
        test_begin("temp_file");
        CHECK_MSG(0, "cannot create %s", tmp_path);
        test_end();
        return test_finish();
    }
    close(fd);
    test_builder_valid();
    test_header_errors();
    test_tensor_info_errors();
    test_model_errors();
    test_truncations();
    test_mutations();
    unlink(tmp_path);
    return test_finish();
}
