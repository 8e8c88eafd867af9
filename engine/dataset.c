/*
 * dataset.c: dataset files -> records -> conversations -> ids and masks ->
 * training windows (dataset.h).
 *
 * The reader is a push parser: bytes arrive in chunks of any size; a record
 * that lies wholly inside a chunk is handed over in place, one that spans
 * chunks is assembled in a buffer of at most max_record bytes; a longer one
 * is only counted until its end, then reported. JSONL splits on '\n' with
 * memchr; arrays go through a byte state machine:
 *   BEFORE  (an element or, for an empty array, ']')
 *   ELEM    (inside an element: strings, escapes, depth of {} and [])
 *   AFTER   (',' or ']')
 *   END     (only whitespace)
 *   DEAD    (after a structural error: the rest is not read)
 * Records are parsed by the small non-recursive JSON parser below rather
 * than jansson: building jansson objects caps a validator near 40 MB/s, the
 * arena parser with zero-copy strings runs several times faster, and
 * accepts the same JSON (tests/unit/test_validate.c compares them).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "utf8.h"

enum { A_BEFORE, A_ELEM, A_AFTER, A_END, A_DEAD };

static const char *const code_names[DS_CODE_COUNT] = {
    "ok", "invalid_json", "invalid_utf8", "line_too_long", "duplicate_key", "data_type",
    "unknown_format", "format_mismatch", "missing_key", "missing_messages_list",
    "message_missing_key", "message_unrecognized_key", "unrecognized_role",
    "missing_content", "invalid_weight", "example_missing_assistant_message",
    "template_error", "too_few_examples",
};

static const char *const format_names[DS_FORMAT_COUNT] = {
    "auto", "messages", "prompt_completion", "question_answer", "alpaca", "text",
};

const char *ds_code_name(enum ds_code c)
{
    return (unsigned)c < DS_CODE_COUNT ? code_names[c] : "unknown";
}

const char *ds_format_name(enum ds_format f)
{
    return (unsigned)f < DS_FORMAT_COUNT ? format_names[f] : "unknown";
}

int ds_format_parse(const char *name, enum ds_format *f)
{
    for (int i = 0; i < DS_FORMAT_COUNT; i++)
        if (strcmp(name, format_names[i]) == 0) {
            *f = (enum ds_format)i;
            return 0;
        }
    return -1;
}

const char *ds_container_name(enum ds_container c)
{
    return c == DS_JSONL ? "jsonl" : c == DS_JSON_ARRAY ? "json_array" : "unknown";
}

/* ---- reader ---- */

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void ds_reader_init(struct ds_reader *r, size_t max_record, ds_record_fn fn, void *ctx)
{
    memset(r, 0, sizeof *r);
    r->max_record = max_record ? max_record : DS_MAX_RECORD;
    if (r->max_record > DS_RECORD_LIMIT)
        r->max_record = DS_RECORD_LIMIT;
    r->fn = fn;
    r->ctx = ctx;
    r->line = 1;
}

