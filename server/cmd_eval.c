/*
 * cmd_eval.c: `owlore eval`: held-out loss and task accuracy of a model.
 *
 *   owlore eval --model PATH [--adapter DIR] --data FILE [--tokenizer PATH]
 *               [--template NAME] [--seq N] [--limit N] [--max-new N] [--json]
 *
 * Works on any model owlore loads (a GGUF, a Hugging Face directory, a
 * checkpoint); --adapter merges a PEFT LoRA adapter directory first. Every
 * record of the dataset (the formats owlore train reads) is rendered with
 * the chat template exactly as training renders it, and:
 *   - loss: the mean negative log-likelihood of the assistant tokens over
 *     all records (what training's validation loss measures);
 *   - multiple choice, for records that carry an "answer" label and an
 *     "Answer format: a/b/c" line (ARC, BoolQ, OBQA, ... in LLM-Adapters
 *     form): each label is put in place of the answer inside the reference
 *     output, scored by the summed log-likelihood of the assistant tokens,
 *     and the best-scoring label counts as the prediction (one forward
 *     pass over the options' shared prefix, then decode steps for each
 *     option's own tokens: exact, and about one pass per record);
 *   - exact match, for question/answer records whose answer ends in
 *     "#### N" (GSM8K): greedy generation (up to --max-new tokens) from the
 *     question, and the last number of the reply (after "####" when it
 *     writes one) compared with N.
 * Sequences longer than --seq (default 512) are cut to their first --seq + 1
 * tokens (counted in "truncated"). --limit N evaluates the first N records.
 */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dataset.h"
#include "decode.h"
#include "load.h"
#include "lora_ckpt.h"
#include "tokenizer.h"

int cmd_eval(int argc, char **argv);

#define MAX_OPTIONS 16

struct eval {
    struct model m;
    struct tokenizer tok;
    enum chat_template tmpl;
    struct activations a;
    int seq;
    int *tokens, *targets;     /* (seq) */
    struct ds_example ex;
    struct ds_tokens dt;
    enum ds_format format;
    long limit, n, truncated;
    double nll;
    long nll_tokens;
    long mc_n, mc_correct, em_n, em_correct;
    int max_new;
    char err[1024];
};

/* Summed NLL of the masked tokens of ids (n) and their count. */
static double score(struct eval *e, const int *ids, const unsigned char *mask, int n,
                    long *count)
{
    int T = n - 1;
    if (T > e->seq) {
        T = e->seq;
        e->truncated++;
    }
    *count = 0;
    if (T < 1)
        return 0;
    for (int j = 0; j < T; j++) {
        e->tokens[j] = ids[j];
        e->targets[j] = mask[j + 1] ? ids[j + 1] : -1;
    }
    model_forward(&e->m, &e->a, e->tokens, 1, T);
    return model_head_loss(&e->m, &e->a, NULL, e->targets, 1, T, 0.0f, count);
}

/* The labels of "Answer format: a/b/c" in text; returns how many. */
static int answer_labels(const char *text, char labels[MAX_OPTIONS][64])
{
    const char *p = strstr(text, "Answer format:");
    int n = 0;
    if (!p)
        return 0;
    p += strlen("Answer format:");
    while (*p && *p != '\n' && n < MAX_OPTIONS) {
        while (*p == ' ' || *p == '/')
            p++;
        size_t k = 0;
        while (p[k] && p[k] != '/' && p[k] != '\n' && p[k] != ' ')
            k++;
        if (k == 0 || k >= 64)
            break;
        memcpy(labels[n], p, k);
        labels[n++][k] = 0;
        p += k;
    }
    return n;
}

/* log softmax(logits (V))[id] */
static double log_prob(const float *logits, int V, int id)
{
    float mx = logits[0];
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += exp((double)(logits[i] - mx));
    return (double)(logits[id] - mx) - log(sum);
}

/* One rendered option: ids (n) and mask, owned. */
struct option {
    int *ids;
    unsigned char *mask;
    int n;
};

/* Render the current example with its assistant output replaced by the
 * reference with `answer` swapped for `label` (or by the bare label). */
