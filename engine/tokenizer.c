/*
 * tokenizer.c: the tokenizer pipeline shared by every kind, finding and
 * loading a model's tokenizer, and decoding.
 *
 * Encoding one input string follows Hugging Face `tokenizers`:
 *   1. added tokens whose content is matched in the raw text (leftmost
 *      longest; lstrip / rstrip / single_word as `tokenizers` applies them;
 *      special ones only when special text is parsed) cut it into segments;
 *   2. each segment is normalized (NFC, Prepend, Replace), then cut again at
 *      "normalized" added tokens;
 *   3. the pieces are pre-tokenized (Metaspace, ByteLevel, Split with a
 *      known pattern, Digits) into words;
 *   4. each word goes through BPE (tok_bpe.c).
 * Each byte of the working text can carry the input offset it came from, so
 * that every token gets its byte span in the input (chat.c uses the spans to
 * find the tokens of assistant turns).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tok_internal.h"

/* ---- the model description ---- */

int tok_model_alloc(struct tok_model *m, int n)
{
    memset(m, 0, sizeof *m);
    m->n = n;
    m->unk_id = -1;
    m->str = calloc((size_t)n, sizeof *m->str);
    m->str_len = calloc((size_t)n, sizeof *m->str_len);
    m->text = calloc((size_t)n, sizeof *m->text);
    m->text_len = calloc((size_t)n, sizeof *m->text_len);
    m->attr = malloc((size_t)n);
    if (!m->str || !m->str_len || !m->text || !m->text_len || !m->attr)
        return -1;
    memset(m->attr, TOK_ATTR_UNUSED, (size_t)n);
    for (int b = 0; b < 256; b++)
        m->byte_sym[b] = m->byte_id[b] = -1;
    return 0;
}

int tok_model_set(struct tok_model *m, int id, const char *s, int len)
{
    char *c = malloc((size_t)len + 1);
    if (!c)
        return -1;
    memcpy(c, s, (size_t)len);
    c[len] = 0;
    if (m->text[id] != m->str[id])
        free(m->text[id]);
    free(m->str[id]);
    m->str[id] = m->text[id] = c;
    m->str_len[id] = m->text_len[id] = len;
    m->attr[id] &= (unsigned char)~TOK_ATTR_UNUSED;
    return 0;
}

int tok_model_add_added(struct tok_model *m, const struct tok_added *a)
{
    struct tok_added *na = realloc(m->added, sizeof *na * (size_t)(m->n_added + 1));
    if (!na)
        return -1;
    m->added = na;
    na[m->n_added] = *a;
    na[m->n_added].content = malloc((size_t)a->len + 1);
    if (!na[m->n_added].content)
        return -1;
    memcpy(na[m->n_added].content, a->content, (size_t)a->len);
    na[m->n_added].content[a->len] = 0;
    m->n_added++;
    return 0;
}

void tok_model_free(struct tok_model *m)
{
    for (int i = 0; m->str && i < m->n; i++) {
        if (m->text[i] != m->str[i])
            free(m->text[i]);
        free(m->str[i]);
    }
    free(m->str);
    free(m->str_len);
    free(m->text);
    free(m->text_len);
    free(m->attr);
    tok_strmap_free(&m->vocab);
    tok_pairmap_free(&m->merges);
    for (int i = 0; i < m->n_added; i++)
        free(m->added[i].content);
    free(m->added);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 256; b++)
            free(m->added_by_byte[k][b]);
    for (int i = 0; i < m->n_norm; i++) {
        free(m->norm[i].a);
        free(m->norm[i].b);
    }
    memset(m, 0, sizeof *m);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes are themselves, the
 * others are 256, 257, ... in byte order. */