void ds_reader_free(struct ds_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

long ds_reader_lines(const struct ds_reader *r)
{
    if (r->bytes == 0)
        return 0;
    return r->last == '\n' ? r->line - 1 : r->line;
}

/* Report a reading error at `line`. */
static int reader_error(struct ds_reader *r, long line, enum ds_code code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return r->fn(r->ctx, NULL, 0, line, code, msg);
}

/* Append bytes of the current record (or count them once it is too long). */
static int append(struct ds_reader *r, const char *p, size_t n)
{
    if (r->too_long) {
        r->dropped += n;
        return 0;
    }
    if (n > r->max_record - r->len) {
        r->too_long = 1;
        r->dropped = r->len + n;
        r->len = 0;
        return 0;
    }
    if (r->len + n > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        while (nc < r->len + n)
            nc *= 2;
        if (nc > r->max_record)
            nc = r->max_record;
        char *b = realloc(r->buf, nc);
        if (!b)
            return -1;
        r->buf = b;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
}

/* The record ending here: p/n are its last bytes in this chunk, in place
 * when nothing was buffered before. */
static int emit(struct ds_reader *r, const char *p, size_t n, int jsonl)
{
    const char *rec = p;
    size_t len = n;
    int rc = 0;
    if (r->len > 0 || r->too_long) {
        if (append(r, p, n) != 0)
            return -1;
        rec = r->buf;
        len = r->len;
    } else if (n > r->max_record) {
        r->too_long = 1;
        r->dropped = n;
    }
    if (r->too_long) {
        rc = reader_error(r, r->rec_line, DS_LINE_TOO_LONG, "%s of %zu bytes is over the "
                          "limit of %zu bytes", jsonl ? "the line" : "the record",
                          r->dropped, r->max_record);
    } else {
        if (jsonl && len > 0 && rec[len - 1] == '\r')
            len--;
        size_t i = 0;
        while (i < len && is_ws((unsigned char)rec[i]))
            i++;
        if (i == len && jsonl)
            r->empty_lines++;
        else
            rc = r->fn(r->ctx, rec, len, r->rec_line, DS_OK, NULL);
    }
    r->len = 0;
    r->too_long = 0;
    r->dropped = 0;
    return rc;
}

static int scan_jsonl(struct ds_reader *r, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t seg = nl ? (size_t)(nl - p) : n;
        if (!nl)
            return append(r, p, n);
        r->rec_line = r->line;
        int rc = emit(r, p, seg, 1);
        r->line++;
        p += seg + 1;
        n -= seg + 1;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int scan_array(struct ds_reader *r, const char *p, size_t n)
{
    size_t start = 0; /* where this chunk's part of the current element begins */
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (r->state) {
        case A_BEFORE:
            if (is_ws(c))
                break;
            if (c == ']') {
                if (r->need_elem)
                    rc = reader_error(r, r->line, DS_INVALID_JSON,
                                      "a ',' followed by ']': no element after the comma");
                r->state = A_END;
            } else if (c == ',') {
                rc = reader_error(r, r->line, DS_INVALID_JSON, "a ',' with no element before it");
            } else {
                r->state = A_ELEM;
                r->rec_line = r->line;
                r->depth = 0;
                r->in_str = r->esc = 0;
                start = i;
                i--; /* the element's first byte, read as part of it */
            }
            break;
        case A_ELEM:
            if (r->in_str) {
                if (r->esc)
                    r->esc = 0;
                else if (c == '\\')
                    r->esc = 1;
                else if (c == '"')
                    r->in_str = 0;
            } else if (c == '"') {
                r->in_str = 1;
            } else if (c == '{' || c == '[') {
                r->depth++;
            } else if (((c == '}' || c == ']') && r->depth == 0) || (c == ',' && r->depth == 0)) {
                /* a scalar element ends before this byte, which AFTER reads */
                r->state = A_AFTER;
                rc = emit(r, p + start, i - start, 0);
                i--;
            } else if ((c == '}' || c == ']') && --r->depth == 0) {
                r->state = A_AFTER;
                rc = emit(r, p + start, i + 1 - start, 0);
            }
            break;
        case A_AFTER:
            if (is_ws(c))
                break;
            if (c == ',') {
                r->state = A_BEFORE;
                r->need_elem = 1;
            } else if (c == ']') {
                r->state = A_END;
            } else {
                r->state = A_DEAD;
                rc = reader_error(r, r->line, DS_INVALID_JSON, "expected ',' or ']' after the "
                                  "element that starts on line %ld, found '%c'; the rest of "
                                  "the file is not read", r->rec_line,
                                  c >= 0x20 && c < 0x7f ? c : '?');
            }
            break;
        case A_END:
            if (!is_ws(c)) {
                r->state = A_DEAD;
                rc = reader_error(r, r->line, DS_INVALID_JSON, "content after the ']' that "
                                  "closes the array; the rest of the file is not read");
            }
            break;
        default: /* A_DEAD */
            break;
        }
        if (c == '\n')
            r->line++;
    }
    if (rc == 0 && r->state == A_ELEM)
        rc = append(r, p + start, n - start);
    return rc;
}

/* Bytes before the container is known are whitespace: empty lines. */
static int scan(struct ds_reader *r, const char *p, size_t n)
{
    while (r->container == DS_CONTAINER_UNKNOWN && n > 0) {
        unsigned char c = (unsigned char)*p;
        if (c == '[') {
            r->container = DS_JSON_ARRAY;
            r->state = A_BEFORE;
            p++;
            n--;
        } else if (c == '\n') {
            r->empty_lines++;
            r->line++;
            p++;
            n--;
        } else if (is_ws(c)) {
            p++;
            n--;
        } else {
            r->container = DS_JSONL;
        }
    }
    if (r->container == DS_JSONL)
        return scan_jsonl(r, p, n);
    if (r->container == DS_JSON_ARRAY)
        return scan_array(r, p, n);
    return 0;
}

static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};

int ds_reader_feed(struct ds_reader *r, const void *data, size_t n)
{
    const char *p = data;
    if (r->stopped)
        return r->stopped;
    if (n == 0)
        return 0;
    r->bytes += n;
    r->last = (unsigned char)p[n - 1];
    int rc = 0;
    if (r->bom >= 0) {
        while (n > 0 && r->bom < 3 && (unsigned char)*p == bom[r->bom]) {
            r->bom++;
            p++;
            n--;
        }
        if (r->bom == 3) {
            r->bom = -1;
        } else if (n > 0) {
            /* not a BOM after all: the bytes matched so far are data */
            int k = r->bom;
            r->bom = -1;
            rc = scan(r, (const char *)bom, (size_t)k);
        }
    }
    if (rc == 0 && n > 0)
        rc = scan(r, p, n);
    if (rc > 0)
        r->stopped = rc;
    return rc;
}

int ds_reader_finish(struct ds_reader *r)
{
    int rc = 0;
    if (r->stopped)
        return r->stopped;
    if (r->bom > 0 && r->bom < 3) {
        int k = r->bom;
        r->bom = -1;
        rc = scan(r, (const char *)bom, (size_t)k);
    }
    long last_line = ds_reader_lines(r) > 0 ? ds_reader_lines(r) : 1;
    if (rc == 0 && r->container == DS_JSONL && (r->len > 0 || r->too_long)) {
        r->rec_line = r->line;
        rc = emit(r, "", 0, 1);
    } else if (rc == 0 && r->container == DS_JSON_ARRAY) {
        if (r->state == A_ELEM)
            rc = reader_error(r, r->rec_line, DS_INVALID_JSON, "the element that starts here "
                              "is cut off by the end of the file (no closing ']')");
        else if (r->state == A_BEFORE || r->state == A_AFTER)
            rc = reader_error(r, last_line, DS_INVALID_JSON,
                              "the file ends before the ']' that closes the array");
        r->state = A_DEAD;
    }
    r->len = 0;
    r->too_long = 0;
    if (rc > 0)
        r->stopped = rc;
    return rc;
}

/* ---- UTF-8 ---- */

/* Offset of the first invalid UTF-8 byte in s, or n. ASCII runs go eight
 * bytes at a time. */
static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        int k = utf8_valid_len(s + i, n - i);
        if (k == 0)
            return i;
        i += (size_t)k;
    }
    return n;
}

/* The head of s for a message, at most cap - 8 bytes of it: cut on a
 * character boundary, control characters shown as '?', "..." when cut, so
 * the result is valid UTF-8. */
static const char *excerpt(char *dst, size_t cap, const char *s, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n && o + 8 < cap) {
        int k = utf8_valid_len((const unsigned char *)s + i, n - i);
        if (k == 0 || (k == 1 && (unsigned char)s[i] < 0x20)) {
            dst[o++] = '?';
            i += k ? (size_t)k : 1;
            continue;
        }
        memcpy(dst + o, s + i, (size_t)k);
        o += (size_t)k;
        i += (size_t)k;
    }
    if (i < n)
        o += (size_t)snprintf(dst + o, cap - o, "...");
    dst[o] = 0;
    return dst;
}

/* ---- JSON ----
 * A non-recursive parser into an arena of nodes in document order: a
 * container's first child is the node after it, siblings are linked by
 * `next`. Strings stay in the record (offset and length of the raw bytes
 * between the quotes) and are decoded only when used. It accepts exactly
 * what jansson's json_loadb(JSON_DECODE_ANY | JSON_REJECT_DUPLICATES)
 * accepts once the record is known to be UTF-8 (test_validate checks the
 * verdicts agree on damaged records): RFC 8259 with "\u0000" refused,
 * integers within long long, finite reals, at most 2048 levels of values,
 * no key twice in an object (decoded keys compared). */