static int render_option(struct eval *e, const char *answer, const char *label,
                         struct option *o)
{
    struct chat_message *out = &e->ex.msgs[e->ex.n_msgs - 1];
    const char *ref = out->content, *at = strstr(ref, answer);
    size_t ref_len = out->len, pre = at ? (size_t)(at - ref) : 0;
    size_t tail = at ? ref_len - pre - strlen(answer) : 0;
    char *cand = malloc(pre + strlen(label) + tail + 1);
    if (!cand)
        return -1;
    memcpy(cand, ref, pre);
    memcpy(cand + pre, label, strlen(label));
    memcpy(cand + pre + strlen(label), at ? at + strlen(answer) : "", tail);
    out->content = cand;
    out->len = pre + strlen(label) + tail;
    int rc = ds_render(&e->tok, e->tmpl, 0, &e->ex, &e->dt, e->err, sizeof e->err);
    out->content = ref;
    out->len = ref_len;
    free(cand);
    if (rc != 0)
        return -1;
    o->n = e->dt.n;
    o->ids = malloc(sizeof(int) * (size_t)o->n);
    o->mask = malloc((size_t)o->n);
    if (!o->ids || !o->mask)
        return -1;
    memcpy(o->ids, e->dt.ids, sizeof(int) * (size_t)o->n);
    memcpy(o->mask, e->dt.mask, (size_t)o->n);
    return 0;
}

/* Multiple choice on the current example (rendered in e->dt), answer being
 * the reference label. The options share their rendered tokens up to the
 * label: one forward pass over that prefix fills a key/value cache and
 * gives the prefix's own masked NLL; each option's remaining tokens are
 * then scored by decode steps from the cache. An option's score is its
 * summed log-likelihood of assistant tokens less the prefix's share, which
 * is the same for every option. *record_nll gets the reference's NLL when
 * it is one of the options (else it is left alone). */
static int multiple_choice(struct eval *e, const char *instruction, const char *answer,
                           double *record_nll)
{
    char labels[MAX_OPTIONS][64];
    struct option opt[MAX_OPTIONS] = {{0}};
    int n = answer_labels(instruction, labels), rc = -1, p = 0;
    int *ref_ids = NULL, ref_n = e->dt.n;
    const int V = e->m.cfg.vocab_size, KVD = e->m.cfg.n_kv_heads * e->m.cfg.head_dim;
    float *logits = NULL, *prefix_logits = NULL;
    struct kv_cache kv = {0};
    if (n < 2 || e->ex.msgs[e->ex.n_msgs - 1].role != ROLE_ASSISTANT)
        return 0;
    ref_ids = malloc(sizeof(int) * (size_t)ref_n);
    if (!ref_ids)
        goto out;
    memcpy(ref_ids, e->dt.ids, sizeof(int) * (size_t)ref_n);
    int max_n = 0;
    for (int i = 0; i < n; i++) {
        if (render_option(e, answer, labels[i], &opt[i]) != 0)
            goto out;
        max_n = opt[i].n > max_n ? opt[i].n : max_n;
    }
    /* the shared prefix, at least one token short of every option */
    for (p = 0;; p++) {
        int same = p < opt[0].n - 1;
        for (int i = 1; same && i < n; i++)
            same = p < opt[i].n - 1 && opt[i].ids[p] == opt[0].ids[p];
        if (!same)
            break;
    }
    if (p < 1 || max_n > e->seq) {
        rc = 0; /* nothing to share, or too long: not scored */
        goto out;
    }
    logits = malloc(sizeof(float) * (size_t)V);
    prefix_logits = malloc(sizeof(float) * (size_t)V);
    if (!logits || !prefix_logits || kv_cache_init(&kv, &e->m, max_n) != 0) {
        snprintf(e->err, sizeof e->err, "out of memory for multiple-choice scoring");
        goto out;
    }
    /* prefix: its masked NLL, the logits at its last position, its cache */
    long count;
    for (int j = 0; j < p; j++) {
        e->tokens[j] = opt[0].ids[j];
        e->targets[j] = j + 1 < p && opt[0].mask[j + 1] ? opt[0].ids[j + 1] : -1;
    }
    model_forward(&e->m, &e->a, e->tokens, 1, p);
    double prefix_nll = model_head_loss(&e->m, &e->a, NULL, e->targets, 1, p, 0.0f, &count);
    model_head_product(&e->m, 1, 1, V, e->m.cfg.dim,
                       e->a.final_out + (size_t)(p - 1) * e->m.cfg.dim, 0.0f, prefix_logits);
    const size_t cap = (size_t)e->a.B * e->a.T;
    for (int l = 0; l < e->m.cfg.n_layers; l++) {
        e->m.be->copy(kv.k + (size_t)l * kv.max_T * KVD, e->a.k + (size_t)l * cap * KVD,
                      (size_t)p * KVD);
        e->m.be->copy(kv.v + (size_t)l * kv.max_T * KVD, e->a.v + (size_t)l * cap * KVD,
                      (size_t)p * KVD);
    }
    int best = -1;
    double best_ll = 0;
    for (int i = 0; i < n; i++) {
        double ll = 0;
        memcpy(logits, prefix_logits, sizeof(float) * (size_t)V);
        for (int j = p; j < opt[i].n; j++) {
            if (opt[i].mask[j])
                ll += log_prob(logits, V, opt[i].ids[j]);
            if (j + 1 < opt[i].n)
                model_decode_step(&e->m, &kv, opt[i].ids[j], j, logits);
        }
        if (best < 0 || ll > best_ll) {
            best = i;
            best_ll = ll;
        }
        if (opt[i].n == ref_n && memcmp(opt[i].ids, ref_ids, sizeof(int) * (size_t)ref_n) == 0)
            *record_nll = prefix_nll - ll;
    }
    e->mc_n++;
    e->mc_correct += strcmp(labels[best], answer) == 0;
    rc = 0;
out:
    kv_cache_free(&kv, &e->m);
    for (int i = 0; i < n; i++) {
        free(opt[i].ids);
        free(opt[i].mask);
    }
    free(ref_ids);
    free(logits);
    free(prefix_logits);
    return rc;
}