static void byte_chars(uint32_t t[256])
{
    uint32_t next = 256;
    for (int i = 0; i < 256; i++)
        t[i] = (i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174 ? (uint32_t)i
                                                                           : next++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* the byte of a "<0xHH>" piece, or -1 */
static int byte_piece(const char *s, int len)
{
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>' ||
        hexval(s[3]) < 0 || hexval(s[4]) < 0)
        return -1;
    return hexval(s[3]) * 16 + hexval(s[4]);
}

static int set_text(struct tok_model *m, int id, char *t, int len)
{
    if (!t)
        return -1;
    if (m->text[id] != m->str[id])
        free(m->text[id]);
    m->text[id] = t;
    m->text_len[id] = len;
    return 0;
}

int tok_model_set_text(struct tok_model *m, int id, const char *s, int len)
{
    if (m->str_len[id] == len && memcmp(m->str[id], s, (size_t)len) == 0)
        return 0;
    char *t = malloc((size_t)len + 1);
    if (t) {
        memcpy(t, s, (size_t)len);
        t[len] = 0;
    }
    return set_text(m, id, t, len);
}

/* decoded bytes of every id */
static int decode_texts(struct tok_model *m)
{
    int rev[512];
    uint32_t bc[256];
    byte_chars(bc);
    for (int i = 0; i < 512; i++)
        rev[i] = -1;
    for (int b = 0; b < 256; b++)
        rev[bc[b]] = b;
    for (int id = 0; id < m->n; id++) {
        const char *s = m->str[id];
        int len = m->str_len[id];
        if ((m->attr[id] & (TOK_ATTR_UNUSED | TOK_ATTR_ADDED)) || !s)
            continue;
        if (m->byte_level) {
            char *t = malloc((size_t)len + 1);
            int n = 0, ok = 1;
            if (!t)
                return -1;
            for (int i = 0; i < len && ok;) {
                uint32_t cp;
                i += tok_utf8_next((const unsigned char *)s + i, (size_t)(len - i), &cp);
                ok = cp < 512 && rev[cp] >= 0;
                if (ok)
                    t[n++] = (char)rev[cp];
            }
            if (!ok) { /* `tokenizers` keeps such a token's own bytes */
                free(t);
                continue;
            }
            t[n] = 0;
            if (set_text(m, id, t, n))
                return -1;
        } else if (byte_piece(s, len) >= 0) {
            char *t = malloc(2);
            m->attr[id] |= TOK_ATTR_BYTE;
            if (t) {
                t[0] = (char)byte_piece(s, len);
                t[1] = 0;
            }
            if (set_text(m, id, t, 1))
                return -1;
        } else if (m->metaspace && strstr(s, "\xe2\x96\x81")) {
            char *t = malloc((size_t)len + 1);
            int n = 0;
            if (!t)
                return -1;
            for (int i = 0; i < len;) {
                if (i + 3 <= len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                    t[n++] = ' ';
                    i += 3;
                } else {
                    t[n++] = s[i++];
                }
            }
            t[n] = 0;
            if (set_text(m, id, t, n))
                return -1;
        }
    }
    return 0;
}

static int added_longer(const void *a, const void *b, void *model)
{
    const struct tok_model *m = model;
    const struct tok_added *x = &m->added[*(const int *)a], *y = &m->added[*(const int *)b];
    return (y->len > x->len) - (y->len < x->len);
}

int tok_model_finish(struct tok_model *m, const char *what, char *err, size_t errlen)
{
    if (decode_texts(m) != 0)
        goto oom;
    unsigned char *skip = m->n > 0 ? malloc((size_t)m->n) : NULL;
    if (!skip)
        goto oom;
    for (int id = 0; id < m->n; id++)
        skip[id] = (m->attr[id] & (TOK_ATTR_UNUSED | TOK_ATTR_EXTRA)) != 0;
    int rc = tok_strmap_init(&m->vocab, (const char *const *)m->str, m->str_len, m->n, skip);
    free(skip);
    if (rc != 0)
        goto oom;
    uint32_t bc[256];
    byte_chars(bc);
    for (int b = 0; b < 256; b++) {
        char buf[8];
        if (m->byte_level) {
            m->byte_chr_len[b] = tok_utf8_put(bc[b], m->byte_chr[b]);
            m->byte_sym[b] = tok_strmap_get(&m->vocab, m->byte_chr[b],
                                            (size_t)m->byte_chr_len[b]);
        } else {
            snprintf(buf, sizeof buf, "<0x%02X>", b);
            int id = tok_strmap_get(&m->vocab, buf, 6);
            m->byte_id[b] = id >= 0 && (m->attr[id] & TOK_ATTR_BYTE) ? id : -1;
        }
    }
    for (int i = 0; i < m->n_added; i++) {
        const struct tok_added *a = &m->added[i];
        if (a->len == 0) {
            snprintf(err, errlen, "%s: added token %d is empty", what, a->id);
            return -1;
        }
        int k = a->normalized, b = (unsigned char)a->content[0];
        int *na = realloc(m->added_by_byte[k][b], sizeof(int) * (size_t)(m->n_added_by_byte[k][b] + 1));
        if (!na)
            goto oom;
        m->added_by_byte[k][b] = na;
        na[m->n_added_by_byte[k][b]++] = i;
    }
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 256; b++)
            if (m->n_added_by_byte[k][b] > 1)
                qsort_r(m->added_by_byte[k][b], (size_t)m->n_added_by_byte[k][b], sizeof(int),
                        added_longer, m);
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", what);
    return -1;
}

