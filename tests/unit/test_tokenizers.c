/*
 * test_tokenizers.c: every tokenizer family gives the ids Hugging Face
 * `tokenizers` gives, on a corpus of ~3,000 strings.
 *
 * Fixtures (tests/ref/make_tokenizer_fixtures.py): corpus.json (real text
 * from the shared data sets and edge cases: whitespace runs, digits,
 * contractions, accents in NFC and NFD, CJK, emoji, code, special-token
 * text, Unicode spaces, long runs) and per family the expected ids with
 * special-token text parsed (the `tokenizers` default), the ids without
 * parsing it where they differ, the decoded text where `tokenizers` itself
 * does not give the string back, and ids with add_special_tokens for a
 * sample. Families: LLaMA-2 (Prepend/Replace normalizers, byte fallback)
 * and Mistral (Metaspace) SentencePiece-style BPE, LLaMA-3, Qwen2 (NFC),
 * GPT-2 and SmolLM2-style byte-level BPE, all from tokenizer.json; the
 * LLaMA-2 vocabulary as a GGUF "llama" tokenizer (scores) and the LLaMA-3
 * one as a GGUF "gpt2" tokenizer; and the real SmolLM2-135M tokenizer inside
 * the default model's GGUF (models/, `make model`).
 *
 * Also: decode(encode(s)) == s for every string (or what `tokenizers`
 * decodes, where it does not round-trip), streaming decode never splits a
 * UTF-8 character, long inputs encode quickly (merges are O(n log n)),
 * malformed tokenizer files are refused with a message naming the problem,
 * and `owlore tokenize` prints what the library computes.
 */
#include <fcntl.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

#include "chat.h"
#include "cli.h"
#include "tokenizer.h"

#define FIX "tests/unit/fixtures/tokenizers"
#define SMOLLM2_GGUF "models/SmolLM2-135M-Instruct.Q4_1.gguf"

static json_t *corpus;

