/*
 * gguf.c: the GGUF reader (see gguf.h) and ggml block dequantization.
 *
 * The file is mapped read-only and parsed once by a bounds-checked cursor:
 * every length or count read from the file is compared with the bytes left
 * before anything is allocated or skipped, so a huge count or a string
 * running past the end is an error, never an allocation or an overread.
 * Keys, string values and tensor names are copied NUL-terminated into an
 * arena owned by the file; numeric scalars and numeric arrays stay in the
 * map and are decoded on access. Keys and tensor names are also kept in a
 * sorted index, which finds duplicates at open time and serves lookups.
 *
 * Dequantization follows ggml's dequantize_row_* (ggml-quants.c) with the
 * same fp32 operation order, so results match ggml (and the gguf Python
 * package) bit for bit; this file is compiled as ISO C, where GCC does not
 * contract a*b+c into a fused multiply-add.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bf16.h"
#include "gguf.h"
#include "safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the GGUF reader decodes little-endian values in place");

#define MAX_DEPTH 8          /* nesting of arrays inside arrays */
#define MAX_ALIGNMENT (1u << 30)

/* ---- ggml tensor types: name, elements per block, bytes per block ---- */

struct type_info {
    const char *name;
    uint32_t block_elems, block_bytes;
};

/* Indexed by ggml type id; ids ggml has retired (4, 5, 31..33, 36..38) and
 * ids past the table are unknown. Sizes are ggml-common.h's block structs. */
static const struct type_info TYPES[] = {
    [0] = {"F32", 1, 4},          [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},       [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},       [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},       [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},     [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},    [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},    [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66},  [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98},  [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},    [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},    [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},          [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},         [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},         [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},        [34] = {"TQ1_0", 256, 54},
    [35] = {"TQ2_0", 256, 66},    [39] = {"MXFP4", 32, 17},
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static const struct type_info *type_info(uint32_t type)
{
    return type < N_TYPES && TYPES[type].name ? &TYPES[type] : NULL;
}

const char *ggml_type_name(uint32_t type)
{
    const struct type_info *ti = type_info(type);
    return ti ? ti->name : "?";
}

int gguf_type_supported(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: case GGML_TYPE_F16: case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0: case GGML_TYPE_Q4_1: case GGML_TYPE_Q8_0:
    case GGML_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* ---- metadata value types ---- */

static const char *const VALUE_NAMES[] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};
/* bytes of a fixed-width value; 0 for string and array */
static const uint8_t VALUE_SIZES[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(enum gguf_type t)
{
    return (unsigned)t <= GGUF_TYPE_FLOAT64 ? VALUE_NAMES[t] : "?";
}

static int is_int_type(uint32_t t)
{
    return t <= GGUF_TYPE_INT32 || t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_INT64;
}

/* A parsed value. Scalars point at their bytes in the map; strings at an
 * arena copy; arrays at their elements (numeric: in the map; strings and
 * nested arrays: items[]). */
struct value {
    uint32_t type;
    const unsigned char *raw;
    const char *str;
    uint64_t len;              /* string bytes */
    uint32_t elem;             /* array element type */
    uint64_t count;            /* array elements */
    struct value *items;       /* string or array elements */
};

struct kv {
    const char *key;
    struct value v;
};

/* Arena chunks for NUL-terminated string copies. */
struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
};

struct gguf_file {
    char *path;
    int fd;
    const unsigned char *map;
    uint64_t size;
    uint32_t version, alignment;
    uint64_t data_start;
    struct kv *kvs;
    int n_kv;
    int *kv_sorted;            /* indices of kvs by key */
    struct gguf_tensor *tensors;
    int n_tensors;
    int *t_sorted;             /* indices of tensors by name */
    struct chunk *arena;
};

static char *arena_copy(struct gguf_file *f, const unsigned char *s, size_t len)
{
    struct chunk *c = f->arena;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > 65536 ? len + 1 : 65536;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = f->arena;
        f->arena = c;
    }
    char *d = c->data + c->used;
    memcpy(d, s, len);
    d[len] = '\0';
    c->used += len + 1;
    return d;
}

/* ---- the cursor ---- */

