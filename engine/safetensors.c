/*
 * safetensors.c: the safetensors reader (validate the header once, then
 * pread and convert tensors on demand) and the atomic writer.
 *
 * Nothing taken from a file is trusted: the header length is bounded by the
 * file size and ST_MAX_HEADER, every product and sum of sizes is checked for
 * overflow, every tensor's byte range must lie inside the data buffer, match
 * numel * element size exactly, and not overlap another tensor.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bf16.h"
#include "safetensors.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c reads tensor data in place: little-endian hosts only");
_Static_assert(sizeof(size_t) >= 8, "sizes from the file are held in size_t");

#define ST_MAX_HEADER (100u * 1024 * 1024) /* bytes of JSON we accept */
#define CHUNK 4096                         /* elements converted per pread */

struct st_file {
    char *path;
    int fd;
    uint64_t data_start; /* 8 + N */
    uint64_t data_size;  /* file size - data_start */
    int n;
    struct st_tensor *t; /* sorted by name */
    int n_meta;
    char **meta;         /* n_meta (key, value) pairs, flattened */
};

/* The standard safetensors dtypes with a whole number of bytes per element. */
static const struct {
    const char *name;
    unsigned size;
    enum st_dtype dtype;
} dtypes[] = {
    {"F32", 4, ST_F32},       {"F16", 2, ST_F16},     {"BF16", 2, ST_BF16},
    {"I32", 4, ST_I32},       {"I64", 8, ST_I64},     {"F64", 8, ST_OTHER},
    {"U64", 8, ST_OTHER},     {"U32", 4, ST_OTHER},   {"I16", 2, ST_OTHER},
    {"U16", 2, ST_OTHER},     {"I8", 1, ST_OTHER},    {"U8", 1, ST_OTHER},
    {"BOOL", 1, ST_OTHER},    {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
};
#define N_DTYPES (int)(sizeof dtypes / sizeof dtypes[0])

static int dtype_index(const char *name)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, name) == 0)
            return i;
    return -1;
}

static unsigned dtype_size(enum st_dtype d)
{
    return d == ST_F32 || d == ST_I32 ? 4 : d == ST_I64 ? 8 : 2;
}

const char *st_shape_str(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t used = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && used < len; i++)
        used += snprintf(buf + used, len - used, "%s%lld", i ? ", " : "",
                         (long long)shape[i]);
    if (used < len)
        snprintf(buf + used, len - used, "]");
    return buf;
}

/* Read exactly n bytes at off: 0, or -1 with errno set (0 at end of file). */
static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = 0;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static const char *io_reason(void)
{
    return errno ? strerror(errno) : "unexpected end of file";
}

/* ---- reading ---- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name,
                  ((const struct st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* A non-negative JSON integer, or -1. */
static long long json_uint(const json_t *v)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    return json_integer_value(v);
}

/* Fill t from one header entry. */
static int parse_entry(struct st_file *f, const char *name, json_t *v,
                       struct st_tensor *t, char *err, size_t errlen)
{
    char sbuf[256];
    t->name = strdup(name);
    if (!t->name) {
        snprintf(err, errlen, "%s: out of memory", f->path);
        return -1;
    }
    if (!json_is_object(v)) {
        snprintf(err, errlen, "%s: tensor '%s': entry is not a JSON object",
                 f->path, name);
        return -1;
    }
    json_t *dt = json_object_get(v, "dtype");
    if (!json_is_string(dt)) {
        snprintf(err, errlen, "%s: tensor '%s': dtype missing or not a string",
                 f->path, name);
        return -1;
    }
    int di = dtype_index(json_string_value(dt));
    if (di < 0) {
        snprintf(err, errlen, "%s: tensor '%s': unknown dtype \"%.32s\"", f->path,
                 name, json_string_value(dt));
        return -1;
    }
    t->dtype_name = dtypes[di].name;
    t->dtype = dtypes[di].dtype;