static int by_score_desc(const void *a, const void *b, void *scores)
{
    const float *sc = scores;
    float x = sc[*(const int *)a], y = sc[*(const int *)b];
    return (x < y) - (x > y);
}

int tok_model_merges_from_scores(struct tok_model *m, const float *scores, char *err,
                                 size_t errlen)
{
    int *order = malloc(sizeof(int) * (size_t)m->n), *rank = malloc(sizeof(int) * (size_t)m->n);
    int rc = -1;
    if (!order || !rank || tok_pairmap_init(&m->merges, (size_t)m->n * 4) != 0)
        goto out;
    for (int i = 0; i < m->n; i++)
        order[i] = i;
    qsort_r(order, (size_t)m->n, sizeof(int), by_score_desc, (void *)scores);
    for (int i = 0, r = 0; i < m->n; i++) {
        if (i > 0 && scores[order[i]] != scores[order[i - 1]])
            r++;
        rank[order[i]] = r;
    }
    for (int id = 0; id < m->n; id++) {
        const char *s = m->str[id];
        int len = m->str_len[id];
        if ((m->attr[id] & (TOK_ATTR_UNUSED | TOK_ATTR_NO_MERGE | TOK_ATTR_EXTRA)) ||
            tok_strmap_get(&m->vocab, s, (size_t)len) != id)
            continue;
        for (int k = 1; k < len; k++) {
            int l = tok_strmap_get(&m->vocab, s, (size_t)k);
            int r = l >= 0 ? tok_strmap_get(&m->vocab, s + k, (size_t)(len - k)) : -1;
            if (r >= 0 && tok_pairmap_add(&m->merges, l, r, rank[id], id) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    if (rc != 0)
        snprintf(err, errlen, "out of memory building merges");
    free(order);
    free(rank);
    return rc;
}

/* ---- working text with input offsets ---- */

static int buf_init(struct tok_buf *b, int track, size_t cap)
{
    memset(b, 0, sizeof *b);
    cap = cap < 16 ? 16 : cap;
    b->s = malloc(cap);
    b->orig = track ? malloc(cap * sizeof(int)) : NULL;
    b->cap = cap;
    return !b->s || (track && !b->orig) ? -1 : 0;
}

/* append s[0..n) whose bytes came from offsets orig[0..n) (NULL: untracked) */
static int buf_put_map(struct tok_buf *b, const char *s, const int *orig, size_t n)
{
    if (!b->orig || !orig)
        return tok_buf_put(b, s, n, 0);
    size_t at = b->len;
    if (tok_buf_put(b, s, n, 0))
        return -1;
    memcpy(b->orig + at, orig, n * sizeof(int));
    return 0;
}

static int norm_step(const struct tok_norm *st, const struct tok_buf *in, struct tok_buf *out)
{
    if (st->type == NORM_NFC)
        return tok_nfc(in->s, in->orig, in->len, out);
    if (st->type == NORM_PREPEND) {
        if (in->len > 0 && tok_buf_put(out, st->a, (size_t)st->alen, in->orig ? in->orig[0] : 0))
            return -1;
        return buf_put_map(out, in->s, in->orig, in->len);
    }
    /* NORM_REPLACE: every non-overlapping occurrence of a, left to right */
    size_t i = 0, from = 0;
    while (i + (size_t)st->alen <= in->len) {
        if (memcmp(in->s + i, st->a, (size_t)st->alen) != 0) {
            i++;
            continue;
        }
        if (buf_put_map(out, in->s + from, in->orig ? in->orig + from : NULL, i - from) ||
            tok_buf_put(out, st->b, (size_t)st->blen, in->orig ? in->orig[i] : 0))
            return -1;
        i += (size_t)st->alen;
        from = i;
    }
    return buf_put_map(out, in->s + from, in->orig ? in->orig + from : NULL, in->len - from);
}

static int normalize(const struct tok_model *m, struct tok_buf *b)
{
    for (int i = 0; i < m->n_norm; i++) {
        struct tok_buf out;
        if (buf_init(&out, b->orig != NULL, b->len + 16) || norm_step(&m->norm[i], b, &out)) {
            tok_buf_free(&out);
            return -1;
        }
        tok_buf_free(b);
        *b = out;
    }
    return 0;
}

int tok_normalize_str(const struct tok_model *m, const char *s, int len, char **out,
                      int *out_len)
{
    struct tok_buf b;
    if (buf_init(&b, 0, (size_t)len + 1) || tok_buf_put(&b, s, (size_t)len, 0) ||
        normalize(m, &b) || tok_buf_put(&b, "", 1, 0)) {
        tok_buf_free(&b);
        return -1;
    }
    *out = b.s;
    *out_len = (int)b.len - 1;
    return 0;
}

/* ---- added tokens in text ---- */

static int is_word_char(const char *s, size_t n, size_t at, int backwards)
{
    uint32_t cp;
    if (backwards) {
        size_t i = at - 1;
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80)
            i--;
        tok_utf8_next((const unsigned char *)s + i, at - i, &cp);
    } else {
        tok_utf8_next((const unsigned char *)s + at, n - at, &cp);
    }
    return cp == '_' || tok_ucat(cp) != TOK_CAT_OTHER;
}

/* start of the whitespace that ends s[0..at), not before `floor` */
static size_t space_back(const char *s, size_t at, size_t floor)
{
    while (at > floor) {
        size_t i = at - 1;
        uint32_t cp;
        while (i > floor && ((unsigned char)s[i] & 0xC0) == 0x80)
            i--;
        tok_utf8_next((const unsigned char *)s + i, at - i, &cp);
        if (!tok_uspace(cp))
            break;
        at = i;
    }
    return at;
}

static size_t space_fwd(const char *s, size_t n, size_t at)
{
    while (at < n) {
        uint32_t cp;
        int len = tok_utf8_next((const unsigned char *)s + at, n - at, &cp);
        if (!tok_uspace(cp))
            break;
        at += (size_t)len;
    }
    return at;
}

/* The next added token (of the raw or normalized set) in s[from..n):
 * 1 with its id and [*ms, *me) (whitespace taken by lstrip / rstrip
 * included), 0 when there is none. Leftmost longest, as `tokenizers`' Aho-
 * Corasick; a match that is then refused (a special token while special
 * text is not parsed, a single_word token inside a word) stays plain text. */
static int next_added(const struct tok_model *m, int norm, const char *s, size_t n,
                      size_t from, int parse_special, size_t *ms, size_t *me, int *id)
{
    for (size_t i = from; i < n;) {
        int cnt = m->n_added_by_byte[norm][(unsigned char)s[i]];
        const int *idx = m->added_by_byte[norm][(unsigned char)s[i]];
        const struct tok_added *a = NULL;
        for (int k = 0; k < cnt; k++) {
            const struct tok_added *c = &m->added[idx[k]];
            if ((size_t)c->len <= n - i && memcmp(s + i, c->content, (size_t)c->len) == 0) {
                a = c;
                break;
            }
        }
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + (size_t)a->len;
        if ((a->special && !parse_special) ||
            (a->single_word && ((start > 0 && is_word_char(s, n, start, 1)) ||
                                (stop < n && is_word_char(s, n, stop, 0))))) {
            i = stop;
            continue;
        }
        if (a->lstrip)
            start = space_back(s, start, from);
        if (a->rstrip)
            stop = space_fwd(s, n, stop);
        *ms = start;
        *me = stop;
        *id = a->id;
        return 1;
    }
    return 0;
}

/* ---- pre-tokenization ---- */

struct plist {
    struct tok_buf b;
    int *r;                  /* [start, end) of each piece in b */
    unsigned char *first;    /* the piece begins the input */
    int n, cap;
};

static int plist_add(struct plist *p, int s, int e, int first)
{
    if (e <= s)
        return 0;
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        int *nr = realloc(p->r, sizeof(int) * 2 * (size_t)cap);
        if (!nr)
            return -1;
        p->r = nr;
        unsigned char *nf = realloc(p->first, (size_t)cap);
        if (!nf)
            return -1;
        p->first = nf;
        p->cap = cap;
    }
    p->r[2 * p->n] = s;
    p->r[2 * p->n + 1] = e;
    p->first[p->n++] = (unsigned char)first;
    return 0;
}

static void plist_free(struct plist *p)
{
    tok_buf_free(&p->b);
    free(p->r);
    free(p->first);
    memset(p, 0, sizeof *p);
}

/* split piece [s, e) of in->b into out (same text), by pattern or digits */
static int split_piece(const struct tok_pre *st, const struct plist *in, int k,
                       struct plist *out)
{
    int s = in->r[2 * k], e = in->r[2 * k + 1], first = in->first[k];
    const char *t = in->b.s;
    if (st->type == PRE_DIGITS) {
        int i = s, last = s;
        while (i < e) {
            uint32_t cp;
            int len = tok_utf8_next((const unsigned char *)t + i, (size_t)(e - i), &cp);
            if (tok_ucat(cp) != TOK_CAT_N) {
                i += len;
                continue;
            }
            int j = i + len;
            while (!st->individual && j < e) {
                int l2 = tok_utf8_next((const unsigned char *)t + j, (size_t)(e - j), &cp);
                if (tok_ucat(cp) != TOK_CAT_N)
                    break;
                j += l2;
            }
            if (plist_add(out, last, i, first && last == s) || plist_add(out, i, j, first && i == s))
                return -1;
            last = i = j;
        }
        return plist_add(out, last, e, first && last == s);
    }
    int *pieces, cnt = tok_pattern_split(st->pattern, t + s, (size_t)(e - s), &pieces);
    if (cnt < 0)
        return -1;
    for (int i = 0; i < cnt; i++)
        if (plist_add(out, s + pieces[2 * i], s + pieces[2 * i + 1], first && pieces[2 * i] == 0)) {
            free(pieces);
            return -1;
        }
    free(pieces);
    return 0;
}

/* Metaspace / ByteLevel add_prefix_space: rewrite each piece into a new text */
static int rewrite_piece(const struct tok_pre *st, const struct plist *in, int k,
                         struct plist *out)
{
    int s = in->r[2 * k], e = in->r[2 * k + 1], first = in->first[k];
    const char *t = in->b.s;
    const int *orig = in->b.orig;
    size_t start = out->b.len;
    if (st->type == PRE_BYTELEVEL) {
        if (t[s] != ' ' && tok_buf_put(&out->b, " ", 1, orig ? orig[s] : 0))
            return -1;
        if (buf_put_map(&out->b, t + s, orig ? orig + s : NULL, (size_t)(e - s)))
            return -1;
        return plist_add(out, (int)start, (int)out->b.len, first);
    }
    int has = e - s >= st->rep_len && memcmp(t + s, st->replacement, (size_t)st->rep_len) == 0;
    if (t[s] == ' ')
        has = 1; /* the space becomes the replacement below */
    if (!has && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && first)) &&
        tok_buf_put(&out->b, st->replacement, (size_t)st->rep_len, orig ? orig[s] : 0))
        return -1;
    for (int i = s; i < e; i++) {
        int rc = t[i] == ' '
                     ? tok_buf_put(&out->b, st->replacement, (size_t)st->rep_len, orig ? orig[i] : 0)
                     : tok_buf_put(&out->b, t + i, 1, orig ? orig[i] : 0);
        if (rc)
            return -1;
    }
    if (!st->split)
        return plist_add(out, (int)start, (int)out->b.len, first);
    /* MergedWithNext: each replacement starts a new piece */
    int ps = (int)start;
    for (int i = (int)start + 1; i + st->rep_len <= (int)out->b.len; i++)
        if (memcmp(out->b.s + i, st->replacement, (size_t)st->rep_len) == 0) {
            if (plist_add(out, ps, i, first && ps == (int)start))
                return -1;
            ps = i;
        }
    return plist_add(out, ps, (int)out->b.len, first && ps == (int)start);
}