struct cur {
    struct gguf_file *f;
    uint64_t pos;
    char *err;
    size_t errlen;
};

static uint64_t left(const struct cur *c)
{
    return c->f->size - c->pos;
}

/* Fail with "path: <what>: truncated at byte pos (need n, k left)". */
static int need(struct cur *c, uint64_t n, const char *what)
{
    if (n <= left(c))
        return 0;
    snprintf(c->err, c->errlen, "%s: %s: truncated at byte %" PRIu64 " (needs %"
             PRIu64 " bytes, %" PRIu64 " left)", c->f->path, what, c->pos, n, left(c));
    return -1;
}

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int get_u32(struct cur *c, uint32_t *v, const char *what)
{
    if (need(c, 4, what) < 0)
        return -1;
    *v = rd32(c->f->map + c->pos);
    c->pos += 4;
    return 0;
}

static int get_u64(struct cur *c, uint64_t *v, const char *what)
{
    if (need(c, 8, what) < 0)
        return -1;
    *v = rd64(c->f->map + c->pos);
    c->pos += 8;
    return 0;
}

/* A string of at most max bytes, copied into the arena. */
static int get_str(struct cur *c, uint64_t max, const char **s, uint64_t *len,
                   const char *what)
{
    uint64_t n;
    if (get_u64(c, &n, what) < 0)
        return -1;
    if (n > max) {
        snprintf(c->err, c->errlen, "%s: %s: string length %" PRIu64 " at byte %"
                 PRIu64 " exceeds the limit of %" PRIu64, c->f->path, what, n,
                 c->pos - 8, max);
        return -1;
    }
    if (need(c, n, what) < 0)
        return -1;
    if (!(*s = arena_copy(c->f, c->f->map + c->pos, n))) {
        snprintf(c->err, c->errlen, "%s: out of memory", c->f->path);
        return -1;
    }
    c->pos += n;
    if (len)
        *len = n;
    return 0;
}

/* A key or tensor name: non-empty, no NUL bytes. */
static int get_name(struct cur *c, uint64_t max, const char **s, const char *what)
{
    uint64_t len;
    if (get_str(c, max, s, &len, what) < 0)
        return -1;
    if (len == 0 || strlen(*s) != len) {
        snprintf(c->err, c->errlen, "%s: %s is %s", c->f->path, what,
                 len == 0 ? "empty" : "a string with a NUL byte");
        return -1;
    }
    return 0;
}

static int check_bools(struct cur *c, const unsigned char *p, uint64_t n,
                       const char *what)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1) {
            snprintf(c->err, c->errlen, "%s: %s: bool byte %u at byte %" PRIu64
                     " is neither 0 nor 1", c->f->path, what, p[i],
                     (uint64_t)(p + i - c->f->map));
            return -1;
        }
    return 0;
}

static int bad_type(struct cur *c, uint32_t t, const char *what)
{
    snprintf(c->err, c->errlen, "%s: %s: unknown value type %u", c->f->path, what, t);
    return -1;
}