    json_t *sh = json_object_get(v, "shape");
    if (!json_is_array(sh)) {
        snprintf(err, errlen, "%s: tensor '%s': shape missing or not an array",
                 f->path, name);
        return -1;
    }
    if (json_array_size(sh) > ST_MAX_DIMS) {
        snprintf(err, errlen, "%s: tensor '%s': shape has %zu dimensions (at most %d)",
                 f->path, name, json_array_size(sh), ST_MAX_DIMS);
        return -1;
    }
    t->ndim = (int)json_array_size(sh);
    t->numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        long long d = json_uint(json_array_get(sh, (size_t)i));
        if (d < 0) {
            snprintf(err, errlen,
                     "%s: tensor '%s': shape[%d] is not a non-negative integer",
                     f->path, name, i);
            return -1;
        }
        t->shape[i] = d;
        if (__builtin_mul_overflow(t->numel, (size_t)d, &t->numel)) {
            snprintf(err, errlen, "%s: tensor '%s': shape %s is too large", f->path,
                     name, st_shape_str(sbuf, sizeof sbuf, t->shape, i + 1));
            return -1;
        }
    }

    json_t *off = json_object_get(v, "data_offsets");
    long long b = json_uint(json_array_get(off, 0));
    long long e = json_uint(json_array_get(off, 1));
    if (!json_is_array(off) || json_array_size(off) != 2 || b < 0 || e < 0) {
        snprintf(err, errlen,
                 "%s: tensor '%s': data_offsets must be [begin, end], two "
                 "non-negative integers", f->path, name);
        return -1;
    }
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    if (t->begin > t->end) {
        snprintf(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end before "
                 "they begin", f->path, name, (unsigned long long)t->begin,
                 (unsigned long long)t->end);
        return -1;
    }
    if (t->end > f->data_size) {
        snprintf(err, errlen,
                 "%s: tensor '%s': data_offsets [%llu, %llu] out of range "
                 "(data buffer is %llu bytes)", f->path, name,
                 (unsigned long long)t->begin, (unsigned long long)t->end,
                 (unsigned long long)f->data_size);
        return -1;
    }
    size_t bytes;
    if (__builtin_mul_overflow(t->numel, (size_t)dtypes[di].size, &bytes) ||
        bytes != t->end - t->begin) {
        snprintf(err, errlen,
                 "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes, "
                 "but shape %s of %s needs %zu x %u bytes", f->path, name,
                 (unsigned long long)t->begin, (unsigned long long)t->end,
                 (unsigned long long)(t->end - t->begin),
                 st_shape_str(sbuf, sizeof sbuf, t->shape, t->ndim), t->dtype_name,
                 t->numel, dtypes[di].size);
        return -1;
    }
    return 0;
}

static int parse_metadata(struct st_file *f, json_t *md, char *err, size_t errlen)
{
    const char *key;
    json_t *v;
    if (!json_is_object(md)) {
        snprintf(err, errlen, "%s: __metadata__ is not a JSON object", f->path);
        return -1;
    }
    f->meta = calloc(2 * json_object_size(md) + 1, sizeof(char *));
    if (!f->meta) {
        snprintf(err, errlen, "%s: out of memory", f->path);
        return -1;
    }
    json_object_foreach(md, key, v) {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s: __metadata__ value of \"%s\" is not a string",
                     f->path, key);
            return -1;
        }
        f->meta[2 * f->n_meta] = strdup(key);
        f->meta[2 * f->n_meta + 1] = strdup(json_string_value(v));
        f->n_meta++;
        if (!f->meta[2 * f->n_meta - 2] || !f->meta[2 * f->n_meta - 1]) {
            snprintf(err, errlen, "%s: out of memory", f->path);
            return -1;
        }
    }
    return 0;
}

/* Refuse tensors whose (non-empty) byte ranges overlap. */
static int check_overlaps(struct st_file *f, char *err, size_t errlen)
{
    struct st_tensor **by = malloc(((size_t)f->n + 1) * sizeof *by);
    if (!by) {
        snprintf(err, errlen, "%s: out of memory", f->path);
        return -1;
    }
    for (int i = 0; i < f->n; i++)
        by[i] = &f->t[i];
    qsort(by, (size_t)f->n, sizeof *by, cmp_begin);
    const struct st_tensor *last = NULL; /* non-empty tensor reaching furthest */
    for (int i = 0; i < f->n; i++) {
        const struct st_tensor *t = by[i];
        if (t->begin == t->end)
            continue;
        if (last && t->begin < last->end) {
            snprintf(err, errlen,
                     "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                     f->path, last->name, (unsigned long long)last->begin,
                     (unsigned long long)last->end, t->name,
                     (unsigned long long)t->begin, (unsigned long long)t->end);
            free(by);
            return -1;
        }
        if (!last || t->end > last->end)
            last = t;
    }
    free(by);
    return 0;
}