enum jtype { J_NULL, J_FALSE, J_TRUE, J_INT, J_REAL, J_STRING, J_ARRAY, J_OBJECT };
enum { J_ESC = 1, J_KEY_ESC = 2, J_HAS_CHILD = 4 };
#define J_MAX_DEPTH 2048
#define J_SMALL_OBJECT 16 /* objects up to this size are checked pairwise */

struct jnode {
    uint32_t off, len;          /* string: raw bytes between the quotes; number: its text */
    uint32_t key_off, key_len;  /* a member of an object: its key's raw bytes */
    int32_t next;               /* next sibling, or -1 */
    uint8_t type, flags;
};

struct jframe {
    int32_t node, last;         /* an open container and its last child (-1: none yet) */
};

struct ds_json {
    const char *src;            /* the record being parsed */
    size_t n;
    struct jnode *nodes;
    size_t n_nodes, cap;
    struct jframe *stack;       /* (J_MAX_DEPTH) */
    uint32_t *table;            /* duplicate-key hash table (table_cap slots) */
    size_t table_cap;
    char *tmp;                  /* decoded keys */
    size_t tmp_cap;
    const char *why;            /* the error */
    size_t err_at;              /* its offset in the record */
    enum ds_code err_code;
    char key[72];               /* the duplicated key, for the message */
};

static int jfail(struct ds_json *j, const char *p, const char *why)
{
    j->why = why;
    j->err_at = (size_t)(p - j->src);
    j->err_code = DS_INVALID_JSON;
    return -1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The code unit of the 4 hex digits at p (end bounds it), or -1. */
static long hex4(const char *p, const char *end)
{
    long v = 0;
    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* p just past an opening quote: the closing quote, or NULL (error set).
 * *esc becomes 1 when the string holds escapes. Eight bytes at a time
 * while none is '"', '\\' or a control character. */
static const char *jstring(struct ds_json *j, const char *p, uint8_t *esc)
{
    const char *end = j->src + j->n;
    for (;;) {
        while (end - p >= 8) {
            uint64_t w, q, b;
            memcpy(&w, p, 8);
            q = w ^ (ONES * '"');
            b = w ^ (ONES * '\\');
            if ((((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w)) & HIGHS)
                break;
            p += 8;
        }
        if (p == end)
            return jfail(j, p, "a string is not terminated"), NULL;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c < 0x20)
            return jfail(j, p, "a control character inside a string"), NULL;
        if (c != '\\') {
            p++;
            continue;
        }
        *esc = 1;
        if (end - p < 2)
            return jfail(j, p, "a string is not terminated"), NULL;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u': {
            long u = hex4(p + 2, end);
            if (u < 0)
                return jfail(j, p, "an invalid \\u escape"), NULL;
            if (u == 0)
                return jfail(j, p, "\\u0000 is not allowed"), NULL;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return jfail(j, p, "a lone low surrogate in a \\u escape"), NULL;
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8, end) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return jfail(j, p, "a high surrogate without its low half"), NULL;
                p += 6;
            }
            p += 6;
            break;
        }
        default:
            return jfail(j, p, "an invalid escape in a string"), NULL;
        }
    }
}

/* Decode the validated raw string s (n bytes) into out (room for n). */
static size_t jdecode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        if (e != 'u') {
            out[o++] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r'
                     : e == 't' ? '\t' : e;
            i += 2;
            continue;
        }
        long cp = hex4(s + i + 2, s + n);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(s + i + 2, s + n) - 0xDC00);
            i += 6;
        }
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else if (cp < 0x800) {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[o++] = (char)(0xE0 | (cp >> 12));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (cp >> 18));
            out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    return o;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number at p: its end, or NULL (error set, or *nomem). */
static const char *jnumber(struct ds_json *j, const char *p, uint8_t *type, int *nomem)
{
    const char *s = p, *end = j->src + j->n;
    int is_int = 1;
    if (p < end && *p == '-')
        p++;
    if (p == end || !is_digit(*p))
        return jfail(j, s, "an invalid number"), NULL;
    if (*p == '0')
        p++;
    else
        while (p < end && is_digit(*p))
            p++;
    if (p < end && *p == '.') {
        is_int = 0;
        if (++p == end || !is_digit(*p))
            return jfail(j, s, "an invalid number"), NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return jfail(j, s, "an invalid number"), NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    /* the range jansson holds numbers in */
    size_t len = (size_t)(p - s);
    char small[64], *text = len < sizeof small ? small : malloc(len + 1);
    if (!text) {
        *nomem = 1;
        return NULL;
    }
    memcpy(text, s, len);
    text[len] = 0;
    errno = 0;
    int bad_range;
    if (is_int) {
        (void)strtoll(text, NULL, 10);
        bad_range = errno == ERANGE;
    } else {
        bad_range = isinf(strtod(text, NULL));
    }
    if (text != small)
        free(text);
    if (bad_range)
        return jfail(j, s, is_int ? "an integer out of range" : "a number out of range"), NULL;
    *type = is_int ? J_INT : J_REAL;
    return p;
}

/* A new node (its fields but type zeroed), or -1 when out of memory. */
static int32_t jnew(struct ds_json *j)
{
    if (j->n_nodes == j->cap) {
        size_t nc = j->cap ? 2 * j->cap : 256;
        struct jnode *nn = realloc(j->nodes, sizeof *nn * nc);
        if (!nn)
            return -1;
        j->nodes = nn;
        j->cap = nc;
    }
    struct jnode *x = &j->nodes[j->n_nodes];
    memset(x, 0, sizeof *x);
    x->next = -1;
    return (int32_t)j->n_nodes++;
}

/* Key bytes of member x, decoded when escaped (into j->tmp at `at`). */
static const char *jkey(struct ds_json *j, const struct jnode *x, size_t at, size_t *len)
{
    if (!(x->flags & J_KEY_ESC)) {
        *len = x->key_len;
        return j->src + x->key_off;
    }
    *len = jdecode(j->src + x->key_off, x->key_len, j->tmp + at);
    return j->tmp + at;
}

static int jtmp_reserve(struct ds_json *j, size_t n)
{
    if (n <= j->tmp_cap)
        return 0;
    char *t = realloc(j->tmp, n);
    if (!t)
        return -1;
    j->tmp = t;
    j->tmp_cap = n;
    return 0;
}

static int jkey_eq(struct ds_json *j, const struct jnode *a, const struct jnode *b)
{
    size_t la, lb;
    if (!((a->flags | b->flags) & J_KEY_ESC))
        return a->key_len == b->key_len &&
               memcmp(j->src + a->key_off, j->src + b->key_off, a->key_len) == 0;
    const char *ka = jkey(j, a, 0, &la), *kb = jkey(j, b, a->key_len, &lb);
    return la == lb && memcmp(ka, kb, la) == 0;
}

/* Reject object obj when a key repeats: pairwise for small objects, else
 * through a hash table of decoded keys. 0, -1 (error set), -2 no memory. */
static int jdup(struct ds_json *j, int32_t obj)
{
    size_t count = 0, max_key = 0;
    const struct jnode *dup = NULL;
    if (!(j->nodes[obj].flags & J_HAS_CHILD))
        return 0;
    for (int32_t c = obj + 1; c >= 0; c = j->nodes[c].next) {
        count++;
        if (j->nodes[c].key_len > max_key)
            max_key = j->nodes[c].key_len;
    }
    if (jtmp_reserve(j, 2 * max_key + 1) != 0)
        return -2;
    if (count <= J_SMALL_OBJECT) {
        for (int32_t a = obj + 1; a >= 0 && !dup; a = j->nodes[a].next)
            for (int32_t b = j->nodes[a].next; b >= 0 && !dup; b = j->nodes[b].next)
                if (jkey_eq(j, &j->nodes[a], &j->nodes[b]))
                    dup = &j->nodes[b];
    } else {
        size_t cap = 64;
        while (cap < 2 * count)
            cap *= 2;
        if (cap > j->table_cap) {
            uint32_t *t = realloc(j->table, sizeof *t * cap);
            if (!t)
                return -2;
            j->table = t;
            j->table_cap = cap;
        }
        memset(j->table, 0xFF, sizeof *j->table * cap);
        for (int32_t c = obj + 1; c >= 0 && !dup; c = j->nodes[c].next) {
            size_t len;
            const char *k = jkey(j, &j->nodes[c], 0, &len);
            uint64_t h = 1469598103934665603ull;
            for (size_t i = 0; i < len; i++)
                h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
            for (size_t s = h & (cap - 1);; s = (s + 1) & (cap - 1)) {
                if (j->table[s] == UINT32_MAX) {
                    j->table[s] = (uint32_t)c;
                    break;
                }
                if (jkey_eq(j, &j->nodes[j->table[s]], &j->nodes[c])) {
                    dup = &j->nodes[c];
                    break;
                }
            }
        }
    }
    if (!dup)
        return 0;
    size_t len;
    const char *k = jkey(j, dup, 0, &len);
    excerpt(j->key, sizeof j->key, k, len);
    j->why = NULL;
    j->err_at = dup->key_off;
    j->err_code = DS_DUPLICATE_KEY;
    return -1;
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws((unsigned char)*p))
        p++;
    return p;
}