static int ids_equal(json_t *want, const int *ids, int n)
{
    if ((int)json_array_size(want) != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (json_integer_value(json_array_get(want, (size_t)i)) != ids[i])
            return 0;
    return 1;
}

static void print_ids(const char *what, const int *ids, int n, json_t *want)
{
    printf("     %s: got", what);
    for (int i = 0; i < n && i < 24; i++)
        printf(" %d", ids[i]);
    printf("%s\n     want", n > 24 ? " ..." : "");
    for (size_t i = 0; i < json_array_size(want) && i < 24; i++)
        printf(" %lld", (long long)json_integer_value(json_array_get(want, i)));
    printf("\n");
}

static void check_family(const char *name, const char *tok_path, const char *expected)
{
    char case_name[128], err[512], path[512];
    struct tokenizer t;
    json_error_t je;
    snprintf(case_name, sizeof case_name, "ids_match_tokenizers_%s", name);
    test_begin(case_name);
    snprintf(path, sizeof path, FIX "/%s", expected);
    json_t *exp = json_load_file(path, 0, &je);
    if (!exp || !corpus) {
        test_fail(__FILE__, __LINE__, "cannot read %s or the corpus: %s", path, je.text);
        test_end();
        json_decref(exp);
        return;
    }
    if (tokenizer_load(&t, tok_path, 0, err, sizeof err) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err);
        test_end();
        json_decref(exp);
        return;
    }
    json_t *want_ids = json_object_get(exp, "ids"), *nospecial = json_object_get(exp, "ids_nospecial");
    json_t *decoded = json_object_get(exp, "decoded"), *with_special = json_object_get(exp, "add_special");
    size_t n = json_array_size(corpus);
    int bad = 0, bad_ns = 0, bad_dec = 0;
    int cap = 1 << 16;
    int *ids = malloc(sizeof(int) * (size_t)cap);
    char *text = malloc((size_t)cap * 64);
    CHECK_MSG(json_array_size(want_ids) == n, "%zu expected id lists for %zu strings",
              json_array_size(want_ids), n);
    for (size_t i = 0; i < n && i < json_array_size(want_ids); i++) {
        const char *s = json_string_value(json_array_get(corpus, i));
        size_t len = json_string_length(json_array_get(corpus, i));
        char key[32];
        snprintf(key, sizeof key, "%zu", i);
        int k = tokenizer_encode(&t, s, len, TOKENIZE_PARSE_SPECIAL, ids, cap);
        if (!ids_equal(json_array_get(want_ids, i), ids, k) && bad++ < 5) {
            test_fail(__FILE__, __LINE__, "string %zu (\"%.60s\"): ids differ", i, s);
            print_ids("parse special", ids, k, json_array_get(want_ids, i));
        }
        k = tokenizer_encode(&t, s, len, 0, ids, cap);
        json_t *w = json_object_get(nospecial, key);
        if (!ids_equal(w ? w : json_array_get(want_ids, i), ids, k) && bad_ns++ < 5) {
            test_fail(__FILE__, __LINE__, "string %zu (\"%.60s\"): ids without special parsing "
                      "differ", i, s);
            print_ids("no special", ids, k, w ? w : json_array_get(want_ids, i));
        }
        long dl = k >= 0 ? tokenizer_decode_all(&t, ids, k, text, (size_t)cap * 64) : -1;
        json_t *d = json_object_get(decoded, key);
        const char *want = d ? json_string_value(d) : s;
        size_t want_len = d ? json_string_length(d) : len;
        if ((dl != (long)want_len || memcmp(text, want, want_len) != 0) && bad_dec++ < 5)
            test_fail(__FILE__, __LINE__, "string %zu: decode(encode(\"%.60s\")) is \"%.60s\"", i,
                      s, dl >= 0 ? text : "(error)");
    }
    const char *key;
    json_t *v;
    json_object_foreach(with_special, key, v) {
        size_t i = (size_t)atol(key);
        const char *s = json_string_value(json_array_get(corpus, i));
        int k = tokenizer_encode(&t, s, strlen(s), TOKENIZE_ADD_SPECIAL | TOKENIZE_PARSE_SPECIAL,
                                 ids, cap);
        if (!ids_equal(v, ids, k)) {
            test_fail(__FILE__, __LINE__, "string %zu: ids with add_special_tokens differ", i);
            print_ids("add special", ids, k, v);
        }
    }
    if (bad + bad_ns + bad_dec)
        printf("     %s: %d of %zu strings differ (parsed), %d (not parsed), %d decodes differ\n",
               name, bad, n, bad_ns, bad_dec);
    free(ids);
    free(text);
    tokenizer_free(&t);
    json_decref(exp);
    test_end();
}

static void test_llama2_config(void)
{
    struct tokenizer t;
    char err[512];
    int ids[16];
    test_begin("llama2_config_bos_eos_and_special_lookup");
    CHECK(tokenizer_load(&t, FIX "/llama2", 0, err, sizeof err) == 0);
    CHECK(t.kind == TOKENIZER_HF && t.bos_id == 1 && t.eos_id == 2 && t.unk_id == 0 && t.add_bos);
    CHECK(tokenizer_token_id(&t, "<s>") == 1 && tokenizer_token_id(&t, "</s>") == 2);
    CHECK(tokenizer_token_id(&t, "<0x0A>") == 13 && tokenizer_token_id(&t, "no such") == -1);
    CHECK(tokenizer_is_special(&t, 1) && !tokenizer_is_special(&t, 300));
    CHECK(tokenizer_encode(&t, "", 0, TOKENIZE_ADD_SPECIAL, ids, 16) == 1 && ids[0] == 1);
    CHECK(tokenizer_encode(&t, "", 0, TOKENIZE_BOS | TOKENIZE_ADD_SPECIAL, ids, 16) == 1);
    CHECK(tokenizer_encode(&t, "hello world", 11, 0, ids, 1) == -1);
    tokenizer_free(&t);
    test_end();
}