static int pre_step(const struct tok_pre *st, struct plist *p)
{
    struct plist out = {0};
    int rewrite = st->type == PRE_METASPACE || (st->type == PRE_BYTELEVEL && st->add_prefix_space);
    if (rewrite) {
        if (buf_init(&out.b, p->b.orig != NULL, p->b.len + 16))
            goto fail;
        for (int k = 0; k < p->n; k++)
            if (rewrite_piece(st, p, k, &out))
                goto fail;
        plist_free(p);
        *p = out;
        if (st->type == PRE_METASPACE || !st->use_regex)
            return 0;
        memset(&out, 0, sizeof out);
    } else if (st->type == PRE_BYTELEVEL && !st->use_regex) {
        return 0;
    }
    out.b = p->b;
    for (int k = 0; k < p->n; k++)
        if (split_piece(st, p, k, &out))
            goto fail_shared;
    memset(&p->b, 0, sizeof p->b);
    plist_free(p);
    *p = out;
    return 0;
fail_shared:
    memset(&out.b, 0, sizeof out.b);
fail:
    plist_free(&out);
    return -1;
}

/* ---- encoding ---- */

/* One piece of normalized text (b[s..e)) through pre-tokenizers and model. */
static int encode_piece(const struct tok_model *m, const struct tok_buf *b, size_t s,
                        size_t e, int first, struct tok_out *o)
{
    struct plist p = {0};
    int rc = -1;
    if (buf_init(&p.b, b->orig != NULL, e - s + 16) ||
        buf_put_map(&p.b, b->s + s, b->orig ? b->orig + s : NULL, e - s) ||
        plist_add(&p, 0, (int)(e - s), first))
        goto out;
    for (int i = 0; i < m->n_pre; i++)
        if (pre_step(&m->pre[i], &p))
            goto out;
    for (int k = 0; k < p.n && !o->overflow; k++) {
        int ws = p.r[2 * k], we = p.r[2 * k + 1];
        if (tok_bpe_word(m, p.b.s + ws, (size_t)(we - ws), p.b.orig ? p.b.orig + ws : NULL, o))
            goto out;
    }
    rc = 0;
out:
    plist_free(&p);
    return rc;
}

