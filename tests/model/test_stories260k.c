/*
 * test_stories260k.c: the real pretrained stories260K model pins forward
 * correctness (llama2.c checkpoint, tok512.bin tokenizer, adjacent-pair RoPE
 * permuted on load into the engine's half-split layout).
 *
 * Golden values are those of model-formats.md section 2.5 (an fp64 Python
 * forward pass) and the model's published temperature-0 sample:
 *   - tokenizer encodings;
 *   - logits after BOS (top-5 and log-sum-exp);
 *   - greedy decoding from BOS reproduces the published sample exactly
 *     (tests/model/fixtures/stories260k_greedy.txt, 256 steps);
 *   - the training forward pass (whole sequence at once) gives the same
 *     logits as the KV-cached decoder, position by position;
 *   - mean next-token loss on tinystories_sample.txt is 1.2664 +- 0.001 and on
 *     "Once upon a time, there was a little girl named Lily." 0.10014.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "load.h"
#include "test.h"
#include "tokenizer.h"

static struct model m;
static struct tokenizer tok;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

static void check_encoding(const char *text, const int *want, int n_want)
{
    int ids[64];
    int n = tokenizer_encode(&tok, text, strlen(text), 0, ids, 64);
    CHECK_MSG(n == n_want, "\"%s\": %d tokens, expected %d", text, n, n_want);
    for (int i = 0; i < n && i < n_want; i++)
        CHECK_MSG(ids[i] == want[i], "\"%s\": id %d is %d, expected %d", text, i,
                  ids[i], want[i]);
}

static void test_tokenizer(void)
{
    test_begin("tokenizer_golden_encodings");
    check_encoding("Once upon a time", (const int[]){403, 407, 261, 378}, 4);
    check_encoding("Lily saw a big dog.", (const int[]){317, 394, 261, 370, 400, 428, 426}, 7);
    check_encoding("h\xc3\xa9llo\n", (const int[]){270, 485, 306, 414, 13}, 5);
    test_end();
}

static void test_logits_after_bos(void)
{
    struct kv_cache kv;
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    test_begin("logits_after_bos");
    CHECK(kv_cache_init(&kv, &m, 4) == 0);
    model_decode_step(&m, &kv, 1, 0, logits);
    const int ids[5] = {403, 385, 410, 317, 407};
    const double vals[5] = {17.0235, 15.4062, 13.1083, 12.7692, 12.4181};
    for (int i = 0; i < 5; i++)
        CHECK_NEAR(logits[ids[i]], vals[i], 1e-4);
    double mx = logits[0], sum = 0;
    for (int i = 0; i < m.cfg.vocab_size; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < m.cfg.vocab_size; i++)
        sum += exp(logits[i] - mx);
    CHECK_NEAR(mx + log(sum), 17.2673, 1e-4);
    kv_cache_free(&kv, &m);
    free(logits);
    test_end();
}

static void test_greedy_sample(void)
{
    const int steps = 256;
    const int want_ids[24] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                              395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292};
    struct kv_cache kv;
    float *logits = malloc(sizeof(float) * (size_t)m.cfg.vocab_size);
    char *text = calloc(1, 16384);
    size_t tlen = 0, want_len = 0;
    char *want = read_file("tests/model/fixtures/stories260k_greedy.txt", &want_len);
    uint64_t rng = 1;
    int prev = 1;

    test_begin("greedy_decoding_reproduces_published_sample");
    CHECK(want != NULL);
    CHECK(kv_cache_init(&kv, &m, steps) == 0);
    for (int pos = 0; pos < steps; pos++) {
        int len;
        model_decode_step(&m, &kv, prev, pos, logits);
        int next = sample_token(logits, m.cfg.vocab_size, 0.0f, 1.0f, &rng);
        if (pos < 24)
            CHECK_MSG(next == want_ids[pos], "greedy id %d is %d, expected %d", pos,
                      next, want_ids[pos]);
        if (next == 1)
            break;
        const char *p = tokenizer_decode(&tok, prev, next, &len);
        memcpy(text + tlen, p, (size_t)len);
        tlen += (size_t)len;
        prev = next;
    }
    if (want) {
        while (want_len > 0 && want[want_len - 1] == '\n')
            want_len--;
        CHECK_MSG(tlen == want_len && memcmp(text, want, tlen) == 0,
                  "generated text differs from the published sample:\n%.*s",
                  (int)tlen, text);
    }
    kv_cache_free(&kv, &m);
    free(want);
    free(text);
    free(logits);
    test_end();
}

/* Whole-sequence training forward vs the token-by-token decoder. */
static void test_forward_matches_decoder(void)
{
    const char *s = "Once upon a time, there was a little girl named Lily.";
    int ids[64];
    int n = tokenizer_encode(&tok, s, strlen(s), 1, ids, 64);
    struct activations a;
    struct kv_cache kv;
    const int V = m.cfg.vocab_size;
    float *full = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * V);
    double worst = 0;

    test_begin("training_forward_matches_kv_decoder");
    CHECK(activations_init(&a, &m, 1, n) == 0 && kv_cache_init(&kv, &m, n) == 0);
    model_forward(&m, &a, ids, 1, n);
    model_logits(&m, &a, full, 1, n);
    for (int t = 0; t < n; t++) {
        model_decode_step(&m, &kv, ids[t], t, step);
        for (int i = 0; i < V; i++) {
            double d = fabs(step[i] - full[(size_t)t * V + i]);
            worst = d > worst ? d : worst;
        }
    }
    CHECK_MSG(worst < 1e-4, "max |decoder - forward| logit difference %g", worst);
    activations_free(&a, &m);
    kv_cache_free(&kv, &m);
    free(full);
    free(step);
    test_end();
}

