/*
 * test_safetensors.c: the safetensors reader/writer and the Hugging Face
 * directory loader.
 *
 * Round trips (F32 exact, BF16 rounded to nearest even), every F16 bit
 * pattern against an independent ldexp formula, then a battery of broken
 * files and directories made in a temporary folder: each must be refused
 * with a message naming the file and, where there is one, the tensor. The
 * loader cases use a tiny config (D 8, F 16, 1 layer, 2 heads, 1 KV head,
 * V 10) and a host-memory backend that only allocates.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bf16.h"
#include "load_hf.h"
#include "safetensors.h"
#include "test.h"

static char tmpdir[64];
static char err[2048];

/* ---- helpers ---- */

static void *host_alloc(size_t n) { return calloc(1, n); }

static const struct backend host = {.name = "host", .alloc = host_alloc, .free = free};

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        printf("cannot write %s\n", path);
        exit(2);
    }
}

static void write_text(const char *path, const char *s)
{
    write_bytes(path, s, strlen(s));
}

/* The whole file at path (malloc'd), its size in *n. */
static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p;
    long len;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || !(p = malloc((size_t)len + 1)) ||
        fread(p, 1, (size_t)len, f) != (size_t)len) {
        printf("cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* A safetensors file with a literal header and data bytes. */
static void write_raw(const char *path, const char *header, const void *data,
                      size_t n)
{
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + n + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    if (n)
        memcpy(buf + 8 + h, data, n);
    write_bytes(path, buf, 8 + h + n);
    free(buf);
}

/* err names the file and every non-NULL word. */
static void check_err(const char *file, int line, const char *path, const char *w1,
                      const char *w2)
{
    const char *need[3] = {path, w1, w2};
    for (int i = 0; i < 3; i++)
        if (need[i] && !strstr(err, need[i]))
            test_fail(file, line, "message lacks \"%s\": %s", need[i], err);
}
#define CHECK_ERR(path, w1, w2) check_err(__FILE__, __LINE__, path, w1, w2)

/* st_open(path) must fail with a message naming path, w1 and w2. */
static void expect_refused(const char *path, const char *w1, const char *w2)
{
    err[0] = '\0';
    struct st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f == NULL, "%s was accepted", path);
    st_close(f);
    CHECK_ERR(path, w1, w2);
}

static float value_at(size_t i, int salt)
{
    return (float)sin(0.37 * (double)i + salt) * (1.0f + (float)(i % 7));
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* ---- conversions ---- */

static void test_f16(void)
{
    test_begin("f16_to_f32 every bit pattern");
    for (uint32_t h = 0; h < 65536; h++) {
        float got = st_f16_to_f32((uint16_t)h);
        uint32_t e = h >> 10 & 0x1f, mant = h & 0x3ff;
        double sign = (h & 0x8000) ? -1.0 : 1.0, want;
        if (e == 31 && mant) {
            CHECK_MSG(isnan(got), "0x%04x -> %g, expected NaN", h, (double)got);
            continue;
        }
        if (e == 31)
            want = sign * INFINITY;
        else if (e == 0)
            want = sign * ldexp(mant, -24);
        else
            want = sign * ldexp(1024 + mant, (int)e - 25);
        if (!(got == want && !signbit(got) == !signbit(want))) {
            CHECK_MSG(0, "0x%04x -> %.10g, expected %.10g", h, (double)got, want);
            break;
        }
    }
    CHECK(st_f16_to_f32(0x3c00) == 1.0f);
    CHECK(st_f16_to_f32(0xc000) == -2.0f);
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(st_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(st_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(st_f16_to_f32(0x0400) == 0x1p-14f);
    CHECK(signbit(st_f16_to_f32(0x8000)) && st_f16_to_f32(0x8000) == 0.0f);
    CHECK(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    test_end();
}

/* ---- writer and reader ---- */

static void test_round_trip(void)
{
    test_begin("st_write F32/BF16 and read back");
    const char *path = tmp_path("rt.safetensors");
    float a[12], b[5] = {1.0f, 1.0f + 0x1p-8f, -2.75f, 3.14159265f, 1e-3f}, c = 42.5f;
    for (int i = 0; i < 12; i++)
        a[i] = value_at((size_t)i, 1);
    struct st_write_tensor t[4] = {
        {.name = "a", .ndim = 2, .shape = {3, 4}, .data = a},
        {.name = "b", .ndim = 1, .shape = {5}, .data = b, .dtype = ST_BF16},
        {.name = "scalar", .ndim = 0, .data = &c},
        {.name = "empty", .ndim = 2, .shape = {0, 3}},
    };
    struct st_kv meta[2] = {{"format", "pt"}, {"note", "round trip"}};
    write_text(path, "an older file");
    CHECK_MSG(st_write(path, t, 4, meta, 2, err, sizeof err) == 0, "%s", err);
    CHECK(access(tmp_path("rt.safetensors.tmp"), F_OK) != 0);

    size_t n;
    unsigned char *raw = read_bytes(path, &n);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | raw[i];
    CHECK(hlen % 8 == 0);
    CHECK(n == 8 + hlen + 12 * 4 + 5 * 2 + 4);
    CHECK(raw[8] == '{' && raw[8 + hlen - 1] != '\0');
    free(raw);

    struct st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        CHECK(st_count(f) == 4);
        CHECK(strcmp(st_path(f), path) == 0);
        CHECK(st_metadata(f, "format") && strcmp(st_metadata(f, "format"), "pt") == 0);
        CHECK(st_metadata(f, "note") && strcmp(st_metadata(f, "note"), "round trip") == 0);
        CHECK(st_metadata(f, "missing") == NULL);
        CHECK(st_find(f, "nope") == NULL);
        for (int i = 1; i < st_count(f); i++)
            CHECK(strcmp(st_tensor_at(f, i - 1)->name, st_tensor_at(f, i)->name) < 0);

        const struct st_tensor *ta = st_find(f, "a");
        float ra[12], rb[5], rc;
        CHECK(ta && ta->dtype == ST_F32 && strcmp(ta->dtype_name, "F32") == 0);
        CHECK(ta && ta->ndim == 2 && ta->shape[0] == 3 && ta->shape[1] == 4 &&
              ta->numel == 12);
        CHECK(ta && st_read_f32(f, ta, ra, 12, err, sizeof err) == 0);
        CHECK(memcmp(ra, a, sizeof a) == 0);

        const struct st_tensor *tb = st_find(f, "b");
        CHECK(tb && tb->dtype == ST_BF16 && tb->numel == 5);
        CHECK(tb && st_read_f32(f, tb, rb, 5, err, sizeof err) == 0);
        for (int i = 0; i < 5; i++) {
            CHECK(rb[i] == bf16_to_f32(bf16_from_f32(b[i])));
            CHECK_NEAR(rb[i], b[i], 1.0 / 256);
        }
        CHECK(rb[0] == 1.0f && rb[1] == 1.0f && rb[2] == -2.75f);

        const struct st_tensor *ts = st_find(f, "scalar");
        CHECK(ts && ts->ndim == 0 && ts->numel == 1);
        CHECK(ts && st_read_f32(f, ts, &rc, 1, err, sizeof err) == 0 && rc == 42.5f);

        const struct st_tensor *te = st_find(f, "empty");
        CHECK(te && te->numel == 0 && te->begin == te->end);
        CHECK(te && st_read_f32(f, te, NULL, 0, err, sizeof err) == 0);

        CHECK(ta && st_read_f32(f, ta, ra, 11, err, sizeof err) < 0);
        CHECK_ERR(path, "'a'", "11");
        st_close(f);
    }
    test_end();
}

static void test_read_types(void)
{
    test_begin("F16, I32, I64 and unconvertible dtypes");
    const char *path = tmp_path("types.safetensors");
    unsigned char data[64] = {0};
    uint16_t h[4] = {0x3c00, 0x0001, 0xfc00, 0xb800}; /* 1, 2^-24, -inf, -0.5 */
    int32_t i32[3] = {-7, 0, 2147483647};
    int64_t i64[2] = {-5, 1000000};
    int64_t big = 4294967296LL;
    memcpy(data, h, 8);
    memcpy(data + 8, i32, 12);
    memcpy(data + 20, i64, 16);
    memcpy(data + 36, &big, 8);
    data[44] = 200;
    write_raw(path,
              "{\"__metadata__\":{\"format\":\"pt\"},"
              "\"h\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},"
              "\"i\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[8,20]},"
              "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[20,36]},"
              "\"big\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[36,44]},"
              "\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[44,45]},"
              "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[45,45]}}    ",
              data, 45);
    struct st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        float hf[4];
        int32_t ri[3], rl[2], rbig;
        CHECK(st_read_f32(f, st_find(f, "h"), hf, 4, err, sizeof err) == 0);
        CHECK(hf[0] == 1.0f && hf[1] == 0x1p-24f && isinf(hf[2]) && hf[2] < 0 &&
              hf[3] == -0.5f);
        CHECK(st_read_i32(f, st_find(f, "i"), ri, 3, err, sizeof err) == 0);
        CHECK(ri[0] == -7 && ri[1] == 0 && ri[2] == 2147483647);
        CHECK(st_read_i32(f, st_find(f, "l"), rl, 2, err, sizeof err) == 0);
        CHECK(rl[0] == -5 && rl[1] == 1000000);
        CHECK(st_read_i32(f, st_find(f, "big"), &rbig, 1, err, sizeof err) < 0);
        CHECK_ERR(path, "'big'", "4294967296");
        const struct st_tensor *u = st_find(f, "u");
        CHECK(u && u->dtype == ST_OTHER && strcmp(u->dtype_name, "U8") == 0);
        CHECK(st_read_f32(f, u, hf, 1, err, sizeof err) < 0);
        CHECK_ERR(path, "'u'", "U8");
        CHECK(st_read_i32(f, u, ri, 1, err, sizeof err) < 0);
        CHECK_ERR(path, "'u'", "U8");
        CHECK(st_read_f32(f, st_find(f, "i"), hf, 3, err, sizeof err) < 0);
        CHECK_ERR(path, "'i'", "I32");
        CHECK(st_read_i32(f, st_find(f, "h"), ri, 4, err, sizeof err) < 0);
        CHECK_ERR(path, "'h'", "F16");
        st_close(f);
    }
    test_end();
}

static void test_write_errors(void)
{
    test_begin("st_write refuses bad input and survives ENOSPC");
    float x[4] = {1, 2, 3, 4};
    const char *path = tmp_path("w.safetensors");
    struct st_write_tensor ok = {.name = "x", .ndim = 1, .shape = {4}, .data = x};
    struct st_write_tensor two[2] = {ok, ok};
    CHECK(st_write(path, two, 2, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "'x'", "repeated");
    struct st_write_tensor bad = ok;
    bad.name = "__metadata__";
    CHECK(st_write(path, &bad, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "__metadata__", NULL);
    bad = ok;
    bad.shape[0] = -4;
    CHECK(st_write(path, &bad, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "'x'", "-4");
    bad = ok;
    bad.dtype = ST_F16;
    CHECK(st_write(path, &bad, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "'x'", "F32 or BF16");
    bad = ok;
    bad.data = NULL;
    CHECK(st_write(path, &bad, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "'x'", "NULL");
    struct st_kv dup[2] = {{"k", "1"}, {"k", "2"}};
    CHECK(st_write(path, &ok, 1, dup, 2, err, sizeof err) < 0);
    CHECK_ERR(path, "metadata", NULL);
    const char *nodir = tmp_path("no/such/dir/w.safetensors");
    CHECK(st_write(nodir, &ok, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(nodir, "No such file", NULL);
    CHECK(access(path, F_OK) != 0);

    /* ENOSPC: <path>.tmp is a link to /dev/full; the old file must survive */
    CHECK_MSG(st_write(path, &ok, 1, NULL, 0, err, sizeof err) == 0, "%s", err);
    size_t n0, n1;
    unsigned char *before = read_bytes(path, &n0);
    CHECK(symlink("/dev/full", tmp_path("w.safetensors.tmp")) == 0);
    x[0] = 99;
    CHECK(st_write(path, &ok, 1, NULL, 0, err, sizeof err) < 0);
    CHECK_ERR(path, "No space left", NULL);
    unsigned char *after = read_bytes(path, &n1);
    CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
    CHECK(access(tmp_path("w.safetensors.tmp"), F_OK) != 0);
    free(before);
    free(after);
    test_end();
}

/* ---- the bad-input battery ---- */

static void test_bad_files(void)
{
    test_begin("broken files are refused, naming file and tensor");
    const char *good = tmp_path("good.safetensors");
    float a[6] = {1, 2, 3, 4, 5, 6}, b[4] = {7, 8, 9, 10};
    struct st_write_tensor t[2] = {
        {.name = "alpha", .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "beta", .ndim = 1, .shape = {4}, .data = b},
    };
    CHECK_MSG(st_write(good, t, 2, NULL, 0, err, sizeof err) == 0, "%s", err);
    size_t n;
    unsigned char *raw = read_bytes(good, &n);
    const char *p;

    p = tmp_path("truncated.safetensors");
    write_bytes(p, raw, n - 3);
    expect_refused(p, "'beta'", "out of range");

    p = tmp_path("tiny.safetensors");
    write_bytes(p, raw, 5);
    expect_refused(p, "too short", NULL);

    p = tmp_path("hlen.safetensors");
    unsigned char *copy = malloc(n);
    memcpy(copy, raw, n);
    for (int i = 0; i < 8; i++)
        copy[i] = (unsigned char)((uint64_t)n >> (8 * i));
    write_bytes(p, copy, n);
    expect_refused(p, "header length", NULL);
    free(copy);

    /* a 200 MB sparse file whose header claims 150 MB */
    p = tmp_path("huge.safetensors");
    uint64_t huge = 150u << 20;
    unsigned char hb[8];
    for (int i = 0; i < 8; i++)
        hb[i] = (unsigned char)(huge >> (8 * i));
    write_bytes(p, hb, 8);
    CHECK(truncate(p, 200 << 20) == 0);
    expect_refused(p, "limit", NULL);
    unlink(p);

    p = tmp_path("notjson.safetensors");
    write_raw(p, "{\"alpha\": {dtype", raw, 0);
    expect_refused(p, "not valid JSON", NULL);

    p = tmp_path("array.safetensors");
    write_raw(p, "[1, 2, 3]", NULL, 0);
    expect_refused(p, "not a JSON object", NULL);

    float d[4] = {0};
    p = tmp_path("range.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 8);
    expect_refused(p, "'w'", "out of range");

    p = tmp_path("backwards.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", d, 8);
    expect_refused(p, "'w'", "end before");

    p = tmp_path("length.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 16);
    expect_refused(p, "'w'", "needs 3 x 4 bytes");

    p = tmp_path("offsets3.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", d, 16);
    expect_refused(p, "'w'", "data_offsets");

    p = tmp_path("dtype.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_refused(p, "'w'", "F33");

    p = tmp_path("negshape.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d, 8);
    expect_refused(p, "'w'", "shape");

    p = tmp_path("realshape.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", d, 8);
    expect_refused(p, "'w'", "shape");

    p = tmp_path("strshape.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", d, 8);
    expect_refused(p, "'w'", "shape");

    p = tmp_path("overflow.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                 "\"data_offsets\":[0,0]}}", d, 8);
    expect_refused(p, "'w'", "too large");

    p = tmp_path("ndim.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,4]}}", d, 8);
    expect_refused(p, "'w'", "dimensions");

    p = tmp_path("overlap.safetensors");
    write_raw(p, "{\"w1\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"w2\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 16);
    expect_refused(p, "'w1'", "'w2'");

    p = tmp_path("inside.safetensors");
    write_raw(p, "{\"w1\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                 "\"w2\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]}}", d, 16);
    expect_refused(p, "'w2'", "overlap");

    p = tmp_path("dupkey.safetensors");
    write_raw(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8);
    expect_refused(p, "duplicate", NULL);

    p = tmp_path("meta.safetensors");
    write_raw(p, "{\"__metadata__\":{\"format\":1},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8);
    expect_refused(p, "__metadata__", "format");

    p = tmp_path("entry.safetensors");
    write_raw(p, "{\"w\":[1,2]}", d, 8);
    expect_refused(p, "'w'", "object");

    p = tmp_path("missing.safetensors");
    expect_refused(p, "cannot open", NULL);

    /* acceptable oddities: empty tensors sharing an offset, zero-size data */
    p = tmp_path("empties.safetensors");
    write_raw(p, "{\"e1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                 "\"e2\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                 "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ", d, 8);
    struct st_file *f = st_open(p, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    st_close(f);
    free(raw);
    test_end();
}

/* ---- Hugging Face directories ---- */

static const char *tiny_config(int tied)
{
    static char buf[1024];
    snprintf(buf, sizeof buf,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\",\n"
             " \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1,\n"
             " \"num_attention_heads\": 2, \"num_key_value_heads\": 1,\n"
             " \"vocab_size\": 10, \"max_position_embeddings\": 64,\n"
             " \"rms_norm_eps\": 1e-05, \"rope_theta\": 100000.0, \"rope_scaling\": null,\n"
             " \"hidden_act\": \"silu\", \"tie_word_embeddings\": %s,\n"
             " \"bos_token_id\": 1, \"eos_token_id\": [2, 3], \"torch_dtype\": \"bfloat16\"}\n",
             tied ? "true" : "false");
    return buf;
}

/* A source model with deterministic values and its tensors ready for
 * st_write (embedding as BF16, everything else F32). */
struct src {
    struct model m;
    int n;
    struct named_tensor nt[16];
    struct st_write_tensor wt[18];
};

static int make_src(struct src *s, const char *config_path)
{
    struct model_config c;
    memset(s, 0, sizeof *s);
    if (hf_config_parse(config_path, &c, err, sizeof err) < 0 ||
        model_init(&s->m, &c, &host) < 0)
        return -1;
    for (size_t i = 0; i < s->m.n_params; i++)
        s->m.mem[i] = value_at(i, 3);
    s->n = model_tensor_count(&c);
    for (int i = 0; i < s->n; i++) {
        struct named_tensor *p = &s->nt[i];
        model_tensor_at(&c, &s->m.w, i, p);
        s->wt[i] = (struct st_write_tensor){
            .name = p->name, .ndim = p->cols ? 2 : 1, .shape = {p->rows, p->cols},
            .data = p->data, .dtype = i == 0 ? ST_BF16 : ST_F32};
    }
    return 0;
}

static int find_wt(struct src *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->wt[i].name, name) == 0)
            return i;
    return -1;
}

/* A model directory: config + the given tensors in model.safetensors. */
static const char *model_dir(const char *name, int tied, struct st_write_tensor *t, int n)
{
    const char *dir = tmp_path(name);
    char path[600];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, tiny_config(tied));
    if (t) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (st_write(path, t, n, NULL, 0, err, sizeof err) < 0)
            printf("st_write: %s\n", err);
    }
    return dir;
}

/* Every parameter of got equals src (the embedding rounded to BF16). */
static void check_same(const struct src *s, const struct model *got)
{
    CHECK(got->n_params == s->m.n_params);
    if (got->n_params != s->m.n_params || !got->mem)
        return;
    size_t embed = (size_t)s->m.cfg.vocab_size * s->m.cfg.dim, bad = 0;
    for (size_t i = 0; i < got->n_params; i++) {
        float want = i < embed ? bf16_to_f32(bf16_from_f32(s->m.mem[i])) : s->m.mem[i];
        bad += got->mem[i] != want;
    }
    CHECK_MSG(bad == 0, "%zu of %zu parameters differ", bad, got->n_params);
}

static void test_hf_config(void)
{
    test_begin("hf_config_parse");
    const char *p = tmp_path("config.json");
    struct model_config c;
    write_text(p, tiny_config(0));
    CHECK_MSG(hf_config_parse(p, &c, err, sizeof err) == 0, "%s", err);
    CHECK(c.dim == 8 && c.hidden_dim == 16 && c.n_layers == 1 && c.n_heads == 2 &&
          c.n_kv_heads == 1 && c.head_dim == 4 && c.vocab_size == 10 &&
          c.max_seq_len == 64 && c.tied_embeddings == 0);
    CHECK_NEAR(c.norm_eps, 1e-5, 1e-9);
    CHECK(c.rope_theta == 100000.0f);
    CHECK(c.bos_id == 1 && c.eos_id == 2);

    write_text(p, "{\"model_type\": \"mistral\", \"hidden_size\": 12,"
                  " \"intermediate_size\": 16, \"num_hidden_layers\": 2,"
                  " \"num_attention_heads\": 3, \"vocab_size\": 10,"
                  " \"head_dim\": 8, \"sliding_window\": 32, \"bos_token_id\": null,"
                  " \"max_position_embeddings\": 128, \"rope_parameters\":"
                  " {\"rope_type\": \"default\", \"rope_theta\": 500000.0}}");
    CHECK_MSG(hf_config_parse(p, &c, err, sizeof err) == 0, "%s", err);
    CHECK(c.n_kv_heads == 3 && c.head_dim == 8 && c.max_seq_len == 32);
    CHECK(c.bos_id == -1 && c.eos_id == -1 && c.rope_theta == 500000.0f);
    CHECK_NEAR(c.norm_eps, 1e-6, 1e-10);

    static const struct {
        const char *json, *word;
    } bad[] = {
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10,"
         " \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0}}", "llama3"},
        {"{\"model_type\": \"gpt2\", \"hidden_size\": 8}", "gpt2"},
        {"{\"model_type\": \"llama\", \"intermediate_size\": 16}", "hidden_size"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 3, \"vocab_size\": 10}",
         "head_dim"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10,"
         " \"num_key_value_heads\": 3}", "n_kv_heads"},
        {"{\"model_type\": \"llama\", \"hidden_size\": -8}", "hidden_size"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10,"
         " \"attention_bias\": true}", "attention_bias"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10,"
         " \"hidden_act\": \"gelu\"}", "hidden_act"},
        {"{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16,"
         " \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"vocab_size\": 10,"
         " \"eos_token_id\": \"2\"}", "eos_token_id"},
        {"[1]", "object"},
        {"{\"model_type\": ", "line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(p, bad[i].json);
        err[0] = '\0';
        CHECK_MSG(hf_config_parse(p, &c, err, sizeof err) < 0, "accepted %s", bad[i].json);
        CHECK_ERR(p, bad[i].word, NULL);
    }
    test_end();
}

static void test_hf_load(void)
{
    test_begin("load_hf_dir round trip (untied, tied, inv_freq, sharded)");
    struct src s;
    struct model m = {0};
    const char *dir = model_dir("hf_ok", 0, NULL, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_MSG(make_src(&s, path) == 0, "%s", err);
    CHECK(s.n == 12);
    float inv_freq[2] = {1.0f, 0.01f};
    s.wt[s.n] = (struct st_write_tensor){
        .name = "model.layers.0.self_attn.rotary_emb.inv_freq", .ndim = 1,
        .shape = {2}, .data = inv_freq};
    model_dir("hf_ok", 0, s.wt, s.n + 1);
    CHECK_MSG(load_hf_dir(dir, &host, &m, err, sizeof err) == 0, "%s", err);
    check_same(&s, &m);
    CHECK(m.cfg.rope_theta == 100000.0f && m.w.lm_head != m.w.embed);
    model_free(&m);

    /* sharded: first five tensors in one shard, the rest in another */
    const char *sdir = model_dir("hf_sharded", 0, NULL, 0);
    json_t *map = json_object();
    for (int i = 0; i < s.n; i++)
        json_object_set_new(map, s.wt[i].name,
                            json_string(i < 5 ? "model-00001-of-00002.safetensors"
                                              : "model-00002-of-00002.safetensors"));
    json_t *index = json_pack("{s:{s:i},s:o}", "metadata", "total_size", 1234,
                              "weight_map", map);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", sdir);
    json_dump_file(index, path, JSON_INDENT(2));
    json_decref(index);
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", sdir);
    CHECK(st_write(path, s.wt, 5, NULL, 0, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", sdir);
    CHECK(st_write(path, s.wt + 5, s.n - 5, NULL, 0, err, sizeof err) == 0);
    CHECK_MSG(load_hf_dir(sdir, &host, &m, err, sizeof err) == 0, "%s", err);
    check_same(&s, &m);
    model_free(&m);
    model_free(&s.m);

    /* tied: no lm_head.weight in the file; the head is the embedding */
    dir = model_dir("hf_tied", 1, NULL, 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_MSG(make_src(&s, path) == 0, "%s", err);
    CHECK(s.n == 11 && find_wt(&s, "lm_head.weight") < 0);
    model_dir("hf_tied", 1, s.wt, s.n);
    CHECK_MSG(load_hf_dir(dir, &host, &m, err, sizeof err) == 0, "%s", err);
    check_same(&s, &m);
    CHECK(m.cfg.tied_embeddings && m.w.lm_head == m.w.embed);
    model_free(&m);
    model_free(&s.m);
    test_end();
}

/* load_hf_dir(dir) must fail naming file (in dir), w1 and w2, with m freed. */
static void expect_load_refused(const char *dir, const char *file, const char *w1,
                                const char *w2)
{
    struct model m;
    char path[600];
    memset(&m, 0xff, sizeof m);
    err[0] = '\0';
    snprintf(path, sizeof path, "%s%s%s", dir, *file ? "/" : "", file);
    CHECK_MSG(load_hf_dir(dir, &host, &m, err, sizeof err) < 0, "%s was accepted", dir);
    CHECK_ERR(path, w1, w2);
    CHECK(m.mem == NULL && m.w.blocks == NULL);
}

static void test_hf_bad(void)
{
    test_begin("load_hf_dir refuses mismatched directories");
    struct src s;
    char path[600];
    float zeros[256] = {0};
    const char *dir = model_dir("hf_bad_src", 0, NULL, 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_MSG(make_src(&s, path) == 0, "%s", err);
    int k = find_wt(&s, "model.layers.0.self_attn.k_proj.weight");
    int nrm = find_wt(&s, "model.norm.weight");
    CHECK(k >= 0 && nrm >= 0);
    if (k < 0 || nrm < 0) {
        model_free(&s.m);
        test_end();
        return;
    }

    /* shape mismatch: k_proj written [8, 8], the config implies [4, 8] */
    struct st_write_tensor keep = s.wt[k];
    s.wt[k].shape[0] = 8;
    s.wt[k].data = zeros;
    dir = model_dir("hf_shape", 0, s.wt, s.n);
    expect_load_refused(dir, "model.safetensors", "'model.layers.0.self_attn.k_proj.weight'",
                        "[8, 8] in the file, but config.json implies [4, 8]");
    s.wt[k].ndim = 1;
    s.wt[k].shape[0] = 32;
    dir = model_dir("hf_rank", 0, s.wt, s.n);
    expect_load_refused(dir, "model.safetensors", "k_proj", "[32]");
    s.wt[k] = keep;

    /* missing tensor: model.norm.weight left out */
    struct st_write_tensor t[18];
    memcpy(t, s.wt, sizeof t);
    t[nrm] = t[s.n - 1];
    dir = model_dir("hf_missing", 0, t, s.n - 1);
    expect_load_refused(dir, "model.safetensors", "'model.norm.weight'", "missing");

    /* an extra tensor the model does not use */
    memcpy(t, s.wt, sizeof t);
    t[s.n] = (struct st_write_tensor){.name = "model.layers.1.mlp.up_proj.weight",
                                      .ndim = 2, .shape = {16, 8}, .data = zeros};
    dir = model_dir("hf_extra", 0, t, s.n + 1);
    expect_load_refused(dir, "model.safetensors", "'model.layers.1.mlp.up_proj.weight'",
                        "not a parameter");

    /* lm_head.weight in a tied model */
    dir = model_dir("hf_tied_head", 1, s.wt, s.n);
    expect_load_refused(dir, "model.safetensors", "lm_head.weight", "tie_word_embeddings");

    /* an unconvertible dtype for a parameter */
    dir = model_dir("hf_dtype", 0, NULL, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(st_write(path, s.wt, s.n, NULL, 0, err, sizeof err) == 0);
    {
        size_t n;
        unsigned char *raw = read_bytes(path, &n);
        char *hit = strstr((char *)raw + 8, "\"model.norm.weight\":{\"dtype\":\"F32\"");
        CHECK(hit != NULL);
        if (hit)
            memcpy(strstr(hit, "F32"), "I32", 3);
        write_bytes(path, raw, n);
        free(raw);
    }
    expect_load_refused(dir, "model.safetensors", "'model.norm.weight'", "I32");

    /* no weights at all */
    dir = model_dir("hf_empty", 0, NULL, 0);
    expect_load_refused(dir, "", "neither model.safetensors", NULL);

    /* a bad config.json stops before any weights are read */
    dir = model_dir("hf_badcfg", 0, s.wt, s.n);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, "{\"model_type\": \"qwen2\"}");
    expect_load_refused(dir, "config.json", "qwen2", NULL);

    /* sharded indexes: a missing shard, a path outside the directory, a tensor
     * the index places in the wrong shard, a tensor the index lacks */
    static const struct {
        const char *name, *target, *w1, *w2;
        int which;  /* which tensor the bad entry is for */
    } idx[] = {
        {"hf_idx_missing", "model-00009.safetensors", "model-00009.safetensors",
         "No such file", 3},
        {"hf_idx_escape", "../x", "../x", "not a plain file name", 3},
        {"hf_idx_wrong", "b.safetensors", "'model.layers.0.self_attn.q_proj.weight'",
         "a.safetensors", 2},
        {"hf_idx_lacks", NULL, "'model.layers.0.self_attn.q_proj.weight'", "no shard", 2},
    };
    for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
        dir = model_dir(idx[i].name, 0, NULL, 0);
        json_t *map = json_object();
        for (int j = 0; j < s.n; j++) {
            const char *shard = j < 5 ? "a.safetensors" : "b.safetensors";
            if (j == idx[i].which && !idx[i].target)
                continue;
            json_object_set_new(map, s.wt[j].name,
                                json_string(j == idx[i].which ? idx[i].target : shard));
        }
        json_t *index = json_pack("{s:o}", "weight_map", map);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        json_dump_file(index, path, 0);
        json_decref(index);
        snprintf(path, sizeof path, "%s/a.safetensors", dir);
        CHECK(st_write(path, s.wt, 5, NULL, 0, err, sizeof err) == 0);
        snprintf(path, sizeof path, "%s/b.safetensors", dir);
        CHECK(st_write(path, s.wt + 5, s.n - 5, NULL, 0, err, sizeof err) == 0);
        expect_load_refused(dir, "model.safetensors.index.json", idx[i].w1, idx[i].w2);
        if (i == 0)
            CHECK_MSG(strstr(err, s.wt[idx[i].which].name) != NULL, "%s", err);
    }
    model_free(&s.m);
    test_end();
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_safetensors_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("FAIL mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_f16();
    test_round_trip();
    test_read_types();
    test_write_errors();
    test_bad_files();
    test_hf_config();
    test_hf_load();
    test_hf_bad();
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return test_finish();
}