static void test_gguf_smollm2_config(void)
{
    struct tokenizer t;
    char err[512];
    test_begin("smollm2_gguf_config");
    CHECK_MSG(tokenizer_load(&t, SMOLLM2_GGUF, 49152, err, sizeof err) == 0, "%s", err);
    if (t.m) {
        CHECK(t.kind == TOKENIZER_GGUF && t.vocab_size == 49152 && t.bos_id == 1 &&
              t.eos_id == 2 && !t.add_bos);
        CHECK(tokenizer_token_id(&t, "<|im_start|>") == 1 &&
              tokenizer_token_id(&t, "<|im_end|>") == 2);
        CHECK(t.chat_template && strstr(t.chat_template, "<|im_start|>"));
        tokenizer_free(&t);
    }
    CHECK(tokenizer_load(&t, SMOLLM2_GGUF, 1000, err, sizeof err) != 0 &&
          strstr(err, "vocabulary"));
    test_end();
}

/* A byte-level tokenizer splits emoji across tokens: the stream holds the
 * first bytes back and hands out whole characters only. */
static void test_stream_utf8(void)
{
    struct tokenizer t;
    struct tokenizer_stream st;
    char err[512], out[256], all[256];
    int ids[64], total = 0, split = 0;
    const char *s = "owl \xf0\x9f\xa6\x89, clef \xf0\x9d\x84\x9e, \xe6\x97\xa5\xe6\x9c\xac";
    test_begin("stream_decode_whole_utf8_characters");
    CHECK(tokenizer_load(&t, FIX "/gpt2", 0, err, sizeof err) == 0);
    int n = tokenizer_encode(&t, s, strlen(s), 0, ids, 64);
    tokenizer_stream_init(&st, -1);
    CHECK(t.max_token_bytes + 4 <= (int)sizeof out);
    for (int i = 0; i < n; i++) {
        int len, k = tokenizer_stream_next(&t, &st, ids[i], out, sizeof out);
        tokenizer_decode(&t, i ? ids[i - 1] : -1, ids[i], &len);
        split |= k != len;
        CHECK(k >= 0);
        /* what came out so far is whole characters */
        for (int j = 0; j < k; j++) {
            unsigned char c = (unsigned char)out[j];
            int need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if ((c & 0xC0) == 0x80)
                continue;
            CHECK_MSG(j + need <= k, "token %d hands out part of a character", i);
        }
        memcpy(all + total, out, (size_t)k);
        total += k;
    }
    total += tokenizer_stream_flush(&st, all + total);
    CHECK(split); /* the test is only meaningful if some character was split */
    CHECK(total == (int)strlen(s) && memcmp(all, s, strlen(s)) == 0);
    tokenizer_free(&t);
    test_end();
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Long inputs: one 200 KB word for the SentencePiece kinds (no
 * pre-tokenizer: the whole text is one word), long runs for byte-level. */
static void test_long_inputs(void)
{
    static const char *fams[] = {"llama2", "mistral", "llama3", "qwen2", "gpt2", "smollm"};
    const size_t n = 200000;
    char *text = malloc(n + 1), err[512];
    int *ids = malloc(sizeof(int) * (n + 8));
    test_begin("long_inputs_encode_in_n_log_n");
    for (size_t i = 0; i < n; i++)
        text[i] = "the quick brown fox jumps over the lazy dog. 0123456789\n"[i % 56];
    text[n] = 0;
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        struct tokenizer t;
        char path[256];
        snprintf(path, sizeof path, FIX "/%s", fams[f]);
        if (tokenizer_load(&t, path, 0, err, sizeof err) != 0) {
            test_fail(__FILE__, __LINE__, "%s", err);
            continue;
        }
        double t0 = now();
        int k = tokenizer_encode(&t, text, n, 0, ids, (int)n + 8);
        double dt = now() - t0;
        long dl = tokenizer_decode_all(&t, ids, k, NULL, 0);
        CHECK_MSG(k > 0 && dl == (long)n, "%s: %d ids, decodes to %ld bytes", fams[f], k, dl);
        CHECK_MSG(dt < 5.0, "%s: 200 KB took %.2f s", fams[f], dt);
        printf("     %-8s 200 KB in %.3f s (%.1f MB/s)\n", fams[f], dt, n / dt / 1e6);
        memset(text + 100, ' ', 5000);
        k = tokenizer_encode(&t, text, n, 0, ids, (int)n + 8);
        CHECK(k > 0 && tokenizer_decode_all(&t, ids, k, NULL, 0) == (long)n);
        for (size_t i = 100; i < 5100; i++)
            text[i] = "the quick brown fox jumps over the lazy dog. 0123456789\n"[i % 56];
        tokenizer_free(&t);
    }
    free(text);
    free(ids);
    test_end();
}