/* Mean next-token loss of BOS + encode(text), pooled over texts. */
static double pooled_loss(char **texts, int n_texts, long *count)
{
    const int T = m.cfg.max_seq_len;
    int *ids = malloc(sizeof(int) * (size_t)(T + 1) * 8);
    struct activations a;
    double sum = 0;
    *count = 0;
    if (activations_init(&a, &m, 1, T) != 0)
        return -1;
    for (int i = 0; i < n_texts; i++) {
        int n = tokenizer_encode(&tok, texts[i], strlen(texts[i]), 1, ids, (T + 1) * 8);
        if (n > T)
            n = T; /* truncate to seq_len ids, as the reference protocol does */
        long c = n - 1;
        float mean = model_loss_and_grad(&m, &a, NULL, ids, ids + 1, 1, n - 1);
        sum += (double)mean * c;
        *count += c;
    }
    activations_free(&a, &m);
    free(ids);
    return sum / (double)*count;
}

static char *strip(char *s)
{
    while (*s == ' ' || *s == '\n' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' ||
                     s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static void test_losses(void)
{
    size_t len;
    long count;
    char *one[1] = {"Once upon a time, there was a little girl named Lily."};
    test_begin("loss_on_lily_sentence");
    double l1 = pooled_loss(one, 1, &count);
    CHECK(count == 15);
    CHECK_NEAR(l1, 0.10014, 1e-4);
    test_end();

    test_begin("loss_on_tinystories_sample");
    char *txt = read_file(test_shared_path("data/datasets/tinystories/tinystories_sample.txt"), &len);
    CHECK(txt != NULL);
    if (txt) {
        char *stories[64];
        int n = 0;
        char *p = txt;
        for (;;) {
            char *end = strstr(p, "<|endoftext|>");
            if (end)
                *end = 0;
            char *s = strip(p);
            if (*s && n < 64)
                stories[n++] = s;
            if (!end)
                break;
            p = end + strlen("<|endoftext|>");
        }
        double loss = pooled_loss(stories, n, &count);
        printf("     tinystories_sample: %d stories, %ld predictions, mean loss %.5f\n",
               n, count, loss);
        CHECK(n == 5 && count == 1804);
        CHECK_MSG(fabs(loss - 1.2664) <= 0.001, "mean loss %.5f, expected 1.2664 +- 0.001", loss);
        free(txt);
    }
    test_end();
}

int main(int argc, char **argv)
{
    (void)argc;
    backend_cpu_select_kernels(argv);
    char err[512];
    const char *path = test_shared_path("data/models/stories260K/stories260K.bin");
    test_begin("load_stories260k");
    int ok = model_load(path, backend_cpu(), &m, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok)
        ok = tokenizer_load_for_model(&tok, path, NULL, m.cfg.vocab_size, err, sizeof err) == 0;
    CHECK_MSG(ok, "%s", err);
    if (ok) {
        CHECK(m.cfg.dim == 64 && m.cfg.n_layers == 5 && m.cfg.n_kv_heads == 4 &&
              m.cfg.tied_embeddings && model_param_floats(&m.cfg) == 260032);
    }
    test_end();
    if (!ok)
        return test_finish();
    test_tokenizer();
    test_logits_after_bos();
    test_greedy_sample();
    test_forward_matches_decoder();
    test_losses();
    tokenizer_free(&tok);
    model_free(&m);
    return test_finish();
}
