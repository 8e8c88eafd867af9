/*
 * rope_layout.c: the q/k row permutation between RoPE layouts (see
 * rope_layout.h).
 */
#include <stddef.h>
#include <string.h>

#include "rope_layout.h"

void rope_rows_adjacent_to_half_split(float *dst, const float *src, int nh, int hd,
                                      int cols)
{
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int c = 0; c < 2; c++) {
                const float *s = src + ((size_t)h * hd + 2 * i + c) * cols;
                float *d = dst + ((size_t)h * hd + c * (hd / 2) + i) * cols;
                memcpy(d, s, (size_t)cols * sizeof(float));
            }
}