static void test_bad_files(void)
{
    static const struct { const char *file, *want; } cases[] = {
        {"not_json.json", "not valid JSON"},
        {"empty.json", "not valid JSON"},
        {"array.json", "not an object"},
        {"no_model.json", "no \"model\""},
        {"unigram.json", "\"Unigram\" is not supported"},
        {"merge_unknown.json", "not in the vocabulary"},
        {"merge_result_unknown.json", "not in the vocabulary"},
        {"id_out_of_range.json", "out of range"},
        {"id_negative.json", "out of range"},
        {"added_out_of_range.json", "out of range"},
        {"bad_pattern.json", "pattern"},
        {"bad_normalizer.json", "BertNormalizer"},
        {"duplicate_id.json", "given to both"},
        {"added_id_mismatch.json", "would give it id 1"},
        {"no_tokenizer.gguf", "no tokenizer in this GGUF"},
        {"bert.gguf", "\"bert\" is not supported"},
        {"unknown_pre.gguf", "\"made-up\" is not supported"},
        {"merge_unknown.gguf", "not in tokenizer.ggml.tokens"},
        {"scores_count.gguf", "tokenizer.ggml.scores"},
        {"bos_out_of_range.gguf", "bos_token_id = 999"},
    };
    test_begin("malformed_tokenizer_files_refused");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct tokenizer t;
        char path[256], err[512] = "";
        snprintf(path, sizeof path, FIX "/bad/%s", cases[i].file);
        int rc = tokenizer_load(&t, path, 0, err, sizeof err);
        CHECK_MSG(rc != 0, "%s was accepted", cases[i].file);
        if (rc == 0)
            tokenizer_free(&t);
        else
            CHECK_MSG(strstr(err, cases[i].want) && strstr(err, cases[i].file),
                      "%s: message \"%s\" does not say \"%s\"", cases[i].file, err, cases[i].want);
    }
    test_end();
}

static char err_text[4096];

/* `owlore tokenize args...` with stdin from `in`; stdout into out, stderr
 * into err_text */
