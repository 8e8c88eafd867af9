/*
 * tok_bpe.c: hash tables and the BPE merge loop of one word.
 *
 * A word becomes initial symbols (byte-level: one per byte, through the
 * GPT-2 byte-to-character table; otherwise one per UTF-8 character, with
 * <0xHH> byte tokens for characters the vocabulary lacks, or the unknown
 * token), then adjacent pairs are merged lowest rank first, leftmost first
 * among equal ranks, as `tokenizers`' Word::merge_all does: a binary heap of
 * candidate merges, each checked again when it is popped (a neighbour may
 * have changed), so a word of n symbols costs O(n log n).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_internal.h"

/* ---- string -> id ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

int tok_strmap_init(struct tok_strmap *m, const char *const *keys, const int *key_len,
                    int n, const unsigned char *skip)
{
    size_t cap = 16;
    while (cap < (size_t)n * 2)
        cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return -1;
    m->mask = cap - 1;
    m->keys = keys;
    m->key_len = key_len;
    for (int id = 0; id < n; id++) {
        if (!keys[id] || (skip && skip[id]))
            continue;
        size_t i = hash_bytes(keys[id], (size_t)key_len[id]) & m->mask;
        for (;; i = (i + 1) & m->mask) {
            uint32_t s = m->slots[i];
            if (s == 0) {
                m->slots[i] = (uint32_t)id + 1;
                break;
            }
            if (key_len[s - 1] == key_len[id] &&
                memcmp(keys[s - 1], keys[id], (size_t)key_len[id]) == 0)
                break; /* a lower id already has this string */
        }
    }
    return 0;
}

int tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n)
{
    if (!m->slots)
        return -1;
    for (size_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v == 0)
            return -1;
        if ((size_t)m->key_len[v - 1] == n && memcmp(m->keys[v - 1], s, n) == 0)
            return (int)v - 1;
    }
}