/* A raw segment text[a..z) (no raw added token inside). */
static int encode_segment(const struct tok_model *m, const char *text, size_t a, size_t z,
                          int at_start, int parse_special, int track, struct tok_out *o)
{
    struct tok_buf b;
    int rc = -1;
    if (buf_init(&b, track, z - a + 16))
        goto out;
    if (track) {
        for (size_t i = a; i < z; i++)
            if (tok_buf_put(&b, text + i, 1, (int)i))
                goto out;
    } else if (tok_buf_put(&b, text + a, z - a, 0)) {
        goto out;
    }
    if (normalize(m, &b))
        goto out;
    size_t from = 0, ms = 0, me = 0;
    int id = 0;
    while (from < b.len && !o->overflow) {
        int found = next_added(m, 1, b.s, b.len, from, parse_special, &ms, &me, &id);
        size_t end = found ? ms : b.len;
        if (end > from && encode_piece(m, &b, from, end, at_start && from == 0, o))
            goto out;
        if (!found)
            break;
        tok_out_push(o, id, b.orig ? b.orig[ms] : 0, b.orig ? b.orig[me - 1] + 1 : 0);
        from = me;
    }
    rc = 0;
out:
    tok_buf_free(&b);
    return rc;
}

int tok_encode_text(const struct tokenizer *t, const char *text, size_t len, int flags,
                    int at_start, int *ids, int *spans, int max)
{
    const struct tok_model *m = t->m;
    struct tok_out o = {ids, spans, 0, max, 0};
    int parse = (flags & TOKENIZE_PARSE_SPECIAL) != 0;
    size_t from = 0, ms = 0, me = 0;
    int id = 0;
    while (from < len && !o.overflow) {
        int found = next_added(m, 0, text, len, from, parse, &ms, &me, &id);
        size_t end = found ? ms : len;
        if (end > from &&
            encode_segment(m, text, from, end, at_start && from == 0, parse, spans != NULL, &o))
            return -1;
        if (!found)
            break;
        tok_out_push(&o, id, (int)ms, (int)me);
        from = me;
    }
    return o.overflow ? -1 : o.n;
}