/* Parse one value of type t into v; what names it for messages. */
static int parse_value(struct cur *c, uint32_t t, struct value *v, int depth,
                       const char *what)
{
    v->type = t;
    if (t > GGUF_TYPE_FLOAT64)
        return bad_type(c, t, what);
    if (t == GGUF_TYPE_STRING)
        return get_str(c, UINT64_MAX, &v->str, &v->len, what);
    if (t != GGUF_TYPE_ARRAY) {
        if (need(c, VALUE_SIZES[t], what) < 0)
            return -1;
        v->raw = c->f->map + c->pos;
        if (t == GGUF_TYPE_BOOL && check_bools(c, v->raw, 1, what) < 0)
            return -1;
        c->pos += VALUE_SIZES[t];
        return 0;
    }
    if (get_u32(c, &v->elem, what) < 0 || get_u64(c, &v->count, what) < 0)
        return -1;
    if (v->elem > GGUF_TYPE_FLOAT64)
        return bad_type(c, v->elem, what);
    if (v->elem == GGUF_TYPE_ARRAY && depth >= MAX_DEPTH) {
        snprintf(c->err, c->errlen, "%s: %s: arrays nested more than %d deep",
                 c->f->path, what, MAX_DEPTH);
        return -1;
    }
    /* smallest encoding of one element: a fixed-width value, an empty
     * string (its u64 length), an empty array (u32 type + u64 count) */
    uint64_t min = v->elem == GGUF_TYPE_STRING ? 8 : v->elem == GGUF_TYPE_ARRAY
                   ? 12 : VALUE_SIZES[v->elem];
    if (v->count > left(c) / min) {
        snprintf(c->err, c->errlen, "%s: %s: array of %" PRIu64 " %s elements at "
                 "byte %" PRIu64 " does not fit in the %" PRIu64 " bytes left",
                 c->f->path, what, v->count, VALUE_NAMES[v->elem], c->pos, left(c));
        return -1;
    }
    if (v->elem != GGUF_TYPE_STRING && v->elem != GGUF_TYPE_ARRAY) {
        v->raw = c->f->map + c->pos;
        if (v->elem == GGUF_TYPE_BOOL && check_bools(c, v->raw, v->count, what) < 0)
            return -1;
        c->pos += v->count * min;
        return 0;
    }
    if (v->count && !(v->items = calloc(v->count, sizeof *v->items))) {
        snprintf(c->err, c->errlen, "%s: %s: out of memory for %" PRIu64 " elements",
                 c->f->path, what, v->count);
        return -1;
    }
    for (uint64_t i = 0; i < v->count; i++)
        if (parse_value(c, v->elem, &v->items[i], depth + 1, what) < 0) {
            v->count = i + 1; /* free what was parsed */
            return -1;
        }
    return 0;
}

static void free_value(struct value *v)
{
    if (v->items)
        for (uint64_t i = 0; i < v->count; i++)
            free_value(&v->items[i]);
    free(v->items);
}

/* ---- sorted indices (qsort_r: the comparators need the file) ---- */

static int cmp_key(const void *a, const void *b, void *arg)
{
    const struct gguf_file *f = arg;
    return strcmp(f->kvs[*(const int *)a].key, f->kvs[*(const int *)b].key);
}

static int cmp_name(const void *a, const void *b, void *arg)
{
    const struct gguf_file *f = arg;
    return strcmp(f->tensors[*(const int *)a].name, f->tensors[*(const int *)b].name);
}

static int cmp_offset(const void *a, const void *b, void *arg)
{
    const struct gguf_file *f = arg;
    uint64_t x = f->tensors[*(const int *)a].offset, y = f->tensors[*(const int *)b].offset;
    return x < y ? -1 : x > y;
}

/* The indices 0..n-1 sorted by cmp, or NULL when out of memory. */
static int *sort_index(struct gguf_file *f, int n,
                       int (*cmp)(const void *, const void *, void *))
{
    int *idx = malloc(sizeof *idx * (size_t)(n > 0 ? n : 1));
    if (!idx)
        return NULL;
    for (int i = 0; i < n; i++)
        idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof *idx, cmp, f);
    return idx;
}

static int find_kv(const struct gguf_file *f, const char *key)
{
    int lo = 0, hi = f->n_kv - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->kvs[f->kv_sorted[mid]].key, key);
        if (c == 0)
            return f->kv_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* ---- open ---- */