void tok_strmap_free(struct tok_strmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- (left, right) -> (rank, id) ---- */

static size_t hash_pair(uint32_t a, uint32_t b)
{
    uint64_t h = ((uint64_t)a << 32 | b) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(h ^ (h >> 31));
}

int tok_pairmap_init(struct tok_pairmap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->slots[i].left = UINT32_MAX;
    m->mask = cap - 1;
    m->count = 0;
    return 0;
}

static int pairmap_grow(struct tok_pairmap *m)
{
    struct tok_pairmap n;
    if (tok_pairmap_init(&n, (m->mask + 1)) != 0)
        return -1;
    for (size_t i = 0; i <= m->mask; i++) {
        struct tok_pair *p = &m->slots[i];
        if (p->left != UINT32_MAX)
            tok_pairmap_add(&n, (int)p->left, (int)p->right, p->rank, p->id);
    }
    free(m->slots);
    *m = n;
    return 0;
}

int tok_pairmap_add(struct tok_pairmap *m, int left, int right, int rank, int id)
{
    if ((m->count + 1) * 2 > m->mask + 1 && pairmap_grow(m) != 0)
        return -1;
    for (size_t i = hash_pair((uint32_t)left, (uint32_t)right) & m->mask;;
         i = (i + 1) & m->mask) {
        struct tok_pair *p = &m->slots[i];
        if (p->left == UINT32_MAX) {
            *p = (struct tok_pair){(uint32_t)left, (uint32_t)right, rank, id};
            m->count++;
            return 1;
        }
        if (p->left == (uint32_t)left && p->right == (uint32_t)right)
            return 0;
    }
}

const struct tok_pair *tok_pairmap_get(const struct tok_pairmap *m, int left, int right)
{
    if (!m->slots)
        return NULL;
    for (size_t i = hash_pair((uint32_t)left, (uint32_t)right) & m->mask;;
         i = (i + 1) & m->mask) {
        const struct tok_pair *p = &m->slots[i];
        if (p->left == UINT32_MAX)
            return NULL;
        if (p->left == (uint32_t)left && p->right == (uint32_t)right)
            return p;
    }
}

void tok_pairmap_free(struct tok_pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- output ---- */

void tok_out_push(struct tok_out *o, int id, int start, int end)
{
    if (o->n >= o->max) {
        o->overflow = 1;
        return;
    }
    o->ids[o->n] = id;
    if (o->spans) {
        o->spans[2 * o->n] = start;
        o->spans[2 * o->n + 1] = end;
    }
    o->n++;
}

/* ---- one word ---- */

struct sym {
    int id;
    int start, end;     /* bytes of the word; start == -1: merged away */
    int prev, next;
};

struct cand {
    int rank, pos, id;
};

static int cand_less(const struct cand *a, const struct cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct cand *h, int *n, struct cand c)
{
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!cand_less(&c, &h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static struct cand heap_pop(struct cand *h, int *n)
{
    struct cand top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < *n && cand_less(&h[l], best)) {
            m = l;
            best = &h[l];
        }
        if (r < *n && cand_less(&h[r], best))
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n > 0)
        h[i] = last;
    return top;
}

static void add_sym(struct sym *s, int *ns, int id, int start, int end)
{
    s[*ns] = (struct sym){id, start, end, *ns - 1, -1};
    if (*ns > 0)
        s[*ns - 1].next = *ns;
    (*ns)++;
}

static void try_pair(const struct tok_model *m, const struct sym *s, int pos,
                     struct cand *h, int *nh)
{
    if (pos < 0 || s[pos].next < 0)
        return;
    const struct tok_pair *p = tok_pairmap_get(&m->merges, s[pos].id, s[s[pos].next].id);
    if (p)
        heap_push(h, nh, (struct cand){p->rank, pos, p->id});
}

static int span_end(const int *orig, int end)
{
    return orig ? orig[end - 1] + 1 : end;
}

int tok_bpe_word(const struct tok_model *m, const char *w, size_t n, const int *orig,
                 struct tok_out *o)
{
    if (n == 0)
        return 0;
    if (m->ignore_merges) {
        int id;
        if (m->byte_level) {
            char stack[256], *b = n * 2 <= sizeof stack ? stack : malloc(n * 2);
            size_t len = 0;
            if (!b)
                return -1;
            for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)w[i];
                memcpy(b + len, m->byte_chr[c], (size_t)m->byte_chr_len[c]);
                len += (size_t)m->byte_chr_len[c];
            }
            id = tok_strmap_get(&m->vocab, b, len);
            if (b != stack)
                free(b);
        } else {
            id = tok_strmap_get(&m->vocab, w, n);
        }
        if (id >= 0) {
            tok_out_push(o, id, orig ? orig[0] : 0, span_end(orig, (int)n));
            return 0;
        }
    }
    struct sym stack_s[128];
    struct cand stack_h[3 * 128];
    struct sym *s = n <= 128 ? stack_s : malloc(n * sizeof *s);
    struct cand *h = n <= 128 ? stack_h : malloc(3 * n * sizeof *h);
    int ns = 0, nh = 0;
    if (!s || !h) {
        if (s != stack_s)
            free(s);
        if (h != stack_h)
            free(h);
        return -1;
    }
    /* initial symbols; a pending unknown token as `tokenizers` keeps it */
    int unk_start = -1, unk_end = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        int id;
        if (m->byte_level) {
            id = m->byte_sym[(unsigned char)w[i]];
        } else {
            while (j < n && ((unsigned char)w[j] & 0xC0) == 0x80 && j - i < 4)
                j++;
            id = tok_strmap_get(&m->vocab, w + i, j - i);
        }
        if (id >= 0) {
            if (unk_start >= 0) {
                add_sym(s, &ns, m->unk_id, unk_start, unk_end);
                unk_start = -1;
            }
            add_sym(s, &ns, id, (int)i, (int)j);
        } else {
            int bytes_ok = m->byte_fallback && !m->byte_level;
            for (size_t b = i; bytes_ok && b < j; b++)
                bytes_ok = m->byte_id[(unsigned char)w[b]] >= 0;
            if (bytes_ok) {
                for (size_t b = i; b < j; b++)
                    add_sym(s, &ns, m->byte_id[(unsigned char)w[b]], (int)b, (int)b + 1);
            } else if (m->unk_id >= 0) {
                if (unk_start >= 0 && !m->fuse_unk) {
                    add_sym(s, &ns, m->unk_id, unk_start, unk_end);
                    unk_start = -1;
                }
                if (unk_start < 0)
                    unk_start = (int)i;
                unk_end = (int)j;
            }
        }
        i = j;
    }
    if (unk_start >= 0)
        add_sym(s, &ns, m->unk_id, unk_start, unk_end);
    for (int i = 0; i + 1 < ns; i++)
        try_pair(m, s, i, h, &nh);
    while (nh > 0) {
        struct cand c = heap_pop(h, &nh);
        struct sym *a = &s[c.pos];
        if (a->start < 0 || a->next < 0)
            continue;
        struct sym *b = &s[a->next];
        const struct tok_pair *p = tok_pairmap_get(&m->merges, a->id, b->id);
        if (!p || p->id != c.id)
            continue;
        a->id = c.id;
        a->end = b->end;
        b->start = -1;
        a->next = b->next;
        if (b->next >= 0)
            s[b->next].prev = c.pos;
        try_pair(m, s, a->prev, h, &nh);
        try_pair(m, s, c.pos, h, &nh);
    }
    for (int i = 0; i >= 0 && i < ns; i = s[i].next)
        tok_out_push(o, s[i].id, orig ? orig[s[i].start] : s[i].start,
                     span_end(orig, s[i].end));
    if (s != stack_s)
        free(s);
    if (h != stack_h)
        free(h);
    return 0;
}
