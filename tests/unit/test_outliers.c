/*
 * test_outliers.c: layer outlier ratios D_l and what feeds them.
 *
 *   - owlore-algorithm.md section 11.6: one linear with |W| = 1 and unit
 *     channel norms except one channel c: D = 100/n iff c > tau * mean(A)
 *     (n = 64, tau = 13: c = 17 -> 1.5625, c = 16 -> 0; strictness at
 *     n = 14, c = 169 where A = tau * mean exactly), invariance to scaling
 *     W, X and to the 1/N normalisation;
 *   - 11.7: the ratio pools all linears, unlike the mean of per-linear ratios;
 *   - SHA-256 known answers, the text loader (documents, windows, held-out
 *     split, error messages);
 *   - the real stories260K model: statistics from batched forward passes
 *     (capacity strides, a partial last batch) against a brute-force
 *     recomputation from a second forward pass (identical sums and counts)
 *     and from single-sequence passes (equal up to rounding);
 *   - outliers_compute's cache: miss, hit with identical ratios, corrupt or
 *     stale entries recomputed and rewritten;
 *   - calibration on another backend (o.device: the CPU's operations behind
 *     a table that says its memory is not the host's, as a GPU's is not):
 *     the same ratios bit for bit, the statistics downloaded; with no room
 *     there, the host's passes and a note saying why.
 */
#include <dirent.h>
#include <stdint.h>
#include <unistd.h>

#include "digest.h"
#include "load.h"
#include "outliers.h"
#include "test.h"
#include "textdata.h"
#include "tokenizer.h"

/* D of one m x n linear with |W| = 1 (alternating signs) and unit norms
 * except channel 17 % n, which has norm c; w_scale and x_scale multiply W
 * and every norm. */
static double one_linear(int m, int n, double c, double tau, float w_scale,
                         double x_scale)
{
    float *w = malloc(sizeof(float) * (size_t)m * n);
    double *x = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < m * n; i++)
        w[i] = (i % 3 ? 1.0f : -1.0f) * w_scale;
    for (int j = 0; j < n; j++)
        x[j] = (j == 17 % n ? c : 1.0) * x_scale;
    const float *ws[1] = {w};
    const double *xs[1] = {x};
    double d = outlier_ratio_pooled(ws, xs, &m, &n, 1, tau);
    free(w);
    free(x);
    return d;
}

static void test_single_channel(void)
{
    test_begin("ratio_single_outlier_channel");
    CHECK(one_linear(8, 64, 17.0, 13.0, 1.0f, 1.0) == 1.5625);
    CHECK(one_linear(8, 64, 16.0, 13.0, 1.0f, 1.0) == 0.0);
    CHECK(one_linear(1, 64, 17.0, 13.0, 1.0f, 1.0) == 1.5625);
    CHECK(one_linear(8, 64, 1.0, 13.0, 1.0f, 1.0) == 0.0); /* all equal: none > mean */
    test_end();

    test_begin("ratio_strict_threshold");
    /* n = 14, c = 169: mean A = (13 + 169) / 14 = 13, so A = 13 * mean */
    CHECK(one_linear(5, 14, 169.0, 13.0, 1.0f, 1.0) == 0.0);
    CHECK(one_linear(5, 14, 170.0, 13.0, 1.0f, 1.0) == 100.0 / 14);
    test_end();
}

/* a deterministic pseudo-random block of 3 linears with heavy channels */
struct block3 {
    float *w[3];
    double *x[3];
    int rows[3], cols[3];
};

static void block3_init(struct block3 *b, float w_scale, double x_scale)
{
    const int r[3] = {24, 40, 16}, c[3] = {32, 32, 56};
    uint64_t s = 12345;
    for (int k = 0; k < 3; k++) {
        b->rows[k] = r[k];
        b->cols[k] = c[k];
        b->w[k] = malloc(sizeof(float) * (size_t)r[k] * c[k]);
        b->x[k] = malloc(sizeof(double) * (size_t)c[k]);
        for (int i = 0; i < r[k] * c[k]; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) * 0x1.0p-53 - 0.5;
            b->w[k][i] = (float)(u * u * u * 40.0) * w_scale;
        }
        for (int j = 0; j < c[k]; j++)
            b->x[k][j] = (j % 7 == 3 ? 9.0 + j : 1.0 + 0.01 * j) * x_scale;
    }
}

