/*
 * test_dataset.c: dataset records -> conversations -> ids and loss masks ->
 * training windows (engine/dataset.h).
 *
 * Requirement (issue 4, datasets): each record format (messages with
 * weights, prompt/completion, question/answer, Alpaca, text) converts to
 * the documented conversation, escapes decoded; rendering with the
 * stories260K llama2.c tokenizer (tok512.bin) and the raw and Alpaca
 * templates gives chat_render's ids with the loss only on assistant tokens
 * (all tokens with train_on_inputs; none of a weight-0 turn); truncation and
 * packing lay out ids and targets exactly as documented on hand-built
 * examples; a split moves the last windows; ds_load reads whole files into
 * windows ready for the trainer and stops at the first bad record with its
 * line.
 */
#include "test.h"

#include "dataset.h"
#include "utf8.h"

#define FIX "tests/unit/fixtures/datasets/"

/* Parse one record (format auto unless *f is set); 0 ok. */
static int parse(const char *rec, enum ds_format *f, struct ds_example *ex)
{
    enum ds_code code = DS_OK;
    char msg[256];
    int rc = ds_parse_record(rec, strlen(rec), 1, f, ex, &code, msg, sizeof msg);
    if (rc != 0)
        printf("     (%s: %s)\n", ds_code_name(code), msg);
    return rc;
}

static int msg_is(const struct ds_example *ex, int i, enum chat_role role, const char *text,
                  int weight)
{
    return i < ex->n_msgs && ex->msgs[i].role == role && ex->msgs[i].len == strlen(text) &&
           memcmp(ex->msgs[i].content, text, strlen(text)) == 0 && ex->msgs[i].weight == weight;
}