static int parse_header(struct cur *c)
{
    struct gguf_file *f = c->f;
    uint64_t n_tensors, n_kv;
    if (rd32(f->map) != 0x46554747u) { /* "GGUF"; gguf_open checked size >= 24 */
        snprintf(c->err, c->errlen, "%s: not a GGUF file (no \"GGUF\" magic)", f->path);
        return -1;
    }
    c->pos = 4;
    if (get_u32(c, &f->version, "header") < 0)
        return -1;
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffffu) == 0 && (f->version >> 16) != 0)
            snprintf(c->err, c->errlen, "%s: GGUF version field %u looks "
                     "byte-swapped: big-endian GGUF files are not supported",
                     f->path, f->version);
        else
            snprintf(c->err, c->errlen, "%s: GGUF version %u is not supported "
                     "(only versions 2 and 3)", f->path, f->version);
        return -1;
    }
    if (get_u64(c, &n_tensors, "header") < 0 || get_u64(c, &n_kv, "header") < 0)
        return -1;
    /* a key-value takes at least 14 bytes (u64 length, 1 key byte, u32 type,
     * 1 value byte), a tensor info at least 33 */
    if (n_kv > left(c) / 14 || n_tensors > left(c) / 33 || n_kv > INT32_MAX ||
        n_tensors > INT32_MAX) {
        snprintf(c->err, c->errlen, "%s: header counts %" PRIu64 " tensors and %"
                 PRIu64 " metadata keys, more than the %" PRIu64 " bytes after the "
                 "header could hold", f->path, n_tensors, n_kv, left(c));
        return -1;
    }
    f->kvs = calloc(n_kv ? n_kv : 1, sizeof *f->kvs);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) {
        snprintf(c->err, c->errlen, "%s: out of memory", f->path);
        return -1;
    }
    f->n_tensors = (int)n_tensors;
    f->n_kv = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        struct kv *kv = &f->kvs[i];
        char what[160];
        uint32_t type;
        snprintf(what, sizeof what, "metadata entry %" PRIu64, i);
        if (get_name(c, GGUF_MAX_KEY, &kv->key, what) < 0)
            return -1;
        f->n_kv = (int)i + 1;
        snprintf(what, sizeof what, "metadata key '%.100s'", kv->key);
        if (get_u32(c, &type, what) < 0 || parse_value(c, type, &kv->v, 0, what) < 0)
            return -1;
    }
    if (!(f->kv_sorted = sort_index(f, f->n_kv, cmp_key))) {
        snprintf(c->err, c->errlen, "%s: out of memory", f->path);
        return -1;
    }
    for (int i = 1; i < f->n_kv; i++)
        if (strcmp(f->kvs[f->kv_sorted[i - 1]].key, f->kvs[f->kv_sorted[i]].key) == 0) {
            snprintf(c->err, c->errlen, "%s: metadata key '%s' appears more than once",
                     f->path, f->kvs[f->kv_sorted[i]].key);
            return -1;
        }
    return 0;
}

static int parse_alignment(struct cur *c)
{
    struct gguf_file *f = c->f;
    int64_t a;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    if (!gguf_has(f, "general.alignment"))
        return 0;
    if (gguf_get_int(f, "general.alignment", &a, c->err, c->errlen) < 0)
        return -1;
    if (a <= 0 || a > MAX_ALIGNMENT || (a & (a - 1)) != 0) {
        snprintf(c->err, c->errlen, "%s: metadata key 'general.alignment': %" PRId64
                 " is not a power of two in [1, 2^30]", f->path, a);
        return -1;
    }
    f->alignment = (uint32_t)a;
    return 0;
}

static int parse_tensor_info(struct cur *c, int i)
{
    struct gguf_file *f = c->f;
    struct gguf_tensor *t = &f->tensors[i];
    char what[GGUF_MAX_NAME + 32];
    uint32_t n_dims;
    snprintf(what, sizeof what, "tensor info %d", i);
    if (get_name(c, GGUF_MAX_NAME, &t->name, what) < 0)
        return -1;
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    if (get_u32(c, &n_dims, what) < 0)
        return -1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS) {
        snprintf(c->err, c->errlen, "%s: %s: %u dimensions (1 to %d allowed)",
                 f->path, what, n_dims, GGUF_MAX_DIMS);
        return -1;
    }
    t->n_dims = (int)n_dims;
    t->n_elems = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t dim = 1;
        if (d < t->n_dims && get_u64(c, &dim, what) < 0)
            return -1;
        if (dim < 1 || dim > INT64_MAX ||
            __builtin_mul_overflow(t->n_elems, dim, &t->n_elems) ||
            t->n_elems > INT64_MAX) {
            snprintf(c->err, c->errlen, "%s: %s: dimension %d is %" PRIu64 "%s",
                     f->path, what, d, dim,
                     dim < 1 ? " (must be at least 1)"
                             : ", and the element count overflows");
            return -1;
        }
        t->dims[d] = (int64_t)dim;
    }
    if (get_u32(c, &t->type, what) < 0 || get_u64(c, &t->offset, what) < 0)
        return -1;
    const struct type_info *ti = type_info(t->type);
    if (!ti) {
        snprintf(c->err, c->errlen, "%s: %s: unknown ggml tensor type %u", f->path,
                 what, t->type);
        return -1;
    }
    t->type_name = ti->name;
    if (t->dims[0] % ti->block_elems != 0) {
        snprintf(c->err, c->errlen, "%s: %s: row length %" PRId64 " is not a multiple "
                 "of the %s block size %u", f->path, what, t->dims[0], ti->name,
                 ti->block_elems);
        return -1;
    }
    if (__builtin_mul_overflow(t->n_elems / ti->block_elems, (uint64_t)ti->block_bytes,
                               &t->n_bytes)) {
        snprintf(c->err, c->errlen, "%s: %s: byte size overflows", f->path, what);
        return -1;
    }
    return 0;
}