static int run_tokenize(const char *const *args, const char *in, char *out, size_t cap)
{
    char in_path[] = "/tmp/owlore-tok-in-XXXXXX", out_path[] = "/tmp/owlore-tok-out-XXXXXX";
    char err_path[] = "/tmp/owlore-tok-err-XXXXXX";
    char *argv[16];
    int argc = 0, fd_in = mkstemp(in_path), fd_out = mkstemp(out_path), saved = dup(1);
    int fd_err = mkstemp(err_path), saved_err = dup(2);
    if (write(fd_in, in, strlen(in)) != (ssize_t)strlen(in))
        return -1;
    close(fd_in);
    argv[argc++] = "owlore";
    argv[argc++] = "tokenize";
    for (; *args; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    if (!freopen(in_path, "r", stdin))
        return -1;
    fflush(stdout);
    fflush(stderr);
    dup2(fd_out, 1);
    dup2(fd_err, 2);
    int rc = cmd_tokenize(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(saved);
    close(saved_err);
    lseek(fd_out, 0, SEEK_SET);
    ssize_t n = read(fd_out, out, cap - 1);
    out[n > 0 ? n : 0] = 0;
    lseek(fd_err, 0, SEEK_SET);
    n = read(fd_err, err_text, sizeof err_text - 1);
    err_text[n > 0 ? n : 0] = 0;
    close(fd_out);
    close(fd_err);
    unlink(in_path);
    unlink(out_path);
    unlink(err_path);
    return rc;
}

static void test_cli(void)
{
    static char out[65536];
    const char *model[] = {"--model", SMOLLM2_GGUF, NULL};
    const char *chat[] = {"--model", SMOLLM2_GGUF, "--chat", NULL};
    const char *chat_llama3[] = {"--model", SMOLLM2_GGUF, "--chat", "--template", "llama3", NULL};
    const char *tmpl_no_chat[] = {"--model", SMOLLM2_GGUF, "--template", "chatml", NULL};
    const char *bad_tmpl[] = {"--model", SMOLLM2_GGUF, "--chat", "--template", "vicuna", NULL};
    const char *conv = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": \"Hi <|im_end|>\"}, "
                       "{\"role\": \"assistant\", \"content\": \"Hello!\", \"weight\": 1}]}";
    test_begin("owlore_tokenize_cli");
    CHECK(run_tokenize(model, "Hello <|im_start|>world 123", out, sizeof out) == 0);
    CHECK_MSG(strcmp(out, "[19556, 216, 1, 6693, 216, 33, 34, 35]\n") == 0, "text: %s", out);
    CHECK(run_tokenize(chat, conv, out, sizeof out) == 0);
    json_error_t je;
    json_t *got = json_loads(out, 0, &je);
    struct tokenizer t;
    char err[512];
    int ids[256];
    unsigned char mask[256];
    struct chat_message m[3] = {{ROLE_SYSTEM, "Be brief.", 9, 1}, {ROLE_USER, "Hi <|im_end|>", 13, 1},
                                {ROLE_ASSISTANT, "Hello!", 6, 1}};
    CHECK(tokenizer_load(&t, SMOLLM2_GGUF, 0, err, sizeof err) == 0);
    int n = chat_render(&t, CHAT_CHATML, m, 3, 0, 0, ids, mask, 256, err, sizeof err);
    json_t *gi = json_object_get(got, "ids"), *gm = json_object_get(got, "mask");
    CHECK_MSG(n > 0 && (int)json_array_size(gi) == n && (int)json_array_size(gm) == n,
              "chat output: %s", out);
    for (int i = 0; i < n && i < (int)json_array_size(gi) && i < (int)json_array_size(gm); i++)
        CHECK(json_integer_value(json_array_get(gi, (size_t)i)) == ids[i] &&
              json_integer_value(json_array_get(gm, (size_t)i)) == mask[i]);
    json_decref(got);
    tokenizer_free(&t);
    CHECK(run_tokenize(chat_llama3, conv, out, sizeof out) == 1 &&
          strstr(err_text, "<|start_header_id|>"));
    CHECK(run_tokenize(tmpl_no_chat, "x", out, sizeof out) == 2 && strstr(err_text, "--chat"));
    CHECK(run_tokenize(bad_tmpl, conv, out, sizeof out) == 2 && strstr(err_text, "vicuna"));
    CHECK(run_tokenize(chat, "not json", out, sizeof out) == 1 && strstr(err_text, "not JSON"));
    CHECK(run_tokenize(chat, "[{\"role\": \"bot\", \"content\": \"x\"}]", out, sizeof out) == 1 &&
          strstr(err_text, "\"bot\""));
    CHECK(run_tokenize(chat, "{\"messages\": []}", out, sizeof out) == 1 &&
          strstr(err_text, "no messages"));
    CHECK(*out == 0);
    test_end();
}

int main(void)
{
    json_error_t je;
    corpus = json_load_file(FIX "/corpus.json", 0, &je);
    test_begin("corpus_has_2000_strings");
    CHECK_MSG(corpus && json_array_size(corpus) >= 2000, "corpus: %s", corpus ? "too small" : je.text);
    test_end();
    check_family("llama2", FIX "/llama2", "expected_llama2.json");
    check_family("mistral", FIX "/mistral", "expected_mistral.json");
    check_family("llama3", FIX "/llama3", "expected_llama3.json");
    check_family("qwen2", FIX "/qwen2", "expected_qwen2.json");
    check_family("gpt2", FIX "/gpt2", "expected_gpt2.json");
    check_family("smollm", FIX "/smollm", "expected_smollm.json");
    check_family("llama2_gguf", FIX "/llama2.gguf", "expected_llama2.json");
    check_family("llama3_gguf", FIX "/llama3.gguf", "expected_llama3.json");
    check_family("smollm2_gguf", SMOLLM2_GGUF, "expected_smollm2.json");
    test_llama2_config();
    test_gguf_smollm2_config();
    test_stream_utf8();
    test_long_inputs();
    test_bad_files();
    test_cli();
    json_decref(corpus);
    return test_finish();
}