static void block3_free(struct block3 *b)
{
    for (int k = 0; k < 3; k++) {
        free(b->w[k]);
        free(b->x[k]);
    }
}

static double block3_ratio(const struct block3 *b, double tau)
{
    return outlier_ratio_pooled((const float *const *)b->w, (const double *const *)b->x,
                                b->rows, b->cols, 3, tau);
}

static void test_invariance(void)
{
    struct block3 base, scaled;
    test_begin("ratio_invariant_to_scaling_w_x_and_1_over_n");
    CHECK(one_linear(8, 64, 17.0, 13.0, 0.375f, 1.0) == 1.5625);
    CHECK(one_linear(8, 64, 17.0, 13.0, 1.0f, 2.5) == 1.5625);
    CHECK(one_linear(8, 64, 16.0, 13.0, 3.0f, 0.125) == 0.0);
    block3_init(&base, 1.0f, 1.0);
    double d = block3_ratio(&base, 5.0);
    CHECK_MSG(d > 0.0 && d < 100.0, "crafted block D = %g", d);
    const float a[3] = {0.25f, 3.0f, 1.5f};
    const double bx[3] = {4.0, 0.1, 1.0 / sqrt(128.0)}; /* the last: 1/N with N = 128 */
    for (int i = 0; i < 3; i++) {
        block3_init(&scaled, a[i], bx[i]);
        double ds = block3_ratio(&scaled, 5.0);
        CHECK_MSG(ds == d, "W x %g, X x %g: D = %.17g, unscaled %.17g", (double)a[i], bx[i],
                  ds, d);
        block3_free(&scaled);
    }
    block3_free(&base);
    test_end();
}

static void test_pooling(void)
{
    /* A: 10x10 ones with one 100; B: 10x30 ones; unit norms; tau 13 */
    float *wa = malloc(sizeof(float) * 100), *wb = malloc(sizeof(float) * 300);
    for (int i = 0; i < 100; i++)
        wa[i] = i == 42 ? 100.0f : 1.0f;
    for (int i = 0; i < 300; i++)
        wb[i] = 1.0f;
    const float *both[2] = {wa, wb};
    int rows[2] = {10, 10}, cols[2] = {10, 30};
    test_begin("ratio_pools_linears_not_mean_of_ratios");
    double da = outlier_ratio_pooled(both, NULL, rows, cols, 1, 13.0);
    double db = outlier_ratio_pooled(both + 1, NULL, rows + 1, cols + 1, 1, 13.0);
    double pooled = outlier_ratio_pooled(both, NULL, rows, cols, 2, 13.0);
    CHECK(da == 1.0 && db == 0.0);
    CHECK_MSG(pooled == 0.25, "pooled D = %g, expected 100 * 1/400", pooled);
    CHECK(pooled != (da + db) / 2);
    /* scale differences between linears: A all 10, B all 1, tau 1.5; the
     * pooled mean is 3.25, so all of A is above 1.5 * mean */
    for (int i = 0; i < 100; i++)
        wa[i] = 10.0f;
    for (int i = 0; i < 300; i++)
        wb[i] = 1.0f;
    double qa = outlier_ratio_pooled(both, NULL, rows, cols, 1, 1.5);
    double qb = outlier_ratio_pooled(both + 1, NULL, rows + 1, cols + 1, 1, 1.5);
    pooled = outlier_ratio_pooled(both, NULL, rows, cols, 2, 1.5);
    CHECK(qa == 0.0 && qb == 0.0);
    CHECK_MSG(pooled == 25.0, "pooled D = %g, expected 25 (all of A)", pooled);
    free(wa);
    free(wb);
    test_end();
}

