/*
 * fuzz_safetensors.c: libFuzzer harness for the safetensors reader
 * (engine/safetensors.h). The input is written to a file and opened with
 * st_open, which validates the whole header; then every tensor is looked up
 * by name and read through the converter its dtype takes (up to 1 Mi
 * elements), and the metadata and shapes are queried.
 */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_common.h"
#include "safetensors.h"

#define MAX_ELEMS ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    char err[1024], shape[256];
    const char *path = fuzz_write_scratch("model.safetensors", data, n);
    struct st_file *f = st_open(path, err, sizeof err);
    if (!f)
        return 0;
    st_metadata(f, "format");
    for (int i = 0; i < st_count(f); i++) {
        const struct st_tensor *t = st_tensor_at(f, i);
        if (st_find(f, t->name) != t || t->begin > t->end)
            abort();
        st_shape_str(shape, sizeof shape, t->shape, t->ndim);
        if (t->numel > MAX_ELEMS)
            continue;
        void *out = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (!out)
            abort();
        if (t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16)
            st_read_f32(f, t, out, t->numel, err, sizeof err);
        else if (t->dtype == ST_I32 || t->dtype == ST_I64)
            st_read_i32(f, t, out, t->numel, err, sizeof err);
        free(out);
    }
    st_close(f);
    return 0;
}
