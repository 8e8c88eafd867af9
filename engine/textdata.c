/*
 * textdata.c: plain-text files -> one token stream -> windows (textdata.h).
 *
 * The file is read whole, checked as UTF-8 (RFC 3629: no overlong forms,
 * surrogates or code points past U+10FFFF), split into stripped documents,
 * and the documents are encoded in parallel (with the tokenizer's own
 * BOS/EOS, TOKENIZE_ADD_SPECIAL) into one buffer with room for one token per
 * byte plus 16 (BOS/EOS, a dummy-prefix space), then compacted in document
 * order; the windows are the head of that buffer.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "textdata.h"
#include "utf8.h"

struct doc {
    size_t start, len;  /* bytes of the stripped document */
    size_t slot;        /* its worst-case token slot in the encode buffer */
    int n;              /* tokens written */
};

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int check_utf8(const char *path, const char *text, size_t n, char *err,
                      size_t errlen)
{
    const unsigned char *s = (const unsigned char *)text;
    long line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < n;) {
        int k = utf8_valid_len(s + i, n - i);
        if (k == 0) {
            snprintf(err, errlen, "%s: line %ld, byte %zu of the line: invalid UTF-8 "
                     "(byte 0x%02X)", path, line, i - line_start + 1, s[i]);
            return -1;
        }
        if (s[i] == '\n') {
            line++;
            line_start = i + 1;
        }
        i += (size_t)k;
    }
    return 0;
}

/* Append the stripped text [a, b) as a document when it is not empty. */
static int add_doc(struct doc **docs, long *n, long *cap, const char *text,
                   size_t a, size_t b)
{
    while (a < b && is_space(text[a]))
        a++;
    while (b > a && is_space(text[b - 1]))
        b--;
    if (a == b)
        return 0;
    if (*n == *cap) {
        long nc = *cap ? 2 * *cap : 1024;
        struct doc *p = realloc(*docs, sizeof **docs * (size_t)nc);
        if (!p)
            return -1;
        *docs = p;
        *cap = nc;
    }
    (*docs)[(*n)++] = (struct doc){a, b - a, 0, 0};
    return 0;
}

/* Documents of text (n bytes); *n_docs of them. -1 when out of memory. */
static int split_docs(const char *text, size_t n, struct doc **docs, long *n_docs)
{
    const size_t seplen = strlen(TEXTDATA_SEPARATOR);
    long cap = 0;
    *docs = NULL;
    *n_docs = 0;
    if (memmem(text, n, TEXTDATA_SEPARATOR, seplen)) {
        size_t a = 0;
        for (;;) {
            const char *e = memmem(text + a, n - a, TEXTDATA_SEPARATOR, seplen);
            size_t b = e ? (size_t)(e - text) : n;
            if (add_doc(docs, n_docs, &cap, text, a, b) != 0)
                return -1;
            if (!e)
                return 0;
            a = b + seplen;
        }
    }
    /* blank-line mode: a document ends at a line holding only whitespace */
    size_t doc_start = 0;
    for (size_t ls = 0; ls < n;) {
        const char *nl = memchr(text + ls, '\n', n - ls);
        size_t le = nl ? (size_t)(nl - text) : n, i = ls;
        while (i < le && is_space(text[i]))
            i++;
        if (i == le) {
            if (add_doc(docs, n_docs, &cap, text, doc_start, ls) != 0)
                return -1;
            doc_start = le;
        }
        ls = le + 1;
    }
    return add_doc(docs, n_docs, &cap, text, doc_start, n);
}