int tokenizer_encode(const struct tokenizer *t, const char *text, size_t len, int flags,
                     int *ids, int max_ids)
{
    const struct tok_model *m = t->m;
    int n = 0;
    if (flags & TOKENIZE_ADD_SPECIAL)
        for (int i = 0; i < m->n_prefix; i++) {
            if (n >= max_ids)
                return -1;
            ids[n++] = m->prefix[i];
        }
    if ((flags & TOKENIZE_BOS) && t->bos_id >= 0 && !(n > 0 && ids[0] == t->bos_id)) {
        if (n >= max_ids)
            return -1;
        memmove(ids + 1, ids, sizeof(int) * (size_t)n);
        ids[0] = t->bos_id;
        n++;
    }
    int k = tok_encode_text(t, text, len, flags, 1, ids + n, NULL, max_ids - n);
    if (k < 0)
        return -1;
    n += k;
    if (flags & TOKENIZE_ADD_SPECIAL)
        for (int i = 0; i < m->n_suffix; i++) {
            if (n >= max_ids)
                return -1;
            ids[n++] = m->suffix[i];
        }
    return n;
}

int tokenizer_token_id(const struct tokenizer *t, const char *s)
{
    const struct tok_model *m = t->m;
    size_t n = strlen(s);
    for (int i = 0; i < m->n_added; i++) {
        int id = m->added[i].id;
        if ((size_t)m->text_len[id] == n && memcmp(m->text[id], s, n) == 0)
            return id;
    }
    return tok_strmap_get(&m->vocab, s, n);
}