/* Tensors inside the data section, aligned, not overlapping. */
static int check_layout(struct cur *c)
{
    struct gguf_file *f = c->f;
    uint64_t pad = (f->alignment - c->pos % f->alignment) % f->alignment;
    f->data_start = c->pos + pad;
    if (f->n_tensors == 0)
        return 0;
    if (f->data_start > f->size) {
        snprintf(c->err, c->errlen, "%s: truncated: the data section would start at "
                 "byte %" PRIu64 ", past the end (%" PRIu64 " bytes)", f->path,
                 f->data_start, f->size);
        return -1;
    }
    uint64_t data_size = f->size - f->data_start;
    for (int i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0) {
            snprintf(c->err, c->errlen, "%s: tensor '%s': offset %" PRIu64 " is not "
                     "a multiple of the alignment %u", f->path, t->name, t->offset,
                     f->alignment);
            return -1;
        }
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            snprintf(c->err, c->errlen, "%s: tensor '%s': bytes [%" PRIu64 ", +%" PRIu64
                     ") of the data section run past the end of the file (the data "
                     "section holds %" PRIu64 " bytes)", f->path, t->name, t->offset,
                     t->n_bytes, data_size);
            return -1;
        }
    }
    /* overlaps: walk the tensors in offset order */
    int *byoff = sort_index(f, f->n_tensors, cmp_offset);
    if (!byoff) {
        snprintf(c->err, c->errlen, "%s: out of memory", f->path);
        return -1;
    }
    int rc = 0;
    for (int i = 1; i < f->n_tensors && rc == 0; i++) {
        const struct gguf_tensor *a = &f->tensors[byoff[i - 1]], *b = &f->tensors[byoff[i]];
        if (a->offset + a->n_bytes > b->offset) {
            snprintf(c->err, c->errlen, "%s: tensors '%s' and '%s' overlap in the data "
                     "section", f->path, a->name, b->name);
            rc = -1;
        }
    }
    free(byoff);
    return rc;
}

static int parse(struct cur *c)
{
    struct gguf_file *f = c->f;
    if (parse_header(c) < 0 || parse_alignment(c) < 0)
        return -1;
    for (int i = 0; i < f->n_tensors; i++)
        if (parse_tensor_info(c, i) < 0) {
            f->n_tensors = i; /* the rest were never filled */
            return -1;
        }
    if (!(f->t_sorted = sort_index(f, f->n_tensors, cmp_name))) {
        snprintf(c->err, c->errlen, "%s: out of memory", f->path);
        return -1;
    }
    for (int i = 1; i < f->n_tensors; i++)
        if (strcmp(f->tensors[f->t_sorted[i - 1]].name,
                   f->tensors[f->t_sorted[i]].name) == 0) {
            snprintf(c->err, c->errlen, "%s: tensor '%s' appears more than once",
                     f->path, f->tensors[f->t_sorted[i]].name);
            return -1;
        }
    return check_layout(c);
}