static char *read_all(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            size_t nc = cap ? 2 * cap : (size_t)1 << 20;
            char *p = realloc(buf, nc);
            if (!p) {
                snprintf(err, errlen, "%s: out of memory reading it", path);
                goto fail;
            }
            buf = p;
            cap = nc;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    *len = n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

int text_windows_load(struct text_windows *w, const char *path,
                      const struct tokenizer *t, int seq_len, char *err,
                      size_t errlen)
{
    struct doc *docs = NULL;
    long n_docs = 0, n_tokens = 0;
    size_t len = 0, slots = 0;
    int rc = -1;

    memset(w, 0, sizeof *w);
    if (seq_len < 1) {
        snprintf(err, errlen, "%s: sequence length %d must be at least 1", path, seq_len);
        return -1;
    }
    char *text = read_all(path, &len, err, errlen);
    if (!text)
        return -1;
    if (len == 0) {
        snprintf(err, errlen, "%s: the file is empty", path);
        goto out;
    }
    if (check_utf8(path, text, len, err, errlen) != 0)
        goto out;
    if (split_docs(text, len, &docs, &n_docs) != 0) {
        snprintf(err, errlen, "%s: out of memory splitting it into documents", path);
        goto out;
    }
    if (n_docs == 0) {
        snprintf(err, errlen, "%s: holds only whitespace, no text", path);
        goto out;
    }
    for (long i = 0; i < n_docs; i++) {
        if (docs[i].len > (size_t)1 << 30) {
            snprintf(err, errlen, "%s: document %ld is %zu bytes, over the 1 GiB "
                     "limit of one encoding", path, i + 1, docs[i].len);
            goto out;
        }
        docs[i].slot = slots;
        slots += docs[i].len + 16;
    }
    w->ids = malloc(sizeof(int) * slots);
    if (!w->ids) {
        snprintf(err, errlen, "%s: out of memory for %zu tokens", path, slots);
        goto out;
    }
#pragma omp parallel for schedule(dynamic)
    for (long i = 0; i < n_docs; i++)
        docs[i].n = tokenizer_encode(t, text + docs[i].start, docs[i].len,
                                     TOKENIZE_ADD_SPECIAL, w->ids + docs[i].slot,
                                     (int)docs[i].len + 16);
    for (long i = 0; i < n_docs; i++) {
        if (docs[i].n < 0) {
            snprintf(err, errlen, "%s: document %ld encodes to more tokens than it has "
                     "bytes (+16)", path, i + 1);
            goto out;
        }
        memmove(w->ids + n_tokens, w->ids + docs[i].slot, sizeof(int) * (size_t)docs[i].n);
        n_tokens += docs[i].n;
    }
    long n = n_tokens / (seq_len + 1);
    if (n < 1) {
        snprintf(err, errlen, "%s: %ld tokens, fewer than one window of %d (sequence "
                 "length %d + 1)", path, n_tokens, seq_len + 1, seq_len);
        goto out;
    }
    if (n > 0x7fffffffL) {
        snprintf(err, errlen, "%s: %ld windows, more than this loader indexes", path, n);
        goto out;
    }
    int *shrunk = realloc(w->ids, sizeof(int) * (size_t)n * (seq_len + 1));
    if (shrunk)
        w->ids = shrunk;
    w->n = (int)n;
    w->seq_len = seq_len;
    w->n_tokens = n_tokens;
    w->n_docs = n_docs;
    rc = 0;
out:
    free(docs);
    free(text);
    if (rc != 0)
        text_windows_free(w);
    return rc;
}

int text_windows_split(struct text_windows *train, struct text_windows *val,
                       double fraction)
{
    const size_t win = (size_t)train->seq_len + 1;
    long k = fraction > 0.0 ? (long)floor(fraction * train->n + 0.5) : 0;
    if (fraction > 0.0 && k < 1)
        k = 1;
    if (k > train->n - 1)
        k = train->n - 1;
    *val = *train;
    val->ids = NULL;
    val->n = 0;
    if (k < 1)
        return 0;
    val->ids = malloc(sizeof(int) * win * (size_t)k);
    if (!val->ids)
        return -1;
    train->n -= (int)k;
    memcpy(val->ids, train->ids + win * (size_t)train->n, sizeof(int) * win * (size_t)k);
    val->n = (int)k;
    return 0;
}

void text_windows_free(struct text_windows *w)
{
    free(w->ids);
    memset(w, 0, sizeof *w);
}
