/*
 * gguf.h: a strict reader for GGUF files (llama.cpp's model format).
 *
 * File layout (little-endian; model-formats.md section 5):
 *   "GGUF" | u32 version (2 or 3) | u64 tensor_count | u64 kv_count
 *   | kv_count x (string key, u32 value type, value)
 *   | tensor_count x (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type,
 *                     u64 offset)
 *   | zero padding to general.alignment (default 32) | data section
 * A string is a u64 byte length and that many bytes (no terminator); an
 * array is a u32 element type, a u64 count and the elements (strings inline,
 * arrays may nest). dims[0] is the contiguous dimension, so a row-major
 * (rows, cols) matrix has dims {cols, rows}.
 *
 * gguf_open maps the file and validates everything before returning: magic,
 * version, every length and count against the bytes left, value and tensor
 * types, duplicate keys and tensor names, dims (1..4 of them, each >= 1,
 * dims[0] a multiple of the type's block, products overflow-checked),
 * alignment and that every tensor lies inside the data section without
 * overlapping another. Nothing read from the file is trusted afterwards.
 * Files holding tensor types this engine cannot dequantize still open (their
 * metadata, e.g. a tokenizer, is readable); gguf_tensor_read_f32 refuses
 * such tensors by type name.
 *
 * Every function that can fail returns -1 (or NULL) and writes a message
 * naming the file and, where there is one, the key or tensor into err.
 * Strings handed out are NUL-terminated copies owned by the file (valid
 * until gguf_close); GGUF strings may contain NUL bytes, so lengths are
 * given too.
 */
#ifndef OWLORE_GGUF_H
#define OWLORE_GGUF_H

#include <stddef.h>
#include <stdint.h>

/* Metadata value types, numbered as in the file. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
};

/* The ggml tensor types this engine dequantizes (ids as in ggml.h); every
 * other ggml type is recognised by name and size but refused. */
enum ggml_type {
    GGML_TYPE_F32 = 0,
    GGML_TYPE_F16 = 1,
    GGML_TYPE_Q4_0 = 2,
    GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q8_0 = 8,
    GGML_TYPE_Q6_K = 14,
    GGML_TYPE_BF16 = 30,
};

#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME 255      /* tensor name bytes (ggml itself allows 63) */
#define GGUF_MAX_KEY 65535     /* metadata key bytes */
#define GGUF_DEFAULT_ALIGNMENT 32

struct gguf_tensor {
    const char *name;
    int n_dims;                    /* 1 .. GGUF_MAX_DIMS */
    int64_t dims[GGUF_MAX_DIMS];   /* dims[0] contiguous; unused dims are 1 */
    uint32_t type;                 /* ggml type id */
    const char *type_name;         /* "Q4_1", ... */
    uint64_t offset;               /* bytes from the start of the data section */
    uint64_t n_elems;              /* product of dims */
    uint64_t n_bytes;              /* size in the file */
};

/* A view of an array value (valid until gguf_close); elements are read
 * with the gguf_arr_* accessors. */
struct gguf_arr {
    enum gguf_type type;           /* element type */
    uint64_t count;
    const void *impl;              /* private */
};

struct gguf_file; /* opaque: an open, validated file */

/* Open and validate path. NULL on error. */
struct gguf_file *gguf_open(const char *path, char *err, size_t errlen);
void gguf_close(struct gguf_file *f); /* NULL is fine */

const char *gguf_path(const struct gguf_file *f);
uint32_t gguf_version(const struct gguf_file *f);
uint32_t gguf_alignment(const struct gguf_file *f);

/* ---- metadata ---- */
int gguf_kv_count(const struct gguf_file *f);
/* The i-th key in file order, i in [0, gguf_kv_count). */
const char *gguf_kv_key(const struct gguf_file *f, int i);
enum gguf_type gguf_kv_type(const struct gguf_file *f, int i);
/* 1 when the key is present, 0 when not. */
int gguf_has(const struct gguf_file *f, const char *key);
const char *gguf_type_name(enum gguf_type t); /* "uint32", ..., "?" */

/* Typed getters: 0 on success; -1 (err names the file and key) when the key
 * is missing or holds another type.
 *   gguf_get_str    a string value (NUL-terminated; *len may be NULL)
 *   gguf_get_int    any integer type (u8..u64, i8..i64); a u64 above
 *                   INT64_MAX is refused as out of range
 *   gguf_get_float  f32 or f64 (or any integer type, converted)
 *   gguf_get_bool   a bool (0 or 1; other byte values are refused at open)
 *   gguf_get_arr    an array: its element type and count */
int gguf_get_str(const struct gguf_file *f, const char *key, const char **s,
                 size_t *len, char *err, size_t errlen);
int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out,
                 char *err, size_t errlen);
int gguf_get_float(const struct gguf_file *f, const char *key, double *out,
                   char *err, size_t errlen);
int gguf_get_bool(const struct gguf_file *f, const char *key, int *out,
                  char *err, size_t errlen);
int gguf_get_arr(const struct gguf_file *f, const char *key, struct gguf_arr *a,
                 char *err, size_t errlen);

/* Array elements, i in [0, a->count). Each returns -1 (or NULL) when i is out
 * of range or the elements are of another kind, with no message: the caller
 * knows the key.
 *   gguf_arr_str    string elements (NUL-terminated; *len may be NULL)
 *   gguf_arr_int    integer elements of any width (u64 above INT64_MAX: -1)
 *   gguf_arr_float  f32/f64 (or integer) elements
 *   gguf_arr_bool   bool elements
 *   gguf_arr_arr    the nested array at i */
const char *gguf_arr_str(const struct gguf_arr *a, uint64_t i, size_t *len);
int gguf_arr_int(const struct gguf_arr *a, uint64_t i, int64_t *out);
int gguf_arr_float(const struct gguf_arr *a, uint64_t i, double *out);
int gguf_arr_bool(const struct gguf_arr *a, uint64_t i, int *out);
int gguf_arr_arr(const struct gguf_arr *a, uint64_t i, struct gguf_arr *out);

/* ---- tensors ---- */
int gguf_tensor_count(const struct gguf_file *f);
/* The i-th tensor in file order, i in [0, gguf_tensor_count). */
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *f, int i);
/* NULL when the file has no tensor of that name. */
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f,
                                           const char *name);
/* The tensor's raw bytes (t->n_bytes of them) inside the mapped file. */
const void *gguf_tensor_data(const struct gguf_file *f, const struct gguf_tensor *t);
/* 1 when gguf_tensor_read_f32 converts this ggml type. */
int gguf_type_supported(uint32_t type);
/* Dequantize tensor t (F32, F16, BF16, Q4_0, Q4_1, Q8_0 or Q6_K) to fp32 in
 * file order (dims[0] fastest) into out, which holds n floats; n must equal
 * t->n_elems. Results equal ggml's dequantize_row_* bit for bit. */
int gguf_tensor_read_f32(const struct gguf_file *f, const struct gguf_tensor *t,
                         float *out, size_t n, char *err, size_t errlen);
/* "Q4_K" for a ggml type id, "?" when unknown. */
const char *ggml_type_name(uint32_t type);

#endif