struct gguf_file *gguf_open(const char *path, char *err, size_t errlen)
{
    struct gguf_file *f = calloc(1, sizeof *f);
    struct stat st;
    if (f)
        f->fd = -1;
    if (!f || !(f->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(f);
        return NULL;
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0 || fstat(f->fd, &st) != 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        gguf_close(f);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        gguf_close(f);
        return NULL;
    }
    f->size = (uint64_t)st.st_size;
    if (f->size < 24) {
        snprintf(err, errlen, "%s: %" PRIu64 " bytes is too short for a GGUF header",
                 path, f->size);
        gguf_close(f);
        return NULL;
    }
    void *map = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (map == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        gguf_close(f);
        return NULL;
    }
    f->map = map;
    struct cur c = {.f = f, .err = err, .errlen = errlen};
    if (parse(&c) < 0) {
        gguf_close(f);
        return NULL;
    }
    return f;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_kv; i++)
        free_value(&f->kvs[i].v);
    free(f->kvs);
    free(f->kv_sorted);
    free(f->tensors);
    free(f->t_sorted);
    while (f->arena) {
        struct chunk *next = f->arena->next;
        free(f->arena);
        f->arena = next;
    }
    if (f->map)
        munmap((void *)f->map, (size_t)f->size);
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    free(f);
}

const char *gguf_path(const struct gguf_file *f) { return f->path; }
uint32_t gguf_version(const struct gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const struct gguf_file *f) { return f->alignment; }

/* ---- metadata access ---- */

int gguf_kv_count(const struct gguf_file *f) { return f->n_kv; }
const char *gguf_kv_key(const struct gguf_file *f, int i) { return f->kvs[i].key; }
enum gguf_type gguf_kv_type(const struct gguf_file *f, int i)
{
    return (enum gguf_type)f->kvs[i].v.type;
}

int gguf_has(const struct gguf_file *f, const char *key)
{
    return find_kv(f, key) >= 0;
}

/* Integer at p of integer type t; -1 for a u64 above INT64_MAX. */
static int decode_int(uint32_t t, const unsigned char *p, int64_t *out)
{
    switch (t) {
    case GGUF_TYPE_UINT8: *out = p[0]; return 0;
    case GGUF_TYPE_INT8: *out = (int8_t)p[0]; return 0;
    case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, p, 2); *out = v; return 0; }
    case GGUF_TYPE_UINT32: *out = rd32(p); return 0;
    case GGUF_TYPE_INT32: *out = (int32_t)rd32(p); return 0;
    case GGUF_TYPE_INT64: *out = (int64_t)rd64(p); return 0;
    default: /* UINT64 */
        if (rd64(p) > INT64_MAX)
            return -1;
        *out = (int64_t)rd64(p);
        return 0;
    }
}

/* Number at p of numeric type t (not bool, string or array). */
static int decode_float(uint32_t t, const unsigned char *p, double *out)
{
    if (t == GGUF_TYPE_FLOAT32) {
        float v;
        memcpy(&v, p, 4);
        *out = v;
        return 0;
    }
    if (t == GGUF_TYPE_FLOAT64) {
        memcpy(out, p, 8);
        return 0;
    }
    if (t == GGUF_TYPE_UINT64) {
        *out = (double)rd64(p);
        return 0;
    }
    int64_t i;
    if (!is_int_type(t) || decode_int(t, p, &i) < 0)
        return -1;
    *out = (double)i;
    return 0;
}

static int kind_str(uint32_t t) { return t == GGUF_TYPE_STRING; }
static int kind_int(uint32_t t) { return is_int_type(t); }
static int kind_num(uint32_t t)
{
    return is_int_type(t) || t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64;
}
static int kind_bool(uint32_t t) { return t == GGUF_TYPE_BOOL; }
static int kind_arr(uint32_t t) { return t == GGUF_TYPE_ARRAY; }

/* The value of key when its type passes ok, or NULL and an error naming
 * the key and what it holds instead of `want`. */
static const struct value *lookup(const struct gguf_file *f, const char *key,
                                  int (*ok)(uint32_t), const char *want, char *err,
                                  size_t errlen)
{
    int i = find_kv(f, key);
    if (i < 0) {
        snprintf(err, errlen, "%s: metadata key '%s' is missing", f->path, key);
        return NULL;
    }
    const struct value *v = &f->kvs[i].v;
    if (!ok(v->type)) {
        int arr = v->type == GGUF_TYPE_ARRAY;
        snprintf(err, errlen, "%s: metadata key '%s' holds %s%s%s, not %s", f->path,
                 key, arr ? "an array of " : "a ", VALUE_NAMES[arr ? v->elem : v->type],
                 arr ? "" : " value", want);
        return NULL;
    }
    return v;
}