static int parse_header(struct st_file *f, const char *buf, size_t len, char *err,
                        size_t errlen)
{
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    if (!root) {
        snprintf(err, errlen, "%s: header is not valid JSON: %s (line %d, column %d)",
                 f->path, jerr.text, jerr.line, jerr.column);
        return -1;
    }
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: header is not a JSON object", f->path);
        goto out;
    }
    json_t *md = json_object_get(root, "__metadata__");
    if (md && parse_metadata(f, md, err, errlen) < 0)
        goto out;
    size_t n = json_object_size(root) - (md ? 1 : 0);
    if (n > INT_MAX) {
        snprintf(err, errlen, "%s: too many tensors (%zu)", f->path, n);
        goto out;
    }
    f->t = calloc(n + 1, sizeof *f->t);
    if (!f->t) {
        snprintf(err, errlen, "%s: out of memory", f->path);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        /* counted before parsing, so a failed entry is freed by st_close */
        if (parse_entry(f, key, v, &f->t[f->n++], err, errlen) < 0)
            goto out;
    }
    if (check_overlaps(f, err, errlen) < 0)
        goto out;
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_name);
    rc = 0;
out:
    json_decref(root);
    return rc;
}

struct st_file *st_open(const char *path, char *err, size_t errlen)
{
    struct st_file *f = calloc(1, sizeof *f);
    char *hdr = NULL;
    struct stat sb;
    uint8_t lenb[8];
    if (!f || !(f->path = strdup(path))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(f);
        return NULL;
    }
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(f->fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s: not a readable regular file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8) {
        snprintf(err, errlen, "%s: file is %llu bytes, too short for a safetensors "
                 "header", path, (unsigned long long)size);
        goto fail;
    }
    if (pread_full(f->fd, lenb, 8, 0) < 0) {
        snprintf(err, errlen, "%s: reading the header length: %s", path, io_reason());
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenb[i];
    if (hlen > size - 8) {
        snprintf(err, errlen, "%s: header length %llu exceeds the %llu bytes after "
                 "the length field (truncated or not safetensors)", path,
                 (unsigned long long)hlen, (unsigned long long)(size - 8));
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        snprintf(err, errlen, "%s: header length %llu is over the %u-byte limit",
                 path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    f->data_start = 8 + hlen;
    f->data_size = size - f->data_start;
    hdr = malloc(hlen + 1);
    if (!hdr) {
        snprintf(err, errlen, "%s: out of memory for a %llu-byte header", path,
                 (unsigned long long)hlen);
        goto fail;
    }
    if (pread_full(f->fd, hdr, hlen, 8) < 0) {
        snprintf(err, errlen, "%s: reading the header: %s", path, io_reason());
        goto fail;
    }
    if (parse_header(f, hdr, hlen, err, errlen) < 0)
        goto fail;
    free(hdr);
    return f;
fail:
    free(hdr);
    st_close(f);
    return NULL;
}

void st_close(struct st_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    free(f->t);
    for (int i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->meta);
    free(f->path);
    free(f);
}

const char *st_path(const struct st_file *f) { return f->path; }

int st_count(const struct st_file *f) { return f->n; }

const struct st_tensor *st_tensor_at(const struct st_file *f, int i)
{
    return &f->t[i];
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    struct st_tensor key = {.name = name};
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_name);
}

const char *st_metadata(const struct st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0)
            return f->meta[2 * i + 1];
    return NULL;
}

static int check_count(const struct st_file *f, const struct st_tensor *t, size_t n,
                       char *err, size_t errlen)
{
    if (n != t->numel) {
        snprintf(err, errlen, "%s: tensor '%s': has %zu elements, caller expects %zu",
                 f->path, t->name, t->numel, n);
        return -1;
    }
    return 0;
}

static int read_fail(const struct st_file *f, const struct st_tensor *t, char *err,
                     size_t errlen)
{
    snprintf(err, errlen, "%s: tensor '%s': read failed: %s", f->path, t->name,
             io_reason());
    return -1;
}

int st_read_f32(const struct st_file *f, const struct st_tensor *t, float *out,
                size_t n, char *err, size_t errlen)
{
    uint16_t buf[CHUNK];
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16) {
        snprintf(err, errlen, "%s: tensor '%s': dtype %s cannot be converted to "
                 "float32 (F32, F16 or BF16 only)", f->path, t->name, t->dtype_name);
        return -1;
    }
    if (check_count(f, t, n, err, errlen) < 0)
        return -1;
    uint64_t off = f->data_start + t->begin;
    if (t->dtype == ST_F32)
        return pread_full(f->fd, out, n * sizeof(float), off) < 0
                   ? read_fail(f, t, err, errlen) : 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        if (pread_full(f->fd, buf, k * 2, off + i * 2) < 0)
            return read_fail(f, t, err, errlen);
        for (size_t j = 0; j < k; j++)
            out[i + j] = t->dtype == ST_F16 ? st_f16_to_f32(buf[j])
                                            : bf16_to_f32(buf[j]);
    }
    return 0;
}

