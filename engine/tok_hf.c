/*
 * tok_hf.c: Hugging Face tokenizer.json (+ tokenizer_config.json) loader.
 *
 * Supported: model BPE (vocab, merges as "a b" strings or [a, b] pairs,
 * byte_fallback, fuse_unk, unk_token, ignore_merges); normalizers NFC,
 * Prepend, Replace (string pattern) and Sequence; pre-tokenizers ByteLevel,
 * Split (the GPT-2, LLaMA-3 and Qwen2 patterns, Isolated), Digits,
 * Metaspace and Sequence; the TemplateProcessing post-processor (BOS/EOS
 * added with add_special_tokens); added_tokens with their flags. The
 * decoder only decides how "▁" and a leading space decode. Anything else
 * (another model type, an unknown normalizer or pattern, merges or ids that
 * do not fit the vocabulary) is refused with a message naming the file and
 * the offending entry. tokenizer_config.json gives bos/eos/unk/pad tokens,
 * add_bos_token / add_eos_token and chat_template.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tok_internal.h"

#define MAX_ID (1 << 24)

static const char *const PATTERNS[] = {
    [PAT_GPT2] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    [PAT_LLAMA3] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    [PAT_QWEN2] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
};

struct ctx {
    const char *path;
    char *err;
    size_t errlen;
    struct tok_model *m;
};

static int fail(struct ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s: %s", c->path, msg);
    return -1;
}

static int get_bool(json_t *o, const char *key, int def)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : def;
}

static const char *type_of(json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "type"));
    return s ? s : "";
}

static int parse_normalizer(struct ctx *c, json_t *n)
{
    struct tok_model *m = c->m;
    if (!n || json_is_null(n))
        return 0;
    if (!json_is_object(n))
        return fail(c, "normalizer is not an object");
    const char *type = type_of(n);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "normalizers"), *e;
        size_t i;
        if (!json_is_array(list))
            return fail(c, "Sequence normalizer without a \"normalizers\" list");
        json_array_foreach(list, i, e)
            if (parse_normalizer(c, e) != 0)
                return -1;
        return 0;
    }
    if (m->n_norm >= TOK_MAX_STEPS)
        return fail(c, "too many normalizers");
    struct tok_norm *st = &m->norm[m->n_norm];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "NFC") == 0) {
        st->type = NORM_NFC;
    } else if (strcmp(type, "Prepend") == 0) {
        const char *p = json_string_value(json_object_get(n, "prepend"));
        if (!p)
            return fail(c, "Prepend normalizer without a \"prepend\" string");
        st->type = NORM_PREPEND;
        st->a = strdup(p);
        st->alen = (int)strlen(p);
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        const char *content = json_string_value(json_object_get(n, "content"));
        if (!pat || !content || !*pat)
            return fail(c, "Replace normalizer: only a non-empty {\"String\": ...} pattern and a "
                        "content string are supported", NULL);
        st->type = NORM_REPLACE;
        st->a = strdup(pat);
        st->alen = (int)strlen(pat);
        st->b = strdup(content);
        st->blen = (int)strlen(content);
        if (!st->b)
            return fail(c, "out of memory");
    } else {
        return fail(c, "normalizer type \"%s\" is not supported (NFC, Prepend, Replace, Sequence)",
                    type);
    }
    if (st->type != NORM_NFC && !st->a)
        return fail(c, "out of memory");
    m->n_norm++;
    return 0;
}

static int parse_pattern(struct ctx *c, json_t *pat, enum tok_pattern *out)
{
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    if (!re)
        return fail(c, "Split pre-tokenizer: only a {\"Regex\": ...} pattern is supported");
    for (int p = 0; p < (int)(sizeof PATTERNS / sizeof PATTERNS[0]); p++)
        if (strcmp(re, PATTERNS[p]) == 0) {
            *out = (enum tok_pattern)p;
            return 0;
        }
    return fail(c, "Split pre-tokenizer pattern \"%.200s\" is not one this engine knows "
                "(GPT-2, LLaMA-3, Qwen2)", re);
}

static int parse_pre(struct ctx *c, json_t *p)
{
    struct tok_model *m = c->m;
    if (!p || json_is_null(p))
        return 0;
    if (!json_is_object(p))
        return fail(c, "pre_tokenizer is not an object");
    const char *type = type_of(p);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "pretokenizers"), *e;
        size_t i;
        if (!json_is_array(list))
            return fail(c, "Sequence pre-tokenizer without a \"pretokenizers\" list");
        json_array_foreach(list, i, e)
            if (parse_pre(c, e) != 0)
                return -1;
        return 0;
    }
    if (m->n_pre >= TOK_MAX_STEPS)
        return fail(c, "too many pre-tokenizers");
    struct tok_pre *st = &m->pre[m->n_pre];
    memset(st, 0, sizeof *st);
    if (strcmp(type, "ByteLevel") == 0) {
        st->type = PRE_BYTELEVEL;
        st->pattern = PAT_GPT2;
        st->use_regex = get_bool(p, "use_regex", 1);
        st->add_prefix_space = get_bool(p, "add_prefix_space", 0);
        m->byte_level = 1;
    } else if (strcmp(type, "Split") == 0) {
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        st->type = PRE_SPLIT;
        if (parse_pattern(c, json_object_get(p, "pattern"), &st->pattern) != 0)
            return -1;
        if (!beh || strcmp(beh, "Isolated") != 0 || get_bool(p, "invert", 0))
            return fail(c, "Split pre-tokenizer: only behavior \"Isolated\" without invert is "
                        "supported", NULL);
    } else if (strcmp(type, "Digits") == 0) {
        st->type = PRE_DIGITS;
        st->individual = get_bool(p, "individual_digits", 0);
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *rep = json_string_value(json_object_get(p, "replacement"));
        const char *scheme = json_string_value(json_object_get(p, "prepend_scheme"));
        st->type = PRE_METASPACE;
        if (!rep || strlen(rep) == 0 || strlen(rep) >= sizeof st->replacement)
            return fail(c, "Metaspace pre-tokenizer needs a one-character \"replacement\"");
        strcpy(st->replacement, rep);
        st->rep_len = (int)strlen(rep);
        st->split = get_bool(p, "split", 1);
        if (scheme)
            st->prepend = strcmp(scheme, "always") == 0 ? PREPEND_ALWAYS
                          : strcmp(scheme, "first") == 0 ? PREPEND_FIRST : PREPEND_NEVER;
        else
            st->prepend = get_bool(p, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
        if (scheme && st->prepend == PREPEND_NEVER && strcmp(scheme, "never") != 0)
            return fail(c, "Metaspace prepend_scheme \"%s\" is not always/first/never", scheme);
    } else {
        return fail(c, "pre-tokenizer type \"%s\" is not supported (ByteLevel, Split, Digits, "
                    "Metaspace, Sequence)", type);
    }
    m->n_pre++;
    return 0;
}

/* how the decoder treats "▁" and the first token's leading space */
static void parse_decoder(struct tok_model *m, json_t *d)
{
    const char *type = type_of(d);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(d, "decoders"), *e;
        size_t i;
        json_array_foreach(list, i, e)
            parse_decoder(m, e);
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *scheme = json_string_value(json_object_get(d, "prepend_scheme"));
        m->metaspace = 1;
        m->strip_space = scheme ? strcmp(scheme, "never") != 0 : get_bool(d, "add_prefix_space", 1);
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat = json_string_value(json_object_get(json_object_get(d, "pattern"), "String"));
        const char *content = json_string_value(json_object_get(d, "content"));
        if (pat && content && strcmp(pat, "\xe2\x96\x81") == 0 && strcmp(content, " ") == 0)
            m->metaspace = 1;
    } else if (strcmp(type, "Strip") == 0) {
        json_t *start = json_object_get(d, "start");
        const char *content = json_string_value(json_object_get(d, "content"));
        if (json_integer_value(start) > 0 && content && strcmp(content, " ") == 0)
            m->strip_space = 1;
    }
}

