/*
 * fuzz_gguf.c: libFuzzer harness for the GGUF reader (engine/gguf.h) and
 * the tokenizer built from GGUF metadata (engine/tok_gguf.c). The input is
 * written to a file and opened with gguf_open; every metadata value is read
 * through the getter of its type (arrays walked, nested ones too, up to 64
 * elements each), every tensor looked up by name and dequantized when its
 * type is supported (up to 1 Mi elements). Then tokenizer_load reads the
 * same file as a GGUF tokenizer, exercised when it loads.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "fuzz_tok_exercise.h"
#include "gguf.h"

#define MAX_ELEMS ((uint64_t)1 << 20)
#define MAX_WALK 64

static void walk(const struct gguf_arr *a, int depth)
{
    for (uint64_t i = 0; i < a->count && i < MAX_WALK; i++) {
        struct gguf_arr sub;
        size_t len;
        int64_t iv;
        double dv;
        int bv;
        switch (a->type) {
        case GGUF_TYPE_STRING:
            if (!gguf_arr_str(a, i, &len))
                abort();
            break;
        case GGUF_TYPE_ARRAY:
            if (gguf_arr_arr(a, i, &sub) != 0)
                abort();
            if (depth < 4)
                walk(&sub, depth + 1);
            break;
        case GGUF_TYPE_BOOL:
            if (gguf_arr_bool(a, i, &bv) != 0)
                abort();
            break;
        case GGUF_TYPE_FLOAT32:
        case GGUF_TYPE_FLOAT64:
            if (gguf_arr_float(a, i, &dv) != 0)
                abort();
            break;
        default:
            gguf_arr_int(a, i, &iv); /* a u64 above INT64_MAX is refused */
            gguf_arr_float(a, i, &dv);
        }
    }
}

static void read_all(struct gguf_file *f)
{
    char err[1024];
    for (int i = 0; i < gguf_kv_count(f); i++) {
        const char *key = gguf_kv_key(f, i);
        struct gguf_arr a;
        const char *s;
        size_t len;
        int64_t iv;
        double dv;
        int bv;
        if (!gguf_has(f, key))
            abort();
        switch (gguf_kv_type(f, i)) {
        case GGUF_TYPE_STRING:
            if (gguf_get_str(f, key, &s, &len, err, sizeof err) != 0)
                abort();
            break;
        case GGUF_TYPE_ARRAY:
            if (gguf_get_arr(f, key, &a, err, sizeof err) != 0)
                abort();
            walk(&a, 0);
            break;
        case GGUF_TYPE_BOOL:
            if (gguf_get_bool(f, key, &bv, err, sizeof err) != 0)
                abort();
            break;
        default:
            gguf_get_int(f, key, &iv, err, sizeof err);
            if (gguf_get_float(f, key, &dv, err, sizeof err) != 0)
                abort();
        }
    }
    for (int i = 0; i < gguf_tensor_count(f); i++) {
        const struct gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t || !gguf_tensor_data(f, t))
            abort();
        if (!gguf_type_supported(t->type) || t->n_elems > MAX_ELEMS)
            continue;
        float *out = malloc(t->n_elems * sizeof *out);
        if (!out)
            abort();
        if (gguf_tensor_read_f32(f, t, out, t->n_elems, err, sizeof err) != 0)
            abort();
        free(out);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    static const char sample[] = "Hello, world! 123 héllo 日本語 <|im_start|>user\n x";
    char err[1024];
    struct tokenizer t;
    const char *path = fuzz_write_scratch("model.gguf", data, n);
    struct gguf_file *f = gguf_open(path, err, sizeof err);
    if (!f)
        return 0;
    read_all(f);
    gguf_close(f);
    if (tokenizer_load(&t, path, 0, err, sizeof err) == 0) {
        fuzz_tok_exercise(&t, sample, sizeof sample - 1);
        tokenizer_free(&t);
    }
    return 0;
}