/* The number at or after s: the text after the last "####", else the last
 * number in s; commas and a trailing '.' dropped. 0 when there is none. */
static int final_number(const char *s, char *out, size_t len)
{
    const char *h = NULL, *p = s;
    while ((p = strstr(p, "####")))
        h = p++;
    const char *start = NULL, *end = NULL;
    for (p = h ? h : s; *p; p++)
        if (isdigit((unsigned char)*p) || (*p == '-' && isdigit((unsigned char)p[1]))) {
            const char *q = p + 1;
            while (isdigit((unsigned char)*q) || *q == ',' || *q == '.')
                q++;
            start = p;
            end = q;
            p = q - 1;
            if (h)
                break;
        }
    if (!start)
        return 0;
    size_t k = 0;
    for (p = start; p < end && k + 1 < len; p++)
        if (*p != ',')
            out[k++] = *p;
    while (k > 0 && out[k - 1] == '.')
        k--;
    out[k] = 0;
    return k > 0;
}

/* Greedy reply to the current example's user turn; exact match of numbers. */
static int exact_match(struct eval *e, const char *reference)
{
    char want[64], got[64];
    if (!final_number(reference, want, sizeof want))
        return 0;
    const int cap = e->seq + 1;
    int *ids = malloc(sizeof(int) * (size_t)cap);
    unsigned char *mask = malloc((size_t)cap);
    float *logits = malloc(sizeof(float) * (size_t)e->m.cfg.vocab_size);
    char *text = malloc((size_t)e->max_new * 64 + 1);
    struct kv_cache kv;
    int rc = -1, n = -1;
    if (ids && mask && logits && text)
        n = chat_render(&e->tok, e->tmpl, e->ex.msgs, e->ex.n_msgs - 1, 0, 1, ids, mask,
                        cap, e->err, sizeof e->err);
    if (n < 1 || kv_cache_init(&kv, &e->m, n + e->max_new) != 0) {
        if (n >= 1)
            snprintf(e->err, sizeof e->err, "out of memory for the key/value cache");
        goto out;
    }
    for (int i = 0; i < n; i++)
        model_decode_step(&e->m, &kv, ids[i], i, logits);
    int gen[4096], ng = 0;
    while (ng < e->max_new && ng < 4096) {
        int t = sample_token(logits, e->m.cfg.vocab_size, 0.0f, 1.0f, NULL);
        if (t == e->tok.eos_id || tokenizer_is_special(&e->tok, t))
            break;
        gen[ng++] = t;
        model_decode_step(&e->m, &kv, t, n + ng - 1, logits);
    }
    kv_cache_free(&kv, &e->m);
    tokenizer_decode_all(&e->tok, gen, ng, text, (size_t)e->max_new * 64 + 1);
    e->em_n++;
    e->em_correct += final_number(text, got, sizeof got) && strcmp(got, want) == 0;
    rc = 0;
out:
    free(ids);
    free(mask);
    free(logits);
    free(text);
    return rc;
}

