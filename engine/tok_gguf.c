/*
 * tok_gguf.c: the tokenizer embedded in a GGUF file (tokenizer.ggml.*).
 *
 * tokenizer.ggml.model "gpt2": byte-level BPE; tokens are byte-level strings
 * and tokenizer.ggml.merges lists "a b" pairs in rank order;
 * tokenizer.ggml.pre names the pre-tokenizer as llama.cpp does ("smollm",
 * "starcoder": digits one by one then the GPT-2 pattern; "llama-bpe",
 * "llama3": the LLaMA-3 pattern with ignore_merges; "qwen2": the Qwen2
 * pattern after NFC; "gpt-2", "default" or absent: the GPT-2 pattern).
 * "llama": SentencePiece; pieces use "▁" for spaces, tokenizer.ggml.scores
 * rank the merges, byte tokens <0xHH> are the fallback, and a "▁" is
 * prepended to text at the start and after each special token
 * (add_space_prefix, default on), as the Hugging Face LLaMA-2 tokenizer.
 * token_type: 3 control and 2 unknown are special tokens (matched in text
 * only when special text is parsed), 4 user-defined are added tokens matched
 * always; none of these is ever the result of a merge.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok_internal.h"

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4,
       TYPE_UNUSED = 5, TYPE_BYTE = 6 };

static const struct {
    const char *name;
    int digits;
    enum tok_pattern pattern;
    int ignore_merges, nfc;
} PRES[] = {
    {"default", 0, PAT_GPT2, 0, 0},   {"gpt-2", 0, PAT_GPT2, 0, 0},
    {"gpt2", 0, PAT_GPT2, 0, 0},      {"mpt", 0, PAT_GPT2, 0, 0},
    {"olmo", 0, PAT_GPT2, 0, 0},      {"smollm", 1, PAT_GPT2, 0, 0},
    {"starcoder", 1, PAT_GPT2, 0, 0}, {"refact", 1, PAT_GPT2, 0, 0},
    {"llama-bpe", 0, PAT_LLAMA3, 1, 0}, {"llama3", 0, PAT_LLAMA3, 1, 0},
    {"llama-v3", 0, PAT_LLAMA3, 1, 0},  {"qwen2", 0, PAT_QWEN2, 0, 1},
};

static int opt_int(struct gguf_file *f, const char *key, int64_t def, int64_t *out, char *err,
                   size_t errlen)
{
    *out = def;
    return gguf_has(f, key) ? gguf_get_int(f, key, out, err, errlen) : 0;
}

static int opt_bool(struct gguf_file *f, const char *key, int def, int *out, char *err,
                    size_t errlen)
{
    *out = def;
    return gguf_has(f, key) ? gguf_get_bool(f, key, out, err, errlen) : 0;
}

static int add_merges(struct tok_model *m, const struct gguf_arr *a, const char *path,
                      char *err, size_t errlen)
{
    if (tok_pairmap_init(&m->merges, (size_t)a->count) != 0)
        goto oom;
    for (uint64_t k = a->count; k-- > 0;) {
        size_t len;
        const char *s = gguf_arr_str(a, k, &len);
        const char *sp = s ? memchr(s, ' ', len) : NULL;
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s))) {
            snprintf(err, errlen, "%s: tokenizer.ggml.merges[%llu] is not two tokens separated "
                     "by one space", path, (unsigned long long)k);
            return -1;
        }
        size_t la = (size_t)(sp - s), lb = len - la - 1;
        char *ab = malloc(la + lb + 1);
        if (!ab)
            goto oom;
        memcpy(ab, s, la);
        memcpy(ab + la, sp + 1, lb);
        int ia = tok_strmap_get(&m->vocab, s, la), ib = tok_strmap_get(&m->vocab, sp + 1, lb);
        int iab = tok_strmap_get(&m->vocab, ab, la + lb);
        free(ab);
        if (ia < 0 || ib < 0 || iab < 0) {
            snprintf(err, errlen, "%s: tokenizer.ggml.merges[%llu] (\"%.100s\") refers to a "
                     "token not in tokenizer.ggml.tokens", path, (unsigned long long)k, s);
            return -1;
        }
        if (tok_pairmap_add(&m->merges, ia, ib, (int)k, iab) < 0)
            goto oom;
    }
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", path);
    return -1;
}

int tok_load_gguf(struct tokenizer *t, const char *path, char *err, size_t errlen)
{
    struct gguf_file *f = gguf_open(path, err, errlen);
    struct tok_model *m = calloc(1, sizeof *m);
    struct gguf_arr tokens, types, scores_a, merges;
    const char *model, *pre = "default";
    float *scores = NULL;
    int has_types, is_llama, add_bos, add_eos, add_space;
    int64_t ids[4];
    memset(t, 0, sizeof *t);
    t->m = m;
    t->kind = TOKENIZER_GGUF;
    if (!f || !m)
        goto bad;
    if (!gguf_has(f, "tokenizer.ggml.model")) {
        snprintf(err, errlen, "%s: no tokenizer in this GGUF file (tokenizer.ggml.model is "
                 "missing); pass --tokenizer PATH", path);
        goto bad;
    }
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, NULL, err, errlen) != 0 ||
        gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens, err, errlen) != 0)
        goto bad;
    is_llama = strcmp(model, "llama") == 0;
    if (!is_llama && strcmp(model, "gpt2") != 0) {
        snprintf(err, errlen, "%s: tokenizer.ggml.model \"%.60s\" is not supported (gpt2, "
                 "llama)", path, model);
        goto bad;
    }
    if (tokens.type != GGUF_TYPE_STRING || tokens.count == 0 || tokens.count >= (1u << 24)) {
        snprintf(err, errlen, "%s: tokenizer.ggml.tokens must be a non-empty array of strings "
                 "(under 2^24)", path);
        goto bad;
    }
    int n = (int)tokens.count;
    has_types = gguf_has(f, "tokenizer.ggml.token_type");
    if (has_types && gguf_get_arr(f, "tokenizer.ggml.token_type", &types, err, errlen) != 0)
        goto bad;
    if (has_types && types.count != tokens.count) {
        snprintf(err, errlen, "%s: tokenizer.ggml.token_type has %llu entries for %d tokens",
                 path, (unsigned long long)types.count, n);
        goto bad;
    }
    if (tok_model_alloc(m, n) != 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto bad;
    }
    for (int i = 0; i < n; i++) {
        size_t len;
        int64_t type = TYPE_NORMAL;
        const char *s = gguf_arr_str(&tokens, (uint64_t)i, &len);
        if (!s || (has_types && gguf_arr_int(&types, (uint64_t)i, &type) != 0)) {
            snprintf(err, errlen, "%s: token %d has a bad string or type", path, i);
            goto bad;
        }
        if (tok_model_set(m, i, s, (int)len) != 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto bad;
        }
        if (type == TYPE_CONTROL || type == TYPE_UNKNOWN || type == TYPE_USER) {
            struct tok_added a = {i, (char *)s, (int)len, type != TYPE_USER, 0, 0, 0, 0};
            m->attr[i] |= TOK_ATTR_ADDED | TOK_ATTR_EXTRA | TOK_ATTR_NO_MERGE |
                          (type != TYPE_USER ? TOK_ATTR_SPECIAL : 0);
            if (len > 0 && tok_model_add_added(m, &a) != 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto bad;
            }
        } else if (type == TYPE_UNUSED) {
            m->attr[i] |= TOK_ATTR_NO_MERGE;
        } else if (type != TYPE_NORMAL && type != TYPE_BYTE) {
            snprintf(err, errlen, "%s: token %d has unknown token_type %lld", path, i,
                     (long long)type);
            goto bad;
        }
    }
    const char *keys[4] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                           "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 4; k++) {
        if (opt_int(f, keys[k], -1, &ids[k], err, errlen) != 0)
            goto bad;
        if (ids[k] < -1 || ids[k] >= n) {
            snprintf(err, errlen, "%s: %s = %lld is outside the %d tokens", path, keys[k],
                     (long long)ids[k], n);
            goto bad;
        }
    }
    if (opt_bool(f, "tokenizer.ggml.add_bos_token", is_llama, &add_bos, err, errlen) != 0 ||
        opt_bool(f, "tokenizer.ggml.add_eos_token", 0, &add_eos, err, errlen) != 0 ||
        opt_bool(f, "tokenizer.ggml.add_space_prefix", is_llama, &add_space, err, errlen) != 0)
        goto bad;
    if (is_llama) {
        m->metaspace = 1;
        m->byte_fallback = 1;
        m->strip_space = add_space;
        if (add_space)
            m->norm[m->n_norm++] = (struct tok_norm){NORM_PREPEND, strdup("\xe2\x96\x81"), NULL,
                                                     3, 0};
        m->norm[m->n_norm++] = (struct tok_norm){NORM_REPLACE, strdup(" "),
                                                 strdup("\xe2\x96\x81"), 1, 3};
        for (int i = 0; i < m->n_norm; i++)
            if (!m->norm[i].a || (m->norm[i].type == NORM_REPLACE && !m->norm[i].b)) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto bad;
            }
        if (gguf_get_arr(f, "tokenizer.ggml.scores", &scores_a, err, errlen) != 0)
            goto bad;
        if (scores_a.count != tokens.count || !(scores = malloc(sizeof(float) * (size_t)n))) {
            snprintf(err, errlen, "%s: tokenizer.ggml.scores has %llu entries for %d tokens",
                     path, (unsigned long long)scores_a.count, n);
            goto bad;
        }
        for (int i = 0; i < n; i++) {
            double d;
            if (gguf_arr_float(&scores_a, (uint64_t)i, &d) != 0) {
                snprintf(err, errlen, "%s: tokenizer.ggml.scores[%d] is not a number", path, i);
                goto bad;
            }
            scores[i] = (float)d;
        }
        if (tok_model_finish(m, path, err, errlen) != 0 ||
            tok_model_merges_from_scores(m, scores, err, errlen) != 0)
            goto bad;
    } else {
        size_t i;
        if (gguf_has(f, "tokenizer.ggml.pre") &&
            gguf_get_str(f, "tokenizer.ggml.pre", &pre, NULL, err, errlen) != 0)
            goto bad;
        for (i = 0; i < sizeof PRES / sizeof PRES[0]; i++)
            if (strcmp(pre, PRES[i].name) == 0)
                break;
        if (i == sizeof PRES / sizeof PRES[0]) {
            snprintf(err, errlen, "%s: tokenizer.ggml.pre \"%.60s\" is not supported (default, "
                     "gpt-2, smollm, starcoder, llama-bpe, qwen2, ...)", path, pre);
            goto bad;
        }
        m->byte_level = 1;
        m->ignore_merges = PRES[i].ignore_merges;
        if (PRES[i].nfc)
            m->norm[m->n_norm++] = (struct tok_norm){NORM_NFC, NULL, NULL, 0, 0};
        if (PRES[i].digits)
            m->pre[m->n_pre++] = (struct tok_pre){.type = PRE_DIGITS, .individual = 1};
        if (PRES[i].pattern == PAT_GPT2)
            m->pre[m->n_pre++] = (struct tok_pre){.type = PRE_BYTELEVEL, .pattern = PAT_GPT2,
                                                  .use_regex = 1};
        else
            m->pre[m->n_pre++] = (struct tok_pre){.type = PRE_SPLIT, .pattern = PRES[i].pattern};
        if (gguf_get_arr(f, "tokenizer.ggml.merges", &merges, err, errlen) != 0)
            goto bad;
        if (merges.type != GGUF_TYPE_STRING) {
            snprintf(err, errlen, "%s: tokenizer.ggml.merges is not an array of strings", path);
            goto bad;
        }
        if (tok_model_finish(m, path, err, errlen) != 0 ||
            add_merges(m, &merges, path, err, errlen) != 0)
            goto bad;
    }
    t->vocab_size = n;
    t->bos_id = (int)ids[0];
    t->eos_id = (int)ids[1];
    t->unk_id = m->unk_id = (int)ids[2];
    t->pad_id = (int)ids[3];
    if (add_bos && t->bos_id >= 0)
        m->prefix[m->n_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0)
        m->suffix[m->n_suffix++] = t->eos_id;
    t->add_bos = m->n_prefix > 0;
    t->add_eos = m->n_suffix > 0;
    if (gguf_has(f, "tokenizer.chat_template")) {
        const char *tmpl;
        if (gguf_get_str(f, "tokenizer.chat_template", &tmpl, NULL, err, errlen) != 0)
            goto bad;
        if (!(t->chat_template = strdup(tmpl))) {
            snprintf(err, errlen, "%s: out of memory", path);
            goto bad;
        }
    }
    for (int i = 0; i < n; i++)
        if (m->text_len[i] > t->max_token_bytes)
            t->max_token_bytes = m->text_len[i];
    free(scores);
    gguf_close(f);
    return 0;
bad:
    free(scores);
    gguf_close(f);
    tokenizer_free(t);
    return -1;
}
