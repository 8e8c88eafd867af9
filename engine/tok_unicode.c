/*
 * tok_unicode.c: UTF-8, character classes and NFC for the tokenizers.
 *
 * Classes come from the generated tables in unicode_tables.c (letters and
 * numbers as \p{L} and \p{N}); whitespace is the White_Space property, which
 * is what the Oniguruma patterns of `tokenizers` mean by \s. NFC follows
 * UAX #15: full canonical decomposition (Hangul algorithmically), canonical
 * ordering by combining class, then canonical composition of unblocked
 * pairs. Bytes that are not UTF-8 pass through every step unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

int tok_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    int len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = TOK_BAD_BYTE + c;
        return 1;
    }
    if ((size_t)len > n)
        goto bad;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return len;
bad:
    *cp = TOK_BAD_BYTE + c;
    return 1;
}

int tok_utf8_put(uint32_t cp, char *out)
{
    if (cp >= TOK_BAD_BYTE) {
        out[0] = (char)(cp - TOK_BAD_BYTE);
        return 1;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static int range_lookup(const struct tok_urange *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].first)
            hi = mid - 1;
        else if (cp > r[mid].last)
            lo = mid + 1;
        else
            return r[mid].val;
    }
    return 0;
}

int tok_ucat(uint32_t cp)
{
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return TOK_CAT_L;
        return cp >= '0' && cp <= '9' ? TOK_CAT_N : TOK_CAT_OTHER;
    }
    if (cp >= TOK_BAD_BYTE)
        return TOK_CAT_OTHER;
    return range_lookup(tok_cat_ranges, tok_cat_count, cp);
}

int tok_uspace(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* ---- buffers ---- */

int tok_buf_put(struct tok_buf *b, const char *s, size_t n, int orig)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns)
            return -1;
        b->s = ns;
        if (b->orig) {
            int *no = realloc(b->orig, cap * sizeof(int));
            if (!no)
                return -1;
            b->orig = no;
        }
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    if (b->orig)
        for (size_t i = 0; i < n; i++)
            b->orig[b->len + i] = orig;
    b->len += n;
    return 0;
}

void tok_buf_free(struct tok_buf *b)
{
    free(b->s);
    free(b->orig);
    memset(b, 0, sizeof *b);
}

/* ---- NFC ---- */

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
       LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT,
       SCOUNT = LCOUNT * NCOUNT };

static int ccc(uint32_t cp)
{
    if (cp < 0x300 || cp >= TOK_BAD_BYTE)
        return 0;
    return range_lookup(tok_ccc_ranges, tok_ccc_count, cp);
}

static const struct tok_udecomp *decomp(uint32_t cp)
{
    int lo = 0, hi = tok_decomp_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < tok_decomps[mid].cp)
            hi = mid - 1;
        else if (cp > tok_decomps[mid].cp)
            lo = mid + 1;
        else
            return &tok_decomps[mid];
    }
    return NULL;
}

static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= LBASE && a < LBASE + LCOUNT && b >= VBASE && b < VBASE + VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a >= SBASE && a < SBASE + SCOUNT && (a - SBASE) % TCOUNT == 0 && b > TBASE &&
        b < TBASE + TCOUNT)
        return a + (b - TBASE);
    int lo = 0, hi = tok_comp_count - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const struct tok_ucomp *c = &tok_comps[mid];
        if (a < c->a || (a == c->a && b < c->b))
            hi = mid - 1;
        else if (a > c->a || b > c->b)
            lo = mid + 1;
        else
            return c->c;
    }
    return 0;
}

struct cpv {
    uint32_t *cp;
    int *orig;
    size_t n, cap;
};

static int cpv_push(struct cpv *v, uint32_t cp, int orig)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        uint32_t *nc = realloc(v->cp, cap * sizeof *nc);
        if (!nc)
            return -1;
        v->cp = nc;
        int *no = realloc(v->orig, cap * sizeof *no);
        if (!no)
            return -1;
        v->orig = no;
        v->cap = cap;
    }
    v->cp[v->n] = cp;
    v->orig[v->n++] = orig;
    return 0;
}

int tok_nfc(const char *in, const int *in_orig, size_t n, struct tok_buf *out)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;
    int rc = -1;
    struct cpv v = {0};
    /* text of code points below U+0300 (no byte >= 0xCC) is already NFC */
    while (i < n && s[i] < 0xCC)
        i++;
    if (i == n) {
        for (i = 0; i < n; i++)
            if (tok_buf_put(out, in + i, 1, in_orig ? in_orig[i] : 0))
                return -1;
        return 0;
    }
    i = 0;
    while (i < n) {
        uint32_t cp;
        int len = tok_utf8_next(s + i, n - i, &cp);
        int o = in_orig ? in_orig[i] : 0;
        if (cp >= SBASE && cp < SBASE + SCOUNT) {
            uint32_t k = cp - SBASE;
            if (cpv_push(&v, LBASE + k / NCOUNT, o) ||
                cpv_push(&v, VBASE + k % NCOUNT / TCOUNT, o) ||
                (k % TCOUNT && cpv_push(&v, TBASE + k % TCOUNT, o)))
                goto out;
        } else {
            const struct tok_udecomp *d = cp >= 0xC0 && cp < TOK_BAD_BYTE ? decomp(cp) : NULL;
            if (d) {
                for (int j = 0; j < d->len; j++)
                    if (cpv_push(&v, tok_decomp_pool[d->off + j], o))
                        goto out;
            } else if (cpv_push(&v, cp, o)) {
                goto out;
            }
        }
        i += (size_t)len;
    }
    /* canonical ordering: stable sort of each run of non-starters */
    for (size_t k = 1; k < v.n; k++) {
        int c = ccc(v.cp[k]);
        if (c == 0)
            continue;
        for (size_t j = k; j > 0; j--) {
            int p = ccc(v.cp[j - 1]);
            if (p <= c)
                break;
            uint32_t tc = v.cp[j];
            int to = v.orig[j];
            v.cp[j] = v.cp[j - 1];
            v.orig[j] = v.orig[j - 1];
            v.cp[j - 1] = tc;
            v.orig[j - 1] = to;
        }
    }
    /* canonical composition */
    if (v.n > 0) {
        size_t starter = 0, w = 1;
        int last = ccc(v.cp[0]) ? 256 : 0;
        for (size_t k = 1; k < v.n; k++) {
            uint32_t cp = v.cp[k];
            int c = ccc(cp);
            uint32_t comp = compose(v.cp[starter], cp);
            if (comp && (last < c || last == 0)) {
                v.cp[starter] = comp;
                continue;
            }
            if (c == 0)
                starter = w;
            last = c;
            v.cp[w] = cp;
            v.orig[w++] = v.orig[k];
        }
        v.n = w;
    }
    for (size_t k = 0; k < v.n; k++) {
        char b[4];
        int len = tok_utf8_put(v.cp[k], b);
        if (tok_buf_put(out, b, (size_t)len, v.orig[k]))
            goto out;
    }
    rc = 0;
out:
    free(v.cp);
    free(v.orig);
    return rc;
}
