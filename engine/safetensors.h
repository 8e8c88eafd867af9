/*
 * safetensors.h: reading and writing Hugging Face safetensors files.
 *
 * File layout (all little-endian): uint64 N | N bytes of JSON header (padded
 * with spaces) | data buffer. The header maps tensor names to
 *   {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]}
 * with byte offsets relative to the data buffer, shape outermost first,
 * row-major; an optional "__metadata__" object maps strings to strings.
 *
 * st_open validates the whole header before returning: sizes, offsets,
 * byte lengths (numel * element size), overlaps and dtypes, with
 * overflow-safe arithmetic, so nothing read from the file is trusted later.
 * Tensor data are read on demand with pread, converted to fp32 (F32, F16,
 * BF16) or int32 (I32, I64). Other standard dtypes (U8, F64, ...) are listed
 * but refused by the converters; dtype strings outside the standard set are
 * refused by st_open.
 *
 * st_write writes a complete file atomically: <path>.tmp, fsync, rename,
 * fsync of the directory; a previous file at path survives any failure.
 *
 * Every function that can fail returns -1 (or NULL) and writes a message
 * naming the file and, where there is one, the tensor into err (errlen).
 */
#ifndef OWLORE_SAFETENSORS_H
#define OWLORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8

enum st_dtype {
    ST_F32,  /* the zero value, so a zeroed st_write_tensor writes fp32 */
    ST_F16,
    ST_BF16,
    ST_I32,
    ST_I64,
    ST_OTHER /* a standard dtype this engine does not convert */
};

struct st_tensor {
    const char *name;
    const char *dtype_name;   /* as written in the header, e.g. "BF16" */
    enum st_dtype dtype;
    int ndim;                 /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    size_t numel;             /* product of shape (1 for a scalar) */
    uint64_t begin, end;      /* byte range inside the data buffer */
};

struct st_file; /* opaque: an open, validated file */

/* Open and validate path. NULL on error. */
struct st_file *st_open(const char *path, char *err, size_t errlen);
void st_close(struct st_file *f); /* NULL is fine */

const char *st_path(const struct st_file *f);
int st_count(const struct st_file *f);
/* Tensors in name order, i in [0, st_count). */
const struct st_tensor *st_tensor_at(const struct st_file *f, int i);
/* NULL when the file has no tensor of that name. */
const struct st_tensor *st_find(const struct st_file *f, const char *name);
/* Value of a __metadata__ key, NULL when absent. */
const char *st_metadata(const struct st_file *f, const char *key);

/* Convert tensor t of f (F32, F16 or BF16) to fp32 into out, which holds n
 * floats; n must equal t->numel. */
int st_read_f32(const struct st_file *f, const struct st_tensor *t, float *out,
                size_t n, char *err, size_t errlen);
/* Read integer tensor t (I32, or I64 with every value in int32 range) into
 * out, which holds n values; n must equal t->numel. */
int st_read_i32(const struct st_file *f, const struct st_tensor *t, int32_t *out,
                size_t n, char *err, size_t errlen);

/* Scalar conversions (exact except f32 -> bf16, which rounds to nearest even;
 * NaN stays NaN). */
float st_f16_to_f32(uint16_t h);

/* Format a shape as "[2, 3]" into buf (len bytes); returns buf. */
const char *st_shape_str(char *buf, size_t len, const int64_t *shape, int ndim);

/* ---- writing ---- */
struct st_write_tensor {
    const char *name;
    int ndim;                     /* 0 .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS];
    const float *data;            /* numel floats, row-major */
    enum st_dtype dtype;          /* ST_F32 or ST_BF16 (stored type) */
    const uint16_t *bf16;         /* or, with ST_BF16, numel bf16 values
                                     written as they are (data NULL) */
};

struct st_kv {
    const char *key, *value;
};

/* Write n tensors (stored in the given order) and n_meta metadata pairs to
 * path atomically. */
int st_write(const char *path, const struct st_write_tensor *t, int n,
             const struct st_kv *meta, int n_meta, char *err, size_t errlen);

#endif