/* prefix / suffix special tokens of a TemplateProcessing "single" template */
static int parse_post(struct ctx *c, json_t *p)
{
    struct tok_model *m = c->m;
    const char *type = type_of(p);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(p, "processors"), *e;
        size_t i;
        json_array_foreach(list, i, e)
            if (parse_post(c, e) != 0)
                return -1;
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return 0;
    json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
    json_t *e;
    size_t i;
    int seen_seq = 0;
    m->n_prefix = m->n_suffix = 0;
    json_array_foreach(single, i, e) {
        if (json_object_get(e, "Sequence")) {
            seen_seq = 1;
            continue;
        }
        const char *name = json_string_value(json_object_get(json_object_get(e, "SpecialToken"), "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids"), *x;
        size_t k;
        if (!name || !json_is_array(ids))
            return fail(c, "post_processor: template token \"%s\" has no ids", name);
        json_array_foreach(ids, k, x) {
            json_int_t id = json_integer_value(x);
            int *n = seen_seq ? &m->n_suffix : &m->n_prefix;
            if (!json_is_integer(x) || id < 0 || id >= m->n)
                return fail(c, "post_processor: an id of \"%s\" is out of range", name);
            if (*n >= TOK_MAX_AFFIX)
                return fail(c, "post_processor: too many tokens around the sequence");
            (seen_seq ? m->suffix : m->prefix)[(*n)++] = (int)id;
        }
    }
    return 0;
}

static int check_id(struct ctx *c, json_t *v, const char *what, const char *name)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= MAX_ID)
        return fail(c, "%s \"%.200s\" has id %s", what, name,
                    json_is_integer(v) ? "out of range" : "that is not an integer");
    return (int)json_integer_value(v);
}