static void test_digest(void)
{
    unsigned char d[SHA256_BYTES];
    char hex[SHA256_HEX_LEN], err[512];
    struct sha256 h;
    test_begin("sha256_known_answers");
    CHECK(sha256_buffer("abc", 3, d) == 0);
    digest_hex(d, SHA256_BYTES, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    CHECK(sha256_buffer("", 0, d) == 0);
    digest_hex(d, SHA256_BYTES, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    const char *msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(sha256_init(&h) == 0);
    for (size_t i = 0; i < strlen(msg); i += 5)
        CHECK(sha256_update(&h, msg + i, strlen(msg) - i < 5 ? strlen(msg) - i : 5) == 0);
    CHECK(sha256_final(&h, d) == 0);
    digest_hex(d, SHA256_BYTES, hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    /* tinystories_val.txt's SOURCE.md checksum */
    CHECK_MSG(sha256_file(test_shared_path("data/datasets/tinystories/tinystories_val.txt"),
                          d, err, sizeof err) == 0, "%s", err);
    digest_hex(d, SHA256_BYTES, hex);
    CHECK(strcmp(hex, "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6") == 0);
    CHECK(sha256_file("/nonexistent/file", d, err, sizeof err) == -1 &&
          strstr(err, "/nonexistent/file"));
    test_end();
}

static char tmp_dir[] = "/tmp/owlore-test-outliers-XXXXXX";

/* write bytes to <tmp_dir>/name; returns the path (static buffer) */
static const char *write_tmp(const char *name, const char *bytes, size_t n)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(bytes, 1, n, f);
        fclose(f);
    }
    return path;
}

/* BOS + encode(s) appended to ids at *n */
static void encode_doc(const struct tokenizer *tok, const char *s, size_t len, int *ids,
                       long *n)
{
    *n += tokenizer_encode(tok, s, len, 1, ids + *n, (int)len + 2);
}

static void test_textdata(const struct tokenizer *tok)
{
    struct text_windows w, val;
    char err[1024];
    test_begin("textdata_documents_windows_split");
    /* separator mode: the 5 stories of tinystories_sample.txt */
    const char *sample = test_shared_path("data/datasets/tinystories/tinystories_sample.txt");
    CHECK_MSG(text_windows_load(&w, sample, tok, 31, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(w.n_docs == 5 && w.n_tokens == 1809, "%ld documents, %ld tokens", w.n_docs,
              w.n_tokens);
    CHECK(w.n == 1809 / 32 && w.seq_len == 31 && w.ids[0] == tok->bos_id);
    CHECK(w.ids[1] == 403 && w.ids[2] == 407); /* " Once upon" */
    text_windows_free(&w);
    /* blank-line mode, whitespace runs, CRLF, stripping */
    const char text[] = "\n  Once upon a time\r\nthere was.  \n\n \t\r\n\nLily saw a big dog.\n"
                        "\n\n\nh\xc3\xa9llo\n";
    int want[256];
    long n_want = 0;
    encode_doc(tok, "Once upon a time\r\nthere was.", 28, want, &n_want);
    encode_doc(tok, "Lily saw a big dog.", 19, want, &n_want);
    encode_doc(tok, "h\xc3\xa9llo", 6, want, &n_want);
    const char *path = write_tmp("blank.txt", text, sizeof text - 1);
    CHECK_MSG(text_windows_load(&w, path, tok, 3, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(w.n_docs == 3 && w.n_tokens == n_want, "%ld documents, %ld tokens (want 3, %ld)",
              w.n_docs, w.n_tokens, n_want);
    CHECK(w.n == n_want / 4);
    CHECK(w.n > 0 && memcmp(w.ids, want, sizeof(int) * (size_t)w.n * 4) == 0);
    /* held-out validation: the last windows, copied */
    int n = w.n, last = w.ids[(n - 1) * 4 + 3];
    CHECK(text_windows_split(&w, &val, 0.25) == 0);
    CHECK_MSG(val.n == (int)floor(0.25 * n + 0.5) && w.n == n - val.n, "%d -> %d + %d", n,
              w.n, val.n);
    CHECK(val.n > 0 && val.ids[val.n * 4 - 1] == last && val.seq_len == 3);
    text_windows_free(&val);
    CHECK(text_windows_split(&w, &val, 0.0) == 0 && val.n == 0 && val.ids == NULL);
    CHECK(text_windows_split(&w, &val, 1e-9) == 0 && val.n == 1);
    text_windows_free(&val);
    text_windows_free(&w);
    test_end();

    test_begin("textdata_error_messages");
    CHECK(text_windows_load(&w, "/nonexistent/data.txt", tok, 8, err, sizeof err) == -1 &&
          strstr(err, "/nonexistent/data.txt") && strstr(err, "cannot open"));
    path = write_tmp("empty.txt", "", 0);
    CHECK(text_windows_load(&w, path, tok, 8, err, sizeof err) == -1 && strstr(err, path) &&
          strstr(err, "empty"));
    path = write_tmp("space.txt", " \n\n\t\n", 5);
    CHECK(text_windows_load(&w, path, tok, 8, err, sizeof err) == -1 &&
          strstr(err, "only whitespace"));
    const char bad[] = "fine line\nalso fine \xc3\xa9\nbroken \xc3( here\n";
    path = write_tmp("bad.txt", bad, sizeof bad - 1);
    CHECK_MSG(text_windows_load(&w, path, tok, 8, err, sizeof err) == -1 &&
              strstr(err, "line 3, byte 8") && strstr(err, "UTF-8"), "%s", err);
    const char *invalid[4] = {"a\xc0\x80z", "a\xed\xa0\x80z", "a\xf4\x90\x80\x80z", "abc\xe2\x82"};
    for (int i = 0; i < 4; i++) {
        path = write_tmp("bad2.txt", invalid[i], strlen(invalid[i]));
        CHECK_MSG(text_windows_load(&w, path, tok, 1, err, sizeof err) == -1 &&
                  strstr(err, "line 1"), "invalid sequence %d accepted: %s", i, err);
    }
    path = write_tmp("short.txt", "Once upon a time", 16);
    CHECK_MSG(text_windows_load(&w, path, tok, 8, err, sizeof err) == -1 && strstr(err, path) &&
              strstr(err, "fewer than one window"), "%s", err);
    CHECK(text_windows_load(&w, path, tok, 4, err, sizeof err) == 0 && w.n == 1);
    text_windows_free(&w);
    test_end();
}

/* ---- the real model ---- */

#define NSEQ 6
#define SEQ 64
#define BATCH 4

static struct model m;
static int calib[NSEQ * SEQ];

/* Statistics by the library: batches of BATCH (the last one partial). */
static int library_stats(struct channel_stats *st)
{
    struct activations a;
    if (channel_stats_init(st, &m.cfg, m.be) != 0 || activations_init(&a, &m, BATCH, SEQ) != 0)
        return -1;
    for (int s = 0; s < NSEQ; s += BATCH) {
        int b = NSEQ - s < BATCH ? NSEQ - s : BATCH;
        model_forward(&m, &a, calib + s * SEQ, b, SEQ);
        channel_stats_add(st, &m, &a, b, SEQ);
    }
    activations_free(&a, &m);
    return 0;
}

/* Brute force: sums of squares per linear (k) and block, s[k] (L, cols[k]),
 * read straight from the saved activations of forward passes over batches
 * of `batch` sequences. */
static int brute_stats(double *s[LIN_COUNT], const int *cols, int batch)
{
    const struct model_config *c = &m.cfg;
    const int D = c->dim, F = c->hidden_dim, QD = c->n_heads * c->head_dim, L = c->n_layers;
    const size_t cap = (size_t)batch * SEQ;
    struct activations a;
    if (activations_init(&a, &m, batch, SEQ) != 0)
        return -1;
    for (int k = 0; k < LIN_COUNT; k++)
        s[k] = calloc((size_t)L * cols[k], sizeof(double));
    for (int q = 0; q < NSEQ; q += batch) {
        int b = NSEQ - q < batch ? NSEQ - q : batch;
        model_forward(&m, &a, calib + q * SEQ, b, SEQ);
        for (int l = 0; l < L; l++) {
            const float *in[LIN_COUNT] = {
                a.attn_in + l * cap * D, a.attn_in + l * cap * D, a.attn_in + l * cap * D,
                a.attn_out + l * cap * QD, a.ffn_in + l * cap * D, a.ffn_in + l * cap * D,
                a.ffn_h + l * cap * F};
            for (int k = 0; k < LIN_COUNT; k++)
                for (int t = 0; t < b * SEQ; t++)
                    for (int j = 0; j < cols[k]; j++) {
                        double x = in[k][(size_t)t * cols[k] + j];
                        s[k][(size_t)l * cols[k] + j] += x * x;
                    }
        }
    }
    activations_free(&a, &m);
    return 0;
}

/* max relative difference of statistics s from the library's */
static double stats_diff(double *const s[LIN_COUNT], const struct channel_stats *st,
                         const int *cols)
{
    double worst = 0.0;
    for (int k = 0; k < LIN_COUNT; k++)
        for (size_t i = 0; i < (size_t)m.cfg.n_layers * cols[k]; i++)
            worst = fmax(worst, fabs(s[k][i] - st->sumsq[k][i]) / fmax(s[k][i], 1e-30));
    return worst;
}

static double lib_ratios[64];

static void test_real_model(void)
{
    const struct model_config *c = &m.cfg;
    const int L = c->n_layers;
    int rows[LIN_COUNT], cols[LIN_COUNT];
    size_t off[LIN_COUNT];
    double *bs[LIN_COUNT], *single[LIN_COUNT];
    struct channel_stats st;
    const double tau = 13.0;

    test_begin("stories260k_ratios_match_brute_force");
    for (int k = 0; k < LIN_COUNT; k++)
        off[k] = model_linear_offset(c, (enum linear_id)k, &rows[k], &cols[k]);
    CHECK(library_stats(&st) == 0 && brute_stats(bs, cols, BATCH) == 0 &&
          brute_stats(single, cols, 1) == 0);
    CHECK(st.tokens == NSEQ * SEQ);
    CHECK(outlier_ratios(&m, &st, tau, lib_ratios) == 0);
    for (int l = 0; l < L; l++) {
        double sum = 0.0;
        long long numel = 0, count = 0;
        for (int k = 0; k < LIN_COUNT; k++) {
            const float *W = m.w.blocks[l] + off[k];
            for (int i = 0; i < rows[k]; i++)
                for (int j = 0; j < cols[k]; j++)
                    sum += sqrt(bs[k][(size_t)l * cols[k] + j]) * fabs(W[(size_t)i * cols[k] + j]);
            numel += (long long)rows[k] * cols[k];
        }
        const double thr = tau * sum / (double)numel;
        for (int k = 0; k < LIN_COUNT; k++) {
            const float *W = m.w.blocks[l] + off[k];
            for (int i = 0; i < rows[k]; i++)
                for (int j = 0; j < cols[k]; j++)
                    count += sqrt(bs[k][(size_t)l * cols[k] + j]) *
                             fabs(W[(size_t)i * cols[k] + j]) > thr;
        }
        printf("     block %d: %lld of %lld weights above tau * mean, D = %.6f%%\n", l, count,
               numel, lib_ratios[l]);
        CHECK_MSG(lib_ratios[l] == 100.0 * (double)count / (double)numel,
                  "block %d: library D %.9g, brute force %lld / %lld", l, lib_ratios[l], count,
                  numel);
        CHECK(isfinite(lib_ratios[l]) && lib_ratios[l] > 0.0);
    }
    /* the same batches: the same activations, so the same sums exactly;
     * one sequence per pass: other matrix shapes, so only rounding apart */
    double same = stats_diff(bs, &st, cols), apart = stats_diff(single, &st, cols);
    printf("     statistics vs brute force: same batches %g, single sequences %g "
           "(max relative difference)\n", same, apart);
    CHECK(same == 0.0);
    CHECK_MSG(apart <= 1e-4, "single-sequence statistics differ by %g (relative)", apart);
    /* q/k/v and gate/up share their input's statistics */
    CHECK(st.sumsq[LIN_Q] == st.sumsq[LIN_V] && st.sumsq[LIN_GATE] == st.sumsq[LIN_UP]);
    for (int k = 0; k < LIN_COUNT; k++) {
        free(bs[k]);
        free(single[k]);
    }
    channel_stats_free(&st);
    test_end();
}

/* the CPU backend as a device: its operations, but memory the host does not
 * read directly, and, when cramped, no allocation as large as the model's
 * parameters */
static struct backend device;
static size_t cramp_bytes;
static void *cramped_alloc(size_t bytes)
{
    return bytes >= cramp_bytes ? NULL : backend_cpu()->alloc(bytes);
}

static void test_device_calibration(void)
{
    const int L = m.cfg.n_layers;
    double r[64];
    char err[512];
    struct outliers_info info;
    struct outliers_options o = {.tau = 13.0, .tokens = calib, .n_seqs = NSEQ,
                                 .seq_len = SEQ, .batch = BATCH, .no_cache = 1,
                                 .device = &device};
    device = *backend_cpu();
    device.name = "cpu-as-device";
    device.host_memory = 0;

    test_begin("calibration_on_a_device_equals_the_host");
    CHECK_MSG(outliers_compute(&m, &o, r, &info, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(r, lib_ratios, sizeof(double) * L) == 0);
    CHECK(info.calibrated_on && strcmp(info.calibrated_on, "cpu-as-device") == 0 &&
          info.device_note[0] == 0);
    CHECK(m.be == backend_cpu() && m.w.blocks[0] != NULL); /* the host model as it was */
    /* a model already on the device is refused: the ratios read host weights */
    struct model moved = m;
    moved.be = &device;
    err[0] = 0;
    CHECK(outliers_compute(&moved, &o, r, &info, err, sizeof err) == -1 &&
          strstr(err, "host memory"));
    test_end();

    test_begin("calibration_without_room_on_the_device_runs_on_the_host");
    cramp_bytes = m.mem_bytes;
    device.alloc = cramped_alloc;
    CHECK_MSG(outliers_compute(&m, &o, r, &info, err, sizeof err) == 0, "%s", err);
    CHECK(memcmp(r, lib_ratios, sizeof(double) * L) == 0);
    CHECK(info.calibrated_on && strcmp(info.calibrated_on, "cpu") == 0);
    CHECK_MSG(strstr(info.device_note, "out of cpu-as-device memory"), "note: '%s'",
              info.device_note);
    test_end();
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_cache(void)
{
    const int L = m.cfg.n_layers;
    double r1[64], r2[64], r3[64];
    char err[512], cache[600], hex[SHA256_HEX_LEN];
    unsigned char d[SHA256_BYTES];
    struct outliers_info info;
    snprintf(cache, sizeof cache, "%s/cache/sub", tmp_dir); /* created on demand */
    struct outliers_options o = {.tau = 13.0, .tokens = calib, .n_seqs = NSEQ,
                                 .seq_len = SEQ, .batch = BATCH, .cache_dir = cache};

    test_begin("outliers_compute_cache_hit_and_recompute");
    CHECK_MSG(outliers_compute(&m, &o, r1, &info, err, sizeof err) == 0, "%s", err);
    CHECK(!info.cache_hit && info.warning[0] == 0 && access(info.cache_file, R_OK) == 0);
    CHECK(memcmp(r1, lib_ratios, sizeof(double) * L) == 0);
    CHECK(sha256_model(&m, d) == 0);
    digest_hex(d, SHA256_BYTES, hex);
    CHECK(strcmp(info.model_digest, hex) == 0 && strlen(info.calib_digest) == 64);
    CHECK(strstr(info.cache_file, "-tau13.json"));
    /* hit: identical ratios */
    CHECK(outliers_compute(&m, &o, r2, &info, err, sizeof err) == 0);
    CHECK(info.cache_hit && memcmp(r1, r2, sizeof(double) * L) == 0);
    /* a corrupt entry is recomputed and rewritten */
    FILE *f = fopen(info.cache_file, "w");
    if (f) {
        fputs("{\"format\": \"owlore-outliers-1\", \"outlier_ratio\": [1, 2", f);
        fclose(f);
    }
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == 0);
    CHECK(!info.cache_hit && memcmp(r1, r3, sizeof(double) * L) == 0);
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == 0 && info.cache_hit);
    /* another tau is another entry; other calibration data another digest */
    o.tau = 5.0;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == 0 && !info.cache_hit &&
          strstr(info.cache_file, "-tau5.json"));
    CHECK(r3[0] > r1[0]);
    o.n_seqs = NSEQ - 1;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == 0 && !info.cache_hit);
    CHECK_MSG(count_files(cache) == 3, "%d files in the cache folder", count_files(cache));
    /* weight-only and no_cache never touch the cache */
    struct outliers_options w = {.tau = 13.0, .cache_dir = cache};
    CHECK(outliers_compute(&m, &w, r3, &info, err, sizeof err) == 0 && !info.cache_hit &&
          info.cache_file[0] == 0 && info.calib_digest[0] == 0);
    for (int l = 0; l < L; l++)
        CHECK(isfinite(r3[l]) && r3[l] >= 0.0);
    o.no_cache = 1;
    o.n_seqs = 2;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == 0 && info.cache_file[0] == 0);
    CHECK(count_files(cache) == 3);
    /* refused inputs */
    o.tau = 0.0;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == -1 && strstr(err, "tau"));
    o.tau = 13.0;
    o.seq_len = m.cfg.max_seq_len + 1;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == -1);
    int bad[SEQ];
    memcpy(bad, calib, sizeof bad);
    bad[9] = m.cfg.vocab_size;
    o.tokens = bad;
    o.n_seqs = 1;
    o.seq_len = SEQ;
    CHECK(outliers_compute(&m, &o, r3, &info, err, sizeof err) == -1 &&
          strstr(err, "vocabulary"));
    test_end();
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    test_single_channel();
    test_invariance();
    test_pooling();
    test_digest();

    char err[1024], model_path[4096];
    struct tokenizer tok;
    struct text_windows w;
    snprintf(model_path, sizeof model_path, "%s",
             test_shared_path("data/models/stories260K/stories260K.bin"));
    test_begin("load_stories260k_and_calibration_windows");
    int have_model = 0, have_tok = 0, ok = mkdtemp(tmp_dir) != NULL;
    CHECK(ok);
    if (ok) {
        have_model = model_load(model_path, backend_cpu(), &m, err, sizeof err) == 0;
        CHECK_MSG(have_model, "%s", err);
    }
    if (have_model) {
        have_tok = tokenizer_load_for_model(&tok, model_path, NULL, m.cfg.vocab_size, err,
                                            sizeof err) == 0;
        CHECK_MSG(have_tok, "%s", err);
    }
    ok = have_tok && text_windows_load(&w, test_shared_path(
                                           "data/datasets/tinystories/tinystories_val.txt"),
                                       &tok, SEQ, err, sizeof err) == 0;
    CHECK_MSG(!have_tok || ok, "%s", err);
    if (ok) {
        CHECK(w.n >= NSEQ);
        for (int i = 0; i < NSEQ && i < w.n; i++)
            memcpy(calib + i * SEQ, w.ids + (size_t)i * (SEQ + 1), sizeof(int) * SEQ);
        text_windows_free(&w);
    }
    test_end();
    if (ok) {
        test_textdata(&tok);
        test_real_model();
        test_cache();
        test_device_calibration();
    }
    if (have_tok)
        tokenizer_free(&tok);
    if (have_model)
        model_free(&m);
    test_remove_tree(tmp_dir);
    return test_finish();
}