/* Parse j->src (j->n bytes) into j->nodes (the root is node 0). 0, -1 with
 * the error set, -2 out of memory. */
static int jparse(struct ds_json *j)
{
    const char *p = j->src, *end = j->src + j->n;
    int depth = 0, nomem = 0;
    uint32_t key_off = 0, key_len = 0;
    uint8_t key_flags = 0;
    j->n_nodes = 0;
    if (!j->stack && !(j->stack = malloc(sizeof *j->stack * J_MAX_DEPTH)))
        return -2;
    p = skip_ws(p, end);
    for (;;) {
        /* a value at p */
        if (depth + 1 > J_MAX_DEPTH)
            return jfail(j, p, "nested more than 2048 levels deep");
        if (p == end)
            return jfail(j, p, "the record ends where a value should be");
        int32_t x = jnew(j);
        if (x < 0)
            return -2;
        struct jnode *nd = &j->nodes[x];
        nd->off = (uint32_t)(p - j->src);
        nd->key_off = key_off;
        nd->key_len = key_len;
        nd->flags = key_flags;
        key_flags = 0;
        if (depth > 0) {
            struct jframe *f = &j->stack[depth - 1];
            if (f->last >= 0)
                j->nodes[f->last].next = x;
            else
                j->nodes[f->node].flags |= J_HAS_CHILD;
            f->last = x;
        }
        switch (*p) {
        case '{':
        case '[':
            nd->type = *p == '{' ? J_OBJECT : J_ARRAY;
            j->stack[depth++] = (struct jframe){x, -1};
            p = skip_ws(p + 1, end);
            if (p < end && *p == (nd->type == J_OBJECT ? '}' : ']')) {
                p++;
                depth--;
                break;
            }
            if (nd->type == J_OBJECT)
                goto key;
            continue;
        case '"': {
            uint8_t esc = 0;
            const char *q = jstring(j, p + 1, &esc);
            if (!q)
                return -1;
            nd = &j->nodes[x];
            nd->type = J_STRING;
            nd->flags |= esc ? J_ESC : 0;
            nd->off = (uint32_t)(p + 1 - j->src);
            nd->len = (uint32_t)(q - p - 1);
            p = q + 1;
            break;
        }
        case 't': case 'f': case 'n': {
            static const char *const lit[3] = {"true", "false", "null"};
            static const uint8_t types[3] = {J_TRUE, J_FALSE, J_NULL};
            int k = *p == 't' ? 0 : *p == 'f' ? 1 : 2;
            size_t len = strlen(lit[k]);
            if ((size_t)(end - p) < len || memcmp(p, lit[k], len) != 0)
                return jfail(j, p, "an invalid literal");
            nd->type = types[k];
            p += len;
            break;
        }
        default: {
            uint8_t type;
            if (*p != '-' && !is_digit(*p))
                return jfail(j, p, "an unexpected character");
            const char *q = jnumber(j, p, &type, &nomem);
            if (!q)
                return nomem ? -2 : -1;
            nd = &j->nodes[x];
            nd->type = type;
            nd->len = (uint32_t)(q - p);
            p = q;
            break;
        }
        }
        /* after a value: close containers, or go on to the next element */
        for (;;) {
            p = skip_ws(p, end);
            if (depth == 0) {
                if (p != end)
                    return jfail(j, p, "more after the end of the JSON value");
                return 0;
            }
            const struct jframe *f = &j->stack[depth - 1];
            int obj = j->nodes[f->node].type == J_OBJECT;
            if (p < end && *p == (obj ? '}' : ']')) {
                p++;
                depth--;
                if (obj) {
                    int rc = jdup(j, f->node);
                    if (rc != 0)
                        return rc;
                }
                continue;
            }
            if (p == end || *p != ',')
                return jfail(j, p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            p = skip_ws(p + 1, end);
            if (obj)
                goto key;
            break;
        }
        continue;
    key:
        /* a member's key and ':' at p; its value follows */
        if (p == end || *p != '"')
            return jfail(j, p, "expected a string key");
        {
            uint8_t esc = 0;
            const char *q = jstring(j, p + 1, &esc);
            if (!q)
                return -1;
            key_off = (uint32_t)(p + 1 - j->src);
            key_len = (uint32_t)(q - p - 1);
            key_flags = esc ? J_KEY_ESC : 0;
            p = skip_ws(q + 1, end);
        }
        if (p == end || *p != ':')
            return jfail(j, p, "expected ':' after a key");
        p = skip_ws(p + 1, end);
    }
}

/* Member `name` (ASCII, no escapes needed) of object o, or -1. After a
 * successful jparse j->tmp holds any key decoded (jdup reserved it). */
static int32_t jget(struct ds_json *j, int32_t o, const char *name)
{
    size_t n = strlen(name);
    if (j->nodes[o].type != J_OBJECT || !(j->nodes[o].flags & J_HAS_CHILD))
        return -1;
    for (int32_t c = o + 1; c >= 0; c = j->nodes[c].next) {
        const struct jnode *x = &j->nodes[c];
        size_t len;
        if (!(x->flags & J_KEY_ESC) && x->key_len != n)
            continue;
        const char *k = jkey(j, x, 0, &len);
        if (len == n && memcmp(k, name, n) == 0)
            return c;
    }
    return -1;
}

/* ---- records ---- */

static const char *type_name(const struct jnode *v)
{
    switch (v->type) {
    case J_OBJECT: return "an object";
    case J_ARRAY: return "an array";
    case J_STRING: return "a string";
    case J_INT: return "an integer";
    case J_REAL: return "a number";
    case J_TRUE: return "true";
    case J_FALSE: return "false";
    default: return "null";
    }
}

/* The text of string node x: in the record when it has no escapes, else
 * decoded into the example's scratch (2n + 1 bytes for a record of n: the
 * decoded strings, at most n, and alpaca's joined user text, at most n + 1). */
static const char *text_of(struct ds_example *ex, int32_t x, size_t *len)
{
    const struct jnode *v = &ex->json->nodes[x];
    if (!(v->flags & J_ESC)) {
        *len = v->len;
        return ex->json->src + v->off;
    }
    char *out = ex->scratch + ex->scratch_used;
    *len = jdecode(ex->json->src + v->off, v->len, out);
    ex->scratch_used += *len;
    return out;
}

/* The format a record's keys name, or DS_FORMAT_AUTO for none. */
static enum ds_format record_format(struct ds_json *j)
{
    if (jget(j, 0, "messages") >= 0)
        return DS_MESSAGES;
    if (jget(j, 0, "prompt") >= 0 || jget(j, 0, "completion") >= 0)
        return DS_PROMPT_COMPLETION;
    if (jget(j, 0, "question") >= 0)
        return DS_QUESTION_ANSWER;
    if (jget(j, 0, "instruction") >= 0 || jget(j, 0, "output") >= 0)
        return DS_ALPACA;
    if (jget(j, 0, "text") >= 0)
        return DS_TEXT;
    return DS_FORMAT_AUTO;
}

struct check {
    enum ds_code *code;
    char *msg;
    size_t msglen;
};

static int bad(struct check *c, enum ds_code code, const char *fmt, ...)
{
    va_list ap;
    *c->code = code;
    va_start(ap, fmt);
    vsnprintf(c->msg, c->msglen, fmt, ap);
    va_end(ap);
    return 1;
}

static int add_msg(struct ds_example *ex, enum chat_role role, const char *s, size_t n,
                   int weight)
{
    if (ex->n_msgs == ex->cap) {
        int nc = ex->cap ? 2 * ex->cap : 8;
        struct chat_message *m = realloc(ex->msgs, sizeof *m * (size_t)nc);
        if (!m)
            return -1;
        ex->msgs = m;
        ex->cap = nc;
    }
    ex->msgs[ex->n_msgs++] = (struct chat_message){role, s, n, weight};
    return 0;
}

/* A required text field of a flat format: 0 with its node in *out, else 1. */
static int field(struct check *c, struct ds_json *j, enum ds_format f, const char *key,
                 int may_be_empty, int32_t *out)
{
    int32_t v = jget(j, 0, key);
    if (v < 0) {
        enum ds_format own = record_format(j);
        if (own != DS_FORMAT_AUTO && own != f)
            return bad(c, DS_FORMAT_MISMATCH, "the record is %s, the file's format is %s",
                       ds_format_name(own), ds_format_name(f));
        return bad(c, DS_MISSING_KEY, "no \"%s\" (format %s)", key, ds_format_name(f));
    }
    if (j->nodes[v].type != J_STRING)
        return bad(c, DS_MISSING_CONTENT, "\"%s\" is %s, not a string", key,
                   type_name(&j->nodes[v]));
    if (!may_be_empty && j->nodes[v].len == 0)
        return bad(c, DS_MISSING_CONTENT, "\"%s\" is empty", key);
    *out = v;
    return 0;
}

static int check_messages(struct check *c, struct ds_example *ex)
{
    struct ds_json *j = ex->json;
    int32_t list = jget(j, 0, "messages");
    char ex_buf[72];
    if (list < 0) {
        enum ds_format own = record_format(j);
        if (own != DS_FORMAT_AUTO)
            return bad(c, DS_FORMAT_MISMATCH, "the record is %s, the file's format is "
                       "messages", ds_format_name(own));
        return bad(c, DS_MISSING_MESSAGES_LIST, "no \"messages\"");
    }
    if (j->nodes[list].type != J_ARRAY)
        return bad(c, DS_MISSING_MESSAGES_LIST, "\"messages\" is %s, not a list",
                   type_name(&j->nodes[list]));
    if (!(j->nodes[list].flags & J_HAS_CHILD))
        return bad(c, DS_MISSING_MESSAGES_LIST, "\"messages\" is empty");
    int assistant = 0;
    long i = 1;
    for (int32_t m = list + 1; m >= 0; m = j->nodes[m].next, i++) {
        if (j->nodes[m].type != J_OBJECT)
            return bad(c, DS_DATA_TYPE, "message %ld is %s, not an object", i,
                       type_name(&j->nodes[m]));
        int32_t role = jget(j, m, "role"), content = jget(j, m, "content");
        if (role < 0 || content < 0)
            return bad(c, DS_MESSAGE_MISSING_KEY, "message %ld has no \"%s\"", i,
                       role >= 0 ? "content" : "role");
        for (int32_t k = m + 1; k >= 0; k = j->nodes[k].next) {
            size_t len;
            const char *key = jkey(j, &j->nodes[k], 0, &len);
            if (!(len == 4 && memcmp(key, "role", 4) == 0) &&
                !(len == 7 && memcmp(key, "content", 7) == 0) &&
                !(len == 6 && memcmp(key, "weight", 6) == 0) &&
                !(len == 4 && memcmp(key, "name", 4) == 0))
                return bad(c, DS_MESSAGE_UNRECOGNIZED_KEY, "message %ld has the key \"%s\" "
                           "(known: role, content, weight, name)", i,
                           excerpt(ex_buf, sizeof ex_buf, key, len));
        }
        if (j->nodes[role].type != J_STRING)
            return bad(c, DS_UNRECOGNIZED_ROLE, "message %ld: \"role\" is %s, not a string",
                       i, type_name(&j->nodes[role]));
        size_t rl;
        const char *rs = text_of(ex, role, &rl);
        enum chat_role r;
        if (rl == 6 && memcmp(rs, "system", 6) == 0)
            r = ROLE_SYSTEM;
        else if (rl == 4 && memcmp(rs, "user", 4) == 0)
            r = ROLE_USER;
        else if (rl == 9 && memcmp(rs, "assistant", 9) == 0)
            r = ROLE_ASSISTANT;
        else
            return bad(c, DS_UNRECOGNIZED_ROLE, "message %ld has the role \"%s\" (known: "
                       "system, user, assistant)", i, excerpt(ex_buf, sizeof ex_buf, rs, rl));
        if (j->nodes[content].type != J_STRING)
            return bad(c, DS_MISSING_CONTENT, "message %ld: \"content\" is %s, not a string",
                       i, type_name(&j->nodes[content]));
        if (j->nodes[content].len == 0)
            return bad(c, DS_MISSING_CONTENT, "message %ld: \"content\" is empty", i);
        int weight = 1;
        int32_t w = jget(j, m, "weight");
        if (w >= 0) {
            const struct jnode *wv = &j->nodes[w];
            const char *t = j->src + wv->off;
            if (r != ROLE_ASSISTANT)
                return bad(c, DS_INVALID_WEIGHT, "message %ld: \"weight\" on a %s message "
                           "(only assistant messages have one)", i,
                           r == ROLE_USER ? "user" : "system");
            /* JSON spells the integers 0 and 1 only as 0, -0 and 1 */
            if (wv->type != J_INT || !((wv->len == 1 && (t[0] == '0' || t[0] == '1')) ||
                                       (wv->len == 2 && t[0] == '-' && t[1] == '0')))
                return bad(c, DS_INVALID_WEIGHT, "message %ld: \"weight\" must be 0 or 1", i);
            weight = t[wv->len - 1] == '1';
        }
        assistant |= r == ROLE_ASSISTANT;
        size_t cl;
        const char *cs = text_of(ex, content, &cl);
        if (add_msg(ex, r, cs, cl, weight) != 0)
            return -1;
    }
    if (!assistant)
        return bad(c, DS_EXAMPLE_MISSING_ASSISTANT_MESSAGE, "no assistant message");
    return 0;
}

static int check_flat(struct check *c, enum ds_format f, struct ds_example *ex)
{
    struct ds_json *j = ex->json;
    int32_t a = -1, b = -1;
    size_t la = 0, lb;
    const char *sa = NULL, *sb;
    int rc;
    switch (f) {
    case DS_PROMPT_COMPLETION:
        if ((rc = field(c, j, f, "prompt", 1, &a)) || (rc = field(c, j, f, "completion", 0, &b)))
            return rc;
        break;
    case DS_QUESTION_ANSWER:
        if ((rc = field(c, j, f, "question", 0, &a)) || (rc = field(c, j, f, "answer", 0, &b)))
            return rc;
        break;
    case DS_ALPACA: {
        if ((rc = field(c, j, f, "instruction", 0, &a)) || (rc = field(c, j, f, "output", 0, &b)))
            return rc;
        int32_t in = jget(j, 0, "input");
        if (in >= 0 && j->nodes[in].type != J_NULL && j->nodes[in].type != J_STRING)
            return bad(c, DS_DATA_TYPE, "\"input\" is %s, not a string",
                       type_name(&j->nodes[in]));
        if (in < 0 || j->nodes[in].type != J_STRING || j->nodes[in].len == 0)
            break;
        /* two user messages (the alpaca template's Instruction and Input),
         * and for the other templates instruction "\n" input as one */
        size_t li;
        sa = text_of(ex, a, &la);
        const char *si = text_of(ex, in, &li);
        sb = text_of(ex, b, &lb);
        char *joined = ex->scratch + ex->scratch_used;
        memcpy(joined, sa, la);
        joined[la] = '\n';
        memcpy(joined + la + 1, si, li);
        ex->scratch_used += la + 1 + li;
        ex->joined = joined;
        ex->joined_len = la + 1 + li;
        if (add_msg(ex, ROLE_USER, sa, la, 1) != 0 || add_msg(ex, ROLE_USER, si, li, 1) != 0 ||
            add_msg(ex, ROLE_ASSISTANT, sb, lb, 1) != 0)
            return -1;
        return 0;
    }
    default: /* DS_TEXT */
        if ((rc = field(c, j, f, "text", 0, &b)))
            return rc;
        sb = text_of(ex, b, &lb);
        return add_msg(ex, ROLE_ASSISTANT, sb, lb, 1);
    }
    if (!sa)
        sa = text_of(ex, a, &la);
    sb = text_of(ex, b, &lb);
    if (add_msg(ex, ROLE_USER, sa, la, 1) != 0 || add_msg(ex, ROLE_ASSISTANT, sb, lb, 1) != 0)
        return -1;
    return 0;
}

/* Where offset `at` of a record starting on `line` lies. */
static void position(const char *rec, size_t at, long line, long *l, size_t *col)
{
    size_t ls = 0;
    *l = line;
    for (size_t i = 0; i < at; i++)
        if (rec[i] == '\n') {
            (*l)++;
            ls = i + 1;
        }
    *col = at - ls + 1;
}

int ds_parse_record(const char *rec, size_t n, long line, enum ds_format *format,
                    struct ds_example *ex, enum ds_code *code, char *msg, size_t msglen)
{
    struct check c = {code, msg, msglen};
    long l;
    size_t col;
    ex->n_msgs = 0;
    ex->scratch_used = 0;
    ex->joined = NULL;
    ex->joined_len = 0;
    if (n > DS_RECORD_LIMIT)
        return bad(&c, DS_LINE_TOO_LONG, "the record of %zu bytes is over the limit of %zu "
                   "bytes", n, (size_t)DS_RECORD_LIMIT);
    size_t bad_at = utf8_check((const unsigned char *)rec, n);
    if (bad_at < n) {
        position(rec, bad_at, line, &l, &col);
        return bad(&c, DS_INVALID_UTF8, "invalid UTF-8 at line %ld, byte %zu (0x%02X)", l,
                   col, (unsigned char)rec[bad_at]);
    }
    if (!ex->json && !(ex->json = calloc(1, sizeof *ex->json)))
        return -1;
    /* a huge record's buffers are not kept for the next one */
    if (ex->scratch_cap > ((size_t)1 << 20) && ex->scratch_cap > 2 * n + 1) {
        free(ex->scratch);
        ex->scratch = NULL;
        ex->scratch_cap = 0;
    }
    if (ex->scratch_cap < 2 * n + 1) {
        char *s = realloc(ex->scratch, 2 * n + 1);
        if (!s)
            return -1;
        ex->scratch = s;
        ex->scratch_cap = 2 * n + 1;
    }
    struct ds_json *j = ex->json;
    if (j->cap > ((size_t)1 << 16) && j->cap > n + 1) {
        /* a huge record's arena is not kept: this one needs at most n + 1 nodes */
        free(j->nodes);
        j->nodes = NULL;
        j->cap = 0;
    }
    j->src = rec;
    j->n = n;
    int rc = jparse(j);
    if (rc == -2)
        return -1;
    if (rc == -1) {
        position(rec, j->err_at, line, &l, &col);
        if (j->err_code == DS_DUPLICATE_KEY)
            return bad(&c, DS_DUPLICATE_KEY, "the key \"%s\" appears twice in one object "
                       "(line %ld, column %zu)", j->key, l, col);
        return bad(&c, DS_INVALID_JSON, "%s (line %ld, column %zu)", j->why, l, col);
    }
    if (j->nodes[0].type != J_OBJECT)
        return bad(&c, DS_DATA_TYPE, "the record is %s, not a JSON object",
                   type_name(&j->nodes[0]));
    enum ds_format f = *format;
    if (f == DS_FORMAT_AUTO) {
        f = record_format(j);
        if (f == DS_FORMAT_AUTO)
            return bad(&c, DS_UNKNOWN_FORMAT, "the record's keys name no format (messages; "
                       "prompt, completion; question, answer; instruction, input, output; "
                       "text)");
    }
    ex->format = f;
    rc = f == DS_MESSAGES ? check_messages(&c, ex) : check_flat(&c, f, ex);
    if (rc == 0 && *format == DS_FORMAT_AUTO)
        *format = f;
    return rc;
}

void ds_example_free(struct ds_example *ex)
{
    if (ex->json) {
        free(ex->json->nodes);
        free(ex->json->stack);
        free(ex->json->table);
        free(ex->json->tmp);
        free(ex->json);
    }
    free(ex->msgs);
    free(ex->scratch);
    memset(ex, 0, sizeof *ex);
}

/* ---- rendering ---- */

void ds_tokens_free(struct ds_tokens *t)
{
    free(t->ids);
    free(t->mask);
    memset(t, 0, sizeof *t);
}

static int tokens_reserve(struct ds_tokens *t, size_t cap)
{
    if (cap > INT_MAX)
        return -1;
    if ((int)cap <= t->cap)
        return 0;
    int *ids = realloc(t->ids, sizeof(int) * cap);
    if (!ids)
        return -1;
    t->ids = ids;
    unsigned char *mask = realloc(t->mask, cap);
    if (!mask)
        return -1;
    t->mask = mask;
    t->cap = (int)cap;
    return 0;
}

int ds_render(const struct tokenizer *t, enum chat_template tmpl, int train_on_inputs,
              const struct ds_example *ex, struct ds_tokens *out, char *err, size_t errlen)
{
    const struct chat_message *msgs = ex->msgs;
    struct chat_message joined[2];
    int n = ex->n_msgs;
    if (ex->format == DS_TEXT) {
        tmpl = CHAT_RAW;
    } else if (ex->joined && tmpl != CHAT_ALPACA) {
        joined[0] = (struct chat_message){ROLE_USER, ex->joined, ex->joined_len, 1};
        joined[1] = ex->msgs[2];
        msgs = joined;
        n = 2;
    }
    /* at most one token per byte, plus each message's template text and
     * special tokens; one retry with four times the room */
    size_t bound = 256;
    for (int i = 0; i < n; i++)
        bound += msgs[i].len + 256;
    for (int attempt = 0; attempt < 2; attempt++, bound *= 4) {
        if (tokens_reserve(out, bound) != 0) {
            snprintf(err, errlen, "out of memory for %zu tokens", bound);
            return -1;
        }
        int k = chat_render(t, tmpl, msgs, n, train_on_inputs, 0, out->ids, out->mask,
                            out->cap, err, errlen);
        if (k >= 0) {
            out->n = k;
            return 0;
        }
    }
    return -1;
}

/* ---- windows ---- */

int ds_windows_init(struct ds_windows *w, int seq_len, int pack, int pad_id)
{
    memset(w, 0, sizeof *w);
    if (seq_len < 1)
        return -1;
    w->seq_len = seq_len;
    w->pack = pack;
    w->pad_id = pad_id;
    return 0;
}

/* Open a new window of padding. */
static int new_window(struct ds_windows *w)
{
    const size_t S = (size_t)w->seq_len;
    if (w->n == INT_MAX)
        return -1;
    if (w->n == w->cap) {
        int nc = w->cap ? (w->cap > INT_MAX / 2 ? INT_MAX : 2 * w->cap) : 64;
        int *ids = realloc(w->ids, sizeof(int) * (S + 1) * (size_t)nc);
        if (!ids)
            return -1;
        w->ids = ids;
        int *tg = realloc(w->targets, sizeof(int) * S * (size_t)nc);
        if (!tg)
            return -1;
        w->targets = tg;
        w->cap = nc;
    }
    int *ids = w->ids + (S + 1) * (size_t)w->n, *tg = w->targets + S * (size_t)w->n;
    for (size_t j = 0; j <= S; j++)
        ids[j] = w->pad_id;
    for (size_t j = 0; j < S; j++)
        tg[j] = -1;
    w->n++;
    w->used = 0;
    return 0;
}

int ds_windows_add(struct ds_windows *w, const int *ids, const unsigned char *mask, int n)
{
    const int S = w->seq_len;
    const int truncated = n > S + 1;
    long trained = 0;
    if (truncated)
        n = S + 1;
    for (int i = 1; i < n; i++)
        trained += mask[i] != 0;
    if (trained > 0 && (w->n == 0 || !w->pack || w->used + n > S + 1) && new_window(w) != 0)
        return -1;
    w->n_examples++;
    w->n_truncated += truncated;
    if (trained == 0) {
        w->n_dropped++;
        return 0;
    }
    int o = w->used;
    int *wi = w->ids + (size_t)(S + 1) * (w->n - 1) + o;
    int *wt = w->targets + (size_t)S * (w->n - 1) + o;
    memcpy(wi, ids, sizeof(int) * (size_t)n);
    for (int i = 1; i < n; i++)
        wt[i - 1] = mask[i] ? ids[i] : -1;
    w->used = w->pack ? o + n : S + 1;
    w->n_tokens += n;
    w->n_targets += trained;
    return 0;
}

int ds_windows_split(struct ds_windows *train, struct ds_windows *val, double fraction)
{
    const size_t S = (size_t)train->seq_len;
    long k = fraction > 0.0 ? (long)floor(fraction * train->n + 0.5) : 0;
    if (fraction > 0.0 && k < 1)
        k = 1;
    if (k > train->n - 1)
        k = train->n - 1;
    ds_windows_init(val, train->seq_len, train->pack, train->pad_id);
    if (k < 1)
        return 0;
    val->ids = malloc(sizeof(int) * (S + 1) * (size_t)k);
    val->targets = malloc(sizeof(int) * S * (size_t)k);
    if (!val->ids || !val->targets) {
        ds_windows_free(val);
        ds_windows_init(val, train->seq_len, train->pack, train->pad_id);
        return -1;
    }
    int first = train->n - (int)k;
    memcpy(val->ids, train->ids + (S + 1) * (size_t)first, sizeof(int) * (S + 1) * (size_t)k);
    memcpy(val->targets, train->targets + S * (size_t)first, sizeof(int) * S * (size_t)k);
    val->n = val->cap = (int)k;
    val->used = (int)S + 1;
    for (size_t i = 0; i < (size_t)k * S; i++)
        val->n_targets += val->targets[i] >= 0;
    train->n = first;
    train->used = (int)S + 1; /* the open window went to val: start afresh */
    return 0;
}

void ds_windows_free(struct ds_windows *w)
{
    free(w->ids);
    free(w->targets);
    memset(w, 0, sizeof *w);
}

/* ---- files ---- */

struct load_ctx {
    const struct tokenizer *tok;
    const struct ds_opts *o;
    struct ds_windows *w;
    enum ds_format format;
    struct ds_example ex;
    struct ds_tokens toks;
    long line;                 /* of the failure */
    char msg[512];
};

/* ds_reader callback: 0 go on, 1 a bad record (msg), 2 out of memory. */
static int load_record(void *ctx, const char *rec, size_t n, long line, enum ds_code code,
                       const char *msg)
{
    struct load_ctx *c = ctx;
    char m[400];
    c->line = line;
    if (code != DS_OK) {
        snprintf(c->msg, sizeof c->msg, "%s: %s", ds_code_name(code), msg);
        return 1;
    }
    int rc = ds_parse_record(rec, n, line, &c->format, &c->ex, &code, m, sizeof m);
    if (rc != 0) {
        if (rc > 0)
            snprintf(c->msg, sizeof c->msg, "%s: %s", ds_code_name(code), m);
        return rc > 0 ? 1 : 2;
    }
    if (ds_render(c->tok, c->o->tmpl, c->o->train_on_inputs, &c->ex, &c->toks, m, sizeof m) != 0) {
        snprintf(c->msg, sizeof c->msg, "%s: %s", ds_code_name(DS_TEMPLATE_ERROR), m);
        return 1;
    }
    return ds_windows_add(c->w, c->toks.ids, c->toks.mask, c->toks.n) == 0 ? 0 : 2;
}

int ds_load(struct ds_windows *w, const char *path, const struct tokenizer *t,
            const struct ds_opts *o, char *err, size_t errlen)
{
    struct load_ctx c = {.tok = t, .o = o, .w = w, .format = o->format};
    struct ds_reader r;
    int pad = o->pad_id >= 0 ? o->pad_id : t->eos_id >= 0 ? t->eos_id : 0;
    enum { CHUNK = 1 << 20 };
    char *buf = NULL;
    int rc = -1, st = 0;

    if (ds_windows_init(w, o->seq_len, o->pack, pad) != 0) {
        snprintf(err, errlen, "%s: sequence length %d must be at least 1", path, o->seq_len);
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    buf = malloc(CHUNK);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        fclose(f);
        return -1;
    }
    ds_reader_init(&r, o->max_record, load_record, &c);
    for (;;) {
        size_t got = fread(buf, 1, CHUNK, f);
        if (got == 0)
            break;
        if ((st = ds_reader_feed(&r, buf, got)) != 0)
            break;
    }
    if (st == 0 && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto out;
    }
    if (st == 0)
        st = ds_reader_finish(&r);
    if (st == 1) {
        snprintf(err, errlen, "%s: line %ld: %s", path, c.line, c.msg);
        goto out;
    }
    if (st != 0) {
        snprintf(err, errlen, "%s: out of memory (line %ld)", path, c.line);
        goto out;
    }
    if (w->n == 0) {
        snprintf(err, errlen, "%s: no training window: %ld examples, %ld with no trained "
                 "token", path, w->n_examples, w->n_dropped);
        goto out;
    }
    rc = 0;
out:
    ds_reader_free(&r);
    ds_example_free(&c.ex);
    ds_tokens_free(&c.toks);
    free(buf);
    fclose(f);
    if (rc != 0)
        ds_windows_free(w);
    return rc;
}