int gguf_get_str(const struct gguf_file *f, const char *key, const char **s,
                 size_t *len, char *err, size_t errlen)
{
    const struct value *v = lookup(f, key, kind_str, "a string", err, errlen);
    if (!v)
        return -1;
    *s = v->str;
    if (len)
        *len = (size_t)v->len;
    return 0;
}

int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out,
                 char *err, size_t errlen)
{
    const struct value *v = lookup(f, key, kind_int, "an integer", err, errlen);
    if (!v)
        return -1;
    if (decode_int(v->type, v->raw, out) < 0) {
        snprintf(err, errlen, "%s: metadata key '%s': %" PRIu64 " is out of range",
                 f->path, key, rd64(v->raw));
        return -1;
    }
    return 0;
}

int gguf_get_float(const struct gguf_file *f, const char *key, double *out,
                   char *err, size_t errlen)
{
    const struct value *v = lookup(f, key, kind_num, "a number", err, errlen);
    if (!v)
        return -1;
    return decode_float(v->type, v->raw, out);
}

int gguf_get_bool(const struct gguf_file *f, const char *key, int *out, char *err,
                  size_t errlen)
{
    const struct value *v = lookup(f, key, kind_bool, "a bool", err, errlen);
    if (!v)
        return -1;
    *out = v->raw[0];
    return 0;
}

static void arr_view(const struct value *v, struct gguf_arr *a)
{
    a->type = (enum gguf_type)v->elem;
    a->count = v->count;
    a->impl = v;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, struct gguf_arr *a,
                 char *err, size_t errlen)
{
    const struct value *v = lookup(f, key, kind_arr, "an array", err, errlen);
    if (!v)
        return -1;
    arr_view(v, a);
    return 0;
}

/* The array behind a, when i is in range; NULL otherwise. */
static const struct value *arr_at(const struct gguf_arr *a, uint64_t i)
{
    return a && a->impl && i < a->count ? a->impl : NULL;
}

const char *gguf_arr_str(const struct gguf_arr *a, uint64_t i, size_t *len)
{
    const struct value *v = arr_at(a, i);
    if (!v || v->elem != GGUF_TYPE_STRING)
        return NULL;
    if (len)
        *len = (size_t)v->items[i].len;
    return v->items[i].str;
}

int gguf_arr_int(const struct gguf_arr *a, uint64_t i, int64_t *out)
{
    const struct value *v = arr_at(a, i);
    if (!v || !is_int_type(v->elem))
        return -1;
    return decode_int(v->elem, v->raw + i * VALUE_SIZES[v->elem], out);
}

int gguf_arr_float(const struct gguf_arr *a, uint64_t i, double *out)
{
    const struct value *v = arr_at(a, i);
    if (!v || v->elem == GGUF_TYPE_STRING || v->elem == GGUF_TYPE_ARRAY ||
        v->elem == GGUF_TYPE_BOOL)
        return -1;
    return decode_float(v->elem, v->raw + i * VALUE_SIZES[v->elem], out);
}

int gguf_arr_bool(const struct gguf_arr *a, uint64_t i, int *out)
{
    const struct value *v = arr_at(a, i);
    if (!v || v->elem != GGUF_TYPE_BOOL)
        return -1;
    *out = v->raw[i];
    return 0;
}

int gguf_arr_arr(const struct gguf_arr *a, uint64_t i, struct gguf_arr *out)
{
    const struct value *v = arr_at(a, i);
    if (!v || v->elem != GGUF_TYPE_ARRAY)
        return -1;
    arr_view(&v->items[i], out);
    return 0;
}

/* ---- tensors ---- */