static int add_merges(struct ctx *c, json_t *merges)
{
    struct tok_model *m = c->m;
    size_t n = json_array_size(merges);
    if (tok_pairmap_init(&m->merges, n) != 0)
        return fail(c, "out of memory");
    /* walked backwards: a pair listed twice keeps its last rank, as
     * `tokenizers` (a later entry overwrites the earlier one) */
    for (size_t k = n; k-- > 0;) {
        json_t *e = json_array_get(merges, k);
        const char *a = NULL, *b = NULL;
        char *tmp = NULL;
        if (json_is_string(e)) {
            tmp = strdup(json_string_value(e));
            char *sp = tmp ? strchr(tmp, ' ') : NULL;
            if (!sp || strchr(sp + 1, ' ')) {
                free(tmp);
                return fail(c, "merge %zu (\"%.100s\") is not two tokens separated by one space",
                            k, json_string_value(e));
            }
            *sp = 0;
            a = tmp;
            b = sp + 1;
        } else if (json_is_array(e) && json_array_size(e) == 2) {
            a = json_string_value(json_array_get(e, 0));
            b = json_string_value(json_array_get(e, 1));
        }
        if (!a || !b) {
            free(tmp);
            return fail(c, "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", k);
        }
        size_t la = strlen(a), lb = strlen(b);
        char *ab = malloc(la + lb + 1);
        int ia = tok_strmap_get(&m->vocab, a, la), ib = tok_strmap_get(&m->vocab, b, lb), iab = -1;
        if (ab) {
            memcpy(ab, a, la);
            memcpy(ab + la, b, lb + 1);
            iab = tok_strmap_get(&m->vocab, ab, la + lb);
        }
        if (ia < 0 || ib < 0 || iab < 0) {
            fail(c, "merge %zu (\"%.60s\" + \"%.60s\") refers to a token not in the vocabulary "
                 "(\"%.120s\")", k, a, b, ia < 0 ? a : ib < 0 ? b : ab ? ab : "?");
            free(tmp);
            free(ab);
            return -1;
        }
        free(tmp);
        free(ab);
        if (tok_pairmap_add(&m->merges, ia, ib, (int)k, iab) < 0)
            return fail(c, "out of memory");
    }
    return 0;
}

/* tokenizer_config.json: a token given as "text" or {"content": "text"} */
static const char *config_token(json_t *cfg, const char *key)
{
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

static int read_config(struct tokenizer *t, const char *path, char *err, size_t errlen)
{
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    struct tok_model *m = t->m;
    if (!json_is_object(cfg)) {
        snprintf(err, errlen, "%s: not a JSON object (line %d: %s)", path, je.line, je.text);
        json_decref(cfg);
        return -1;
    }
    struct { const char *key; int *id; } toks[] = {
        {"bos_token", &t->bos_id}, {"eos_token", &t->eos_id},
        {"unk_token", &t->unk_id}, {"pad_token", &t->pad_id},
    };
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        const char *s = config_token(cfg, toks[i].key);
        if (!s)
            continue;
        int id = tokenizer_token_id(t, s);
        if (id < 0) {
            snprintf(err, errlen, "%s: %s \"%.100s\" is not a token of tokenizer.json", path,
                     toks[i].key, s);
            json_decref(cfg);
            return -1;
        }
        *toks[i].id = id;
    }
    json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (json_is_boolean(ab)) {
        m->n_prefix = 0;
        if (json_is_true(ab) && t->bos_id >= 0)
            m->prefix[m->n_prefix++] = t->bos_id;
    }
    if (json_is_boolean(ae)) {
        m->n_suffix = 0;
        if (json_is_true(ae) && t->eos_id >= 0)
            m->suffix[m->n_suffix++] = t->eos_id;
    }
    json_t *tmpl = json_object_get(cfg, "chat_template"), *e;
    size_t i;
    if (json_is_array(tmpl)) { /* [{"name": ..., "template": ...}]: the default one */
        json_t *pick = NULL;
        json_array_foreach(tmpl, i, e)
            if (!pick || strcmp(json_string_value(json_object_get(e, "name")) ?
                                json_string_value(json_object_get(e, "name")) : "", "default") == 0)
                pick = e;
        tmpl = json_object_get(pick, "template");
    }
    if (json_is_string(tmpl) && !(t->chat_template = strdup(json_string_value(tmpl)))) {
        snprintf(err, errlen, "%s: out of memory", path);
        json_decref(cfg);
        return -1;
    }
    json_decref(cfg);
    return 0;
}