int st_read_i32(const struct st_file *f, const struct st_tensor *t, int32_t *out,
                size_t n, char *err, size_t errlen)
{
    int64_t buf[CHUNK];
    if (t->dtype != ST_I32 && t->dtype != ST_I64) {
        snprintf(err, errlen, "%s: tensor '%s': dtype %s is not an integer type "
                 "this engine reads (I32 or I64 only)", f->path, t->name,
                 t->dtype_name);
        return -1;
    }
    if (check_count(f, t, n, err, errlen) < 0)
        return -1;
    uint64_t off = f->data_start + t->begin;
    if (t->dtype == ST_I32)
        return pread_full(f->fd, out, n * sizeof(int32_t), off) < 0
                   ? read_fail(f, t, err, errlen) : 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK;
        if (pread_full(f->fd, buf, k * 8, off + i * 8) < 0)
            return read_fail(f, t, err, errlen);
        for (size_t j = 0; j < k; j++) {
            if (buf[j] < INT32_MIN || buf[j] > INT32_MAX) {
                snprintf(err, errlen, "%s: tensor '%s': element %zu = %lld does not "
                         "fit in int32", f->path, t->name, i + j, (long long)buf[j]);
                return -1;
            }
            out[i + j] = (int32_t)buf[j];
        }
    }
    return 0;
}

/* ---- scalar conversions ---- */

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) /* inf, or NaN keeping its payload */
        return bits_f32(sign | 0x7f800000u | mant << 13);
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign);
        /* subnormal: mant * 2^-24; shift the leading 1 up to bit 10 */
        exp = 127 - 15 + 1;
        while (!(mant & 0x400)) {
            mant <<= 1;
            exp--;
        }
        return bits_f32(sign | exp << 23 | (mant & 0x3ff) << 13);
    }
    return bits_f32(sign | (exp + 127 - 15) << 23 | mant << 13);
}

/* ---- writing ---- */