static int on_record(void *ctx, const char *rec, size_t len, long line, enum ds_code code,
                     const char *msg)
{
    struct eval *e = ctx;
    enum ds_code c;
    char why[512];
    if (code != DS_OK) {
        snprintf(e->err, sizeof e->err, "line %ld: %s: %s", line, ds_code_name(code), msg);
        return 1;
    }
    if (e->limit > 0 && e->n >= e->limit)
        return 2;
    int prc = ds_parse_record(rec, len, line, &e->format, &e->ex, &c, why, sizeof why);
    if (prc != 0) {
        snprintf(e->err, sizeof e->err, "line %ld: %s: %s", line,
                 prc < 0 ? "out of memory" : ds_code_name(c), prc < 0 ? "" : why);
        return 1;
    }
    if (ds_render(&e->tok, e->tmpl, 0, &e->ex, &e->dt, e->err, sizeof e->err) != 0)
        return 1;
    long count = 0;
    for (int i = 1; i < e->dt.n && i <= e->seq; i++)
        count += e->dt.mask[i];
    e->nll_tokens += count;
    e->n++;
    json_t *j = json_loadb(rec, len, 0, NULL);
    const char *answer = json_string_value(json_object_get(j, "answer"));
    const char *instr = json_string_value(json_object_get(j, "instruction"));
    double nll = NAN;
    int rc = 0;
    if (answer && instr && e->format == DS_ALPACA)
        rc = multiple_choice(e, instr, answer, &nll);
    else if (answer && e->format == DS_QUESTION_ANSWER && strstr(answer, "####"))
        rc = exact_match(e, answer);
    if (rc == 0 && isnan(nll)) { /* the record's loss needs a pass of its own */
        if (ds_render(&e->tok, e->tmpl, 0, &e->ex, &e->dt, e->err, sizeof e->err) != 0)
            rc = -1;
        else
            nll = score(e, e->dt.ids, e->dt.mask, e->dt.n, &count);
    }
    e->nll += nll;
    json_decref(j);
    return rc != 0 ? 1 : 0;
}

static int run_file(struct eval *e, const char *path)
{
    FILE *f = fopen(path, "rb");
    struct ds_reader r;
    char buf[65536];
    size_t got;
    int rc = 0;
    if (!f) {
        snprintf(e->err, sizeof e->err, "%s: cannot open", path);
        return -1;
    }
    ds_reader_init(&r, 0, on_record, e);
    while (rc == 0 && (got = fread(buf, 1, sizeof buf, f)) > 0)
        rc = ds_reader_feed(&r, buf, got);
    if (rc == 0)
        rc = ds_reader_finish(&r);
    ds_reader_free(&r);
    fclose(f);
    return rc == 2 ? 0 : rc; /* 2: --limit reached */
}

static void report(const struct eval *e, const char *model, const char *data, int json)
{
    double loss = e->nll_tokens ? e->nll / (double)e->nll_tokens : 0;
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:I, s:f, s:I, s:I}", "model", model, "data", data,
                              "records", (json_int_t)e->n, "loss", loss, "loss_tokens",
                              (json_int_t)e->nll_tokens, "truncated", (json_int_t)e->truncated);
        if (e->mc_n)
            json_object_set_new(o, "multiple_choice", json_pack(
                "{s:I, s:I, s:f}", "n", (json_int_t)e->mc_n, "correct",
                (json_int_t)e->mc_correct, "accuracy", (double)e->mc_correct / e->mc_n));
        if (e->em_n)
            json_object_set_new(o, "exact_match", json_pack(
                "{s:I, s:I, s:f}", "n", (json_int_t)e->em_n, "correct",
                (json_int_t)e->em_correct, "accuracy", (double)e->em_correct / e->em_n));
        json_dumpf(o, stdout, JSON_COMPACT);
        printf("\n");
        json_decref(o);
        return;
    }
    printf("%ld records, loss %.4f over %ld assistant tokens", e->n, loss, e->nll_tokens);
    if (e->truncated)
        printf(" (%ld sequences truncated to %d tokens)", e->truncated, e->seq);
    printf("\n");
    if (e->mc_n)
        printf("multiple choice: %ld / %ld correct, accuracy %.4f\n", e->mc_correct, e->mc_n,
               (double)e->mc_correct / e->mc_n);
    if (e->em_n)
        printf("exact match: %ld / %ld correct, accuracy %.4f\n", e->em_correct, e->em_n,
               (double)e->em_correct / e->em_n);
}