int gguf_tensor_count(const struct gguf_file *f) { return f->n_tensors; }

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, int i)
{
    return &f->tensors[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const struct gguf_tensor *t = &f->tensors[f->t_sorted[mid]];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const void *gguf_tensor_data(const struct gguf_file *f, const struct gguf_tensor *t)
{
    return f->map + f->data_start + t->offset;
}

static float half(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return st_f16_to_f32(h);
}

/* One block of each type: src (block bytes) -> y (block elements). */

static void dequant_q4_0(const unsigned char *b, float *y)
{
    const float d = half(b);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((b[2 + j] & 0x0f) - 8) * d;
        y[j + 16] = (float)((b[2 + j] >> 4) - 8) * d;
    }
}

static void dequant_q4_1(const unsigned char *b, float *y)
{
    const float d = half(b), m = half(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(b[4 + j] & 0x0f) * d + m;
        y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
    }
}

static void dequant_q8_0(const unsigned char *b, float *y)
{
    const float d = half(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* Q6_K: ql[128] low 4 bits | qh[64] high 2 bits | int8 scales[16] | fp16 d.
 * Each half of 128 weights uses 64 ql bytes, 32 qh bytes and 8 scales:
 *   y[l]      = d * sc[l/16]     * ((ql[l]    & 15 | (qh[l] >> 0 & 3) << 4) - 32)
 *   y[l + 32] = d * sc[l/16 + 2] * ((ql[l+32] & 15 | (qh[l] >> 2 & 3) << 4) - 32)
 *   y[l + 64] = d * sc[l/16 + 4] * ((ql[l]    >> 4 | (qh[l] >> 4 & 3) << 4) - 32)
 *   y[l + 96] = d * sc[l/16 + 6] * ((ql[l+32] >> 4 | (qh[l] >> 6 & 3) << 4) - 32)
 * for l in [0, 32). */
static void dequant_q6_k(const unsigned char *b, float *y)
{
    const float d = half(b + 208);
    for (int n = 0; n < 2; n++) {
        const unsigned char *ql = b + 64 * n, *qh = b + 128 + 32 * n;
        const int8_t *sc = (const int8_t *)(b + 192) + 8 * n;
        float *yy = y + 128 * n;
        for (int l = 0; l < 32; l++) {
            const int is = l / 16;
            const int q1 = (ql[l] & 0xf) | ((qh[l] >> 0) & 3) << 4;
            const int q2 = (ql[l + 32] & 0xf) | ((qh[l] >> 2) & 3) << 4;
            const int q3 = (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4;
            const int q4 = (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4;
            yy[l] = d * (float)sc[is] * (float)(q1 - 32);
            yy[l + 32] = d * (float)sc[is + 2] * (float)(q2 - 32);
            yy[l + 64] = d * (float)sc[is + 4] * (float)(q3 - 32);
            yy[l + 96] = d * (float)sc[is + 6] * (float)(q4 - 32);
        }
    }
}

int gguf_tensor_read_f32(const struct gguf_file *f, const struct gguf_tensor *t,
                         float *out, size_t n, char *err, size_t errlen)
{
    if (!gguf_type_supported(t->type)) {
        snprintf(err, errlen, "%s: tensor '%s' has type %s, which this engine does not "
                 "dequantize (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q6_K)",
                 f->path, t->name, t->type_name);
        return -1;
    }
    if ((uint64_t)n != t->n_elems) {
        snprintf(err, errlen, "%s: tensor '%s' has %" PRIu64 " elements, not %zu",
                 f->path, t->name, t->n_elems, n);
        return -1;
    }
    const unsigned char *p = gguf_tensor_data(f, t);
    const struct type_info *ti = type_info(t->type);
    switch (t->type) {
    case GGML_TYPE_F32:
        memcpy(out, p, n * sizeof(float));
        return 0;
    case GGML_TYPE_F16:
        for (size_t i = 0; i < n; i++)
            out[i] = half(p + 2 * i);
        return 0;
    case GGML_TYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t b;
            memcpy(&b, p + 2 * i, 2);
            out[i] = bf16_to_f32(b);
        }
        return 0;
    default:
        break;
    }
    void (*block)(const unsigned char *, float *) =
        t->type == GGML_TYPE_Q4_0 ? dequant_q4_0 : t->type == GGML_TYPE_Q4_1
        ? dequant_q4_1 : t->type == GGML_TYPE_Q8_0 ? dequant_q8_0 : dequant_q6_k;
    for (size_t i = 0; i < n / ti->block_elems; i++)
        block(p + i * ti->block_bytes, out + i * ti->block_elems);
    return 0;
}