static void test_conversion(void)
{
    struct ds_example ex = {0};
    enum ds_format f;
    test_begin("each record format converts to the documented conversation");

    f = DS_FORMAT_AUTO;
    CHECK(parse("{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                "{\"role\": \"user\", \"content\": \"caf\\u00e9 \\\"x\\\"\\n\", \"name\": \"u1\"}, "
                "{\"role\": \"assistant\", \"content\": \"no\", \"weight\": 0}, "
                "{\"role\": \"user\", \"content\": \"\\ud83d\\ude00?\"}, "
                "{\"role\": \"assistant\", \"content\": \"yes\", \"weight\": 1}], \"id\": 7}",
                &f, &ex) == 0);
    CHECK(f == DS_MESSAGES && ex.format == DS_MESSAGES && ex.n_msgs == 5);
    CHECK(msg_is(&ex, 0, ROLE_SYSTEM, "Be brief.", 1));
    CHECK(msg_is(&ex, 1, ROLE_USER, "caf\xc3\xa9 \"x\"\n", 1));
    CHECK(msg_is(&ex, 2, ROLE_ASSISTANT, "no", 0));
    CHECK(msg_is(&ex, 3, ROLE_USER, "\xf0\x9f\x98\x80?", 1));
    CHECK(msg_is(&ex, 4, ROLE_ASSISTANT, "yes", 1));

    f = DS_FORMAT_AUTO;
    CHECK(parse("{\"prompt\": \"\", \"completion\": \"hi\"}", &f, &ex) == 0);
    CHECK(f == DS_PROMPT_COMPLETION && ex.n_msgs == 2);
    CHECK(msg_is(&ex, 0, ROLE_USER, "", 1) && msg_is(&ex, 1, ROLE_ASSISTANT, "hi", 1));

    f = DS_FORMAT_AUTO;
    CHECK(parse("{\"question\": \"2+3?\", \"answer\": \"#### 5\"}", &f, &ex) == 0);
    CHECK(f == DS_QUESTION_ANSWER && ex.n_msgs == 2);
    CHECK(msg_is(&ex, 0, ROLE_USER, "2+3?", 1) && msg_is(&ex, 1, ROLE_ASSISTANT, "#### 5", 1));

    /* Alpaca: instruction and input as two user messages, and joined by
     * "\n" for the templates other than alpaca (escapes decoded) */
    f = DS_FORMAT_AUTO;
    CHECK(parse("{\"instruction\": \"Translate:\\tnow\", \"input\": \"\\u00e9t\\u00e9\", "
                "\"output\": \"summer\", \"text\": \"ignored\"}", &f, &ex) == 0);
    CHECK(f == DS_ALPACA && ex.n_msgs == 3);
    CHECK(msg_is(&ex, 0, ROLE_USER, "Translate:\tnow", 1));
    CHECK(msg_is(&ex, 1, ROLE_USER, "\xc3\xa9t\xc3\xa9", 1));
    CHECK(msg_is(&ex, 2, ROLE_ASSISTANT, "summer", 1));
    CHECK(ex.joined && ex.joined_len == strlen("Translate:\tnow\n\xc3\xa9t\xc3\xa9") &&
          memcmp(ex.joined, "Translate:\tnow\n\xc3\xa9t\xc3\xa9", ex.joined_len) == 0);
    CHECK(parse("{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}", &f, &ex) == 0);
    CHECK(msg_is(&ex, 0, ROLE_USER, "Add", 1) && msg_is(&ex, 1, ROLE_USER, "2 and 3", 1) &&
          msg_is(&ex, 2, ROLE_ASSISTANT, "5", 1));
    CHECK(ex.joined && ex.joined_len == 11 && memcmp(ex.joined, "Add\n2 and 3", 11) == 0);
    CHECK(parse("{\"instruction\": \"Greet\", \"input\": \"\", \"output\": \"Hello\"}", &f, &ex) == 0);
    CHECK(ex.n_msgs == 2 && !ex.joined && msg_is(&ex, 0, ROLE_USER, "Greet", 1));
    CHECK(parse("{\"instruction\": \"Greet\", \"input\": null, \"output\": \"Hi\"}", &f, &ex) == 0);
    CHECK(parse("{\"instruction\": \"Greet\", \"output\": \"Hi\", \"answer\": \"x\"}", &f, &ex) == 0);
    CHECK(msg_is(&ex, 0, ROLE_USER, "Greet", 1) && msg_is(&ex, 1, ROLE_ASSISTANT, "Hi", 1));

    f = DS_FORMAT_AUTO;
    CHECK(parse("{\"text\": \"Once upon a time.\"}", &f, &ex) == 0);
    CHECK(f == DS_TEXT && ex.n_msgs == 1 && msg_is(&ex, 0, ROLE_ASSISTANT, "Once upon a time.", 1));

    /* the file's format rules: another format is a mismatch */
    {
        enum ds_code code;
        char msg[256];
        const char *rec = "{\"text\": \"x\"}";
        f = DS_ALPACA;
        CHECK(ds_parse_record(rec, strlen(rec), 4, &f, &ex, &code, msg, sizeof msg) == 1 &&
              code == DS_FORMAT_MISMATCH && f == DS_ALPACA);
    }
    ds_example_free(&ex);
    test_end();
}

static int ints_eq(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static void print_ints(const char *what, const int *a, int n)
{
    printf("     %s:", what);
    for (int i = 0; i < n; i++)
        printf(" %d", a[i]);
    printf("\n");
}

#define CHECK_INTS(got, want, n)                                                \
    do {                                                                        \
        if (!ints_eq(got, want, n)) {                                           \
            test_fail(__FILE__, __LINE__, "%s differs", #got);                  \
            print_ints("got ", got, n);                                         \
            print_ints("want", want, n);                                        \
        }                                                                       \
    } while (0)

/* Hand-built examples (ids, masks) for the window tests. */
static const int ex_a[] = {1, 10, 11, 12};
static const unsigned char mask_a[] = {0, 0, 1, 1};
static const int ex_b[] = {1, 20, 21, 22, 23, 24, 25};
static const unsigned char mask_b[] = {0, 1, 1, 1, 1, 1, 1};
static const int ex_c[] = {1, 30};
static const unsigned char mask_c[] = {0, 0};
static const int ex_d[] = {1, 40, 41};
static const unsigned char mask_d[] = {0, 1, 1};

static void test_windows_padded(void)
{
    struct ds_windows w;
    test_begin("one example per window: truncation, padding, masks as targets -1");
    CHECK(ds_windows_init(&w, 4, 0, 0) == 0);
    CHECK(ds_windows_add(&w, ex_a, mask_a, 4) == 0);
    CHECK(ds_windows_add(&w, ex_b, mask_b, 7) == 0); /* 7 > 4 + 1: cut to 5 */
    CHECK(ds_windows_add(&w, ex_c, mask_c, 2) == 0); /* nothing trained: dropped */
    CHECK(w.n == 2 && w.seq_len == 4);
    CHECK(w.n_examples == 3 && w.n_truncated == 1 && w.n_dropped == 1);
    CHECK(w.n_tokens == 9 && w.n_targets == 6);
    static const int ids[] = {1, 10, 11, 12, 0,
                              1, 20, 21, 22, 23};
    static const int tg[] = {-1, 11, 12, -1,
                             20, 21, 22, 23};
    if (w.n == 2) {
        CHECK_INTS(w.ids, ids, 10);
        CHECK_INTS(w.targets, tg, 8);
    }
    struct token_windows tw = ds_windows_view(&w);
    CHECK(tw.ids == w.ids && tw.targets == w.targets && tw.n == 2 && tw.seq_len == 4);
    CHECK(token_windows_targets(&tw, 1) == w.targets + 4);
    ds_windows_free(&w);
    CHECK(ds_windows_init(&w, 0, 0, 0) == -1);
    test_end();
}

static void test_windows_packed(void)
{
    struct ds_windows w, val;
    test_begin("packing: whole examples in order, boundaries and padding not trained");
    CHECK(ds_windows_init(&w, 8, 1, 2) == 0);
    CHECK(ds_windows_add(&w, ex_a, mask_a, 4) == 0);  /* window 0 at 0..3 */
    CHECK(ds_windows_add(&w, ex_d, mask_d, 3) == 0);  /* window 0 at 4..6 */
    CHECK(ds_windows_add(&w, ex_c, mask_c, 2) == 0);  /* dropped */
    CHECK(ds_windows_add(&w, ex_b, mask_b, 7) == 0);  /* 7 + 7 > 9: window 1 */
    int long_ids[12];
    unsigned char long_mask[12];
    for (int i = 0; i < 12; i++) {
        long_ids[i] = 100 + i;
        long_mask[i] = i >= 6;
    }
    CHECK(ds_windows_add(&w, long_ids, long_mask, 12) == 0); /* cut to 9: window 2 */
    CHECK(w.n == 3 && w.n_examples == 5 && w.n_truncated == 1 && w.n_dropped == 1);
    static const int ids[] = {1, 10, 11, 12, 1, 40, 41, 2, 2,
                              1, 20, 21, 22, 23, 24, 25, 2, 2,
                              100, 101, 102, 103, 104, 105, 106, 107, 108};
    static const int tg[] = {-1, 11, 12, -1, 40, 41, -1, -1,
                             20, 21, 22, 23, 24, 25, -1, -1,
                             -1, -1, -1, -1, -1, 106, 107, 108};
    if (w.n == 3) {
        CHECK_INTS(w.ids, ids, 27);
        CHECK_INTS(w.targets, tg, 24);
    }
    CHECK(w.n_targets == 4 + 6 + 3 && w.n_tokens == 4 + 3 + 7 + 9);

    /* the last third goes to validation; train keeps the rest */
    CHECK(ds_windows_split(&w, &val, 0.34) == 0);
    CHECK(w.n == 2 && val.n == 1 && val.seq_len == 8 && val.n_targets == 3);
    if (val.n == 1) {
        CHECK_INTS(val.ids, ids + 18, 9);
        CHECK_INTS(val.targets, tg + 16, 8);
    }
    /* an example added after the split opens a window of its own */
    CHECK(ds_windows_add(&w, ex_d, mask_d, 3) == 0 && w.n == 3);
    if (w.n == 3) {
        static const int ids3[] = {1, 40, 41, 2, 2, 2, 2, 2, 2};
        CHECK_INTS(w.ids + 18, ids3, 9);
    }
    ds_windows_free(&val);
    /* no split when there is nothing to spare */
    struct ds_windows one;
    ds_windows_init(&one, 8, 1, 0);
    CHECK(ds_windows_add(&one, ex_a, mask_a, 4) == 0);
    CHECK(ds_windows_split(&one, &val, 0.5) == 0 && one.n == 1 && val.n == 0);
    ds_windows_free(&val);
    ds_windows_free(&one);
    ds_windows_free(&w);
    test_end();
}

/* ---- rendering, with the stories260K tokenizer ---- */

static struct tokenizer tok;

static int load_tok(void)
{
    char err[512];
    int rc = tokenizer_load_llama2c(&tok, test_shared_path("data/models/stories260K/tok512.bin"),
                                    512, err, sizeof err);
    if (rc != 0) {
        test_begin("the stories260K tokenizer loads");
        CHECK_MSG(0, "%s", err);
        test_end();
    }
    return rc;
}

/* Parse rec and render it with template t. */
static int render_rec(const char *rec, enum chat_template t, int toi, struct ds_example *ex,
                      struct ds_tokens *out, char *err, size_t errlen)
{
    enum ds_format f = DS_FORMAT_AUTO;
    if (parse(rec, &f, ex) != 0) {
        snprintf(err, errlen, "bad record");
        return -1;
    }
    return ds_render(&tok, t, toi, ex, out, err, errlen);
}

/* What a template that lays out one text run gives: BOS, the encoding of
 * text, EOS. The mask comes from the tokens' byte spans, found by decoding
 * them one after another: a token is trained when it overlaps the trained
 * bytes [a, b) (every token with toi), EOS is trained, BOS never. */
static int expect_run(const char *text, size_t a, size_t b, int toi, int *ids,
                      unsigned char *mask, int max)
{
    int n = tokenizer_encode(&tok, text, strlen(text), TOKENIZE_ADD_SPECIAL, ids, max - 1);
    size_t pos = 0;
    if (n < 1 || ids[0] != tok.bos_id)
        return -1;
    mask[0] = 0;
    for (int i = 1; i < n; i++) {
        int len;
        tokenizer_decode(&tok, ids[i - 1], ids[i], &len);
        mask[i] = (unsigned char)(toi || (pos < b && a < pos + (size_t)len));
        pos += (size_t)len;
    }
    if (pos != strlen(text))
        return -1;
    ids[n] = tok.eos_id;
    mask[n] = 1;
    return n + 1;
}

static int masks_eq(const unsigned char *a, const unsigned char *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

/* Render rec with t and compare with expect_run(text, trained bytes from
 * `trained` (a substring of text, its last occurrence) to the end). */
static void check_run(const char *rec, enum chat_template t, int toi, const char *text,
                      const char *trained)
{
    struct ds_example ex = {0};
    struct ds_tokens out = {0};
    int ids[1024];
    unsigned char mask[1024];
    char err[256];
    const char *at = NULL;
    for (const char *p = strstr(text, trained); p; p = strstr(p + 1, trained))
        at = p;
    int n = expect_run(text, at ? (size_t)(at - text) : 0, strlen(text), toi, ids, mask, 1024);
    CHECK_MSG(at && n > 2, "%s: no expectation", rec);
    if (render_rec(rec, t, toi, &ex, &out, err, sizeof err) != 0) {
        CHECK_MSG(0, "%s: %s", rec, err);
    } else if (n > 2) {
        CHECK_MSG(out.n == n && ints_eq(out.ids, ids, n), "%s (%s): ids differ (%d vs %d)",
                  rec, chat_template_name(t), out.n, n);
        CHECK_MSG(out.n == n && masks_eq(out.mask, mask, n), "%s (%s): masks differ", rec,
                  chat_template_name(t));
    }
    ds_tokens_free(&out);
    ds_example_free(&ex);
}

#define PREAMBLE "Below is an instruction that describes a task. Write a response that " \
                 "appropriately completes the request."
#define PREAMBLE_INPUT "Below is an instruction that describes a task, paired with an input " \
                       "that provides further context. Write a response that appropriately " \
                       "completes the request."

static void test_render(void)
{
    test_begin("rendering each format (stories260K tokenizer; raw and alpaca templates)");
    /* text: a document, BOS + text + EOS, all trained, whatever the template */
    check_run("{\"text\": \"Once upon a time, Lily ran.\"}", CHAT_CHATML, 0,
              "Once upon a time, Lily ran.", "Once upon a time, Lily ran.");
    /* prompt/completion and question/answer: loss on the completion only */
    check_run("{\"prompt\": \"Tom had a red ball.\\n\", \"completion\": \"He liked it.\"}",
              CHAT_RAW, 0, "Tom had a red ball.\nHe liked it.", "He liked it.");
    check_run("{\"prompt\": \"Tom had a red ball.\\n\", \"completion\": \"He liked it.\"}",
              CHAT_RAW, 1, "Tom had a red ball.\nHe liked it.", "He liked it.");
    check_run("{\"question\": \"Who ran?\\n\", \"answer\": \"Lily ran.\"}", CHAT_RAW, 0,
              "Who ran?\nLily ran.", "Lily ran.");
    /* alpaca: the Stanford prompt, with and without an input */
    check_run("{\"instruction\": \"Name a color.\", \"input\": \"\", \"output\": \"Blue.\"}",
              CHAT_ALPACA, 0,
              PREAMBLE "\n\n### Instruction:\nName a color.\n\n### Response:\nBlue.", "Blue.");
    check_run("{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}",
              CHAT_ALPACA, 0,
              PREAMBLE_INPUT "\n\n### Instruction:\nAdd\n\n### Input:\n2 and 3\n\n### Response:\n5",
              "5");
    /* other templates get instruction "\n" input as one user turn */
    check_run("{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}", CHAT_RAW,
              0, "Add\n2 and 3" "5", "5");
    /* messages with a weight-0 turn: the conversion feeds chat_render the
     * same conversation; the weight-0 turn and its EOS are not trained */
    {
        struct ds_example ex = {0};
        struct ds_tokens out = {0};
        char err[256];
        const char *rec = "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}, "
                          "{\"role\": \"assistant\", \"content\": \"bad\", \"weight\": 0}, "
                          "{\"role\": \"user\", \"content\": \"again\"}, "
                          "{\"role\": \"assistant\", \"content\": \"good\"}]}";
        const struct chat_message msgs[] = {{ROLE_USER, "Q", 1, 1}, {ROLE_ASSISTANT, "bad", 3, 0},
                                            {ROLE_USER, "again", 5, 1},
                                            {ROLE_ASSISTANT, "good", 4, 1}};
        int ids[256];
        unsigned char mask[256];
        int n = chat_render(&tok, CHAT_RAW, msgs, 4, 0, 0, ids, mask, 256, err, sizeof err);
        CHECK(render_rec(rec, CHAT_RAW, 0, &ex, &out, err, sizeof err) == 0);
        CHECK(n > 0 && out.n == n && ints_eq(out.ids, ids, n) && masks_eq(out.mask, mask, n));
        int eos = -1;
        for (int i = 0; i < out.n && eos < 0; i++)
            if (out.ids[i] == tok.eos_id)
                eos = i;
        CHECK_MSG(eos > 0 && out.ids[out.n - 1] == tok.eos_id && out.mask[out.n - 1] == 1,
                  "the last token is a trained EOS");
        for (int i = 0; i <= eos; i++)
            CHECK_MSG(out.mask[i] == 0, "token %d (before the weight-0 turn's end) trained", i);
        /* with train_on_inputs the user turns are trained, the weight-0 turn still not */
        CHECK(render_rec(rec, CHAT_RAW, 1, &ex, &out, err, sizeof err) == 0);
        n = chat_render(&tok, CHAT_RAW, msgs, 4, 1, 0, ids, mask, 256, err, sizeof err);
        CHECK(n > 0 && out.n == n && masks_eq(out.mask, mask, n) && out.mask[eos] == 0);
        ds_tokens_free(&out);
        ds_example_free(&ex);
    }
    /* a conversation the template cannot express is refused with a reason */
    {
        struct ds_example ex = {0};
        struct ds_tokens out = {0};
        char err[256] = "";
        const char *rec = "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, "
                          "{\"role\": \"user\", \"content\": \"b\"}, "
                          "{\"role\": \"assistant\", \"content\": \"c\"}]}";
        CHECK(render_rec(rec, CHAT_LLAMA2, 0, &ex, &out, err, sizeof err) == -1 && err[0]);
        /* an alpaca record with an input is one user turn for llama2 */
        CHECK(render_rec("{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}",
                         CHAT_LLAMA2, 0, &ex, &out, err, sizeof err) == 0);
        ds_tokens_free(&out);
        ds_example_free(&ex);
    }
    test_end();
}

/* Window w of ws against the rendering (ids, mask, n) of one example
 * placed at offset o. */
static int window_holds(const struct ds_windows *ws, int w, int o, const int *ids,
                        const unsigned char *mask, int n)
{
    const int S = ws->seq_len;
    const int *wi = ws->ids + (size_t)w * (S + 1), *wt = ws->targets + (size_t)w * S;
    if (n > S + 1 - o)
        n = S + 1 - o;
    for (int i = 0; i < n; i++)
        if (wi[o + i] != ids[i])
            return 0;
    for (int i = 1; i < n; i++)
        if (wt[o + i - 1] != (mask[i] ? ids[i] : -1))
            return 0;
    return o + n - 1 >= S || wt[o + n - 1] == -1;
}

static void test_load(void)
{
    static const char *const recs[] = {
        "{\"instruction\": \"Add\", \"input\": \"2 and 3\", \"output\": \"5\"}",
        "{\"instruction\": \"Greet\", \"input\": \"\", \"output\": \"Hello\", \"text\": \"ignored\"}",
        "{\"instruction\": \"Negate\", \"output\": \"no\", \"answer\": \"x\"}",
    };
    struct ds_example ex = {0};
    struct ds_tokens toks[3] = {{0}};
    struct ds_windows w;
    char err[512];
    test_begin("ds_load: files into trainer windows; the first bad record stops it");
    for (int i = 0; i < 3; i++)
        CHECK(render_rec(recs[i], CHAT_ALPACA, 0, &ex, &toks[i], err, sizeof err) == 0);

    /* one example per window. The first example renders to 145 tokens
     * and is trained only from token 143: cut to 128 + 1 it has nothing
     * left to train and is dropped; cut to 143 + 1 it keeps one target. */
    struct ds_opts o = {.format = DS_FORMAT_AUTO, .tmpl = CHAT_ALPACA, .seq_len = 128,
                        .pad_id = -1};
    CHECK(toks[0].n == 145 && toks[0].mask[142] == 0 && toks[0].mask[143] == 1);
    CHECK(toks[1].n <= 129 && toks[2].n <= 129);
    if (ds_load(&w, FIX "valid_alpaca.json", &tok, &o, err, sizeof err) != 0) {
        CHECK_MSG(0, "%s", err);
    } else {
        CHECK(w.n == 2 && w.n_examples == 3 && w.n_truncated == 1 && w.n_dropped == 1);
        CHECK(w.pad_id == tok.eos_id);
        CHECK(w.n == 2 && window_holds(&w, 0, 0, toks[1].ids, toks[1].mask, toks[1].n) &&
              window_holds(&w, 1, 0, toks[2].ids, toks[2].mask, toks[2].n));
        ds_windows_free(&w);
    }
    o.seq_len = 143;
    if (ds_load(&w, FIX "valid_alpaca.json", &tok, &o, err, sizeof err) != 0) {
        CHECK_MSG(0, "%s", err);
    } else {
        CHECK(w.n == 3 && w.n_truncated == 1 && w.n_dropped == 0);
        CHECK(w.n == 3 && window_holds(&w, 0, 0, toks[0].ids, toks[0].mask, toks[0].n));
        CHECK(w.n == 3 && w.targets[142] == toks[0].ids[143]);
        ds_windows_free(&w);
    }
    /* packed: whole examples back to back */
    o.seq_len = 512;
    o.pack = 1;
    if (ds_load(&w, FIX "valid_alpaca.json", &tok, &o, err, sizeof err) != 0) {
        CHECK_MSG(0, "%s", err);
    } else {
        CHECK(w.n == 1 && w.n_truncated == 0);
        CHECK(window_holds(&w, 0, 0, toks[0].ids, toks[0].mask, toks[0].n));
        CHECK(window_holds(&w, 0, toks[0].n, toks[1].ids, toks[1].mask, toks[1].n));
        CHECK(window_holds(&w, 0, toks[0].n + toks[1].n, toks[2].ids, toks[2].mask, toks[2].n));
        ds_windows_free(&w);
    }
    /* text records ignore the template (the tokenizer has no ChatML tokens) */
    o.tmpl = CHAT_CHATML;
    CHECK(ds_load(&w, FIX "valid_text.jsonl", &tok, &o, err, sizeof err) == 0 && w.n == 1 &&
          w.n_examples == 2);
    ds_windows_free(&w);
    /* a bad record stops the load with its line */
    o.tmpl = CHAT_RAW;
    CHECK(ds_load(&w, FIX "invalid_json.jsonl", &tok, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "line 3: invalid_json"), "%s", err);
    CHECK(w.ids == NULL && w.n == 0);
    o.tmpl = CHAT_LLAMA2;
    CHECK(ds_load(&w, FIX "template_error.jsonl", &tok, &o, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "line 3: template_error"), "%s", err);
    CHECK(ds_load(&w, FIX "no-such-file.jsonl", &tok, &o, err, sizeof err) == -1);
    o.seq_len = 0;
    CHECK(ds_load(&w, FIX "valid_text.jsonl", &tok, &o, err, sizeof err) == -1);
    /* a real file: GSM8K, packed into 1024-token windows */
    o = (struct ds_opts){.format = DS_FORMAT_AUTO, .tmpl = CHAT_RAW, .seq_len = 1024, .pack = 1,
                         .pad_id = -1};
    if (ds_load(&w, test_shared_path("data/datasets/gsm8k/train.jsonl"), &tok, &o, err,
                sizeof err) != 0) {
        CHECK_MSG(0, "%s", err);
    } else {
        long bad = 0, targets = 0;
        CHECK(w.n_examples == 7473 && w.n > 0 && w.n_dropped == 0);
        for (long i = 0; i < (long)w.n * 1024; i++) {
            int win = (int)(i / 1024), j = (int)(i % 1024);
            int t = w.targets[i];
            targets += t >= 0;
            bad += t >= 0 && t != w.ids[(size_t)win * 1025 + j + 1];
        }
        CHECK(bad == 0 && targets == w.n_targets);
        /* packing fills windows: more than 3/4 of the ids are tokens */
        CHECK(w.n_tokens > 0.75 * w.n * 1025.0);
        printf("     gsm8k: %d windows of 1024, %ld examples (%ld truncated), %ld tokens, "
               "%ld trained\n", w.n, w.n_examples, w.n_truncated, w.n_tokens, w.n_targets);
        ds_windows_free(&w);
    }
    for (int i = 0; i < 3; i++)
        ds_tokens_free(&toks[i]);
    ds_example_free(&ex);
    test_end();
}

/* Text bound for JSON (error messages) is repaired, not refused: the bytes
 * of a character cut by a %.Ns, and any other invalid byte, become '?'. */
static void test_utf8_repair(void)
{
    test_begin("utf8_repair_marks_cut_characters");
    char cut[] = "id \xF0\x9D\x95", whole[] = "caf\xC3\xA9 \xF0\x9D\x95\xBF ok";
    char overlong[] = "a\xC0\x80" "b", surrogate[] = "\xED\xA0\x80";
    utf8_repair(cut);
    utf8_repair(whole);
    utf8_repair(overlong);
    utf8_repair(surrogate);
    CHECK_MSG(!strcmp(cut, "id ???"), "%s", cut);
    CHECK(!strcmp(whole, "caf\xC3\xA9 \xF0\x9D\x95\xBF ok"));
    CHECK(!strcmp(overlong, "a??b"));
    CHECK(!strcmp(surrogate, "???"));
    test_end();
}

int main(void)
{
    test_utf8_repair();
    test_conversion();
    test_windows_padded();
    test_windows_packed();
    if (load_tok() == 0) {
        test_render();
        test_load();
        tokenizer_free(&tok);
    }
    return test_finish();
}