int tok_load_hf(struct tokenizer *t, const char *json_path, const char *config_path,
                char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(json_path, 0, &je), *e;
    struct tok_model *m = calloc(1, sizeof *m);
    struct ctx c = {json_path, err, errlen, m};
    const char *key;
    json_t *v;
    size_t i;
    memset(t, 0, sizeof *t);
    t->m = m;
    t->kind = TOKENIZER_HF;
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    if (!m) {
        fail(&c, "out of memory");
        goto bad;
    }
    if (!root) {
        snprintf(err, errlen, "%s: not valid JSON (line %d, column %d: %s)", json_path, je.line,
                 je.column, je.text);
        goto bad;
    }
    if (!json_is_object(root)) {
        fail(&c, "not a tokenizer.json (the top level is not an object)");
        goto bad;
    }
    json_t *model = json_object_get(root, "model");
    json_t *added = json_object_get(root, "added_tokens");
    if (!json_is_object(model)) {
        fail(&c, "no \"model\" object: not a tokenizer.json");
        goto bad;
    }
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (mtype ? strcmp(mtype, "BPE") != 0 : !json_object_get(model, "merges")) {
        fail(&c, "model type \"%s\" is not supported (only BPE)", mtype ? mtype : "(none)");
        goto bad;
    }
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges)) {
        fail(&c, "BPE model without a \"vocab\" object and a \"merges\" list");
        goto bad;
    }
    if (added && !json_is_array(added)) {
        fail(&c, "\"added_tokens\" is not a list");
        goto bad;
    }
    json_t *dropout = json_object_get(model, "dropout");
    const char *csp = json_string_value(json_object_get(model, "continuing_subword_prefix"));
    const char *ews = json_string_value(json_object_get(model, "end_of_word_suffix"));
    if ((json_is_number(dropout) && json_number_value(dropout) > 0) || (csp && *csp) ||
        (ews && *ews)) {
        fail(&c, "BPE dropout, continuing_subword_prefix and end_of_word_suffix are not "
             "supported");
        goto bad;
    }
    /* ids */
    int n = 0, max_added = -1;
    json_object_foreach(vocab, key, v) {
        int id = check_id(&c, v, "vocabulary token", key);
        if (id < 0)
            goto bad;
        n = id + 1 > n ? id + 1 : n;
    }
    json_array_foreach(added, i, e) {
        const char *content = json_string_value(json_object_get(e, "content"));
        if (!content) {
            fail(&c, "an added token has no \"content\" string");
            goto bad;
        }
        int id = check_id(&c, json_object_get(e, "id"), "added token", content);
        if (id < 0)
            goto bad;
        /* `tokenizers` ignores the id written in the file: an added token
         * takes its content's vocabulary id, else the next id after the
         * vocabulary and the added tokens before it. A file where the two
         * disagree would encode differently here and there: refused. */
        json_t *in_vocab = json_object_get(vocab, content);
        int hf_id = in_vocab ? (int)json_integer_value(in_vocab)
                             : max_added >= (int)json_object_size(vocab) ? max_added + 1
                                                                         : (int)json_object_size(vocab);
        for (size_t k = 0; k < i && !in_vocab; k++) {
            json_t *p = json_array_get(added, k);
            if (strcmp(json_string_value(json_object_get(p, "content")), content) == 0)
                hf_id = (int)json_integer_value(json_object_get(p, "id"));
        }
        if (hf_id != id) {
            fail(&c, "added token \"%.100s\" has id %d, but `tokenizers` would give it id %d "
                 "(an inconsistent file)", content, id, hf_id);
            goto bad;
        }
        max_added = id > max_added ? id : max_added;
        n = id + 1 > n ? id + 1 : n;
    }
    if (n == 0) {
        fail(&c, "the vocabulary is empty");
        goto bad;
    }
    if (tok_model_alloc(m, n) != 0) {
        fail(&c, "out of memory");
        goto bad;
    }
    json_object_foreach(vocab, key, v) {
        int id = (int)json_integer_value(v);
        if (!(m->attr[id] & TOK_ATTR_UNUSED)) {
            fail(&c, "id %d is given to both \"%.100s\" and \"%.100s\"", id, m->str[id], key);
            goto bad;
        }
        if (tok_model_set(m, id, key, (int)strlen(key)) != 0) {
            fail(&c, "out of memory");
            goto bad;
        }
    }
    if (parse_normalizer(&c, json_object_get(root, "normalizer")) != 0 ||
        parse_pre(&c, json_object_get(root, "pre_tokenizer")) != 0)
        goto bad;
    json_array_foreach(added, i, e) {
        const char *content = json_string_value(json_object_get(e, "content"));
        int id = (int)json_integer_value(json_object_get(e, "id"));
        int len = (int)strlen(content);
        struct tok_added a = {id, (char *)content, len, get_bool(e, "special", 0),
                              get_bool(e, "normalized", !get_bool(e, "special", 0)),
                              get_bool(e, "lstrip", 0), get_bool(e, "rstrip", 0),
                              get_bool(e, "single_word", 0)};
        char *norm = NULL;
        int in_vocab = !(m->attr[id] & TOK_ATTR_UNUSED);
        if (len == 0) {
            fail(&c, "an added token has empty content");
            goto bad;
        }
        /* an id of the model vocabulary keeps its vocabulary string (for the
         * model's lookups) and decodes to the added token's content */
        if ((in_vocab ? tok_model_set_text(m, id, content, len)
                      : tok_model_set(m, id, content, len)) != 0) {
            fail(&c, "out of memory");
            goto bad;
        }
        m->attr[id] |= TOK_ATTR_ADDED | (a.special ? TOK_ATTR_SPECIAL : 0) |
                       (in_vocab ? 0 : TOK_ATTR_EXTRA);
        if (a.normalized && m->n_norm > 0) {
            if (tok_normalize_str(m, content, len, &norm, &a.len) != 0) {
                fail(&c, "out of memory");
                goto bad;
            }
            a.content = norm;
        }
        int rc = tok_model_add_added(m, &a);
        free(norm);
        if (rc != 0) {
            fail(&c, "out of memory");
            goto bad;
        }
    }
    json_t *dec = json_object_get(root, "decoder");
    if (!m->byte_level && json_is_object(dec))
        parse_decoder(m, dec);
    m->byte_fallback = get_bool(model, "byte_fallback", 0);
    m->fuse_unk = get_bool(model, "fuse_unk", 0);
    m->ignore_merges = get_bool(model, "ignore_merges", 0);
    if (tok_model_finish(m, json_path, err, errlen) != 0 || add_merges(&c, merges) != 0)
        goto bad;
    const char *unk = json_string_value(json_object_get(model, "unk_token"));
    if (unk && (m->unk_id = tok_strmap_get(&m->vocab, unk, strlen(unk))) < 0) {
        fail(&c, "unk_token \"%s\" is not in the vocabulary", unk);
        goto bad;
    }
    t->vocab_size = n;
    t->unk_id = m->unk_id;
    json_t *post = json_object_get(root, "post_processor");
    if (json_is_object(post) && parse_post(&c, post) != 0)
        goto bad;
    if (m->n_prefix == 1)
        t->bos_id = m->prefix[0];
    if (m->n_suffix == 1)
        t->eos_id = m->suffix[0];
    if (config_path && read_config(t, config_path, err, errlen) != 0)
        goto bad;
    t->add_bos = m->n_prefix > 0 && m->prefix[0] == t->bos_id;
    t->add_eos = m->n_suffix > 0 && m->suffix[m->n_suffix - 1] == t->eos_id;
    for (int id = 0; id < n; id++)
        if (m->text_len[id] > t->max_token_bytes)
            t->max_token_bytes = m->text_len[id];
    json_decref(root);
    return 0;
bad:
    json_decref(root);
    tokenizer_free(t);
    return -1;
}