int cmd_eval(int argc, char **argv)
{
    static const char *const known[] = {"--model", "--adapter", "--data", "--tokenizer",
                                        "--template", "--seq", "--limit", "--max-new",
                                        "--json", NULL};
    const char *model = cli_opt(argc, argv, "--model"), *data = cli_opt(argc, argv, "--data");
    const char *adapter = cli_opt(argc, argv, "--adapter");
    const char *tmpl = cli_opt(argc, argv, "--template");
    double seq, limit, max_new;
    if (cli_check_opts(argc, argv, "eval", known) != 0 ||
        cli_opt_double(argc, argv, "--seq", 512, &seq) != 0 ||
        cli_opt_double(argc, argv, "--limit", 0, &limit) != 0 ||
        cli_opt_double(argc, argv, "--max-new", 256, &max_new) != 0)
        return 2;
    const int json = cli_flag(argc, argv, "--json");
    if (!model || !data) {
        fprintf(stderr, "owlore eval: --model PATH and --data FILE are required\n");
        return 2;
    }
    if (!(seq >= 2 && seq <= 1 << 20) || !(limit >= 0) || !(max_new >= 1 && max_new <= 4096)) {
        fprintf(stderr, "owlore eval: --seq must be >= 2, --limit >= 0, --max-new 1..4096\n");
        return 2;
    }
    struct eval *e = calloc(1, sizeof *e);
    int rc = 1;
    if (!e)
        return 1;
    e->seq = (int)seq;
    e->limit = (long)limit;
    e->max_new = (int)max_new;
    e->format = DS_FORMAT_AUTO;
    char tok_path[4200];
    if (model_load(model, backend_cpu(), &e->m, e->err, sizeof e->err) != 0)
        goto fail;
    if (adapter && lora_ckpt_merge(adapter, &e->m, e->err, sizeof e->err) != 0)
        goto fail_model;
    if (e->seq > e->m.cfg.max_seq_len)
        e->seq = e->m.cfg.max_seq_len;
    if (tokenizer_find_for_model(model, cli_opt(argc, argv, "--tokenizer"),
                                 e->m.cfg.vocab_size, tok_path, sizeof tok_path, e->err,
                                 sizeof e->err) != 0 ||
        tokenizer_load(&e->tok, tok_path, e->m.cfg.vocab_size, e->err, sizeof e->err) != 0)
        goto fail_model;
    if (tmpl ? chat_template_parse(tmpl, &e->tmpl) != 0
             : !e->tok.chat_template || chat_template_detect(e->tok.chat_template, &e->tmpl) != 0) {
        if (tmpl) {
            snprintf(e->err, sizeof e->err, "unknown --template '%s'", tmpl);
            goto fail_tok;
        }
        e->tmpl = CHAT_RAW;
    }
    e->tokens = malloc(sizeof(int) * (size_t)e->seq);
    e->targets = malloc(sizeof(int) * (size_t)e->seq);
    if (!e->tokens || !e->targets || activations_init(&e->a, &e->m, 1, e->seq) != 0) {
        snprintf(e->err, sizeof e->err, "out of memory for %d-token activations", e->seq);
        goto fail_all;
    }
    if (run_file(e, data) != 0) {
        fprintf(stderr, "owlore eval: %s: ", data);
        goto fail_all;
    }
    report(e, model, data, json);
    rc = 0;
fail_all:
    activations_free(&e->a, &e->m);
    free(e->tokens);
    free(e->targets);
    ds_example_free(&e->ex);
    ds_tokens_free(&e->dt);
fail_tok:
    tokenizer_free(&e->tok);
fail_model:
    model_free(&e->m);
fail:
    if (rc != 0)
        fprintf(stderr, "owlore eval: %s\n", e->err);
    free(e);
    return rc;
}
