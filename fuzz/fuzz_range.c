/*
 * fuzz_range.c: libFuzzer harness for the Range header parser of checkpoint
 * downloads (checkpoints_parse_range, server/h_checkpoints.h). The first 8
 * input bytes are the file size (little-endian, taken modulo 2^40 so small
 * sizes come up), the rest the header. A satisfiable range must lie inside
 * the file, only a "bytes=" header may be honoured, and an explicit range
 * printed back from the result must parse to the same bytes.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "h_checkpoints.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
    uint64_t size = 0, first = 0, last = 0, f2 = 0, l2 = 0;
    char again[64];
    if (n < 8)
        return 0;
    for (int i = 7; i >= 0; i--)
        size = size << 8 | data[i];
    size &= ((uint64_t)1 << 40) - 1;
    char *h = fuzz_cstr(data + 8, n - 8);
    enum range_kind k = checkpoints_parse_range(h, size, &first, &last);
    if (k != RANGE_NONE && strncmp(h, "bytes=", 6) != 0)
        abort();
    if (k == RANGE_OK) {
        if (first > last || last >= size)
            abort();
        snprintf(again, sizeof again, "bytes=%" PRIu64 "-%" PRIu64, first, last);
        if (checkpoints_parse_range(again, size, &f2, &l2) != RANGE_OK || f2 != first ||
            l2 != last)
            abort();
    }
    free(h);
    return 0;
}