int tokenizer_is_special(const struct tokenizer *t, int id)
{
    return id >= 0 && id < t->vocab_size &&
           ((t->m->attr[id] & TOK_ATTR_SPECIAL) || id == t->bos_id || id == t->eos_id);
}

/* ---- decoding ---- */

const char *tokenizer_decode(const struct tokenizer *t, int prev, int id, int *len)
{
    const struct tok_model *m = t->m;
    const char *p = m->text[id];
    int n = m->text_len[id];
    if (!p) {
        *len = 0;
        return "";
    }
    if (m->strip_space && (prev < 0 || prev == t->bos_id) && n > 0 && p[0] == ' ' &&
        !(m->attr[id] & (TOK_ATTR_ADDED | TOK_ATTR_BYTE))) {
        p++;
        n--;
    }
    *len = n;
    return p;
}

long tokenizer_decode_all(const struct tokenizer *t, const int *ids, int n, char *out,
                          size_t cap)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int len;
        if (ids[i] < 0 || ids[i] >= t->vocab_size)
            return -1;
        const char *p = tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i], &len);
        if (total < cap)
            memcpy(out + total, p, (size_t)len < cap - total ? (size_t)len : cap - total);
        total += (size_t)len;
    }
    if (total < cap)
        out[total] = 0;
    return (long)total;
}

void tokenizer_stream_init(struct tokenizer_stream *s, int prev)
{
    memset(s, 0, sizeof *s);
    s->prev = prev;
}

int tokenizer_stream_next(const struct tokenizer *t, struct tokenizer_stream *s, int id,
                          char *out, int cap)
{
    int len;
    if (id < 0 || id >= t->vocab_size)
        return -1;
    const char *p = tokenizer_decode(t, s->prev, id, &len);
    if (s->n_pending + len > cap)
        return -1;
    memcpy(out, s->pending, (size_t)s->n_pending);
    memcpy(out + s->n_pending, p, (size_t)len);
    int total = s->n_pending + len, hold = 0;
    s->prev = id;
    /* hold back a lead byte and the continuation bytes after it when the
     * character they start is not complete yet */
    for (int k = 1; k <= 3 && k <= total; k++) {
        unsigned char c = (unsigned char)out[total - k];
        if ((c & 0xC0) == 0x80)
            continue;
        int need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3
                   : c >= 0xC2 && c <= 0xDF ? 2 : 1;
        if (need > k)
            hold = k;
        break;
    }
    memcpy(s->pending, out + total - hold, (size_t)hold);
    s->n_pending = hold;
    return total - hold;
}

int tokenizer_stream_flush(struct tokenizer_stream *s, char *out)
{
    int n = s->n_pending;
    memcpy(out, s->pending, (size_t)n);
    s->n_pending = 0;
    return n;
}

/* ---- finding and loading ---- */