static int write_full(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The header JSON for t/meta; NULL (and err) on a bad argument. */
static char *build_header(const char *path, const struct st_write_tensor *t, int n,
                          const struct st_kv *meta, int n_meta, char *err,
                          size_t errlen)
{
    json_t *root = json_object(), *md = NULL;
    char *s = NULL;
    uint64_t off = 0;
    if (!root)
        goto oom;
    if (n_meta > 0) {
        if (!(md = json_object()) || json_object_set_new(root, "__metadata__", md) < 0)
            goto oom;
        for (int i = 0; i < n_meta; i++) {
            json_t *v;
            if (!meta[i].key || !meta[i].value || json_object_get(md, meta[i].key)) {
                snprintf(err, errlen, "%s: metadata entry %d is NULL or repeats a key",
                         path, i);
                goto fail;
            }
            if (!(v = json_string(meta[i].value)) ||
                json_object_set_new(md, meta[i].key, v) < 0) {
                snprintf(err, errlen, "%s: metadata \"%s\" is not valid UTF-8", path,
                         meta[i].key);
                goto fail;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        const struct st_write_tensor *w = &t[i];
        const char *name = w->name ? w->name : "(null)";
        size_t numel = 1, bytes;
        json_t *e, *shape;
        if (!w->name || !*w->name || strcmp(w->name, "__metadata__") == 0 ||
            json_object_get(root, w->name)) {
            snprintf(err, errlen, "%s: tensor %d: name '%s' is empty, reserved or "
                     "repeated", path, i, name);
            goto fail;
        }
        if (w->dtype != ST_F32 && w->dtype != ST_BF16) {
            snprintf(err, errlen, "%s: tensor '%s': can only be stored as F32 or BF16",
                     path, name);
            goto fail;
        }
        if (w->ndim < 0 || w->ndim > ST_MAX_DIMS) {
            snprintf(err, errlen, "%s: tensor '%s': %d dimensions (0 to %d allowed)",
                     path, name, w->ndim, ST_MAX_DIMS);
            goto fail;
        }
        /* json_object_set_new takes the value even when it fails */
        if (json_object_set_new(root, name, e = json_object()) < 0 ||
            json_object_set_new(e, "dtype",
                                json_string(w->dtype == ST_F32 ? "F32" : "BF16")) < 0 ||
            json_object_set_new(e, "shape", shape = json_array()) < 0) {
            snprintf(err, errlen, "%s: tensor '%s': cannot build its header entry "
                     "(name not valid UTF-8, or out of memory)", path, name);
            goto fail;
        }
        for (int d = 0; d < w->ndim; d++) {
            if (w->shape[d] < 0 ||
                __builtin_mul_overflow(numel, (size_t)w->shape[d], &numel)) {
                snprintf(err, errlen, "%s: tensor '%s': shape[%d] = %lld is negative "
                         "or too large", path, name, d, (long long)w->shape[d]);
                goto fail;
            }
            if (json_array_append_new(shape, json_integer(w->shape[d])) < 0)
                goto oom;
        }
        if (numel > 0 && !w->data && !(w->dtype == ST_BF16 && w->bf16)) {
            snprintf(err, errlen, "%s: tensor '%s': data is NULL", path, name);
            goto fail;
        }
        if (__builtin_mul_overflow(numel, (size_t)dtype_size(w->dtype), &bytes) ||
            off + bytes < off || off + bytes > (uint64_t)INT64_MAX) {
            snprintf(err, errlen, "%s: tensor '%s': too large", path, name);
            goto fail;
        }
        json_t *offs = json_pack("[II]", (json_int_t)off, (json_int_t)(off + bytes));
        if (json_object_set_new(e, "data_offsets", offs) < 0) {
            goto oom;
        }
        off += bytes;
    }
    if (!(s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        goto oom;
    json_decref(root);
    return s;
oom:
    snprintf(err, errlen, "%s: out of memory building the header", path);
fail:
    json_decref(root);
    return NULL;
}

/* Write the length field, padded header and data of every tensor to fd. */
static int write_body(int fd, const char *hdr, const struct st_write_tensor *t, int n)
{
    size_t hlen = strlen(hdr), padded = (hlen + 7) / 8 * 8;
    uint8_t lenb[8];
    uint16_t buf[CHUNK];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    if (write_full(fd, lenb, 8) < 0 || write_full(fd, hdr, hlen) < 0 ||
        write_full(fd, "        ", padded - hlen) < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (size_t)t[i].shape[d]; /* checked by build_header */
        if (t[i].dtype == ST_F32 || t[i].bf16) {
            if ((t[i].dtype == ST_F32 ? write_full(fd, t[i].data, numel * sizeof(float))
                                      : write_full(fd, t[i].bf16, numel * 2)) < 0)
                return -1;
            continue;
        }
        for (size_t j = 0; j < numel; j += CHUNK) {
            size_t k = numel - j < CHUNK ? numel - j : CHUNK;
            for (size_t q = 0; q < k; q++)
                buf[q] = bf16_from_f32(t[i].data[j + q]);
            if (write_full(fd, buf, k * 2) < 0)
                return -1;
        }
    }
    return 0;
}

/* fsync the directory holding path, so the rename is durable. */
static int sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path))
                      : strdup(".");
    int fd, rc = -1;
    if (!dir)
        return -1;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        rc = fsync(fd);
        close(fd);
    }
    free(dir);
    return rc;
}

int st_write(const char *path, const struct st_write_tensor *t, int n,
             const struct st_kv *meta, int n_meta, char *err, size_t errlen)
{
    char *hdr, *tmp;
    int fd;
    if (n < 0 || n_meta < 0) {
        snprintf(err, errlen, "%s: negative tensor or metadata count", path);
        return -1;
    }
    if (!(hdr = build_header(path, t, n, meta, n_meta, err, errlen)))
        return -1;
    if (strlen(hdr) > ST_MAX_HEADER - 8) {
        snprintf(err, errlen, "%s: header of %zu bytes is over the %u-byte limit",
                 path, strlen(hdr), ST_MAX_HEADER);
        free(hdr);
        return -1;
    }
    if (!(tmp = malloc(strlen(path) + 5))) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(hdr);
        return -1;
    }
    sprintf(tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create %s: %s", path, tmp, strerror(errno));
        goto fail;
    }
    if (write_body(fd, hdr, t, n) < 0) {
        snprintf(err, errlen, "%s: writing %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail_unlink;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "%s: fsync of %s: %s", path, tmp, strerror(errno));
        close(fd);
        goto fail_unlink;
    }
    if (close(fd) < 0) {
        snprintf(err, errlen, "%s: closing %s: %s", path, tmp, strerror(errno));
        goto fail_unlink;
    }
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: renaming %s into place: %s", path, tmp,
                 strerror(errno));
        goto fail_unlink;
    }
    if (sync_dir(path) < 0) {
        snprintf(err, errlen, "%s: written, but fsync of its directory failed: %s",
                 path, strerror(errno));
        goto fail;
    }
    free(tmp);
    free(hdr);
    return 0;
fail_unlink:
    unlink(tmp);
fail:
    free(tmp);
    free(hdr);
    return -1;
}
