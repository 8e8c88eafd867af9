/*
 * tok_pretok.c: the pre-tokenizer patterns of byte-level BPE tokenizers,
 * written out as matchers instead of a regex engine.
 *
 * Each pattern is an alternation tried in order at the current position (the
 * first alternative that matches wins, as in Oniguruma); the text is cut
 * into consecutive matches (every character is covered by some alternative).
 *   GPT-2 (ByteLevel use_regex, SmolLM2 after its Digits step):
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *   LLaMA-3 (and Qwen2 with \p{N} instead of \p{N}{1,3}):
 *     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *     | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * \s is White_Space. Under (?i), Unicode case folding makes U+017F (long s)
 * match 's' as well.
 */
#include <stdlib.h>

#include "tok_internal.h"

enum { C_OTHER, C_L, C_N, C_SPACE };

struct chars {
    uint32_t *cp;
    unsigned char *cls;
    int *off;       /* byte offset of each character; off[k] = n */
    int k;
};

static int is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

static int lower_ascii(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* length in characters of a contraction at i ('s 't 're 've 'm 'll 'd), 0 if none */
static int contraction(const struct chars *c, int i, int fold)
{
    if (c->cp[i] != '\'' || i + 1 >= c->k)
        return 0;
    uint32_t a = c->cp[i + 1], b = i + 2 < c->k ? c->cp[i + 2] : 0;
    if (fold) {
        a = a == 0x17F ? 's' : lower_ascii(a);
        b = lower_ascii(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

static int run(const struct chars *c, int i, int cls)
{
    while (i < c->k && c->cls[i] == cls)
        i++;
    return i;
}

/* \s+(?!\S)|\s+ at a whitespace character i */
static int space_run(const struct chars *c, int i)
{
    int j = run(c, i, C_SPACE);
    if (j == c->k || j - i < 2)
        return j;
    return j - 1;
}

static int match_gpt2(const struct chars *c, int i)
{
    int n;
    if ((n = contraction(c, i, 0)))
        return i + n;
    int sp = c->cp[i] == ' ' && i + 1 < c->k;
    for (int cls = C_L; cls <= C_N; cls++) {
        if (sp && c->cls[i + 1] == cls)
            return run(c, i + 1, cls);
        if (c->cls[i] == cls)
            return run(c, i, cls);
    }
    if (sp && c->cls[i + 1] == C_OTHER)
        return run(c, i + 1, C_OTHER);
    if (c->cls[i] == C_OTHER)
        return run(c, i, C_OTHER);
    return space_run(c, i);
}

static int match_llama3(const struct chars *c, int i, int max_digits)
{
    int n;
    if ((n = contraction(c, i, 1)))
        return i + n;
    if (c->cls[i] == C_L)
        return run(c, i, C_L);
    if (c->cls[i] != C_N && !is_crlf(c->cp[i]) && i + 1 < c->k && c->cls[i + 1] == C_L)
        return run(c, i + 1, C_L);
    if (c->cls[i] == C_N) {
        int j = i;
        while (j < c->k && c->cls[j] == C_N && j - i < max_digits)
            j++;
        return j;
    }
    int j = -1;
    if (c->cp[i] == ' ' && i + 1 < c->k && c->cls[i + 1] == C_OTHER)
        j = run(c, i + 1, C_OTHER);
    else if (c->cls[i] == C_OTHER)
        j = run(c, i, C_OTHER);
    if (j >= 0) {
        while (j < c->k && is_crlf(c->cp[j]))
            j++;
        return j;
    }
    /* whitespace: \s*[\r\n]+ up to the run's last line break, else \s+(?!\S)|\s+ */
    int end = run(c, i, C_SPACE);
    for (int p = end - 1; p >= i; p--)
        if (is_crlf(c->cp[p]))
            return p + 1;
    return space_run(c, i);
}

int tok_pattern_split(enum tok_pattern p, const char *s, size_t n, int **pieces)
{
    struct chars c;
    int count = 0;
    c.cp = malloc((n + 1) * sizeof *c.cp);
    c.cls = malloc(n + 1);
    c.off = malloc((n + 1) * sizeof *c.off);
    *pieces = malloc(2 * (n + 1) * sizeof **pieces);
    if (!c.cp || !c.cls || !c.off || !*pieces) {
        count = -1;
        goto out;
    }
    c.k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int len = tok_utf8_next((const unsigned char *)s + i, n - i, &cp);
        int cat = tok_ucat(cp);
        c.cp[c.k] = cp;
        c.cls[c.k] = cat == TOK_CAT_L ? C_L : cat == TOK_CAT_N ? C_N
                     : tok_uspace(cp) ? C_SPACE : C_OTHER;
        c.off[c.k++] = (int)i;
        i += (size_t)len;
    }
    c.off[c.k] = (int)n;
    for (int i = 0; i < c.k;) {
        int j = p == PAT_GPT2 ? match_gpt2(&c, i)
                : match_llama3(&c, i, p == PAT_QWEN2 ? 1 : 3);
        (*pieces)[2 * count] = c.off[i];
        (*pieces)[2 * count + 1] = c.off[j];
        count++;
        i = j;
    }
out:
    free(c.cp);
    free(c.cls);
    free(c.off);
    if (count < 0) {
        free(*pieces);
        *pieces = NULL;
    }
    return count;
}