void tokenizer_free(struct tokenizer *t)
{
    if (t->m) {
        tok_model_free(t->m);
        free(t->m);
    }
    free(t->chat_template);
    memset(t, 0, sizeof *t);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcmp(s + n - k, suf) == 0;
}

/* The base model a checkpoint directory was trained from (its owlore.json),
 * into base (len bytes); -1 when dir is not a checkpoint. */
static int checkpoint_base_model(const char *dir, char *base, size_t len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/owlore.json", dir);
    json_t *j = json_load_file(p, 0, NULL);
    const char *b = json_string_value(json_object_get(j, "base_model"));
    int rc = b && *b ? 0 : -1;
    if (rc == 0)
        snprintf(base, len, "%s", b);
    json_decref(j);
    return rc;
}

int tokenizer_find_for_model(const char *model_path, const char *explicit_path,
                             int vocab_size, char *path, size_t len, char *err,
                             size_t errlen)
{
    char dir[4096], base[4096];
    struct stat st;
    if (explicit_path) {
        snprintf(path, len, "%s", explicit_path);
        return 0;
    }
    if (is_file(model_path) && has_suffix(model_path, ".gguf")) {
        snprintf(path, len, "%s", model_path);
        return 0;
    }
    snprintf(dir, sizeof dir, "%s", model_path);
    if (stat(model_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
    }
    snprintf(path, len, "%s/tokenizer.json", dir);
    if (is_file(path))
        return 0;
    snprintf(path, len, "%s/tokenizer.bin", dir);
    if (is_file(path))
        return 0;
    snprintf(path, len, "%s/tok%d.bin", dir, vocab_size);
    if (is_file(path))
        return 0;
    /* a checkpoint of a GGUF model: the base model's embedded tokenizer */
    if (checkpoint_base_model(dir, base, sizeof base) == 0 && strcmp(base, model_path) != 0 &&
        is_file(base) && has_suffix(base, ".gguf")) {
        snprintf(path, len, "%s", base);
        return 0;
    }
    snprintf(err, errlen, "%s: no tokenizer found (looked for tokenizer.json, tokenizer.bin "
             "and tok%d.bin beside it); pass --tokenizer PATH", model_path, vocab_size);
    return -1;
}

int tokenizer_load(struct tokenizer *t, const char *path, int vocab_size, char *err,
                   size_t errlen)
{
    struct stat st;
    char buf[4200];
    unsigned char head[64];
    size_t got = 0;
    int rc;
    memset(t, 0, sizeof *t);
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: no such tokenizer file", path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
        if (!is_file(buf)) {
            snprintf(err, errlen, "%s: a directory without tokenizer.json", path);
            return -1;
        }
        path = buf;
    }
    FILE *f = fopen(path, "rb");
    if (f) {
        got = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t'))
        i++;
    if (got >= 4 && memcmp(head, "GGUF", 4) == 0) {
        rc = tok_load_gguf(t, path, err, errlen);
    } else if ((i < got && head[i] == '{') || has_suffix(path, ".json")) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s", path);
        char *slash = strrchr(cfg, '/');
        snprintf(slash ? slash + 1 : cfg, sizeof cfg - (size_t)(slash ? slash + 1 - cfg : 0),
                 "tokenizer_config.json");
        rc = tok_load_hf(t, path, is_file(cfg) ? cfg : NULL, err, errlen);
    } else {
        if (vocab_size <= 0) {
            snprintf(err, errlen, "%s: a llama2.c tokenizer needs the model's vocabulary size",
                     path);
            return -1;
        }
        return tokenizer_load_llama2c(t, path, vocab_size, err, errlen);
    }
    if (rc == 0 && vocab_size > 0 && t->vocab_size > vocab_size) {
        snprintf(err, errlen, "%s: the tokenizer has ids up to %d but the model's vocabulary "
                 "is %d (wrong tokenizer for this model?)", path, t->vocab_size - 1, vocab_size);
        tokenizer_free(t);
        return -1;
    }
    return rc;
}

int tokenizer_load_for_model(struct tokenizer *t, const char *model_path,
                             const char *explicit_path, int vocab_size,
                             char *err, size_t errlen)
{
    char path[4200];
    if (tokenizer_find_for_model(model_path, explicit_path, vocab_size, path,
                                 sizeof path, err, errlen) != 0)
        return -1;
    return tokenizer_load(t, path, vocab_size, err, errlen);
}
